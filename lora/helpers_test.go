package lora

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/shoggo/shoggo/backend"
	"github.com/shoggo/shoggo/backend/cpu"
	"github.com/shoggo/shoggo/model"
	"github.com/shoggo/shoggo/tensor"
)

// tinyModel builds a small random model of a preset's family (2 layers,
// hidden 16) in dtype dt.
func tinyModel(t *testing.T, preset string, dt tensor.DType, trainable bool, seed uint64) *model.Transformer {
	t.Helper()
	cfg, err := model.LookupPreset(preset)
	if err != nil {
		t.Fatal(err)
	}
	cfg.NumHiddenLayers = 2
	cfg.HiddenSize, cfg.IntermediateSize = 16, 24
	cfg.NumAttentionHeads = 4
	if cfg.Family() == model.GPT2 {
		cfg.NumKeyValueHeads = 4
	} else {
		cfg.NumKeyValueHeads = 2
	}
	cfg.VocabSize = 23
	m, err := model.New(cfg, cpu.New(), dt, trainable)
	if err != nil {
		t.Fatal(err)
	}
	m.ChunkRows = 3
	randomize(m.Params, rand.New(rand.NewPCG(seed, 7)), 0.3)
	return m
}

// randomize fills every tensor with N(0, std²), norm weights around 1.
func randomize(a *tensor.Arena, rng *rand.Rand, std float64) {
	for _, t := range a.Tensors() {
		one := len(t.Shape) == 1 && !strings.HasSuffix(t.Name, ".bias")
		for i := 0; i < t.Numel(); i++ {
			v := rng.NormFloat64() * std
			if one {
				v++
			}
			t.Set(i, v)
		}
	}
}

// randomB gives every B visible random values (PEFT's zeros would hide the
// adapter path).
func randomB(a *Adapters, seed uint64, std float64) {
	rng := rand.New(rand.NewPCG(seed, 99))
	for _, md := range a.Modules {
		for i := 0; i < md.B.Numel(); i++ {
			md.B.Set(i, rng.NormFloat64()*std)
		}
	}
}

func testBatch(seed uint64, B, T, V int) *model.Batch {
	rng := rand.New(rand.NewPCG(seed, 3))
	b := &model.Batch{B: B, T: T, IDs: make([]int32, B*T), Targets: make([]int32, B*T)}
	for i := range b.IDs {
		b.IDs[i] = int32(rng.IntN(V))
		b.Targets[i] = int32(rng.IntN(V))
	}
	b.Targets[1] = backend.IgnoreIndex
	return b
}

func logits(t *testing.T, m *model.Transformer, b *model.Batch) []float64 {
	t.Helper()
	if err := m.Forward(b); err != nil {
		t.Fatal(err)
	}
	l := m.Logits()
	out := make([]float64, l.Numel())
	for i := range out {
		out[i] = l.At(i)
	}
	return out
}

func maxDiff(a, b []float64) float64 {
	if len(a) != len(b) {
		return math.Inf(1)
	}
	var d float64
	for i := range a {
		d = math.Max(d, math.Abs(a[i]-b[i]))
	}
	return d
}

func f32s(x []float32) []float64 {
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = float64(v)
	}
	return out
}
