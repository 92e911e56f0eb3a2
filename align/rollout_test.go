package align

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/shoggo/shoggo/backend"
	"github.com/shoggo/shoggo/backend/cpu"
	"github.com/shoggo/shoggo/decode"
	"github.com/shoggo/shoggo/lora"
	"github.com/shoggo/shoggo/model"
	"github.com/shoggo/shoggo/tensor"
)

func TestBuildBatch(t *testing.T) {
	b, mask := BuildBatch([][]int32{{1, 2}, {3}}, [][]int32{{4, 5, 6}, {7}}, 0)
	if b.B != 2 || b.T != 5 {
		t.Fatalf("shape %dx%d, want 2x5", b.B, b.T)
	}
	I := int32(backend.IgnoreIndex)
	wantIDs := []int32{1, 2, 4, 5, 6, 3, 7, 0, 0, 0}
	wantTg := []int32{I, 4, 5, 6, I, 7, I, I, I, I}
	wantMask := []float64{0, 1, 1, 1, 0, 1, 0, 0, 0, 0}
	for i := range wantIDs {
		if b.IDs[i] != wantIDs[i] || b.Targets[i] != wantTg[i] || mask[i] != wantMask[i] {
			t.Fatalf("position %d: id %d target %d mask %v, want %d %d %v", i, b.IDs[i], b.Targets[i], mask[i], wantIDs[i], wantTg[i], wantMask[i])
		}
	}
}

// The LoRA reference (adapters switched off) scores like the base model,
// while the policy (adapters on) scores differently; the adapters are on
// again afterwards. Sampled rollouts score with finite log-probs.
func TestReferenceAdaptersOff(t *testing.T) {
	cfg, err := model.LookupPreset("tiny-llama")
	if err != nil {
		t.Fatal(err)
	}
	m, err := model.New(cfg, cpu.New(), tensor.F32, false)
	if err != nil {
		t.Fatal(err)
	}
	m.InitWeights(rand.New(rand.NewPCG(1, 2)))
	prompts := [][]int32{{5, 6, 7}, {5, 6, 7}, {9, 10}}
	rows, err := Sample(m, prompts, []uint64{1, 2, 3}, []int32{0}, 4, decode.Sampling{Temperature: 1}, func([]int32) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	comps := make([][]int32, len(rows))
	for i, r := range rows {
		comps[i] = r.Completion
	}
	b, mask := BuildBatch(prompts, comps, 0)
	base, err := PolicyLogProbs(m, b)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range base {
		if mask[i] != 0 && (v >= 0 || math.IsNaN(v)) {
			t.Fatalf("log-prob %v at %d", v, i)
		}
	}
	a, err := lora.Apply(m, lora.Config{R: 2, Alpha: 4, Targets: []string{"q_proj", "v_proj"}, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for _, md := range a.Modules {
		for i := range md.B.F32 {
			md.B.F32[i] = float32(rng.NormFloat64())
		}
	}
	ref := Reference{Model: m, Adapters: a}
	got, err := ref.LogProbs(b)
	if err != nil {
		t.Fatal(err)
	}
	pol, err := PolicyLogProbs(m, b)
	if err != nil {
		t.Fatal(err)
	}
	differs := false
	for i := range base {
		if math.Abs(got[i]-base[i]) > 1e-9 {
			t.Fatalf("reference log-prob %d: %v, base model %v", i, got[i], base[i])
		}
		if mask[i] != 0 && math.Abs(pol[i]-base[i]) > 1e-4 {
			differs = true
		}
	}
	if !differs {
		t.Fatal("the policy with adapters scores like the base: the adapters were not switched back on")
	}
}
