package train

import (
	"math/rand/v2"

	"github.com/shoggo/shoggo/model"
)

// Tokenizer is what recipes need from a tokenizer.
type Tokenizer interface {
	Encode(s string) []int32
	Decode(ids []int32) string
}

// GenerateText continues prompt ids by up to maxNew tokens and returns the
// decoded continuation (stopping at eos).
func GenerateText(m *model.Transformer, tok Tokenizer, prompt []int32, maxNew int, opt model.SampleOptions, eos int32, rng *rand.Rand) (string, error) {
	g, err := m.NewGenerator(0)
	if err != nil {
		return "", err
	}
	if len(prompt) == 0 {
		prompt = []int32{eos}
	}
	if len(prompt) >= g.Cap() {
		prompt = prompt[len(prompt)-g.Cap()+1:]
	}
	logits, err := g.Feed(prompt)
	if err != nil {
		return "", err
	}
	var out []int32
	hist := append([]int32(nil), prompt...)
	for len(out) < maxNew && g.Len() < g.Cap() {
		id := model.Sample(logits, hist, opt, rng)
		if id == eos {
			break
		}
		out = append(out, id)
		hist = append(hist, id)
		if g.Len() >= g.Cap() {
			break
		}
		if logits, err = g.Feed([]int32{id}); err != nil {
			return "", err
		}
	}
	return tok.Decode(out), nil
}
