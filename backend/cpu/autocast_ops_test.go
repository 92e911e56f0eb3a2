package cpu

import (
	"fmt"
	"math"
	"math/rand"
	"testing"

	"github.com/shoggo/shoggo/backend"
	"github.com/shoggo/shoggo/tensor"
)

// The non-matmul autocast ops (norms, RoPE, attention, GELU, SwiGLU) run
// the float32 kernel on the widened 16-bit values, so their reference is
// exact: the F32 op on F32 tensors holding the same (P-rounded) values,
// with the outputs the autocast call stores in 16 bits rounded to P. Each
// case runs three times:
//
//   - auto: activations as P tensors, 16-bit-capable outputs as P;
//   - ref: activations as F32 tensors holding the P-rounded values, outputs
//     F32, then rounded to P where auto's are 16-bit: must equal auto bit
//     for bit (and auto with F32 outputs must equal ref unrounded);
//   - f32: activations unrounded, all F32 (the float32 op): auto agrees
//     with it within halfTol (norm-wise relative), gradients included.

// actMode says how a case's activation arguments are made.
type actMode int

const (
	modeAuto actMode = iota // P tensors
	modeRef                 // F32 tensors holding P-rounded values
	modeF32                 // F32 tensors, unrounded
)

type acCase struct {
	name string
	// run runs the op: h converts an activation (an F64 source, or an
	// output of an earlier step of the case) into its dtype for the mode;
	// od is the dtype of the 16-bit-capable outputs. It returns the
	// outputs to compare.
	run func(h func(*tensor.Tensor) *tensor.Tensor, od tensor.DType) []*tensor.Tensor
	// rounded[i]: output i is stored in 16 bits (rounded) in the auto run.
	rounded []bool
	// inPlace: the op writes its 16-bit input (od has no effect).
	inPlace bool
}

func actFn(m actMode, P tensor.DType) func(*tensor.Tensor) *tensor.Tensor {
	return func(t *tensor.Tensor) *tensor.Tensor {
		switch m {
		case modeAuto:
			if t.DType == P {
				return t
			}
			return conv(t, P)
		case modeRef:
			return conv(conv(t, P), tensor.F32)
		}
		return conv(t, tensor.F32)
	}
}

func roundTensor(t *tensor.Tensor, P tensor.DType) []float64 {
	v := vals(t)
	for i := range v {
		v[i] = rp(v[i], P)
	}
	return v
}

func runACCases(t *testing.T, cases []acCase) {
	t.Helper()
	for _, tc := range cases {
		for _, P := range precs {
			what := fmt.Sprintf("%s %v", tc.name, P)
			auto := tc.run(actFn(modeAuto, P), P)
			ref := tc.run(actFn(modeRef, P), tensor.F32)
			autoF := tc.run(actFn(modeAuto, P), tensor.F32)
			f32 := tc.run(actFn(modeF32, P), tensor.F32)
			for i := range auto {
				want := vals(ref[i])
				if tc.rounded[i] {
					if auto[i].DType != P {
						t.Fatalf("%s: output %d is %v, want %v", what, i, auto[i].DType, P)
					}
					want = roundTensor(ref[i], P)
				}
				sameBitsF(t, fmt.Sprintf("%s: output %d", what, i), vals(auto[i]), want)
				if !tc.inPlace {
					sameBitsF(t, fmt.Sprintf("%s: output %d into F32", what, i), vals(autoF[i]), vals(ref[i]))
				}
				if d := halfDiff(auto[i], f32[i]); d > halfTol(P) {
					t.Errorf("%s: output %d: autocast vs float32 op differ by %g (limit %g)", what, i, d, halfTol(P))
				}
			}
		}
	}
}

// halfDiff is max|a-b| / max(max|b|, 1): the difference relative to the
// results' scale, or absolute for results below 1.
func halfDiff(a, b *tensor.Tensor) float64 {
	var d, m float64
	for i := 0; i < a.Numel(); i++ {
		x, y := a.At(i), b.At(i)
		if math.IsNaN(x) != math.IsNaN(y) {
			return math.Inf(1)
		}
		d = math.Max(d, math.Abs(x-y))
		m = math.Max(m, math.Abs(y))
	}
	return d / math.Max(m, 1)
}

// f32of returns an F32 copy of an F64 source.
func f32of(t *tensor.Tensor) *tensor.Tensor { return conv(t, tensor.F32) }

func TestAutocastNorms(t *testing.T) {
	r := rand.New(rand.NewSource(11))
	var cases []acCase
	for _, sh := range [][2]int{{1, 1}, {7, 37}, {3, 130}} {
		N, C := sh[0], sh[1]
		xs := scaledT(r, 3, N, C)
		for i := range xs.F64 { // an offset so the mean matters
			xs.F64[i] += 1.5
		}
		w, b, dy := randT(r, C), randT(r, C), randT(r, N, C)
		pdx, pdw, pdb := randT(r, N, C), randT(r, C), randT(r, C)
		cases = append(cases,
			acCase{fmt.Sprintf("LayerNormForward %dx%d", N, C), func(h func(*tensor.Tensor) *tensor.Tensor, od tensor.DType) []*tensor.Tensor {
				y, mean, rstd := tensor.New(od, N, C), tensor.New(tensor.F32, N), tensor.New(tensor.F32, N)
				be.LayerNormForward(y, mean, rstd, h(xs), f32of(w), f32of(b), 1e-5)
				return []*tensor.Tensor{y, mean, rstd}
			}, []bool{true, false, false}, false},
			// ln1 = LN(resid): an F32 x into a 16-bit y.
			acCase{fmt.Sprintf("LayerNormForward F32 x %dx%d", N, C), func(h func(*tensor.Tensor) *tensor.Tensor, od tensor.DType) []*tensor.Tensor {
				y, mean, rstd := tensor.New(od, N, C), tensor.New(tensor.F32, N), tensor.New(tensor.F32, N)
				be.LayerNormForward(y, mean, rstd, f32of(xs), f32of(w), nil, 1e-5)
				return []*tensor.Tensor{y, mean, rstd}
			}, []bool{true, false, false}, false},
			acCase{fmt.Sprintf("LayerNormBackward %dx%d", N, C), func(h func(*tensor.Tensor) *tensor.Tensor, od tensor.DType) []*tensor.Tensor {
				x := h(xs)
				y, mean, rstd := tensor.New(tensor.F32, N, C), tensor.New(tensor.F32, N), tensor.New(tensor.F32, N)
				be.LayerNormForward(y, mean, rstd, x, f32of(w), f32of(b), 1e-5)
				dx, dw, db := f32of(pdx), f32of(pdw), f32of(pdb)
				be.LayerNormBackward(dx, dw, db, f32of(dy), x, f32of(w), mean, rstd)
				return []*tensor.Tensor{dx, dw, db}
			}, []bool{false, false, false}, false},
			acCase{fmt.Sprintf("RMSNormForward %dx%d", N, C), func(h func(*tensor.Tensor) *tensor.Tensor, od tensor.DType) []*tensor.Tensor {
				y, rstd := tensor.New(od, N, C), tensor.New(tensor.F32, N)
				be.RMSNormForward(y, rstd, h(xs), f32of(w), 1e-6)
				return []*tensor.Tensor{y, rstd}
			}, []bool{true, false}, false},
			acCase{fmt.Sprintf("RMSNormBackward %dx%d", N, C), func(h func(*tensor.Tensor) *tensor.Tensor, od tensor.DType) []*tensor.Tensor {
				x := h(xs)
				y, rstd := tensor.New(tensor.F32, N, C), tensor.New(tensor.F32, N)
				be.RMSNormForward(y, rstd, x, f32of(w), 1e-6)
				dx, dw := f32of(pdx), f32of(pdw)
				be.RMSNormBackward(dx, dw, f32of(dy), x, f32of(w), rstd)
				return []*tensor.Tensor{dx, dw}
			}, []bool{false, false}, false},
		)
	}
	runACCases(t, cases)
}

func TestAutocastActivations(t *testing.T) {
	r := rand.New(rand.NewSource(12))
	var cases []acCase
	for _, n := range []int{1, 37, 3*elemChunk + 5} {
		xs, us, dy, pd, pu := scaledT(r, 2, n), randT(r, n), randT(r, n), randT(r, n), randT(r, n)
		cases = append(cases,
			acCase{fmt.Sprint("GELUForward ", n), func(h func(*tensor.Tensor) *tensor.Tensor, od tensor.DType) []*tensor.Tensor {
				y := tensor.New(od, n)
				be.GELUForward(y, h(xs))
				return []*tensor.Tensor{y}
			}, []bool{true}, false},
			acCase{fmt.Sprint("GELUBackward ", n), func(h func(*tensor.Tensor) *tensor.Tensor, od tensor.DType) []*tensor.Tensor {
				dx := f32of(pd)
				be.GELUBackward(dx, f32of(dy), h(xs))
				return []*tensor.Tensor{dx}
			}, []bool{false}, false},
			acCase{fmt.Sprint("SwiGLUForward ", n), func(h func(*tensor.Tensor) *tensor.Tensor, od tensor.DType) []*tensor.Tensor {
				y := tensor.New(od, n)
				be.SwiGLUForward(y, h(xs), h(us))
				return []*tensor.Tensor{y}
			}, []bool{true}, false},
			acCase{fmt.Sprint("SwiGLUBackward ", n), func(h func(*tensor.Tensor) *tensor.Tensor, od tensor.DType) []*tensor.Tensor {
				dg, du := f32of(pd), f32of(pu)
				be.SwiGLUBackward(dg, du, f32of(dy), h(xs), h(us))
				dg2 := f32of(pd)
				be.SwiGLUBackward(dg2, nil, f32of(dy), h(xs), h(us))
				return []*tensor.Tensor{dg, du, dg2}
			}, []bool{false, false, false}, false},
		)
	}
	runACCases(t, cases)
	for _, P := range precs {
		for _, n := range []int{37, 3*elemChunk + 5} {
			xs := scaledT(r, 2, n)
			x, y := conv(xs, P), tensor.New(P, n)
			be.GELUForward(y, x)
			be.GELUForward(x, x)
			sameBitsF(t, fmt.Sprint("GELU in place ", P), vals(x), vals(y))
		}
	}
}

func TestAutocastRoPEAttention(t *testing.T) {
	r := rand.New(rand.NewSource(13))
	var cases []acCase
	for _, sh := range []struct {
		B, T, NH, KVH, HS int
	}{{1, 1, 1, 1, 2}, {2, 7, 4, 2, 6}, {1, 53, 2, 1, 16}, {2, 9, 3, 3, 4}} {
		B, T, NH, KVH, HS := sh.B, sh.T, sh.NH, sh.KVH, sh.HS
		p := backend.AttnParams{B: B, T: T, NH: NH, KVH: KVH, HS: HS}
		if B > 1 { // a key mask (some keys masked)
			p.KeyMask = make([]int32, B*T)
			for i := range p.KeyMask {
				p.KeyMask[i] = int32(min(1, i%5))
			}
		}
		pos := make([]int32, B*T)
		for i := range pos {
			pos[i] = int32(i%T + 3)
		}
		qs, ks, vs := randT(r, B, T, NH, HS), randT(r, B, T, KVH, HS), randT(r, B, T, KVH, HS)
		douts := randT(r, B, T, NH, HS)
		pq, pk, pv := randT(r, B, T, NH, HS), randT(r, B, T, KVH, HS), randT(r, B, T, KVH, HS)
		name := fmt.Sprintf("B%d T%d NH%d KVH%d HS%d", B, T, NH, KVH, HS)
		for _, inv := range []bool{false, true} {
			cases = append(cases, acCase{fmt.Sprintf("RoPE inverse=%v %s", inv, name), func(h func(*tensor.Tensor) *tensor.Tensor, od tensor.DType) []*tensor.Tensor {
				x := h(qs)
				be.RoPE(x, pos, 10000, inv)
				return []*tensor.Tensor{x}
			}, []bool{true}, true})
		}
		fwd := func(h func(*tensor.Tensor) *tensor.Tensor, od tensor.DType) (out, lse *tensor.Tensor) {
			out, lse = tensor.New(od, B, T, NH, HS), tensor.New(tensor.F32, B*NH*T)
			be.AttentionForward(out, lse, h(qs), h(ks), h(vs), p)
			return out, lse
		}
		cases = append(cases,
			acCase{"AttentionForward " + name, func(h func(*tensor.Tensor) *tensor.Tensor, od tensor.DType) []*tensor.Tensor {
				out, lse := fwd(h, od)
				return []*tensor.Tensor{out, lse}
			}, []bool{true, false}, false},
			acCase{"AttentionBackward " + name, func(h func(*tensor.Tensor) *tensor.Tensor, od tensor.DType) []*tensor.Tensor {
				out, lse := fwd(h, od)
				dq, dk, dv := f32of(pq), f32of(pk), f32of(pv)
				be.AttentionBackward(dq, dk, dv, f32of(douts), h(qs), h(ks), h(vs), h(out), lse, p)
				return []*tensor.Tensor{dq, dk, dv}
			}, []bool{false, false, false}, false},
		)
	}
	runACCases(t, cases)
}

// TestAutocastOpPanics: dtype errors of the non-matmul ops name the op and
// the argument.
func TestAutocastOpPanics(t *testing.T) {
	f32 := func(s ...int) *tensor.Tensor { return tensor.New(tensor.F32, s...) }
	bf := func(s ...int) *tensor.Tensor { return tensor.New(tensor.BF16, s...) }
	fp := func(s ...int) *tensor.Tensor { return tensor.New(tensor.F16, s...) }
	mustPanic(t, func() { be.LayerNormForward(fp(2, 4), f32(2), f32(2), bf(2, 4), f32(4), nil, 1e-5) }, "LayerNormForward", "y", "F16")
	mustPanic(t, func() { be.LayerNormForward(bf(2, 4), bf(2), f32(2), bf(2, 4), f32(4), nil, 1e-5) }, "LayerNormForward", "mean")
	mustPanic(t, func() { be.RMSNormForward(bf(2, 4), f32(2), f32(2, 4), bf(4), 1e-5) }, "RMSNormForward", "w")
	mustPanic(t, func() { be.RMSNormBackward(bf(2, 4), nil, f32(2, 4), bf(2, 4), f32(4), f32(2)) }, "RMSNormBackward", "dx")
	mustPanic(t, func() { be.LayerNormBackward(f32(2, 4), nil, nil, bf(2, 4), bf(2, 4), f32(4), f32(2), f32(2)) }, "LayerNormBackward", "dy")
	mustPanic(t, func() { be.GELUForward(fp(8), bf(8)) }, "GELUForward", "F16")
	mustPanic(t, func() { be.GELUBackward(bf(8), f32(8), bf(8)) }, "GELUBackward", "dx")
	mustPanic(t, func() { be.SwiGLUForward(bf(8), bf(8), fp(8)) }, "SwiGLUForward", "up")
	mustPanic(t, func() { be.SwiGLUBackward(f32(8), nil, fp(8), bf(8), bf(8)) }, "SwiGLUBackward", "dy")
	p := backend.AttnParams{B: 1, T: 2, NH: 1, KVH: 1, HS: 2}
	mustPanic(t, func() { be.AttentionForward(bf(1, 2, 1, 2), bf(2), bf(1, 2, 1, 2), bf(1, 2, 1, 2), bf(1, 2, 1, 2), p) }, "AttentionForward", "lse")
	mustPanic(t, func() { be.AttentionForward(bf(1, 2, 1, 2), f32(2), bf(1, 2, 1, 2), fp(1, 2, 1, 2), bf(1, 2, 1, 2), p) }, "AttentionForward", "k", "F16")
	mustPanic(t, func() {
		be.AttentionBackward(bf(1, 2, 1, 2), nil, nil, f32(1, 2, 1, 2), bf(1, 2, 1, 2), bf(1, 2, 1, 2), bf(1, 2, 1, 2), bf(1, 2, 1, 2), f32(2), p)
	}, "AttentionBackward", "dq")
}
