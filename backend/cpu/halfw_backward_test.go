package cpu

import (
	mrand "math/rand"
	"math/rand/v2"
	"testing"

	"github.com/shoggo/shoggo/tensor"
)

// TestHalfLinearBackward: with a BF16/F16 weight, LinearBackward's input
// gradient equals the one computed with the widened weight (in one block
// of weight rows exactly, in several to float32 rounding), accumulates, and
// refuses a weight gradient.
func TestHalfLinearBackward(t *testing.T) {
	c := New()
	rng := rand.New(rand.NewPCG(5, 6))
	for _, dt := range []tensor.DType{tensor.BF16, tensor.F16} {
		for _, blk := range []int{1 << 20, 7 * 23, 1} {
			withHalfBlock(t, blk)
			N, in, out := 5, 23, 101
			wh, wf := halfPair(rng, dt, out, in)
			x, dy, dx0 := randF32(rng, N, in), randF32(rng, N, out), randF32(rng, N, in)
			got, want := dx0.Clone(), dx0.Clone()
			c.LinearBackward(got, nil, nil, dy, x, wh)
			c.LinearBackward(want, nil, nil, dy, x, wf)
			tol := 1e-5
			if blk == 1<<20 {
				tol = 0
			}
			closeRel(t, dt.String()+" dx", got.F32, want.F32, tol)
			mustPanic(t, func() { c.LinearBackward(nil, tensor.New(tensor.F32, out, in), nil, dy, x, wh) }, "LinearBackward", "16-bit")
		}
	}
}

// TestHalfLinearGrad: the F64 input gradient through a 16-bit weight passes
// the finite-difference check (the weight is a constant of the map).
func TestHalfLinearGrad(t *testing.T) {
	c := New()
	withHalfBlock(t, 3*7)
	r := mrand.New(mrand.NewSource(3))
	const N, in, out = 4, 7, 9
	wh, _ := halfPair(rand.New(rand.NewPCG(1, 1)), tensor.BF16, out, in)
	x, dy, b := randT(r, N, in), randT(r, N, out), randT(r, out)
	y := tensor.New(tensor.F64, N, out)
	checkGrads(t, "HalfLinear", gradOp{
		names:  []string{"x"},
		inputs: []*tensor.Tensor{x},
		loss: func() float64 {
			c.LinearForward(y, x, wh, b)
			return dot(dy, y)
		},
		backward: func(g []*tensor.Tensor) { c.LinearBackward(g[0], nil, nil, dy, x, wh) },
	}, 1e-6, 1e-8, 1e-6)
}
