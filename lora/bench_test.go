package lora

import (
	"math/rand/v2"
	"testing"

	"github.com/shoggo/shoggo/backend/cpu"
	"github.com/shoggo/shoggo/nn"
	"github.com/shoggo/shoggo/tensor"
)

// Benchmarks of one Qwen1.5-1.8B-sized projection (2048 -> 2048) on 1024
// tokens (batch 2 x 512): forward + backward to the input, for the plain
// fp32 linear, the bf16 HalfLinear, and LoRA r=8 over each (with dropout).
func benchLayer(b *testing.B, mk func(w *tensor.Tensor) nn.Layer) {
	const N, C = 1024, 2048
	be := cpu.New()
	_ = be
	rng := rand.New(rand.NewPCG(1, 1))
	w := tensor.New(tensor.F32, C, C)
	for i := range w.F32 {
		w.F32[i] = float32(rng.NormFloat64() * 0.02)
	}
	l := mk(w)
	x, y, dy, dx := tensor.New(tensor.F32, N, C), tensor.New(tensor.F32, N, C), tensor.New(tensor.F32, N, C), tensor.New(tensor.F32, N, C)
	for i := range x.F32 {
		x.F32[i] = float32(rng.NormFloat64())
		dy.F32[i] = float32(rng.NormFloat64())
	}
	b.ResetTimer()
	for range b.N {
		l.Forward(y, x)
		l.Backward(dx, dy, x)
	}
	b.ReportMetric(float64(N*b.N)/b.Elapsed().Seconds(), "tok/s")
}

func plain(w *tensor.Tensor) nn.Layer { return &nn.Linear{BE: cpu.New(), W: w} }
func halfL(w *tensor.Tensor) nn.Layer {
	h, _ := NewHalfLinear(cpu.New(), "w", w, nil, tensor.BF16)
	return h
}

// wrap puts a standalone LoRA module (r=8, dropout 0.05) around base.
func wrap(base nn.Layer) nn.Layer {
	cfg := Config{R: 8, Alpha: 32, Dropout: 0.05}
	a := &Adapters{Cfg: cfg, be: cpu.New(), dt: tensor.F32, training: true}
	a.scratch.dt = tensor.F32
	md := &Module{Name: "m", R: 8, Scaling: cfg.Scaling(), A: tensor.New(tensor.F32, 8, base.In()), DA: tensor.New(tensor.F32, 8, base.In()),
		B: tensor.New(tensor.F32, base.Out(), 8), DB: tensor.New(tensor.F32, base.Out(), 8), rng: rand.New(rand.NewPCG(1, 2)), maskUsed: make([]bool, 1)}
	l := &Linear{Base: base, Mod: md, ad: a, B: md.B, DB: md.DB}
	md.Views = []*Linear{l}
	return l
}

func BenchmarkLinearF32(b *testing.B)  { benchLayer(b, plain) }
func BenchmarkLinearBF16(b *testing.B) { benchLayer(b, halfL) }
func BenchmarkLoRAOverF32(b *testing.B) {
	benchLayer(b, func(w *tensor.Tensor) nn.Layer { return wrap(plain(w)) })
}
func BenchmarkLoRAOverBF16(b *testing.B) {
	benchLayer(b, func(w *tensor.Tensor) nn.Layer { return wrap(halfL(w)) })
}
