package cpu

import (
	mrand "math/rand"
	"math/rand/v2"
	"testing"

	"github.com/shoggo/shoggo/tensor"
)

func maskBit(m *tensor.Tensor, i int) bool { return m.Bytes[i>>3]>>(i&7)&1 != 0 }

// TestDropoutMask: the mask keeps about 1-p of the elements, is the same
// for the same seed and differs for another, keeps everything at p = 0,
// and leaves the bytes past n bits alone.
func TestDropoutMask(t *testing.T) {
	c := New()
	const n = 10007
	for _, p := range []float64{0, 0.1, 0.5, 0.9} {
		a, b, d := c.Alloc(tensor.U8, n/8+3), c.Alloc(tensor.U8, n/8+3), c.Alloc(tensor.U8, n/8+3)
		a.Bytes[len(a.Bytes)-1] = 0xAA
		c.DropoutMask(a, n, p, rand.New(rand.NewPCG(1, 2)))
		c.DropoutMask(b, n, p, rand.New(rand.NewPCG(1, 2)))
		c.DropoutMask(d, n, p, rand.New(rand.NewPCG(3, 4)))
		kept, same, sameD := 0, true, true
		for i := 0; i < n; i++ {
			if maskBit(a, i) {
				kept++
			}
			same = same && maskBit(a, i) == maskBit(b, i)
			sameD = sameD && maskBit(a, i) == maskBit(d, i)
		}
		if frac := float64(kept) / n; frac < 1-p-0.02 || frac > 1-p+0.02 {
			t.Errorf("p=%g: kept fraction %g", p, frac)
		}
		if !same {
			t.Errorf("p=%g: same seed, different masks", p)
		}
		if sameD && p > 0 {
			t.Errorf("p=%g: different seeds, same mask", p)
		}
		if a.Bytes[len(a.Bytes)-1] != 0xAA {
			t.Errorf("p=%g: mask bytes past n bits were written", p)
		}
	}
}

// TestDropoutForwardBackward: forward is x·scale where kept and 0
// elsewhere; backward passes the finite-difference check in float64 and
// accumulates (checkGrads).
func TestDropoutForwardBackward(t *testing.T) {
	c := New()
	r := mrand.New(mrand.NewSource(5))
	const N, C, scale = 6, 11, 1 / (1 - 0.4)
	mask := c.Alloc(tensor.U8, (N*C+7)/8)
	c.DropoutMask(mask, N*C, 0.4, rand.New(rand.NewPCG(7, 7)))
	x, dy := randT(r, N, C), randT(r, N, C)
	y := zerosLike(x)
	c.DropoutForward(y, x, mask, scale)
	for i := range y.F64 {
		want := 0.0
		if maskBit(mask, i) {
			want = x.F64[i] * scale
		}
		if y.F64[i] != want {
			t.Fatalf("y[%d] = %g, want %g", i, y.F64[i], want)
		}
	}
	checkGrads(t, "Dropout", gradOp{
		names:  []string{"x"},
		inputs: []*tensor.Tensor{x},
		loss: func() float64 {
			c.DropoutForward(y, x, mask, scale)
			return dot(dy, y)
		},
		backward: func(g []*tensor.Tensor) {
			if g[0] != nil {
				c.DropoutBackward(g[0], dy, mask, scale)
			}
		},
	}, 1e-6, 1e-8, 1e-6)
	mustPanic(t, func() { c.DropoutForward(y, x, c.Alloc(tensor.U8, 2), scale) }, "DropoutForward", "mask")
}
