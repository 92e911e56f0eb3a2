package cpu

import (
	"math"
	"math/rand"
	randv2 "math/rand/v2"
	"strings"
	"testing"

	"github.com/shoggo/shoggo/backend"
	"github.com/shoggo/shoggo/tensor"
)

// naiveTokenLogProbs returns log softmax(h w^T)[target] per row from full
// float64 logits (0 for ignored rows).
func naiveTokenLogProbs(h, w *tensor.Tensor, targets []int32) []float64 {
	_, C := rc(h)
	V := w.Dim(0)
	out := make([]float64, len(targets))
	for n, tg := range targets {
		if tg == backend.IgnoreIndex {
			continue
		}
		logits := make([]float64, V)
		mx := math.Inf(-1)
		for v := range logits {
			for c := 0; c < C; c++ {
				logits[v] += h.At(n*C+c) * w.At(v*C+c)
			}
			mx = math.Max(mx, logits[v])
		}
		var s float64
		for _, l := range logits {
			s += math.Exp(l - mx)
		}
		out[n] = logits[tg] - mx - math.Log(s)
	}
	return out
}

// lpShapes: B sequences of T positions, hidden C, vocabulary V, chunk rows.
var lpShapes = []struct{ B, T, C, V, chunk int }{
	{1, 1, 1, 2, 1}, {2, 3, 4, 7, 2}, {3, 4, 3, 11, 5}, {4, 5, 6, 9, 3}, {2, 7, 5, 13, 64},
}

// Against full float64 logits (1e-12 relative), for T = the sequence
// length and T = 1 (per token); ignored rows and all-ignored sequences give 0.
func TestSeqLogProbsReference(t *testing.T) {
	r := rand.New(rand.NewSource(60))
	for _, s := range lpShapes {
		N := s.B * s.T
		h, w := randT(r, N, s.C), randT(r, s.V, s.C)
		targets := randTargets(r, N, s.V)
		if s.B > 1 {
			for i := s.T; i < 2*s.T; i++ {
				targets[i] = backend.IgnoreIndex // sequence 1 fully masked
			}
		}
		tok := naiveTokenLogProbs(h, w, targets)
		for _, T := range []int{s.T, 1} {
			out := make([]float64, N/T)
			for i := range out {
				out[i] = 123 // must be overwritten
			}
			if err := be.SeqLogProbs(h, w, targets, T, s.chunk, out); err != nil {
				t.Fatal(err)
			}
			for b := range out {
				var want float64
				for n := b * T; n < (b+1)*T; n++ {
					want += tok[n]
				}
				if math.Abs(out[b]-want) > 1e-12*(1+math.Abs(want)) {
					t.Errorf("%+v T=%d: out[%d] = %.15g, want %.15g", s, T, b, out[b], want)
				}
				if want == 0 && out[b] != 0 {
					t.Errorf("%+v T=%d: masked out[%d] = %g", s, T, b, out[b])
				}
			}
		}
	}
}

// The sum of all sequences' log-probabilities is minus CrossEntropy's loss
// sum (1e-13 relative: only the summation order differs), and the backward
// with dout = -gradScale everywhere is CrossEntropy's gradient bit for bit.
func TestSeqLogProbsMatchesCrossEntropy(t *testing.T) {
	r := rand.New(rand.NewSource(61))
	for _, dt := range []tensor.DType{tensor.F64, tensor.F32} {
		for _, s := range lpShapes {
			N := s.B * s.T
			h, w := conv(randT(r, N, s.C), dt), conv(randT(r, s.V, s.C), dt)
			targets := randTargets(r, N, s.V)
			out := make([]float64, s.B)
			if err := be.SeqLogProbs(h, w, targets, s.T, s.chunk, out); err != nil {
				t.Fatal(err)
			}
			const gs = 0.3
			dhCE, dwCE := zerosLike(h), zerosLike(w)
			loss, _, err := be.CrossEntropy(h, w, targets, s.chunk, gs, dhCE, dwCE)
			if err != nil {
				t.Fatal(err)
			}
			var sum float64
			for _, v := range out {
				sum += v
			}
			if math.Abs(sum+loss) > 1e-13*(1+math.Abs(loss)) {
				t.Errorf("%s %+v: sum of log-probs %.17g, -loss %.17g", dt, s, sum, -loss)
			}
			dout := make([]float64, s.B)
			for i := range dout {
				dout[i] = -gs
			}
			dh, dw := zerosLike(h), zerosLike(w)
			if err := be.SeqLogProbsBackward(h, w, targets, s.T, s.chunk, dout, dh, dw); err != nil {
				t.Fatal(err)
			}
			if maxRelDiff(dh, dhCE) != 0 || maxRelDiff(dw, dwCE) != 0 {
				t.Errorf("%s %+v: backward differs from CrossEntropy's gradient (dh %g, dw %g)", dt, s, maxRelDiff(dh, dhCE), maxRelDiff(dw, dwCE))
			}
		}
	}
}

// Gradient check of sum_s c_s * out[s] (random c_s, one of them 0) w.r.t. h
// and w, eps=1e-6, atol=1e-7, rtol=1e-5, for per-sequence and per-token sums.
func TestSeqLogProbsGrad(t *testing.T) {
	r := rand.New(rand.NewSource(62))
	for _, s := range lpShapes {
		for _, T := range []int{s.T, 1} {
			N := s.B * s.T
			h, w := randT(r, N, s.C), randT(r, s.V, s.C)
			targets := randTargets(r, N, s.V)
			targets[0] = int32(r.Intn(s.V))
			coef := make([]float64, N/T)
			for i := range coef {
				coef[i] = r.NormFloat64()
			}
			if len(coef) > 1 {
				coef[len(coef)-1] = 0
			}
			out := make([]float64, N/T)
			op := gradOp{
				names:  []string{"h", "w"},
				inputs: []*tensor.Tensor{h, w},
				loss: func() float64 {
					if err := be.SeqLogProbs(h, w, targets, T, s.chunk, out); err != nil {
						t.Fatal(err)
					}
					var l float64
					for i, v := range out {
						l += coef[i] * v
					}
					return l
				},
				backward: func(g []*tensor.Tensor) {
					if err := be.SeqLogProbsBackward(h, w, targets, T, s.chunk, coef, g[0], g[1]); err != nil {
						t.Fatal(err)
					}
				},
			}
			checkGrads(t, "seqlogprobs", op, 1e-6, 1e-7, 1e-5)
			// Rows of a sequence with coefficient 0, and ignored rows, get
			// exactly zero dh.
			dh := zerosLike(h)
			if err := be.SeqLogProbsBackward(h, w, targets, T, s.chunk, coef, dh, nil); err != nil {
				t.Fatal(err)
			}
			for n := 0; n < N; n++ {
				if targets[n] != backend.IgnoreIndex && coef[n/T] != 0 {
					continue
				}
				for c := 0; c < s.C; c++ {
					if dh.F64[n*s.C+c] != 0 {
						t.Fatalf("%+v T=%d: row %d (target %d, coef %g) has dh %g", s, T, n, targets[n], coef[n/T], dh.F64[n*s.C+c])
					}
				}
			}
		}
	}
}

// chunkRows does not change the log-probabilities (exactly) or the
// gradients (1e-13 relative).
func TestSeqLogProbsChunks(t *testing.T) {
	r := rand.New(rand.NewSource(63))
	B, T, C, V := 3, 6, 5, 13
	N := B * T
	h, w := randT(r, N, C), randT(r, V, C)
	targets := randTargets(r, N, V)
	dout := []float64{0.5, -1.25, 2}
	var refOut []float64
	var refDh, refDw *tensor.Tensor
	for i, chunk := range []int{N, 1, 4, N + 3} {
		out := make([]float64, B)
		if err := be.SeqLogProbs(h, w, targets, T, chunk, out); err != nil {
			t.Fatal(err)
		}
		dh, dw := zerosLike(h), zerosLike(w)
		if err := be.SeqLogProbsBackward(h, w, targets, T, chunk, dout, dh, dw); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			refOut, refDh, refDw = out, dh, dw
			continue
		}
		for b := range out {
			if out[b] != refOut[b] {
				t.Errorf("chunk %d: out[%d] = %.17g, chunk %d gave %.17g", chunk, b, out[b], N, refOut[b])
			}
		}
		if d := maxRelDiff(dh, refDh); d > 1e-13 {
			t.Errorf("chunk %d: dh differs by %g", chunk, d)
		}
		if d := maxRelDiff(dw, refDw); d > 1e-13 {
			t.Errorf("chunk %d: dw differs by %g", chunk, d)
		}
	}
}

// F32 agrees with F64 (1e-5 norm-wise relative) for the log-probabilities
// and both gradients.
func TestSeqLogProbsF32(t *testing.T) {
	r := rand.New(rand.NewSource(64))
	B, T, C, V := 3, 5, 16, 37
	N := B * T
	h, w := randT(r, N, C), randT(r, V, C)
	targets := randTargets(r, N, V)
	dout := []float64{0.7, -0.2, 1.1}
	checkF32(t, "seqlogprobs", 1e-5, func(dt tensor.DType) []*tensor.Tensor {
		out := make([]float64, B)
		hc, wc := conv(h, dt), conv(w, dt)
		if err := be.SeqLogProbs(hc, wc, targets, T, 4, out); err != nil {
			t.Fatal(err)
		}
		dh, dw := tensor.New(dt, N, C), tensor.New(dt, V, C)
		if err := be.SeqLogProbsBackward(hc, wc, targets, T, 4, dout, dh, dw); err != nil {
			t.Fatal(err)
		}
		return []*tensor.Tensor{tensor.FromF64(out, B), dh, dw}
	})
}

// An out-of-range target is an error naming its position, with nothing
// written; malformed shapes panic.
func TestSeqLogProbsBadTarget(t *testing.T) {
	r := rand.New(rand.NewSource(65))
	h, w := randT(r, 4, 3), randT(r, 5, 3)
	for _, bad := range []int32{5, -1, -101, 1 << 30} {
		targets := []int32{0, -100, 2, bad}
		out := []float64{7, 7}
		err := be.SeqLogProbs(h, w, targets, 2, 2, out)
		dh, dw := zerosLike(h), zerosLike(w)
		berr := be.SeqLogProbsBackward(h, w, targets, 2, 2, []float64{1, 1}, dh, dw)
		for _, e := range []error{err, berr} {
			if e == nil {
				t.Fatalf("target %d: no error", bad)
			}
			for _, want := range []string{"position 3", itoa(int(bad)), "[0, 5)"} {
				if !strings.Contains(e.Error(), want) {
					t.Errorf("error %q does not mention %q", e, want)
				}
			}
		}
		if out[0] != 7 || out[1] != 7 {
			t.Errorf("target %d: out written before the error: %v", bad, out)
		}
		if maxRelDiff(dh, zerosLike(h)) != 0 || maxRelDiff(dw, zerosLike(w)) != 0 {
			t.Errorf("target %d: gradient written before the error", bad)
		}
	}
	ok := []int32{0, 1, 2, 3}
	mustPanic(t, func() { be.SeqLogProbs(h, w, ok, 3, 2, make([]float64, 1)) }, "4 rows", "T = 3")
	mustPanic(t, func() { be.SeqLogProbs(h, w, ok, 0, 2, nil) }, "T = 0")
	mustPanic(t, func() { be.SeqLogProbs(h, w, ok, 2, 2, make([]float64, 3)) }, "out has 3 entries", "= 2")
	mustPanic(t, func() { be.SeqLogProbsBackward(h, w, ok, 1, 2, make([]float64, 2), nil, nil) }, "dout has 2 entries", "= 4")
	mustPanic(t, func() { be.SeqLogProbs(h, w, ok[:3], 1, 2, make([]float64, 3)) }, "3 targets")
	mustPanic(t, func() { be.SeqLogProbs(h, w, ok, 1, 0, make([]float64, 4)) }, "chunkRows")
}

// A BF16/F16 LM head gives the log-probabilities and dh of its exact F32
// widening (1e-6 relative: only the split GEMMs' summation order differs),
// and a dw with it panics.
func TestHalfSeqLogProbs(t *testing.T) {
	c := New()
	rng := randv2.New(randv2.NewPCG(7, 8))
	B, T, C, V := 3, 4, 24, 101
	N := B * T
	for _, dt := range []tensor.DType{tensor.BF16, tensor.F16} {
		wh, wf := halfPair(rng, dt, V, C)
		h := randF32(rng, N, C)
		targets := make([]int32, N)
		for i := range targets {
			targets[i] = int32(rng.IntN(V))
		}
		targets[1], targets[5] = backend.IgnoreIndex, backend.IgnoreIndex
		dout := []float64{1, -0.5, 0.25}
		for _, blk := range []int{1 << 20, 7 * C, 1} {
			withHalfBlock(t, blk)
			for _, chunk := range []int{1, 5, 128} {
				got, want := make([]float64, B), make([]float64, B)
				if err := c.SeqLogProbs(h, wh, targets, T, chunk, got); err != nil {
					t.Fatal(err)
				}
				if err := c.SeqLogProbs(h, wf, targets, T, chunk, want); err != nil {
					t.Fatal(err)
				}
				for b := range want {
					if math.Abs(got[b]-want[b]) > 1e-6*(1+math.Abs(want[b])) {
						t.Fatalf("%s blk %d chunk %d: out[%d] = %g, want %g", dt, blk, chunk, b, got[b], want[b])
					}
				}
				gotDH, wantDH := tensor.New(tensor.F32, N, C), tensor.New(tensor.F32, N, C)
				if err := c.SeqLogProbsBackward(h, wh, targets, T, chunk, dout, gotDH, nil); err != nil {
					t.Fatal(err)
				}
				if err := c.SeqLogProbsBackward(h, wf, targets, T, chunk, dout, wantDH, nil); err != nil {
					t.Fatal(err)
				}
				closeRel(t, "dh", gotDH.F32, wantDH.F32, 1e-6)
			}
		}
		mustPanic(t, func() {
			c.SeqLogProbsBackward(h, wh, targets, T, 4, dout, nil, tensor.New(tensor.F32, V, C))
		}, "weight gradient")
	}
}
