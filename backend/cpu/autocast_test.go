package cpu

import (
	"fmt"
	"math"
	"math/rand"
	"testing"

	"github.com/shoggo/shoggo/backend/cpu/gemm"
	"github.com/shoggo/shoggo/tensor"
)

// Tests of the autocast calls (autocast.go). The reference of each op is
// computed in float64 from the 16-bit inputs, with every operand the op
// rounds rounded to P (rp), and compared
//
//   - for outputs the op rounds to P: within 1 ulp of P of the unrounded
//     reference, plus the float32 summation-order error of the sum that
//     forms it (sumTol);
//   - for float32 outputs (gradients): within the float32 summation-order
//     error alone.
//
// Elementwise ops with one float32 operation per element (Add, Scale,
// Copy, dropout) must give exactly round_P(float32 result).

var precs = []tensor.DType{tensor.BF16, tensor.F16}

// rp rounds v to float32 and then to P (as the kernels round a float32).
func rp(v float64, P tensor.DType) float64 { return float64(gemm.Round(float32(v), P)) }

// ulpP is the spacing of P's values at |v| (subnormal spacing below the
// smallest normal).
func ulpP(v float64, P tensor.DType) float64 {
	mant, minExp := 7, -126
	if P == tensor.F16 {
		mant, minExp = 10, -14
	}
	e := minExp
	if v != 0 && !math.IsInf(v, 0) {
		e = max(math.Ilogb(v), minExp)
	}
	return math.Ldexp(1, e-mant)
}

// sumTol bounds the float32 summation-order error of a k-term sum whose
// terms' magnitudes add to abs (with margin).
func sumTol(k int, abs float64) float64 { return float64(k+2) * 0x1p-23 * abs }

// halfT returns a tensor of dtype dt (F32, BF16 or F16) with the values of
// src (F64), rounded.
func halfT(src *tensor.Tensor, dt tensor.DType) *tensor.Tensor { return conv(src, dt) }

// vals returns t's elements as float64.
func vals(t *tensor.Tensor) []float64 {
	out := make([]float64, t.Numel())
	for i := range out {
		out[i] = t.At(i)
	}
	return out
}

// scaledT is randT(shape) times s.
func scaledT(r *rand.Rand, s float64, shape ...int) *tensor.Tensor {
	t := randT(r, shape...)
	for i := range t.F64 {
		t.F64[i] *= s
	}
	return t
}

// nearRounded checks got[i] (a value rounded to P) against the unrounded
// reference ref[i]: |got - ref| <= ulpP(ref) + sumTol(k, abs[i]).
func nearRounded(t *testing.T, what string, P tensor.DType, got, ref, abs []float64, k int) {
	t.Helper()
	bad := 0
	for i := range ref {
		if !math.IsInf(ref[i], 0) && !math.IsNaN(ref[i]) && rp(got[i], P) != got[i] {
			t.Errorf("%s[%d] = %v is not a %v value", what, i, got[i], P)
			return
		}
		tol := ulpP(ref[i], P) + sumTol(k, abs[i])
		if d := math.Abs(got[i] - ref[i]); !(d <= tol) {
			if bad++; bad <= 3 {
				t.Errorf("%s[%d] = %v, reference %v (diff %g, limit %g)", what, i, got[i], ref[i], d, tol)
			}
		}
	}
}

// nearSum checks float32 results got against ref within sumTol(k, abs).
func nearSum(t *testing.T, what string, got, ref, abs []float64, k int) {
	t.Helper()
	bad := 0
	for i := range ref {
		tol := sumTol(k, abs[i]) + 1e-30
		if d := math.Abs(got[i] - ref[i]); !(d <= tol) {
			if bad++; bad <= 3 {
				t.Errorf("%s[%d] = %v, reference %v (diff %g, limit %g)", what, i, got[i], ref[i], d, tol)
			}
		}
	}
}

// halfTol is the norm-wise relative difference (maxRelDiff) allowed
// between an autocast op's results and the float32 op's on the same
// (unrounded) inputs: a few roundings of relative size 2^-9 (BF16) or
// 2^-12 (F16) per operand.
func halfTol(P tensor.DType) float64 {
	if P == tensor.BF16 {
		return 1.5e-2
	}
	return 2e-3
}

func sameBitsF(t *testing.T, what string, got, want []float64) {
	t.Helper()
	for i := range want {
		if math.Float64bits(got[i]) != math.Float64bits(want[i]) && !(math.IsNaN(got[i]) && math.IsNaN(want[i])) {
			t.Errorf("%s[%d] = %v, want %v", what, i, got[i], want[i])
			return
		}
	}
}

var linearShapes = []struct {
	N, in, out int
	bias       bool
}{
	{1, 1, 1, true}, {37, 29, 23, true}, {5, 64, 3, false}, {2, 17, 65, true}, {0, 7, 5, true},
}

// TestAutocastLinearForward: y = round_P(x round_P(W)ᵀ + round_P(b)) for
// F32 and 16-bit y, F32 and 16-bit (both dtypes) w, with the 16-bit y
// formed in one block and in many.
func TestAutocastLinearForward(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	defer func(old int) { mixedBlockElems = old }(mixedBlockElems)
	for _, P := range precs {
		for _, sh := range linearShapes {
			xs, ws, bs := randT(r, sh.N, sh.in), scaledT(r, 0.5, sh.out, sh.in), randT(r, sh.out)
			x := halfT(xs, P)
			xv := vals(x)
			for _, wdt := range []tensor.DType{tensor.F32, tensor.BF16, tensor.F16} {
				w := halfT(ws, wdt)
				wv := vals(w)
				var b *tensor.Tensor
				var bv []float64
				if sh.bias {
					b = halfT(bs, tensor.F32)
					bv = vals(b)
				}
				ref := make([]float64, sh.N*sh.out)
				abs := make([]float64, sh.N*sh.out)
				for n := 0; n < sh.N; n++ {
					for o := 0; o < sh.out; o++ {
						var s, a float64
						for i := 0; i < sh.in; i++ {
							p := xv[n*sh.in+i] * rp(wv[o*sh.in+i], P)
							s += p
							a += math.Abs(p)
						}
						if b != nil {
							s += rp(bv[o], P)
							a += math.Abs(rp(bv[o], P))
						}
						ref[n*sh.out+o], abs[n*sh.out+o] = s, a
					}
				}
				for _, ydt := range []tensor.DType{tensor.F32, P} {
					for _, blk := range []int{1 << 22, 2 * max(sh.out, 1)} {
						mixedBlockElems = blk
						y := tensor.New(ydt, sh.N, sh.out)
						be.LinearForward(y, x, w, b)
						what := fmt.Sprintf("%v %v x, %v w, %v y, shape %v, block %d", P, P, wdt, ydt, sh, blk)
						nearRounded(t, what, P, vals(y), ref, abs, sh.in+1)
					}
				}
			}
		}
	}
}

// TestAutocastLinearBackward: dx += round_P(dy) round_P(W), dw +=
// round_P(dy)ᵀ x, db += sum round_P(dy), float32 results, accumulating;
// they agree with the float32 op's gradients within halfTol.
func TestAutocastLinearBackward(t *testing.T) {
	r := rand.New(rand.NewSource(2))
	for _, P := range precs {
		for _, sh := range linearShapes {
			N, in, out := sh.N, sh.in, sh.out
			xs, ws, dys := randT(r, N, in), scaledT(r, 0.5, out, in), randT(r, N, out)
			x := halfT(xs, P)
			xv, wv, dyv := vals(x), vals(halfT(ws, tensor.F32)), vals(halfT(dys, tensor.F32))
			pre := []*tensor.Tensor{halfT(randT(r, N, in), tensor.F32), halfT(randT(r, out, in), tensor.F32), halfT(randT(r, out), tensor.F32)}
			for _, wdt := range []tensor.DType{tensor.F32, P} {
				w := halfT(ws, wdt)
				wv := wv
				if wdt != tensor.F32 {
					wv = vals(w)
				}
				dx, dw, db := pre[0].Clone(), pre[1].Clone(), pre[2].Clone()
				if wdt != tensor.F32 {
					dw, db = nil, nil
				}
				be.LinearBackward(dx, dw, db, halfT(dys, tensor.F32), x, w)
				what := fmt.Sprintf("%v, %v w, shape %v", P, wdt, sh)
				// dx
				ref, abs := vals(pre[0]), make([]float64, N*in)
				for n := 0; n < N; n++ {
					for i := 0; i < in; i++ {
						abs[n*in+i] = math.Abs(ref[n*in+i])
						for o := 0; o < out; o++ {
							p := rp(dyv[n*out+o], P) * rp(wv[o*in+i], P)
							ref[n*in+i] += p
							abs[n*in+i] += math.Abs(p)
						}
					}
				}
				nearSum(t, what+" dx", vals(dx), ref, abs, out)
				if dw == nil {
					continue
				}
				ref, abs = vals(pre[1]), make([]float64, out*in)
				for o := 0; o < out; o++ {
					for i := 0; i < in; i++ {
						abs[o*in+i] = math.Abs(ref[o*in+i])
						for n := 0; n < N; n++ {
							p := rp(dyv[n*out+o], P) * xv[n*in+i]
							ref[o*in+i] += p
							abs[o*in+i] += math.Abs(p)
						}
					}
				}
				nearSum(t, what+" dw", vals(dw), ref, abs, N)
				ref, abs = vals(pre[2]), make([]float64, out)
				for o := 0; o < out; o++ {
					abs[o] = math.Abs(ref[o])
					for n := 0; n < N; n++ {
						ref[o] += rp(dyv[n*out+o], P)
						abs[o] += math.Abs(dyv[n*out+o])
					}
				}
				nearSum(t, what+" db", vals(db), ref, abs, N)

				// Against the float32 op on the unrounded inputs.
				if N == 0 {
					continue
				}
				f := func(dt tensor.DType) []*tensor.Tensor {
					dx, dw, db := tensor.New(tensor.F32, N, in), tensor.New(tensor.F32, out, in), tensor.New(tensor.F32, out)
					xx := halfT(xs, tensor.F32)
					if dt != tensor.F32 {
						xx = halfT(xs, dt)
					}
					be.LinearBackward(dx, dw, db, halfT(dys, tensor.F32), xx, halfT(ws, tensor.F32))
					return []*tensor.Tensor{dx, dw, db}
				}
				want, got := f(tensor.F32), f(P)
				for i, name := range []string{"dx", "dw", "db"} {
					if d := maxRelDiff(got[i], want[i]); d > halfTol(P) {
						t.Errorf("%s %s: autocast vs float32 op differ by %g (limit %g)", what, name, d, halfTol(P))
					}
				}
			}
		}
	}
}

// TestAutocastLinearOverflow: an fp16 dy beyond 65504 becomes Inf as a
// GEMM operand, so dx, dw and db see Inf/NaN (what fp16 loss scaling
// detects); in bf16 the same dy is finite.
func TestAutocastLinearOverflow(t *testing.T) {
	r := rand.New(rand.NewSource(3))
	const N, in, out = 5, 7, 6
	for _, P := range precs {
		x := halfT(randT(r, N, in), P)
		w := halfT(randT(r, out, in), tensor.F32)
		dy := halfT(randT(r, N, out), tensor.F32)
		dy.F32[2*out+3] = 1e5
		dx, dw, db := tensor.New(tensor.F32, N, in), tensor.New(tensor.F32, out, in), tensor.New(tensor.F32, out)
		be.LinearBackward(dx, dw, db, dy, x, w)
		fin := func(v float32) bool { return !math.IsInf(float64(v), 0) && !math.IsNaN(float64(v)) }
		for i := 0; i < in; i++ {
			if fin(dx.F32[2*in+i]) != (P == tensor.BF16) || fin(dw.F32[3*in+i]) != (P == tensor.BF16) {
				t.Errorf("%v: dy = 1e5 gives dx %v, dw %v", P, dx.F32[2*in+i], dw.F32[3*in+i])
			}
		}
		if fin(db.F32[3]) != (P == tensor.BF16) {
			t.Errorf("%v: dy = 1e5 gives db %v", P, db.F32[3])
		}
		if !fin(dx.F32[0]) || !fin(dw.F32[0]) {
			t.Errorf("%v: rows/cols away from the overflow are not finite", P)
		}
	}
}

// TestAutocastLinearPanics: dtype errors name the op and the argument.
func TestAutocastLinearPanics(t *testing.T) {
	x := tensor.New(tensor.BF16, 3, 4)
	w := tensor.New(tensor.F32, 5, 4)
	mustPanic(t, func() { be.LinearForward(tensor.New(tensor.F16, 3, 5), x, w, nil) }, "LinearForward", "y", "F16", "BF16")
	mustPanic(t, func() { be.LinearForward(tensor.New(tensor.F64, 3, 5), x, w, nil) }, "LinearForward", "y")
	mustPanic(t, func() { be.LinearForward(tensor.New(tensor.F32, 3, 5), x, tensor.New(tensor.F64, 5, 4), nil) }, "LinearForward", "w")
	mustPanic(t, func() {
		be.LinearBackward(tensor.New(tensor.BF16, 3, 4), nil, nil, tensor.New(tensor.F32, 3, 5), x, w)
	}, "LinearBackward", "dx", "BF16")
	mustPanic(t, func() {
		be.LinearBackward(nil, tensor.New(tensor.F32, 5, 4), nil, tensor.New(tensor.F16, 3, 5), x, w)
	}, "LinearBackward", "dy", "F16")
	mustPanic(t, func() {
		be.LinearBackward(nil, tensor.New(tensor.F32, 5, 4), nil, tensor.New(tensor.F32, 3, 5), x, tensor.New(tensor.BF16, 5, 4))
	}, "LinearBackward", "dw")
}

// TestAutocastElementwise: Add, AddInto, Scale, Copy, dropout over mixes
// of F32 and 16-bit tensors give round_P of the float32 result exactly
// (one float32 operation per element), aliasing included.
func TestAutocastElementwise(t *testing.T) {
	r := rand.New(rand.NewSource(4))
	const n = 2*elemChunk + 37
	for _, P := range precs {
		dts := []tensor.DType{tensor.F32, P}
		as, bs := randT(r, n), randT(r, n)
		for _, ydt := range dts {
			for _, adt := range dts {
				for _, bdt := range dts {
					if ydt == tensor.F32 && adt == tensor.F32 && bdt == tensor.F32 {
						continue
					}
					what := fmt.Sprintf("%v: y %v, a %v, b %v", P, ydt, adt, bdt)
					a, b := halfT(as, adt), halfT(bs, bdt)
					av, bv := vals(a), vals(b)
					want := make([]float64, n)
					for i := range want {
						want[i] = float64(float32(av[i]) + float32(bv[i]))
						if ydt != tensor.F32 {
							want[i] = rp(want[i], P)
						}
					}
					y := tensor.New(ydt, n)
					be.Add(y, a, b)
					sameBitsF(t, what+" Add", vals(y), want)
					if ydt == adt {
						a2 := a.Clone()
						be.Add(a2, a2, b)
						sameBitsF(t, what+" Add aliased", vals(a2), want)
						a2 = a.Clone()
						be.AddInto(a2, b)
						sameBitsF(t, what+" AddInto", vals(a2), want)
					}
				}
			}
		}
		x := halfT(as, P)
		be.Scale(x, 0.37)
		xv := vals(halfT(as, P))
		want := make([]float64, n)
		for i := range want {
			want[i] = rp(float64(float32(xv[i])*float32(0.37)), P)
		}
		sameBitsF(t, fmt.Sprint(P, " Scale"), vals(x), want)

		// Copy between F32 and P, both ways.
		c16 := tensor.New(P, n)
		be.Copy(c16, halfT(as, tensor.F32))
		sameBitsF(t, fmt.Sprint(P, " Copy F32->16"), vals(c16), vals(halfT(as, P)))
		c32 := tensor.New(tensor.F32, n)
		be.Copy(c32, c16)
		sameBitsF(t, fmt.Sprint(P, " Copy 16->F32"), vals(c32), vals(c16))
		be.Zero(c16)
		sameBitsF(t, fmt.Sprint(P, " Zero"), vals(c16), make([]float64, n))

		mustPanic(t, func() { be.Add(tensor.New(tensor.BF16, 4), tensor.New(tensor.F16, 4), tensor.New(tensor.F32, 4)) }, "Add")
		mustPanic(t, func() { be.AddInto(tensor.New(tensor.F64, 4), tensor.New(P, 4)) }, "AddInto", "dst")
	}
}

// TestAutocastDropout: forward y = round_P(x·scale) or 0, backward
// dx += dy·scale, for 16-bit x/y and F32 or 16-bit gradients.
func TestAutocastDropout(t *testing.T) {
	r := rand.New(rand.NewSource(5))
	const n = elemChunk + 53
	const p = 0.3
	scale := 1 / (1 - p)
	mask := tensor.New(tensor.U8, (n+7)/8)
	for i := range mask.Bytes {
		mask.Bytes[i] = byte(r.Intn(256))
	}
	keep := func(i int) bool { return mask.Bytes[i>>3]>>(i&7)&1 != 0 }
	for _, P := range precs {
		xs := randT(r, n)
		for _, ydt := range []tensor.DType{tensor.F32, P} {
			x := halfT(xs, P)
			y := tensor.New(ydt, n)
			be.DropoutForward(y, x, mask, scale)
			xv := vals(x)
			want := make([]float64, n)
			for i := range want {
				if keep(i) {
					want[i] = float64(float32(xv[i]) * float32(scale))
					if ydt != tensor.F32 {
						want[i] = rp(want[i], P)
					}
				}
			}
			sameBitsF(t, fmt.Sprintf("%v DropoutForward into %v", P, ydt), vals(y), want)
		}
		for _, dxdt := range []tensor.DType{tensor.F32, P} {
			dy := halfT(xs, P)
			dx := halfT(randT(r, n), dxdt)
			pre := vals(dx)
			be.DropoutBackward(dx, dy, mask, scale)
			dyv := vals(dy)
			for i := range pre {
				if keep(i) {
					pre[i] = float64(float32(pre[i]) + float32(float32(dyv[i])*float32(scale)))
					if dxdt != tensor.F32 {
						pre[i] = rp(pre[i], P)
					}
				}
			}
			sameBitsF(t, fmt.Sprintf("%v DropoutBackward into %v", P, dxdt), vals(dx), pre)
		}
		mustPanic(t, func() { be.DropoutForward(tensor.New(tensor.F16, 8), tensor.New(tensor.BF16, 8), mask, 2) }, "DropoutForward", "y")
	}
}
