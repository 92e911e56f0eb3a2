package model

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/shoggo/shoggo/backend/cpu"
	"github.com/shoggo/shoggo/tensor"
)

// autocastRun builds a float32 model of preset with seeded random weights,
// sets its precision and runs one ForwardBackward on a packed batch,
// returning the loss and the flat gradient.
func autocastRun(t *testing.T, preset string, prec tensor.DType, ck bool) (float64, []float32, *Transformer) {
	t.Helper()
	cfg, _ := LookupPreset(preset)
	m, err := New(cfg, cpu.New(), tensor.F32, true)
	if err != nil {
		t.Fatal(err)
	}
	randomize(m, rand.New(rand.NewPCG(11, 12)), 0.2)
	if err := m.SetCheckpointing(ck); err != nil {
		t.Fatal(err)
	}
	if err := m.SetPrecision(prec); err != nil {
		t.Fatal(err)
	}
	b := testBatch(rand.New(rand.NewPCG(13, 14)), 3, 11, cfg.VocabSize, "packed")
	l, _, err := m.ForwardBackward(b, 0.05)
	if err != nil {
		t.Fatal(err)
	}
	return l, append([]float32(nil), m.Grads.Flat().F32...), m
}

// relL2 is |a-b|/|b| over the two vectors.
func relL2(a, b []float32) float64 {
	var d, n float64
	for i := range a {
		x, y := float64(a[i]), float64(b[i])
		d += (x - y) * (x - y)
		n += y * y
	}
	return math.Sqrt(d / n)
}

// Under bf16/fp16 autocast the loss and gradients stay close to the fp32
// run on the same weights (relative L2 of all gradients: bf16 ≤ 5e-2, fp16
// ≤ 1e-2; loss: bf16 ≤ 3e-3, fp16 ≤ 5e-4 relative: 8 and 11 bits of
// mantissa on every matmul operand; measured: grads ≤ 2.0e-2 and 2.8e-3,
// loss ≤ 5.3e-4 and 6.9e-5) yet differ from it (autocast really
// applied), and gradient checkpointing recomputes the 16-bit activations
// bit for bit.
func TestAutocastCloseToF32(t *testing.T) {
	tol := map[tensor.DType][2]float64{tensor.BF16: {3e-3, 5e-2}, tensor.F16: {5e-4, 1e-2}}
	for _, preset := range []string{"tiny-gpt2", "tiny-llama", "tiny-qwen2", "tiny-qwen3"} {
		l32, g32, _ := autocastRun(t, preset, tensor.F32, false)
		for _, prec := range []tensor.DType{tensor.BF16, tensor.F16} {
			l, g, m := autocastRun(t, preset, prec, false)
			if m.acts.layers[0].q.DType != prec || m.acts.resid[0].DType != tensor.F32 || m.acts.dres.DType != tensor.F32 {
				t.Fatalf("%s %v: q %v, resid %v, dres %v", preset, prec, m.acts.layers[0].q.DType, m.acts.resid[0].DType, m.acts.dres.DType)
			}
			dl, dg := math.Abs(l-l32)/math.Abs(l32), relL2(g, g32)
			t.Logf("%s %v: loss %.6f (fp32 %.6f, rel %.2e), grads rel L2 %.2e", preset, prec, l, l32, dl, dg)
			if dl > tol[prec][0] || dg > tol[prec][1] {
				t.Errorf("%s %v: loss rel diff %.3g (tol %g), grad rel L2 %.3g (tol %g)", preset, prec, dl, tol[prec][0], dg, tol[prec][1])
			}
			if l == l32 || dg == 0 {
				t.Errorf("%s %v: results equal the fp32 run: autocast not applied", preset, prec)
			}
			lc, gc, _ := autocastRun(t, preset, prec, true)
			if lc != l {
				t.Errorf("%s %v: loss %v with checkpointing, %v without", preset, prec, lc, l)
			}
			for i := range g {
				if gc[i] != g[i] {
					t.Fatalf("%s %v: grad %d: %v with checkpointing, %v without", preset, prec, i, gc[i], g[i])
				}
			}
		}
	}
}

// The saved activations shrink by the bytes of the 16-bit ones; residual
// streams, statistics and gradient scratch stay fp32.
func TestAutocastActivationBytes(t *testing.T) {
	cfg, _ := LookupPreset("tiny-llama")
	m, _ := New(cfg, cpu.New(), tensor.F32, true)
	if s, tot := m.ActivationBytes(); s != 0 || tot != 0 {
		t.Fatalf("before Plan: %d %d", s, tot)
	}
	const B, T = 2, 8
	if err := m.Plan(B, T); err != nil {
		t.Fatal(err)
	}
	s32, t32 := m.ActivationBytes()
	if err := m.SetPrecision(tensor.BF16); err != nil {
		t.Fatal(err)
	}
	s16, t16 := m.ActivationBytes()
	N, C, I, L := int64(B*T), int64(cfg.HiddenSize), int64(cfg.IntermediateSize), int64(cfg.NumHiddenLayers)
	Q, KV := int64(cfg.NumAttentionHeads*cfg.HeadDim()), int64(cfg.NumKeyValueHeads*cfg.HeadDim())
	half := N * (L*(C+Q+KV+KV+Q+C+3*I) + C) // ln1 q k v att ln2 h1 h2 act per layer, lnf
	if s32-s16 != 2*half || t32-t16 != 2*half {
		t.Errorf("saved %d -> %d, total %d -> %d: want both to shrink by %d bytes", s32, s16, t32, t16, 2*half)
	}
	t.Logf("saved activations: fp32 %d B, bf16 %d B (%.2fx); with scratch %d -> %d B", s32, s16, float64(s16)/float64(s32), t32, t16)
}

// Precision does not reach decoding, which stays fp32; a float64 model
// refuses 16-bit compute; ParsePrecision names bad values.
func TestAutocastDecodeAndErrors(t *testing.T) {
	cfg, _ := LookupPreset("tiny-qwen2")
	m64, _ := New(cfg, cpu.New(), tensor.F64, true)
	if err := m64.SetPrecision(tensor.BF16); err == nil {
		t.Error("SetPrecision(bf16) on a float64 model: no error")
	}
	if _, err := ParsePrecision("fp8"); err == nil {
		t.Error("ParsePrecision(fp8): no error")
	}
	for s, want := range map[string]tensor.DType{"fp32": tensor.F32, "bf16": tensor.BF16, "fp16": tensor.F16, "bfloat16": tensor.BF16} {
		if got, err := ParsePrecision(s); err != nil || got != want {
			t.Errorf("ParsePrecision(%q) = %v, %v", s, got, err)
		}
	}
	var logits [2][]float32
	for i, prec := range []tensor.DType{tensor.F32, tensor.BF16} {
		m, _ := New(cfg, cpu.New(), tensor.F32, true)
		randomize(m, rand.New(rand.NewPCG(1, 1)), 0.2)
		if err := m.SetPrecision(prec); err != nil {
			t.Fatal(err)
		}
		kc, err := m.NewKVCache(1, 8)
		if err != nil {
			t.Fatal(err)
		}
		out := tensor.New(tensor.F32, 1, cfg.VocabSize)
		if err := m.ForwardKV(kc, []int32{0}, []int32{3, 5, 7}, 3, nil, out); err != nil {
			t.Fatal(err)
		}
		logits[i] = out.F32
	}
	for j := range logits[0] {
		if logits[0][j] != logits[1][j] {
			t.Fatalf("decode logit %d: %v fp32, %v with bf16 precision set", j, logits[0][j], logits[1][j])
		}
	}
}
