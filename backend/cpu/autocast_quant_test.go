package cpu

import (
	"fmt"
	"math"
	mrand "math/rand"
	"math/rand/v2"
	"testing"

	"github.com/shoggo/shoggo/quant"
	"github.com/shoggo/shoggo/tensor"
)

// TestAutocastQuantLinear: with a 16-bit x, QuantLinearForward gives
// round_P(x round_P(W)ᵀ + round_P(b)) (W the dequantized weight) within 1
// ulp of P plus float32 summation error, into F32 and 16-bit y, several
// panels; with w.Compute = P, QuantLinearBackward accumulates dx +=
// round_P(dy) round_P(W) within float32 summation error and agrees with
// the float32 op within halfTol; Compute F32 keeps the float32 kernel's
// bits.
func TestAutocastQuantLinear(t *testing.T) {
	c := New()
	rng := rand.New(rand.NewPCG(31, 32))
	r := mrand.New(mrand.NewSource(33))
	const out, in = 67, 150
	for _, tc := range []struct {
		format string
		opts   quant.Options
	}{
		{quant.NF4, quant.Options{DoubleQuant: true}},
		{quant.FP4, quant.Options{}},
		{quant.Int8, quant.Options{}},
		{quant.Int4, quant.Options{GroupSize: 32, Asymmetric: true}},
	} {
		l, err := quant.QuantizeLinear(randF32(rng, out, in), randF32(rng, out), tc.format, tc.opts)
		if err != nil {
			t.Fatal(err)
		}
		wd := vals(l.Dequantize())
		bv := vals(l.B)
		for _, P := range precs {
			parts := quant.Parts(l.W)
			for _, N := range []int{1, 5, 40} {
				xs := randT(r, N, in)
				x := conv(xs, P)
				xv := vals(x)
				for _, bias := range []bool{false, true} {
					ref, abs := make([]float64, N*out), make([]float64, N*out)
					for n := 0; n < N; n++ {
						for o := 0; o < out; o++ {
							var s, a float64
							for i := 0; i < in; i++ {
								p := xv[n*in+i] * rp(wd[o*in+i], P)
								s += p
								a += math.Abs(p)
							}
							if bias {
								s += rp(bv[o], P)
								a += math.Abs(bv[o])
							}
							ref[n*out+o], abs[n*out+o] = s, a
						}
					}
					var b *tensor.Tensor
					if bias {
						b = l.B
					}
					for _, ydt := range []tensor.DType{tensor.F32, P} {
						y := tensor.New(ydt, N, out)
						c.QuantLinearForward(y, x, parts, b)
						nearRounded(t, fmt.Sprintf("%s %v N=%d bias=%v y %v", tc.format, P, N, bias, ydt), P, vals(y), ref, abs, in+1)
					}
				}
				// Backward at Compute = P.
				dys := randT(r, N, out)
				dy := conv(dys, tensor.F32)
				dyv := vals(dy)
				pre := conv(randT(r, N, in), tensor.F32)
				ref, abs := vals(pre), make([]float64, N*in)
				for n := 0; n < N; n++ {
					for i := 0; i < in; i++ {
						abs[n*in+i] = math.Abs(ref[n*in+i])
						for o := 0; o < out; o++ {
							p := rp(dyv[n*out+o], P) * rp(wd[o*in+i], P)
							ref[n*in+i] += p
							abs[n*in+i] += math.Abs(p)
						}
					}
				}
				parts.Compute = P
				dx := pre.Clone()
				c.QuantLinearBackward(dx, dy, parts)
				what := fmt.Sprintf("%s %v N=%d", tc.format, P, N)
				nearSum(t, what+" dx", vals(dx), ref, abs, out)
				dx32 := pre.Clone()
				parts.Compute = tensor.F32
				c.QuantLinearBackward(dx32, dy, parts)
				want := pre.Clone()
				quant.HostBackward(want.F32, dy.F32, N, l.W)
				sameBitsF(t, what+" dx at Compute F32", vals(dx32), vals(want))
				if d := halfDiff(dx, dx32); d > halfTol(P) {
					t.Errorf("%s: dx at Compute %v vs F32 differ by %g (limit %g)", what, P, d, halfTol(P))
				}
			}
		}
	}
}

// TestAutocastQuantOverflow: at Compute F16, a dy beyond 65504 gives Inf/NaN
// in dx (fp16 loss scaling detects it); at BF16 it stays finite.
func TestAutocastQuantOverflow(t *testing.T) {
	rng := rand.New(rand.NewPCG(34, 35))
	l, err := quant.QuantizeLinear(randF32(rng, 20, 48), nil, quant.NF4, quant.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, P := range precs {
		parts := quant.Parts(l.W)
		parts.Compute = P
		dy := randF32(rng, 3, 20)
		dy.F32[1*20+7] = 1e5
		dx := tensor.New(tensor.F32, 3, 48)
		New().QuantLinearBackward(dx, dy, parts)
		inf := 0
		for i := 48; i < 96; i++ {
			if math.IsInf(float64(dx.F32[i]), 0) || math.IsNaN(float64(dx.F32[i])) {
				inf++
			}
		}
		if (inf > 0) != (P == tensor.F16) {
			t.Errorf("%v: %d non-finite dx in the row of dy = 1e5", P, inf)
		}
		for i := 0; i < 48; i++ {
			if math.IsInf(float64(dx.F32[i]), 0) {
				t.Errorf("%v: dx[0,%d] = %v", P, i, dx.F32[i])
			}
		}
	}
}

// TestAutocastQuantLayer: quant.Linear on the CPU backend and without a
// backend (host kernels) give the same bits for a 16-bit x, and
// SetComputeDType (before or after the first use) reaches the backend
// weight.
func TestAutocastQuantLayer(t *testing.T) {
	rng := rand.New(rand.NewPCG(36, 37))
	ql, err := quant.QuantizeLinear(randF32(rng, 33, 40), randF32(rng, 33), quant.NF4, quant.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, P := range precs {
		lb := &quant.Linear{Name: "b", W: ql.W, B: ql.B, BE: New()}
		lh := &quant.Linear{Name: "h", W: ql.W, B: ql.B}
		lb.SetComputeDType(P)
		lh.SetComputeDType(P)
		x := conv(conv(randF32(rng, 9, 40), tensor.F64), P)
		for _, ydt := range []tensor.DType{tensor.F32, P} {
			yb, yh := tensor.New(ydt, 9, 33), tensor.New(ydt, 9, 33)
			lb.Forward(yb, x)
			lh.Forward(yh, x)
			sameBitsF(t, fmt.Sprint(P, " forward into ", ydt), vals(yb), vals(yh))
		}
		dy := randF32(rng, 9, 33)
		dxb, dxh := tensor.New(tensor.F32, 9, 40), tensor.New(tensor.F32, 9, 40)
		lb.Backward(dxb, dy, x)
		lh.Backward(dxh, dy, x)
		sameBitsF(t, fmt.Sprint(P, " backward"), vals(dxb), vals(dxh))
		// Back to F32 after the backend weight exists.
		lb.SetComputeDType(tensor.F32)
		dxf := tensor.New(tensor.F32, 9, 40)
		lb.Backward(dxf, dy, x)
		want := tensor.New(tensor.F32, 9, 40)
		quant.HostBackward(want.F32, dy.F32, 9, ql.W)
		sameBitsF(t, fmt.Sprint(P, " backward after SetComputeDType(F32)"), vals(dxf), vals(want))
		if lb.ComputeDType() != tensor.F32 {
			t.Errorf("ComputeDType = %v", lb.ComputeDType())
		}
	}
	mustPanic(t, func() {
		New().QuantLinearForward(tensor.New(tensor.F16, 2, 33), tensor.New(tensor.BF16, 2, 40), quant.Parts(ql.W), nil)
	}, "QuantLinearForward", "y", "F16")
	mustPanic(t, func() {
		p := quant.Parts(ql.W)
		p.Compute = tensor.BF16
		New().QuantLinearBackward(tensor.New(tensor.F32, 2, 40), tensor.New(tensor.BF16, 2, 33), p)
	}, "QuantLinearBackward", "dy")
	mustPanic(t, func() { (&quant.Linear{Name: "x", W: ql.W}).SetComputeDType(tensor.F64) }, "SetComputeDType")
}
