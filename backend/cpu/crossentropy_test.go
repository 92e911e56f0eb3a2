package cpu

import (
	"math"
	"math/rand"
	"strings"
	"sync"
	"testing"

	"github.com/shoggo/shoggo/backend"
	"github.com/shoggo/shoggo/tensor"
)

// randTargets draws targets in [0, V), with about a third IgnoreIndex
// (including runs, so counted rows are both adjacent and scattered).
func randTargets(r *rand.Rand, n, v int) []int32 {
	t := make([]int32, n)
	for i := range t {
		if r.Intn(3) == 0 {
			t[i] = backend.IgnoreIndex
		} else {
			t[i] = int32(r.Intn(v))
		}
	}
	return t
}

// naiveCE computes the summed loss from full float64 logits.
func naiveCE(h, w *tensor.Tensor, targets []int32) (float64, int) {
	N, C := rc(h)
	V := w.Dim(0)
	var loss float64
	count := 0
	for n, tg := range targets {
		if tg == backend.IgnoreIndex {
			continue
		}
		count++
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
		loss += mx + math.Log(s) - logits[tg]
	}
	_ = N
	return loss, count
}

var ceShapes = []struct{ N, C, V, chunk int }{
	{1, 1, 1, 1}, {1, 1, 2, 1}, {2, 1, 3, 5}, {5, 3, 7, 2}, {9, 4, 11, 3}, {12, 6, 5, 12},
}

// Gradient check of gradScale * lossSum w.r.t. h and w, eps=1e-6, atol=1e-7,
// rtol=1e-5 (log-softmax is smooth; logits are O(C)).
func TestCrossEntropyGrad(t *testing.T) {
	r := rand.New(rand.NewSource(50))
	for _, s := range ceShapes {
		h, w := randT(r, s.N, s.C), randT(r, s.V, s.C)
		targets := randTargets(r, s.N, s.V)
		targets[0] = int32(r.Intn(s.V)) // at least one counted row
		const scale = 0.37
		op := gradOp{
			names:  []string{"h", "w"},
			inputs: []*tensor.Tensor{h, w},
			loss: func() float64 {
				l, _, err := be.CrossEntropy(h, w, targets, s.chunk, scale, nil, nil)
				if err != nil {
					t.Fatal(err)
				}
				return scale * l
			},
			backward: func(g []*tensor.Tensor) {
				if _, _, err := be.CrossEntropy(h, w, targets, s.chunk, scale, g[0], g[1]); err != nil {
					t.Fatal(err)
				}
			},
		}
		checkGrads(t, "crossentropy", op, 1e-6, 1e-7, 1e-5)
	}
}

// Loss and count against full float64 logits, 1e-12 relative.
func TestCrossEntropyReference(t *testing.T) {
	r := rand.New(rand.NewSource(51))
	for _, s := range ceShapes {
		h, w := randT(r, s.N, s.C), randT(r, s.V, s.C)
		targets := randTargets(r, s.N, s.V)
		wantLoss, wantCount := naiveCE(h, w, targets)
		for _, grads := range []bool{false, true} {
			var dh, dw *tensor.Tensor
			if grads {
				dh, dw = zerosLike(h), zerosLike(w)
			}
			loss, count, err := be.CrossEntropy(h, w, targets, s.chunk, 1, dh, dw)
			if err != nil {
				t.Fatal(err)
			}
			if count != wantCount || math.Abs(loss-wantLoss) > 1e-12*(1+math.Abs(wantLoss)) {
				t.Errorf("%+v grads=%v: loss %g count %d, want %g %d", s, grads, loss, count, wantLoss, wantCount)
			}
		}
	}
}

// chunkRows 1, 3, N and > N give the same loss (exactly: rows are summed in
// order) and the same gradients (to 1e-13 relative: gathered and in-place
// blocks may round differently).
func TestCrossEntropyChunks(t *testing.T) {
	r := rand.New(rand.NewSource(52))
	N, C, V := 17, 5, 13
	h, w := randT(r, N, C), randT(r, V, C)
	targets := randTargets(r, N, V)
	targets[0], targets[N-1] = backend.IgnoreIndex, backend.IgnoreIndex
	var refLoss float64
	var refDh, refDw *tensor.Tensor
	for i, chunk := range []int{N, 1, 3, N + 9} {
		dh, dw := zerosLike(h), zerosLike(w)
		loss, count, err := be.CrossEntropy(h, w, targets, chunk, 0.1, dh, dw)
		if err != nil {
			t.Fatal(err)
		}
		_, wantCount := naiveCE(h, w, targets)
		if count != wantCount {
			t.Errorf("chunk %d: count %d, want %d", chunk, count, wantCount)
		}
		if i == 0 {
			refLoss, refDh, refDw = loss, dh, dw
			continue
		}
		if loss != refLoss {
			t.Errorf("chunk %d: loss %.17g, chunk %d gave %.17g", chunk, loss, N, refLoss)
		}
		if d := maxRelDiff(dh, refDh); d > 1e-13 {
			t.Errorf("chunk %d: dh differs by %g", chunk, d)
		}
		if d := maxRelDiff(dw, refDw); d > 1e-13 {
			t.Errorf("chunk %d: dw differs by %g", chunk, d)
		}
	}
	// Ignored rows get exactly zero gradient.
	for n, tg := range targets {
		if tg != backend.IgnoreIndex {
			continue
		}
		for c := 0; c < C; c++ {
			if refDh.F64[n*C+c] != 0 {
				t.Fatalf("ignored row %d has dh %g", n, refDh.F64[n*C+c])
			}
		}
	}
}

// The gradient is linear in gradScale (1e-14 relative), and all-ignored
// targets give loss 0, count 0 and no gradient.
func TestCrossEntropyGradScaleAndIgnore(t *testing.T) {
	r := rand.New(rand.NewSource(53))
	N, C, V := 6, 4, 9
	h, w := randT(r, N, C), randT(r, V, C)
	targets := randTargets(r, N, V)
	targets[2] = 3
	dh1, dw1 := zerosLike(h), zerosLike(w)
	l1, c1, _ := be.CrossEntropy(h, w, targets, 4, 1, dh1, dw1)
	const s = 0.125 // a power of two: scaling is exact
	dhs, dws := zerosLike(h), zerosLike(w)
	ls, cs, _ := be.CrossEntropy(h, w, targets, 4, s, dhs, dws)
	if l1 != ls || c1 != cs {
		t.Errorf("loss/count depend on gradScale: %g %d vs %g %d", l1, c1, ls, cs)
	}
	be.Scale(dh1, s)
	be.Scale(dw1, s)
	if maxRelDiff(dhs, dh1) > 1e-14 || maxRelDiff(dws, dw1) > 1e-14 {
		t.Error("gradient not proportional to gradScale")
	}

	all := []int32{-100, -100, -100, -100, -100, -100}
	dh, dw := zerosLike(h), zerosLike(w)
	loss, count, err := be.CrossEntropy(h, w, all, 2, 1, dh, dw)
	if err != nil || loss != 0 || count != 0 || maxRelDiff(dh, zerosLike(h)) != 0 || maxRelDiff(dw, zerosLike(w)) != 0 {
		t.Errorf("all ignored: loss %g count %d err %v", loss, count, err)
	}
}

func TestCrossEntropyBadTarget(t *testing.T) {
	r := rand.New(rand.NewSource(54))
	h, w := randT(r, 4, 3), randT(r, 5, 3)
	for _, bad := range []int32{5, -1, -101, 1 << 30} {
		dh, dw := zerosLike(h), zerosLike(w)
		_, _, err := be.CrossEntropy(h, w, []int32{0, -100, 2, bad}, 2, 1, dh, dw)
		if err == nil {
			t.Fatalf("target %d: no error", bad)
		}
		for _, want := range []string{"position 3", itoa(int(bad)), "[0, 5)"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not mention %q", err, want)
			}
		}
		if maxRelDiff(dh, zerosLike(h)) != 0 || maxRelDiff(dw, zerosLike(w)) != 0 {
			t.Errorf("target %d: gradient written before the error", bad)
		}
	}
	mustPanic(t, func() { be.CrossEntropy(h, w, []int32{0, 1}, 2, 1, nil, nil) }, "2 targets", "[4, 3]")
	mustPanic(t, func() { be.CrossEntropy(h, randT(r, 5, 2), []int32{0, 1, 2, 3}, 2, 1, nil, nil) }, "[5, 2]", "[4, 3]")
	mustPanic(t, func() { be.CrossEntropy(h, w, []int32{0, 1, 2, 3}, 0, 1, nil, nil) }, "chunkRows")
}

// Huge logits (|h| ~ 1e3) stay finite thanks to max subtraction.
func TestCrossEntropyStable(t *testing.T) {
	r := rand.New(rand.NewSource(55))
	for _, dt := range []tensor.DType{tensor.F64, tensor.F32} {
		h, w := randT(r, 3, 4), randT(r, 6, 4)
		be.Scale(h, 1000)
		h, w = conv(h, dt), conv(w, dt)
		dh, dw := zerosLike(h), zerosLike(w)
		loss, _, err := be.CrossEntropy(h, w, []int32{0, 5, 2}, 2, 1, dh, dw)
		if err != nil || math.IsNaN(loss) || math.IsInf(loss, 0) {
			t.Fatalf("%s: loss %g err %v", dt, loss, err)
		}
		for i := 0; i < dh.Numel(); i++ {
			if v := dh.At(i); math.IsNaN(v) || math.IsInf(v, 0) {
				t.Fatalf("%s: dh[%d] = %g", dt, i, v)
			}
		}
	}
}

func TestCrossEntropyF32(t *testing.T) {
	r := rand.New(rand.NewSource(56))
	N, C, V := 11, 16, 37
	h, w := randT(r, N, C), randT(r, V, C)
	targets := randTargets(r, N, V)
	checkF32(t, "crossentropy", 1e-5, func(dt tensor.DType) []*tensor.Tensor {
		dh, dw := tensor.New(dt, N, C), tensor.New(dt, V, C)
		loss, _, err := be.CrossEntropy(conv(h, dt), conv(w, dt), targets, 4, 1.0/float64(N), dh, dw)
		if err != nil {
			t.Fatal(err)
		}
		return []*tensor.Tensor{tensor.FromF64([]float64{loss}, 1), dh, dw}
	})
}

// One CPU shared by several goroutines (the scratch cache is lent out under
// a mutex) gives the serial results.
func TestCrossEntropyConcurrent(t *testing.T) {
	r := rand.New(rand.NewSource(57))
	N, C, V := 8, 4, 21
	h, w := randT(r, N, C), randT(r, V, C)
	targets := randTargets(r, N, V)
	want, _, _ := be.CrossEntropy(h, w, targets, 3, 1, nil, nil)
	c := New()
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				dt := tensor.F64
				if (g+i)%2 == 1 {
					dt = tensor.F32
				}
				got, _, _ := c.CrossEntropy(conv(h, dt), conv(w, dt), targets, 1+(g+i)%5, 1, nil, nil)
				if dt == tensor.F64 && got != want {
					errs <- "mismatch"
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
	c.ReleaseScratch()
}
