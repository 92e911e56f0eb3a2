package model

import (
	"slices"
	"strings"
	"testing"

	"github.com/shoggo/shoggo/backend/cpu"
	"github.com/shoggo/shoggo/nn"
	"github.com/shoggo/shoggo/tensor"
)

// familyPresets is a tiny preset per family of the table.
var familyPresets = map[Family]string{GPT2: "tiny-gpt2", Llama: "tiny-llama", Qwen2: "tiny-qwen2", Qwen3: "tiny-qwen3"}

// Every table entry is complete and wires every parameter: each family has
// a tiny preset; the wired modules (embeddings, norms, linears, q/k norms,
// LM head) together cover every element of the parameter and gradient
// arenas; BlockLinear recognises exactly the block linears' weights and
// biases; only norm weights are 1-D besides biases; the tensor names agree
// with the table's.
func TestFamilyTable(t *testing.T) {
	for _, name := range FamilyNames() {
		f := LookupFamily(Family(name))
		preset, ok := familyPresets[f.Family]
		if !ok {
			t.Errorf("family %s has no tiny preset in familyPresets", name)
			continue
		}
		t.Run(name, func(t *testing.T) {
			cfg, _ := LookupPreset(preset)
			if cfg.Spec() != f || len(f.Activations) == 0 || f.Architecture == "" {
				t.Fatalf("%s: table entry %+v", preset, f)
			}
			m, err := New(cfg, cpu.New(), tensor.F32, true)
			if err != nil {
				t.Fatal(err)
			}
			for _, arena := range []*tensor.Arena{m.Params, m.Grads} {
				arena.Zero()
				mark := func(ts ...*tensor.Tensor) {
					for _, x := range ts {
						if x != nil {
							for i := range x.F32 {
								x.F32[i]++
							}
						}
					}
				}
				grads := arena == m.Grads
				pick := func(w, dw *tensor.Tensor) *tensor.Tensor {
					if grads {
						return dw
					}
					return w
				}
				markNorm := func(n *nn.Norm) {
					if n != nil {
						mark(pick(n.W, n.DW), pick(n.B, n.DB))
					}
				}
				mark(pick(m.Embed, m.DEmbed), pick(m.PosEmbed, m.DPosEmbed))
				if m.LMHead != m.Embed {
					mark(pick(m.LMHead, m.DLMHead))
				}
				markNorm(m.NormF)
				for _, blk := range m.Blocks {
					for _, n := range []*nn.Norm{blk.Norm1, blk.Norm2, blk.QNorm, blk.KNorm} {
						markNorm(n)
					}
					for _, l := range []nn.Layer{blk.Q, blk.K, blk.V, blk.O, blk.Fc, blk.Proj, blk.Gate, blk.Up, blk.Down} {
						if lin, ok := l.(*nn.Linear); ok {
							mark(pick(lin.W, lin.DW), pick(lin.B, lin.DB))
						}
					}
				}
				for i, v := range arena.Flat().F32 {
					if v != 1 {
						t.Fatalf("grads=%v: arena element %d is wired %v times", grads, i, v)
					}
				}
			}
			var linears []string
			for _, s := range ParamSpecs(cfg) {
				prefix, isLin := f.BlockLinear(s.Name)
				if isLin {
					linears = append(linears, prefix)
					if len(s.Shape) != 2 && !strings.HasSuffix(s.Name, ".bias") {
						t.Errorf("%s: a linear weight of shape %v", s.Name, s.Shape)
					}
				} else if len(s.Shape) == 1 && !strings.Contains(s.Name, "norm") && !strings.Contains(s.Name, "ln_") {
					t.Errorf("%s: 1-D tensor that is neither a norm nor a linear's bias", s.Name)
				}
			}
			var want []string
			for l := 0; l < cfg.NumHiddenLayers; l++ {
				want = append(want, f.BlockLinears(l)...)
			}
			if linears = slices.Compact(linears); !slices.Equal(linears, want) {
				t.Errorf("block linears %v, table %v", linears, want)
			}
			if _, ok := f.BlockLinear(f.Names.Embed + ".weight"); ok {
				t.Error("embedding taken for a block linear")
			}
			if !f.isTable(f.Names.Embed+".weight") || f.isTable(f.LayerPrefix(0)+f.Names.Norm1+".weight") {
				t.Error("isTable")
			}
		})
	}
}
