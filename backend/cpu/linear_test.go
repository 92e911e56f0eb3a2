package cpu

import (
	"math"
	"math/rand"
	"testing"

	"github.com/shoggo/shoggo/tensor"
)

// Gradient check, eps=1e-6, atol=1e-8, rtol=1e-6 (linear in each input, so
// central differences are exact up to rounding).
func TestLinearGrad(t *testing.T) {
	r := rand.New(rand.NewSource(10))
	for _, s := range []struct {
		xshape  []int
		in, out int
		bias    bool
	}{
		{[]int{1, 1}, 1, 1, true},
		{[]int{3, 5}, 5, 7, true},
		{[]int{4, 1}, 1, 6, false},
		{[]int{2, 7}, 7, 1, true},
		{[]int{2, 3, 6}, 6, 5, true}, // (B, T, in) input
	} {
		x := randT(r, s.xshape...)
		w := randT(r, s.out, s.in)
		N := x.Numel() / s.in
		var b *tensor.Tensor
		if s.bias {
			b = randT(r, s.out)
		}
		y := tensor.New(tensor.F64, N, s.out)
		dy := randT(r, N, s.out)
		op := gradOp{
			names:  []string{"x", "w"},
			inputs: []*tensor.Tensor{x, w},
			loss: func() float64 {
				be.LinearForward(y, x, w, b)
				return dot(dy, y)
			},
			backward: func(g []*tensor.Tensor) { be.LinearBackward(g[0], g[1], nil, dy, x, w) },
		}
		if b != nil {
			op.names = append(op.names, "b")
			op.inputs = append(op.inputs, b)
			op.backward = func(g []*tensor.Tensor) { be.LinearBackward(g[0], g[1], g[2], dy, x, w) }
		}
		checkGrads(t, "linear", op, 1e-6, 1e-8, 1e-6)
	}
}

func TestLinearForward(t *testing.T) {
	r := rand.New(rand.NewSource(11))
	N, in, out := 4, 3, 5
	x, w, b := randT(r, N, in), randT(r, out, in), randT(r, out)
	y := randT(r, N, out) // garbage: forward overwrites
	be.LinearForward(y, x, w, b)
	y2 := randT(r, N, out)
	be.LinearForward(y2, x, w, nil)
	for n := 0; n < N; n++ {
		for o := 0; o < out; o++ {
			var s float64
			for i := 0; i < in; i++ {
				s += x.F64[n*in+i] * w.F64[o*in+i]
			}
			if math.Abs(y.F64[n*out+o]-s-b.F64[o]) > 1e-12 || math.Abs(y2.F64[n*out+o]-s) > 1e-12 {
				t.Fatalf("y[%d,%d] = %g / %g, want %g / %g", n, o, y.F64[n*out+o], y2.F64[n*out+o], s+b.F64[o], s)
			}
		}
	}
}

func TestLinearF32(t *testing.T) {
	r := rand.New(rand.NewSource(12))
	N, in, out := 13, 17, 11
	x, w, b, dy := randT(r, N, in), randT(r, out, in), randT(r, out), randT(r, N, out)
	checkF32(t, "linear", 1e-5, func(dt tensor.DType) []*tensor.Tensor {
		y := tensor.New(dt, N, out)
		xx, ww := conv(x, dt), conv(w, dt)
		be.LinearForward(y, xx, ww, conv(b, dt))
		dx, dw, db := tensor.New(dt, N, in), tensor.New(dt, out, in), tensor.New(dt, out)
		be.LinearBackward(dx, dw, db, conv(dy, dt), xx, ww)
		return []*tensor.Tensor{y, dx, dw, db}
	})
}

func TestLinearShapePanic(t *testing.T) {
	x := tensor.New(tensor.F64, 4, 3)
	w := tensor.New(tensor.F64, 5, 2)
	mustPanic(t, func() { be.LinearForward(tensor.New(tensor.F64, 4, 5), x, w, nil) }, "[5, 2]", "3")
	w = tensor.New(tensor.F64, 5, 3)
	mustPanic(t, func() { be.LinearForward(tensor.New(tensor.F64, 4, 6), x, w, nil) }, "[4, 6]", "(4, 5)")
	mustPanic(t, func() { be.LinearForward(tensor.New(tensor.F64, 4, 5), x, w, tensor.New(tensor.F64, 4)) }, "b", "[4]")
}
