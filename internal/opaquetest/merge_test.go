package opaquetest

import (
	"io"
	"math/rand/v2"
	"testing"

	"github.com/shoggo/shoggo/backend"
	"github.com/shoggo/shoggo/lora"
	"github.com/shoggo/shoggo/model"
	"github.com/shoggo/shoggo/recipe"
	"github.com/shoggo/shoggo/tensor"
)

// randomB fills every adapter's B (zero after Apply) with seeded values
// through the backend.
func randomB(be backend.Backend, a *lora.Adapters) {
	rng := rand.New(rand.NewPCG(61, 62))
	for _, md := range a.Modules {
		backend.FillHost(be, md.B, func(h *tensor.Tensor) {
			for i := 0; i < h.Numel(); i++ {
				h.Set(i, 0.05*rng.NormFloat64())
			}
		})
	}
}

// TestOpaqueMerge: merging adapters into an fp32 base (GPT-2, whose fused
// c_attn gets the whole update through three views) and into a bf16 base
// (HalfLinear weights widened, summed and rounded back) gives the same
// bits on the opaque backend as on the CPU: the merged fp32 models save to
// the same bytes, and the bf16 weights are equal.
func TestOpaqueMerge(t *testing.T) {
	t.Run("fp32", func(t *testing.T) {
		var outs []string
		for _, be := range backends() {
			cfg, err := model.LookupPreset("tiny-gpt2")
			if err != nil {
				t.Fatal(err)
			}
			m, err := model.New(cfg, be, tensor.F32, false)
			if err != nil {
				t.Fatal(err)
			}
			m.InitWeights(rand.New(rand.NewPCG(3, 4)))
			a, err := lora.Apply(m, lora.Config{R: 2, Alpha: 4, Targets: []string{lora.AllLinear}, Seed: 1})
			if err != nil {
				t.Fatal(err)
			}
			randomB(be, a)
			if err := lora.Merge(m, a); err != nil {
				t.Fatal(err)
			}
			out := t.TempDir()
			if err := m.SaveHF(out, model.SaveOptions{}); err != nil {
				t.Fatal(err)
			}
			outs = append(outs, out)
		}
		sameFiles(t, outs[0], outs[1])
	})
	t.Run("bf16", func(t *testing.T) {
		bes := backends()
		var ws [][]*tensor.Tensor
		for _, be := range bes {
			m, err := recipe.LoadBase(recipe.BaseConfig{Preset: "tiny-qwen2", BaseDType: "bf16"}, true, 0, 2, be, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			a, err := lora.Apply(m, lora.Config{R: 2, Alpha: 4, Targets: []string{"q_proj", "down_proj"}, Seed: 1})
			if err != nil {
				t.Fatal(err)
			}
			randomB(be, a)
			if err := lora.Merge(m, a); err != nil {
				t.Fatal(err)
			}
			var w []*tensor.Tensor
			for _, blk := range m.Blocks {
				for _, l := range []any{blk.Q, blk.Down} {
					h, ok := l.(*lora.HalfLinear)
					if !ok {
						t.Fatalf("merged layer is a %T, want *lora.HalfLinear", l)
					}
					w = append(w, h.W)
				}
			}
			ws = append(ws, w)
		}
		sameOn(t, "merged bf16 weight", bes, ws[0], ws[1])
	})
}
