package train

import (
	"math/rand/v2"

	"github.com/shoggo/shoggo/decode"
	"github.com/shoggo/shoggo/model"
)

// Tokenizer is what recipes need from a tokenizer.
type Tokenizer interface {
	Encode(s string) []int32
	Decode(ids []int32) string
}

// GenerateText continues prompt ids by up to maxNew tokens and returns the
// decoded continuation (stopping at eos).
func GenerateText(m *model.Transformer, tok Tokenizer, prompt []int32, maxNew int, opt decode.Sampling, eos int32, rng *rand.Rand) (string, error) {
	if len(prompt) == 0 {
		prompt = []int32{eos}
	}
	if ctx := m.Cfg.MaxPositionEmbeddings; len(prompt) >= ctx {
		prompt = prompt[len(prompt)-ctx+1:]
	}
	res, err := decode.Generate(m, [][]int32{prompt}, decode.Options{MaxNewTokens: maxNew, Sampling: opt,
		Seed: rng.Uint64(), EOS: []int32{eos}})
	if err != nil {
		return "", err
	}
	return tok.Decode(res[0].Tokens), nil
}
