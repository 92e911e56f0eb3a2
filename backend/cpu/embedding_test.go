package cpu

import (
	"math/rand"
	"strings"
	"testing"

	"github.com/shoggo/shoggo/tensor"
)

func randIDs(r *rand.Rand, n, v int) []int32 {
	ids := make([]int32, n)
	for i := range ids {
		ids[i] = int32(r.Intn(v))
	}
	return ids
}

// Gradient check, eps=1e-6, atol=1e-8, rtol=1e-6 (the op is linear in w, so
// central differences are exact up to rounding).
func TestEmbeddingGrad(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	for _, s := range []struct{ V, C, N int }{{1, 1, 1}, {5, 3, 7}, {11, 4, 2}, {3, 8, 9}} {
		w := randT(r, s.V, s.C)
		ids := randIDs(r, s.N, s.V)
		out := tensor.New(tensor.F64, s.N, s.C)
		dy := randT(r, s.N, s.C)
		op := gradOp{
			names:  []string{"w"},
			inputs: []*tensor.Tensor{w},
			loss: func() float64 {
				if err := be.EmbeddingForward(out, w, ids, false); err != nil {
					t.Fatal(err)
				}
				return dot(dy, out)
			},
			backward: func(g []*tensor.Tensor) { be.EmbeddingBackward(g[0], dy, ids) },
		}
		checkGrads(t, "embedding", op, 1e-6, 1e-8, 1e-6)
	}
}

func TestEmbeddingForward(t *testing.T) {
	r := rand.New(rand.NewSource(2))
	w := randT(r, 6, 3)
	ids := []int32{5, 0, 5, 2}
	out := randT(r, 4, 3)
	pre := out.Clone()
	if err := be.EmbeddingForward(out, w, ids, true); err != nil {
		t.Fatal(err)
	}
	for n, id := range ids {
		for j := 0; j < 3; j++ {
			if got, want := out.F64[n*3+j], pre.F64[n*3+j]+w.F64[int(id)*3+j]; got != want {
				t.Fatalf("accumulate: out[%d,%d] = %g, want %g", n, j, got, want)
			}
		}
	}
	if err := be.EmbeddingForward(out, w, ids, false); err != nil {
		t.Fatal(err)
	}
	for n, id := range ids {
		for j := 0; j < 3; j++ {
			if out.F64[n*3+j] != w.F64[int(id)*3+j] {
				t.Fatalf("out[%d,%d] = %g, want %g", n, j, out.F64[n*3+j], w.F64[int(id)*3+j])
			}
		}
	}
}

func TestEmbeddingBadID(t *testing.T) {
	r := rand.New(rand.NewSource(3))
	w := randT(r, 6, 3)
	for _, bad := range []int32{6, -1, 1 << 30} {
		out := randT(r, 3, 3)
		pre := out.Clone()
		err := be.EmbeddingForward(out, w, []int32{1, bad, 2}, false)
		if err == nil {
			t.Fatalf("id %d: no error", bad)
		}
		msg := err.Error()
		for _, want := range []string{"position 1", itoa(int(bad)), "[0, 6)"} {
			if !strings.Contains(msg, want) {
				t.Errorf("error %q does not mention %q", msg, want)
			}
		}
		if maxRelDiff(out, pre) != 0 {
			t.Errorf("id %d: out was written before the error", bad)
		}
	}
	mustPanic(t, func() { be.EmbeddingBackward(zerosLike(w), randT(r, 1, 3), []int32{6}) }, "6")
}

func TestEmbeddingF32(t *testing.T) {
	r := rand.New(rand.NewSource(4))
	w, ids, dy := randT(r, 7, 5), randIDs(r, 9, 7), randT(r, 9, 5)
	checkF32(t, "embedding", 1e-6, func(dt tensor.DType) []*tensor.Tensor {
		out := tensor.New(dt, 9, 5)
		if err := be.EmbeddingForward(out, conv(w, dt), ids, false); err != nil {
			t.Fatal(err)
		}
		dw := tensor.New(dt, 7, 5)
		be.EmbeddingBackward(dw, conv(dy, dt), ids)
		return []*tensor.Tensor{out, dw}
	})
}

func TestEmbeddingShapePanic(t *testing.T) {
	w := tensor.New(tensor.F64, 6, 3)
	mustPanic(t, func() { be.EmbeddingForward(tensor.New(tensor.F64, 2, 4), w, []int32{0, 1}, false) }, "[2, 4]", "(2, 3)")
	mustPanic(t, func() { be.EmbeddingForward(tensor.New(tensor.F32, 2, 3), w, []int32{0, 1}, false) }, "mixed dtypes")
}
