package cpu

import (
	"fmt"
	"math"
	"math/rand"
	"testing"

	"github.com/shoggo/shoggo/backend"
	"github.com/shoggo/shoggo/tensor"
)

// The LM-head ops in an autocast call. The inputs are drawn from grids
// (h = j/64, w = k/1024) on which every float32 sum forming a logit is
// exact, so the logits round_P(h round_P(W)ᵀ) are known exactly and the
// reference (float64) has the kernel's logits bit for bit. The loss is then
// held to float32 softmax accuracy (1e-5 relative per row); the gradients
// dh += round_P(g) round_P(W) and dw += round_P(g)ᵀ h, where float32 error
// in g may flip its rounding by one ulp of P, to
// sum_v (ulpP(g) + 1e-6·|scale|)·|operand| plus the float32 summation
// tolerance. They also agree with the float32 op within halfTol.

func gridT(r *rand.Rand, den float64, lim int, shape ...int) *tensor.Tensor {
	t := tensor.New(tensor.F64, shape...)
	for i := range t.F64 {
		t.F64[i] = float64(r.Intn(2*lim+1)-lim) / den
	}
	return t
}

type headRef struct {
	loss    []float64 // per row (0 for ignored)
	lossTol []float64
	dh, dw  []float64 // gradients of sum_n scale_n·loss_n
	dhTol   []float64
	dwTol   []float64
}

// refHead computes the reference from h (N, C) and w (V, C) values
// (already the P values the kernel sees for h; w rounded here), for
// row scales scale[n] (0 = not counted).
func refHead(hv, wv []float64, N, C, V int, targets []int32, scale []float64, P tensor.DType) headRef {
	return refHeadG(hv, wv, N, C, V, targets, scale, P, true)
}

// refHeadG is refHead with the logits' gradient rounded to P (roundG) or
// not.
func refHeadG(hv, wv []float64, N, C, V int, targets []int32, scale []float64, P tensor.DType, roundG bool) headRef {
	wr := make([]float64, len(wv))
	for i, v := range wv {
		wr[i] = rp(v, P)
	}
	ref := headRef{loss: make([]float64, N), lossTol: make([]float64, N), dh: make([]float64, N*C), dw: make([]float64, V*C),
		dhTol: make([]float64, N*C), dwTol: make([]float64, V*C)}
	dhAbs, dwAbs := make([]float64, N*C), make([]float64, V*C)
	for n := 0; n < N; n++ {
		t := targets[n]
		if t == backend.IgnoreIndex {
			continue
		}
		l := make([]float64, V)
		mx := math.Inf(-1)
		for v := 0; v < V; v++ {
			var s float64
			for c := 0; c < C; c++ {
				s += hv[n*C+c] * wr[v*C+c]
			}
			l[v] = rp(s, P)
			mx = math.Max(mx, l[v])
		}
		var se float64
		for _, x := range l {
			se += math.Exp(x - mx)
		}
		ref.loss[n] = mx + math.Log(se) - l[t]
		ref.lossTol[n] = 1e-5 * (1 + math.Abs(ref.loss[n]))
		s := scale[n]
		for v := 0; v < V; v++ {
			g := math.Exp(l[v]-mx) / se
			if v == int(t) {
				g--
			}
			g *= s
			gr := g
			if roundG {
				gr = rp(g, P)
			}
			e := ulpP(g, P) + 1e-6*math.Abs(s)
			for c := 0; c < C; c++ {
				ref.dh[n*C+c] += gr * wr[v*C+c]
				dhAbs[n*C+c] += math.Abs(gr * wr[v*C+c])
				ref.dhTol[n*C+c] += e * math.Abs(wr[v*C+c])
				ref.dw[v*C+c] += gr * hv[n*C+c]
				dwAbs[v*C+c] += math.Abs(gr * hv[n*C+c])
				ref.dwTol[v*C+c] += e * math.Abs(hv[n*C+c])
			}
		}
	}
	for i := range ref.dhTol {
		ref.dhTol[i] += sumTol(V, dhAbs[i])
	}
	for i := range ref.dwTol {
		ref.dwTol[i] += sumTol(N, dwAbs[i])
	}
	return ref
}

func nearTol(t *testing.T, what string, got, ref, tol []float64) {
	t.Helper()
	bad := 0
	for i := range ref {
		if d := math.Abs(got[i] - ref[i]); !(d <= tol[i]+1e-30) {
			if bad++; bad <= 3 {
				t.Errorf("%s[%d] = %v, reference %v (diff %g, limit %g)", what, i, got[i], ref[i], d, tol[i])
			}
		}
	}
}

// closer fails unless sum|got-ref| <= 0.1 sum|ref-alt|.
func closer(t *testing.T, what string, got, ref, alt []float64) {
	t.Helper()
	var d, a float64
	for i := range ref {
		d += math.Abs(got[i] - ref[i])
		a += math.Abs(ref[i] - alt[i])
	}
	if d > 0.1*a {
		t.Errorf("%s: total distance %g from the reference, %g between it and the unrounded-gradient one", what, d, a)
	}
}

func TestAutocastCrossEntropy(t *testing.T) {
	r := rand.New(rand.NewSource(21))
	for _, sh := range []struct{ N, C, V int }{{1, 3, 2}, {13, 37, 29}, {6, 8, 130}} {
		N, C, V := sh.N, sh.C, sh.V
		hs, ws := gridT(r, 64, 40, N, C), gridT(r, 1024, 1000, V, C)
		targets := make([]int32, N)
		for n := range targets {
			targets[n] = int32(r.Intn(V))
			if n%4 == 2 {
				targets[n] = backend.IgnoreIndex
			}
		}
		const gradScale = 0.37
		scale := make([]float64, N)
		count := 0
		for n, tg := range targets {
			if tg != backend.IgnoreIndex {
				scale[n] = gradScale
				count++
			}
		}
		for _, P := range precs {
			for _, wdt := range []tensor.DType{tensor.F32, tensor.BF16} {
				for _, chunk := range []int{1, 4, 100} {
					what := fmt.Sprintf("CrossEntropy %v %v w %dx%dx%d chunk %d", P, wdt, N, C, V, chunk)
					h, w := conv(hs, P), conv(ws, wdt)
					ref := refHead(vals(h), vals(w), N, C, V, targets, scale, P)
					var dw *tensor.Tensor
					if wdt == tensor.F32 {
						dw = f32of(gridT(r, 8, 8, V, C))
					}
					dh := f32of(gridT(r, 8, 8, N, C))
					pdh, pdw := vals(dh), []float64(nil)
					if dw != nil {
						pdw = vals(dw)
					}
					loss, cnt, err := be.CrossEntropy(h, w, targets, chunk, gradScale, dh, dw)
					if err != nil || cnt != count {
						t.Fatalf("%s: count %d err %v", what, cnt, err)
					}
					var wantLoss, tol float64
					for n := range ref.loss {
						wantLoss += ref.loss[n]
						tol += ref.lossTol[n]
					}
					if math.Abs(loss-wantLoss) > tol {
						t.Errorf("%s: loss %v, reference %v (limit %g)", what, loss, wantLoss, tol)
					}
					got := vals(dh)
					for i := range got {
						got[i] -= pdh[i]
					}
					nearTol(t, what+" dh", got, ref.dh, ref.dhTol)
					// The tolerance allows a rounding flip of any g; in bulk
					// the kernel must be much closer to the rounded-g
					// reference than the unrounded-g one is.
					unr := refHeadG(vals(h), vals(w), N, C, V, targets, scale, P, false)
					closer(t, what+" dh", got, ref.dh, unr.dh)
					if dw != nil {
						got = vals(dw)
						for i := range got {
							got[i] -= pdw[i]
						}
						nearTol(t, what+" dw", got, ref.dw, ref.dwTol)
						closer(t, what+" dw", got, ref.dw, unr.dw)
					}
					// Loss only: same loss bits as with gradients.
					l2, _, _ := be.CrossEntropy(h, w, targets, chunk, gradScale, nil, nil)
					if l2 != loss {
						t.Errorf("%s: loss without gradients %v, with %v", what, l2, loss)
					}
				}
				// Against the float32 op (F32 h holding the same values; F32
				// w with the BF16 table's values).
				h, w := conv(hs, P), conv(ws, wdt)
				dh, dh32 := tensor.New(tensor.F32, N, C), tensor.New(tensor.F32, N, C)
				var dw, dw32 *tensor.Tensor
				if wdt == tensor.F32 {
					dw, dw32 = tensor.New(tensor.F32, V, C), tensor.New(tensor.F32, V, C)
				}
				la, _, _ := be.CrossEntropy(h, w, targets, 5, gradScale, dh, dw)
				lf, _, _ := be.CrossEntropy(conv(h, tensor.F32), conv(w, tensor.F32), targets, 5, gradScale, dh32, dw32)
				if math.Abs(la-lf) > halfTol(P)*math.Max(1, math.Abs(lf)) {
					t.Errorf("CrossEntropy %v %v w: loss %v, float32 op %v", P, wdt, la, lf)
				}
				if d := halfDiff(dh, dh32); d > halfTol(P) {
					t.Errorf("CrossEntropy %v %v w: dh differs from the float32 op's by %g (limit %g)", P, wdt, d, halfTol(P))
				}
				if dw != nil {
					if d := halfDiff(dw, dw32); d > halfTol(P) {
						t.Errorf("CrossEntropy %v %v w: dw differs from the float32 op's by %g (limit %g)", P, wdt, d, halfTol(P))
					}
				}
			}
		}
	}
}

// TestAutocastLogProbs: SeqLogProbs (T > 1 and the per-token T = 1) and
// SeqLogProbsBackward with per-sequence weights dout (one of them 0).
func TestAutocastLogProbs(t *testing.T) {
	r := rand.New(rand.NewSource(22))
	const N, C, V = 12, 19, 23
	hs, ws := gridT(r, 64, 40, N, C), gridT(r, 1024, 1000, V, C)
	targets := make([]int32, N)
	for n := range targets {
		targets[n] = int32(r.Intn(V))
		if n%5 == 3 {
			targets[n] = backend.IgnoreIndex
		}
	}
	for _, P := range precs {
		for _, T := range []int{1, 4} {
			for _, wdt := range []tensor.DType{tensor.F32, tensor.F16} {
				what := fmt.Sprintf("SeqLogProbs %v T=%d %v w", P, T, wdt)
				h, w := conv(hs, P), conv(ws, wdt)
				dout := make([]float64, N/T)
				for s := range dout {
					dout[s] = r.NormFloat64()
				}
				dout[1] = 0
				scale := make([]float64, N)
				for n, tg := range targets {
					if tg != backend.IgnoreIndex {
						scale[n] = -dout[n/T]
					}
				}
				ref := refHead(vals(h), vals(w), N, C, V, targets, scale, P)
				out := make([]float64, N/T)
				if err := be.SeqLogProbs(h, w, targets, T, 3, out); err != nil {
					t.Fatal(err)
				}
				for s := range out {
					var want, tol float64
					for n := s * T; n < (s+1)*T; n++ {
						want -= ref.loss[n]
						tol += ref.lossTol[n]
					}
					if math.Abs(out[s]-want) > tol {
						t.Errorf("%s: out[%d] = %v, reference %v", what, s, out[s], want)
					}
				}
				dh := tensor.New(tensor.F32, N, C)
				var dw *tensor.Tensor
				if wdt == tensor.F32 {
					dw = tensor.New(tensor.F32, V, C)
				}
				if err := be.SeqLogProbsBackward(h, w, targets, T, 3, dout, dh, dw); err != nil {
					t.Fatal(err)
				}
				nearTol(t, what+" dh", vals(dh), ref.dh, ref.dhTol)
				if dw != nil {
					nearTol(t, what+" dw", vals(dw), ref.dw, ref.dwTol)
				}
			}
		}
	}
}

func TestAutocastHeadPanics(t *testing.T) {
	h := tensor.New(tensor.BF16, 3, 4)
	w := tensor.New(tensor.F32, 5, 4)
	tg := []int32{0, 1, 2}
	mustPanic(t, func() { be.CrossEntropy(h, w, tg, 2, 1, tensor.New(tensor.BF16, 3, 4), nil) }, "CrossEntropy", "dh", "BF16")
	mustPanic(t, func() { be.CrossEntropy(h, w, tg, 2, 1, nil, tensor.New(tensor.F16, 5, 4)) }, "CrossEntropy", "dw", "F16")
	mustPanic(t, func() { be.CrossEntropy(h, tensor.New(tensor.BF16, 5, 4), tg, 2, 1, nil, tensor.New(tensor.F32, 5, 4)) }, "CrossEntropy", "dw")
	mustPanic(t, func() {
		be.SeqLogProbsBackward(h, tensor.New(tensor.F64, 5, 4), tg, 1, 2, []float64{1, 1, 1}, tensor.New(tensor.F32, 3, 4), nil)
	}, "SeqLogProbsBackward", "w")
	if _, _, err := be.CrossEntropy(h, w, []int32{0, 9, 1}, 2, 1, nil, nil); err == nil {
		t.Error("CrossEntropy: target 9 of V = 5 gave no error")
	}
}
