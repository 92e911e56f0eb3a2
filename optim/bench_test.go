package optim

import (
	"testing"

	"github.com/shoggo/shoggo/tensor"
)

// benchParams is a GPT-2-like mix of large matrices and small vectors,
// 8M parameters in all.
func benchParams() ([]Param, []*tensor.Tensor) {
	var ps []Param
	var gs []*tensor.Tensor
	for i, n := range []int{4 << 20, 2 << 20, 768, 768, 2 << 20, 3072} {
		w, g := tensor.New(tensor.F32, n), tensor.New(tensor.F32, n)
		for j := range g.F32 {
			g.F32[j] = float32(j%97) * 1e-3
			w.F32[j] = float32(j%89) * 1e-2
		}
		ps = append(ps, Param{Name: string(rune('a' + i)), W: w, G: g, Decay: n > 4096})
		gs = append(gs, g)
	}
	return ps, gs
}

func BenchmarkAdamWStep(b *testing.B) {
	ps, _ := benchParams()
	o, err := NewAdamW(ps, DefaultConfig())
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		o.Step(1e-4)
	}
}

func BenchmarkClipGradNorm(b *testing.B) {
	_, gs := benchParams()
	b.ResetTimer()
	for range b.N {
		ClipGradNorm(gs, 1e-3) // always clips
	}
}
