package model

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/shoggo/shoggo/backend/cpu"
	"github.com/shoggo/shoggo/nn"
	"github.com/shoggo/shoggo/tensor"
)

// A model whose block linears come from a factory (here: plain copies)
// computes the same logits as the ordinary model, for fixture checkpoints of
// every family; and the arena then holds no block-linear weights.
func TestFrozenFactoryMatches(t *testing.T) {
	calls := 0
	copyFactory := func(name string, w, b *tensor.Tensor) (nn.Layer, error) {
		calls++
		l := &nn.Linear{BE: cpu.New(), Name: name, W: w.Clone()}
		if b != nil {
			l.B = b.Clone()
		}
		return l, nil
	}
	for _, dir := range []string{"../testdata/models/gpt2", "../testdata/models/llama", "../testdata/models/qwen2"} {
		ref, _, err := LoadHF(dir, cpu.New(), tensor.F32, false)
		if err != nil {
			t.Fatal(err)
		}
		calls = 0
		fz, _, err := LoadHFFrozen(dir, cpu.New(), tensor.F32, false, copyFactory)
		if err != nil {
			t.Fatal(err)
		}
		if calls != 7*ref.Cfg.NumHiddenLayers && !(ref.Cfg.Family() == GPT2 && calls == 6*ref.Cfg.NumHiddenLayers) {
			t.Errorf("%s: factory called %d times", dir, calls)
		}
		if fz.Params.Numel() >= ref.Params.Numel() {
			t.Errorf("%s: frozen arena %d >= full %d", dir, fz.Params.Numel(), ref.Params.Numel())
		}
		ids := make([]int32, 2*6)
		rng := rand.New(rand.NewPCG(1, 2))
		for i := range ids {
			ids[i] = int32(rng.IntN(ref.Cfg.VocabSize))
		}
		b := &Batch{B: 2, T: 6, IDs: ids}
		if err := ref.Forward(b); err != nil {
			t.Fatal(err)
		}
		want := ref.Logits()
		if err := fz.Forward(b); err != nil {
			t.Fatal(err)
		}
		got := fz.Logits()
		for i := range want.F32 {
			if math.Abs(float64(want.F32[i]-got.F32[i])) > 1e-6 {
				t.Fatalf("%s: logit %d: %v vs %v", dir, i, got.F32[i], want.F32[i])
			}
		}
		if _, err := fz.HFTensors(tensor.F32); err == nil {
			t.Errorf("%s: saving a factory-built model should be refused", dir)
		}
	}
	// Random init goes through the factory too.
	cfg, _ := LookupPreset("tiny-llama")
	m, err := NewFrozen(cfg, cpu.New(), tensor.F32, false, copyFactory)
	if err != nil {
		t.Fatal(err)
	}
	m.InitWeights(rand.New(rand.NewPCG(1, 1)))
	if err := m.Forward(&Batch{B: 1, T: 3, IDs: []int32{1, 2, 3}}); err != nil {
		t.Fatal(err)
	}
}
