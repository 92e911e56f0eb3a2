package cpu

import (
	"math/rand/v2"
	"testing"

	"github.com/shoggo/shoggo/quant"
	"github.com/shoggo/shoggo/tensor"
)

// TestQuantLinearOps: for every format (NF4/FP4 with and without double
// quantization, int8, int4 symmetric and asymmetric), on few rows (direct
// kernels) and many (panels), QuantLinearForward and QuantLinearBackward
// equal LinearForward/LinearBackward on the dequantized weight to float32
// rounding; the weight reaches the kernels only through its backend parts.
func TestQuantLinearOps(t *testing.T) {
	c := New()
	rng := rand.New(rand.NewPCG(8, 9))
	const out, in = 67, 150
	cases := []struct {
		format string
		opts   quant.Options
	}{
		{quant.NF4, quant.Options{}},
		{quant.NF4, quant.Options{DoubleQuant: true, BlockSize: 128}},
		{quant.FP4, quant.Options{DoubleQuant: true}},
		{quant.Int8, quant.Options{}},
		{quant.Int4, quant.Options{GroupSize: 32}},
		{quant.Int4, quant.Options{GroupSize: 64, Asymmetric: true}},
	}
	for _, tc := range cases {
		w, b := randF32(rng, out, in), randF32(rng, out)
		l, err := quant.QuantizeLinear(w, b, tc.format, tc.opts)
		if err != nil {
			t.Fatal(err)
		}
		parts := quant.Parts(l.W)
		wd := l.Dequantize()
		for _, N := range []int{1, 40} {
			x, dy, dx0 := randF32(rng, N, in), randF32(rng, N, out), randF32(rng, N, in)
			for _, bias := range []*tensor.Tensor{nil, l.B} {
				got, want := tensor.New(tensor.F32, N, out), tensor.New(tensor.F32, N, out)
				c.QuantLinearForward(got, x, parts, bias)
				c.LinearForward(want, x, wd, bias)
				closeRel(t, tc.format+" y", got.F32, want.F32, 1e-5)
			}
			got, want := dx0.Clone(), dx0.Clone()
			c.QuantLinearBackward(got, dy, parts)
			c.LinearBackward(want, nil, nil, dy, x, wd)
			closeRel(t, tc.format+" dx", got.F32, want.F32, 1e-5)
		}
	}
	l, _ := quant.QuantizeLinear(randF32(rng, 4, 8), nil, quant.NF4, quant.Options{BlockSize: 32})
	mustPanic(t, func() {
		c.QuantLinearForward(tensor.New(tensor.F32, 2, 4), tensor.New(tensor.F32, 2, 7), quant.Parts(l.W), nil)
	}, "QuantLinearForward")
	mustPanic(t, func() {
		c.QuantLinearBackward(tensor.New(tensor.F32, 2, 8), tensor.New(tensor.F32, 3, 4), quant.Parts(l.W))
	}, "QuantLinearBackward")
}
