package quant

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/shoggo/shoggo/backend/cpu/gemm"
	"github.com/shoggo/shoggo/tensor"
)

// TestHostMixedPanels: the autocast kernels give the same bits with one
// panel and with many (tiny panelFloats), a 16-bit Y holds exactly the
// rounded float32 Y, and a float32 Y holds values of the compute dtype.
func TestHostMixedPanels(t *testing.T) {
	rng := rand.New(rand.NewPCG(41, 42))
	const out, in, N = 53, 70, 7
	w, err := QuantizeWeight4(randTensor(rng, 1, out, in).F32, out, in, NF4, 64, true)
	if err != nil {
		t.Fatal(err)
	}
	bias := randTensor(rng, 1, out).F32
	for _, p := range []tensor.DType{tensor.BF16, tensor.F16} {
		x := make([]uint16, N*in)
		for i := range x {
			x[i] = tensor.F32ToBF16(float32(rng.NormFloat64()))
			if p == tensor.F16 {
				x[i] = tensor.F32ToF16(float32(rng.NormFloat64()))
			}
		}
		dy := randTensor(rng, 1, N, out).F32
		run := func(pf int) (y []float32, y16 []uint16, dx []float32) {
			defer func(old int) { panelFloats = old }(panelFloats)
			panelFloats = pf
			y, y16, dx = make([]float32, N*out), make([]uint16, N*out), make([]float32, N*in)
			HostForwardMixed(y, nil, gemm.HalfOp(x, p, p), bias, N, w, p)
			HostForwardMixed(nil, y16, gemm.HalfOp(x, p, p), bias, N, w, p)
			HostBackwardMixed(dx, gemm.F32Op(dy, p), N, w, p)
			return
		}
		y1, h1, d1 := run(1 << 18)
		y2, h2, d2 := run(64)
		for i := range y1 {
			if y1[i] != y2[i] || h1[i] != h2[i] || gemm.Round(y1[i], p) != y1[i] {
				t.Fatalf("%v: y[%d] one panel %v/%#x, many %v/%#x", p, i, y1[i], h1[i], y2[i], h2[i])
			}
			want := tensor.F32ToBF16(y1[i])
			if p == tensor.F16 {
				want = tensor.F32ToF16(y1[i])
			}
			if h1[i] != want {
				t.Fatalf("%v: y16[%d] = %#x, want %#x", p, i, h1[i], want)
			}
		}
		for i := range d1 {
			if math.Float32bits(d1[i]) != math.Float32bits(d2[i]) {
				t.Fatalf("%v: dx[%d] one panel %v, many %v", p, i, d1[i], d2[i])
			}
		}
	}
}
