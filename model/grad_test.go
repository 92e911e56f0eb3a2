package model

import (
	"math/rand/v2"
	"testing"

	"github.com/shoggo/shoggo/backend"
	"github.com/shoggo/shoggo/backend/cpu"
	"github.com/shoggo/shoggo/internal/gradcheck"
	"github.com/shoggo/shoggo/tensor"
)

// randomize fills every parameter with visible random values so no gradient
// path can hide behind zeros or ones.
func randomize(m *Transformer, rng *rand.Rand, std float64) {
	for _, t := range m.Params.Tensors() {
		for i := 0; i < t.Numel(); i++ {
			v := rng.NormFloat64() * std
			if len(t.Shape) == 1 && !isBias(t.Name) {
				v += 1
			}
			t.Set(i, v)
		}
	}
}

func isBias(name string) bool { return len(name) > 5 && name[len(name)-5:] == ".bias" }

func testBatch(rng *rand.Rand, B, T, V int, variant string) *Batch {
	b := &Batch{B: B, T: T, IDs: make([]int32, B*T), Targets: make([]int32, B*T)}
	for i := range b.IDs {
		b.IDs[i] = int32(rng.IntN(V))
		b.Targets[i] = int32(rng.IntN(V))
	}
	b.Targets[1] = backend.IgnoreIndex
	b.Targets[B*T-1] = backend.IgnoreIndex
	switch variant {
	case "padding": // right padding in the last row
		b.KeyMask = make([]int32, B*T)
		for i := range b.KeyMask {
			b.KeyMask[i] = 1
		}
		for t := T - 2; t < T; t++ {
			b.KeyMask[(B-1)*T+t] = 0
			b.Targets[(B-1)*T+t] = backend.IgnoreIndex
		}
	case "packed": // two documents in row 0, positions restarting
		b.Segments = make([]int32, B*T)
		b.Pos = make([]int32, B*T)
		for r := 0; r < B; r++ {
			for t := 0; t < T; t++ {
				seg, p := 0, t
				if r == 0 && t >= 2 {
					seg, p = 1, t-2
				}
				b.Segments[r*T+t] = int32(seg)
				b.Pos[r*T+t] = int32(p)
			}
		}
	}
	return b
}

// TestWholeModelGradients checks every parameter tensor's gradient against
// central finite differences in float64 on a sample of coordinates.
// Tolerance: eps 1e-5, |fd - analytic| <= 1e-8 + 1e-5·max(|fd|, |analytic|).
func TestWholeModelGradients(t *testing.T) {
	for _, preset := range []string{"tiny-gpt2", "tiny-llama", "tiny-qwen2", "tiny-qwen3"} {
		for _, variant := range []string{"plain", "padding", "packed"} {
			t.Run(preset+"/"+variant, func(t *testing.T) {
				cfg, _ := LookupPreset(preset)
				cfg.NumHiddenLayers = 2
				cfg.HiddenSize, cfg.IntermediateSize = 16, 24
				cfg.NumAttentionHeads = 4
				if cfg.Family() == GPT2 {
					cfg.NumKeyValueHeads = 4
				} else {
					cfg.NumKeyValueHeads = 2
				}
				cfg.VocabSize = 23
				m, err := New(cfg, cpu.New(), tensor.F64, true)
				if err != nil {
					t.Fatal(err)
				}
				m.ChunkRows = 3
				rng := rand.New(rand.NewPCG(1, 2))
				randomize(m, rng, 0.3)
				b := testBatch(rng, 2, 5, cfg.VocabSize, variant)
				m.ZeroGrad()
				_, count, err := m.ForwardBackward(b, 1)
				if err != nil {
					t.Fatal(err)
				}
				scale := 1 / float64(count)
				// Recompute with the right scale.
				m.ZeroGrad()
				if _, _, err = m.ForwardBackward(b, scale); err != nil {
					t.Fatal(err)
				}
				loss := func() float64 {
					if err := m.Forward(b); err != nil {
						t.Fatal(err)
					}
					s, _, err := m.Loss(b, scale, false)
					if err != nil {
						t.Fatal(err)
					}
					return s * scale
				}
				for _, p := range m.Params.Tensors() {
					g := m.Grads.Get(p.Name)
					grad := append([]float64(nil), g.F64...)
					if err := gradcheck.Check(p.Name, p.F64, grad, gradcheck.Sample(p.Numel(), 7), 1e-5, 1e-8, 1e-5, loss); err != nil {
						t.Error(err)
					}
				}
			})
		}
	}
}

// The float32 model agrees with the float64 model on the same weights.
func TestF32MatchesF64(t *testing.T) {
	for _, preset := range []string{"tiny-gpt2", "tiny-llama", "tiny-qwen2", "tiny-qwen3"} {
		cfg, _ := LookupPreset(preset)
		m64, _ := New(cfg, cpu.New(), tensor.F64, true)
		m32, _ := New(cfg, cpu.New(), tensor.F32, true)
		rng := rand.New(rand.NewPCG(3, 4))
		randomize(m64, rng, 0.1)
		for i, p := range m64.Params.Tensors() {
			q := m32.Params.Tensors()[i]
			for j := range p.F64 {
				q.F32[j] = float32(p.F64[j])
				p.F64[j] = float64(q.F32[j])
			}
		}
		b := testBatch(rng, 2, 7, cfg.VocabSize, "plain")
		l64, n, err := m64.ForwardBackward(b, 1)
		if err != nil {
			t.Fatal(err)
		}
		l32, _, err := m32.ForwardBackward(b, 1)
		if err != nil {
			t.Fatal(err)
		}
		if d := (l64 - l32) / l64; d > 1e-5 || d < -1e-5 {
			t.Errorf("%s: loss f64 %v f32 %v over %d tokens", preset, l64, l32, n)
		}
		for i, g := range m64.Grads.Tensors() {
			h := m32.Grads.Tensors()[i]
			var maxAbs, maxDiff float64
			for j := range g.F64 {
				maxAbs = max(maxAbs, abs(g.F64[j]))
				maxDiff = max(maxDiff, abs(g.F64[j]-float64(h.F32[j])))
			}
			if maxDiff > 1e-4*maxAbs+1e-6 {
				t.Errorf("%s %s: grad max diff %g (max |g| %g)", preset, g.Name, maxDiff, maxAbs)
			}
		}
	}
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}

// Gradient checkpointing recomputes each block during backward: losses and
// gradients equal the stored-activation run bit for bit, and the planned
// activation memory shrinks.
func TestCheckpointingIdentical(t *testing.T) {
	for _, preset := range []string{"tiny-gpt2", "tiny-llama", "tiny-qwen2", "tiny-qwen3"} {
		cfg, _ := LookupPreset(preset)
		var grads [2][]float32
		var losses [2]float64
		for i, ck := range []bool{false, true} {
			m, _ := New(cfg, cpu.New(), tensor.F32, true)
			randomize(m, rand.New(rand.NewPCG(5, 5)), 0.2)
			if err := m.SetCheckpointing(ck); err != nil {
				t.Fatal(err)
			}
			b := testBatch(rand.New(rand.NewPCG(6, 6)), 2, 9, cfg.VocabSize, "packed")
			l, _, err := m.ForwardBackward(b, 0.1)
			if err != nil {
				t.Fatal(err)
			}
			losses[i] = l
			grads[i] = append([]float32(nil), m.Grads.Flat().F32...)
		}
		if losses[0] != losses[1] {
			t.Errorf("%s: loss %v vs %v with checkpointing", preset, losses[0], losses[1])
		}
		for j := range grads[0] {
			if grads[0][j] != grads[1][j] {
				t.Fatalf("%s: grad %d: %v vs %v", preset, j, grads[0][j], grads[1][j])
			}
		}
	}
}
