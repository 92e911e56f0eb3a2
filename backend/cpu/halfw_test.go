package cpu

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/shoggo/shoggo/backend"
	"github.com/shoggo/shoggo/tensor"
)

// halfPair returns a random (V, C) table in dt (BF16 or F16) and its exact
// float32 widening.
func halfPair(rng *rand.Rand, dt tensor.DType, V, C int) (h, f *tensor.Tensor) {
	h = tensor.New(dt, V, C)
	f = tensor.New(tensor.F32, V, C)
	for i := range f.F32 {
		v := float32(rng.NormFloat64() * 0.5)
		if dt == tensor.BF16 {
			h.U16[i] = tensor.F32ToBF16(v)
			f.F32[i] = tensor.BF16ToF32(h.U16[i])
		} else {
			h.U16[i] = tensor.F32ToF16(v)
			f.F32[i] = tensor.F16ToF32(h.U16[i])
		}
	}
	return h, f
}

func randF32(rng *rand.Rand, shape ...int) *tensor.Tensor {
	t := tensor.New(tensor.F32, shape...)
	for i := range t.F32 {
		t.F32[i] = float32(rng.NormFloat64())
	}
	return t
}

func closeRel(t *testing.T, what string, got, want []float32, tol float64) {
	t.Helper()
	var scale float64
	for _, v := range want {
		scale = max(scale, math.Abs(float64(v)))
	}
	for i := range want {
		if d := math.Abs(float64(got[i]) - float64(want[i])); d > tol*max(scale, 1e-30) {
			t.Fatalf("%s[%d] = %g, want %g (scale %g)", what, i, got[i], want[i], scale)
		}
	}
}

func withHalfBlock(t *testing.T, elems int) {
	old := halfBlockElems
	halfBlockElems = elems
	t.Cleanup(func() { halfBlockElems = old })
}

func TestHalfEmbeddingForward(t *testing.T) {
	c := New()
	rng := rand.New(rand.NewPCG(1, 2))
	for _, dt := range []tensor.DType{tensor.BF16, tensor.F16} {
		V, C := 37, 19
		wh, wf := halfPair(rng, dt, V, C)
		ids := []int32{0, 36, 5, 5, 17}
		for _, acc := range []bool{false, true} {
			base := randF32(rng, len(ids), C)
			got, want := base.Clone(), base.Clone()
			if err := c.EmbeddingForward(got, wh, ids, acc); err != nil {
				t.Fatal(err)
			}
			if err := c.EmbeddingForward(want, wf, ids, acc); err != nil {
				t.Fatal(err)
			}
			closeRel(t, "out", got.F32, want.F32, 0)
		}
		if err := c.EmbeddingForward(tensor.New(tensor.F32, 1, C), wh, []int32{int32(V)}, false); err == nil {
			t.Fatal("out-of-range id accepted")
		}
	}
}

func TestHalfLinearForward(t *testing.T) {
	c := New()
	rng := rand.New(rand.NewPCG(3, 4))
	for _, blk := range []int{1 << 20, 7 * 23, 1} {
		withHalfBlock(t, blk)
		N, in, out := 5, 23, 101
		wh, wf := halfPair(rng, tensor.BF16, out, in)
		x := randF32(rng, N, in)
		for _, b := range []*tensor.Tensor{nil, randF32(rng, out)} {
			got, want := tensor.New(tensor.F32, N, out), tensor.New(tensor.F32, N, out)
			c.LinearForward(got, x, wh, b)
			c.LinearForward(want, x, wf, b)
			closeRel(t, "y", got.F32, want.F32, 1e-5)
		}
	}
}

func TestHalfCrossEntropy(t *testing.T) {
	c := New()
	rng := rand.New(rand.NewPCG(5, 6))
	N, C, V := 11, 24, 101 // V odd: not a multiple of any block
	for _, dt := range []tensor.DType{tensor.BF16, tensor.F16} {
		wh, wf := halfPair(rng, dt, V, C)
		h := randF32(rng, N, C)
		targets := make([]int32, N)
		for i := range targets {
			targets[i] = int32(rng.IntN(V))
		}
		targets[3], targets[4], targets[9] = backend.IgnoreIndex, backend.IgnoreIndex, backend.IgnoreIndex
		for _, blk := range []int{1 << 20, 10 * C, 7 * C, C, 1} {
			withHalfBlock(t, blk)
			for _, chunk := range []int{1, 3, 4, 128} {
				dh0 := randF32(rng, N, C)
				gotDH, wantDH := dh0.Clone(), dh0.Clone()
				gl, gn, err := c.CrossEntropy(h, wh, targets, chunk, 0.125, gotDH, nil)
				if err != nil {
					t.Fatal(err)
				}
				wl, wn, err := c.CrossEntropy(h, wf, targets, chunk, 0.125, wantDH, nil)
				if err != nil {
					t.Fatal(err)
				}
				if gn != wn || math.Abs(gl-wl) > 1e-5*math.Abs(wl) {
					t.Fatalf("%s block %d chunk %d: loss %g (%d), want %g (%d)", dt, blk, chunk, gl, gn, wl, wn)
				}
				closeRel(t, "dh", gotDH.F32, wantDH.F32, 1e-5)
				// Loss only.
				gl2, _, _ := c.CrossEntropy(h, wh, targets, chunk, 1, nil, nil)
				if math.Abs(gl2-wl) > 1e-5*math.Abs(wl) {
					t.Fatalf("loss-only %g, want %g", gl2, wl)
				}
			}
		}
	}
	defer func() {
		if recover() == nil {
			t.Fatal("a dw for a 16-bit w did not panic")
		}
	}()
	wh, _ := halfPair(rng, tensor.BF16, V, C)
	c.CrossEntropy(randF32(rng, N, C), wh, make([]int32, N), 4, 1, nil, tensor.New(tensor.F32, V, C))
}
