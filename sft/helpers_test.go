package sft

import (
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/shoggo/shoggo/backend/cpu"
	"github.com/shoggo/shoggo/data"
	"github.com/shoggo/shoggo/model"
	"github.com/shoggo/shoggo/sft/tasks"
	"github.com/shoggo/shoggo/tensor"
	"github.com/shoggo/shoggo/tokenizer"
)

var specials = []string{"<|endoftext|>", "<|im_start|>", "<|im_end|>"}

var (
	tokOnce sync.Once
	tokVal  *tokenizer.Tokenizer
	tokErr  error
)

// testTokenizer is a 400-token BPE trained on a little English and the
// default task's questions, with the ChatML specials.
func testTokenizer(t testing.TB) *tokenizer.Tokenizer {
	t.Helper()
	tokOnce.Do(func() {
		texts := []string{
			"The quick brown fox jumps over the lazy dog. ",
			"### Instruction:\nSay hello.\n\n### Input:\nto the world\n\n### Response:\nHello, world!",
			"You are a helpful assistant. Tell me a story about a cat and a dog.",
		}
		train, _, err := tasks.Generate(tasks.Config{Seed: 1, Train: 300})
		if err != nil {
			tokErr = err
			return
		}
		for _, ex := range train {
			texts = append(texts, AlpacaPrompt(ex.Instruction, "")+ex.Output+"<|endoftext|>",
				"<|im_start|>user\n"+ex.Instruction+"<|im_end|>\n<|im_start|>assistant\n"+ex.Output+"<|im_end|>")
		}
		tokVal, tokErr = tokenizer.Train(slices.Values(texts), 400, specials)
	})
	if tokErr != nil {
		t.Fatal(tokErr)
	}
	return tokVal
}

// eosTok overrides a tokenizer's EOS (a Qwen chat tokenizer has EOS =
// <|im_end|>).
type eosTok struct {
	*tokenizer.Tokenizer
	eos int32
}

func (e eosTok) EOS() int32 { return e.eos }

// byteTok is a fake tokenizer: one id per byte, EOS = 256.
type byteTok struct{}

func (byteTok) Encode(s string) []int32 {
	out := make([]int32, len(s))
	for i := range len(s) {
		out[i] = int32(s[i])
	}
	return out
}

func (byteTok) Decode(ids []int32) string {
	b := make([]byte, 0, len(ids))
	for _, id := range ids {
		if id < 256 {
			b = append(b, byte(id))
		}
	}
	return string(b)
}

func (byteTok) TokenToID(string) (int32, bool) { return 0, false }
func (byteTok) EOS() int32                     { return 256 }

// rawTemplate renders fixed pieces, whatever the example.
type rawTemplate []Piece

func (rawTemplate) Name() string                           { return "raw" }
func (r rawTemplate) Render(data.Example) ([]Piece, error) { return r, nil }
func (r rawTemplate) Prompt(data.Example) ([]Piece, string, error) {
	return nil, "", nil
}
func (rawTemplate) Stops(tok Tokenizer) ([]int32, error) { return []int32{tok.EOS()}, nil }

// tinyModel returns a preset model with random weights of scale 0.2 (so
// that attention is far from uniform) and the given vocabulary size (0
// keeps the preset's).
func tinyModel(t testing.TB, preset string, dt tensor.DType, vocab int, trainable bool, seed uint64) *model.Transformer {
	t.Helper()
	cfg, err := model.LookupPreset(preset)
	if err != nil {
		t.Fatal(err)
	}
	if vocab > 0 {
		cfg.VocabSize = vocab
	}
	m, err := model.New(cfg, cpu.New(), dt, trainable)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(seed, 3))
	for _, p := range m.Params.Tensors() {
		for i := 0; i < p.Numel(); i++ {
			if len(p.Shape) == 1 {
				p.Set(i, 1+0.1*rng.NormFloat64())
			} else {
				p.Set(i, 0.2*rng.NormFloat64())
			}
		}
	}
	return m
}

func randomIDs(rng *rand.Rand, n, vocab int) []int32 {
	out := make([]int32, n)
	for i := range out {
		out[i] = int32(rng.IntN(vocab))
	}
	return out
}
