package cpu

import (
	"math"
	"math/rand"
	"testing"

	"github.com/shoggo/shoggo/tensor"
)

var actShapes = [][]int{{1}, {1, 1}, {7}, {3, 5}, {2, 3, 4}}

// Gradient check, eps=1e-6, atol=1e-8, rtol=1e-6. Inputs are N(0,1)*3, so
// both tails of the tanh are exercised.
func TestGELUGrad(t *testing.T) {
	r := rand.New(rand.NewSource(30))
	for _, shape := range actShapes {
		x := randT(r, shape...)
		for i := range x.F64 {
			x.F64[i] *= 3
		}
		y, dy := tensor.New(tensor.F64, shape...), randT(r, shape...)
		op := gradOp{
			names:  []string{"x"},
			inputs: []*tensor.Tensor{x},
			loss: func() float64 {
				be.GELUForward(y, x)
				return dot(dy, y)
			},
			backward: func(g []*tensor.Tensor) { be.GELUBackward(g[0], dy, x) },
		}
		checkGrads(t, "gelu", op, 1e-6, 1e-8, 1e-6)
	}
}

// Values of torch.nn.functional.gelu(x, approximate="tanh") (= HF gelu_new),
// to 1e-12 absolute; a GELU with the erf form would differ by ~1e-4.
func TestGELUForward(t *testing.T) {
	x := tensor.FromF64([]float64{-3, -1, -0.5, 0, 0.5, 1, 3, 20, -20}, 9)
	y := tensor.New(tensor.F64, 9)
	be.GELUForward(y, x)
	for i, xv := range x.F64 {
		want := 0.5 * xv * (1 + math.Tanh(math.Sqrt(2/math.Pi)*(xv+0.044715*math.Pow(xv, 3))))
		if math.Abs(y.F64[i]-want) > 1e-12 {
			t.Errorf("gelu(%g) = %.15g, want %.15g", xv, y.F64[i], want)
		}
	}
	// gelu_tanh(1) = 0.841191990607..., gelu_erf(1) = 0.841344746...
	if math.Abs(y.F64[5]-0.8411919906082768) > 1e-12 {
		t.Errorf("gelu(1) = %.16g", y.F64[5])
	}
	be.GELUForward(x, x) // in place
	if maxRelDiff(x, y) != 0 {
		t.Error("in-place GELU differs")
	}
}

func TestGELUF32(t *testing.T) {
	r := rand.New(rand.NewSource(31))
	x, dy := randT(r, 5, 37), randT(r, 5, 37)
	checkF32(t, "gelu", 1e-6, func(dt tensor.DType) []*tensor.Tensor {
		y, dx := tensor.New(dt, 5, 37), tensor.New(dt, 5, 37)
		xx := conv(x, dt)
		be.GELUForward(y, xx)
		be.GELUBackward(dx, conv(dy, dt), xx)
		return []*tensor.Tensor{y, dx}
	})
}

// Gradient check, eps=1e-6, atol=1e-8, rtol=1e-6.
func TestSwiGLUGrad(t *testing.T) {
	r := rand.New(rand.NewSource(32))
	for _, shape := range actShapes {
		gate, up := randT(r, shape...), randT(r, shape...)
		for i := range gate.F64 {
			gate.F64[i] *= 3
		}
		y, dy := tensor.New(tensor.F64, shape...), randT(r, shape...)
		op := gradOp{
			names:  []string{"gate", "up"},
			inputs: []*tensor.Tensor{gate, up},
			loss: func() float64 {
				be.SwiGLUForward(y, gate, up)
				return dot(dy, y)
			},
			backward: func(g []*tensor.Tensor) { be.SwiGLUBackward(g[0], g[1], dy, gate, up) },
		}
		checkGrads(t, "swiglu", op, 1e-6, 1e-8, 1e-6)
	}
}

// y = silu(gate) * up to 1e-12 absolute, including large |gate| (no NaN).
func TestSwiGLUForward(t *testing.T) {
	gate := tensor.FromF64([]float64{-800, -3, 0, 0.7, 3, 800}, 6)
	up := tensor.FromF64([]float64{2, 1.5, -1, 2, -0.5, 1}, 6)
	y := tensor.New(tensor.F64, 6)
	be.SwiGLUForward(y, gate, up)
	for i, g := range gate.F64 {
		want := g / (1 + math.Exp(-g)) * up.F64[i]
		if math.IsNaN(y.F64[i]) || math.Abs(y.F64[i]-want) > 1e-12 {
			t.Errorf("swiglu(%g, %g) = %g, want %g", g, up.F64[i], y.F64[i], want)
		}
	}
	dg, du := tensor.New(tensor.F64, 6), tensor.New(tensor.F64, 6)
	be.SwiGLUBackward(dg, du, tensor.FromF64([]float64{1, 1, 1, 1, 1, 1}, 6), gate, up)
	for i := range dg.F64 {
		if math.IsNaN(dg.F64[i]) || math.IsNaN(du.F64[i]) {
			t.Errorf("NaN gradient at gate %g", gate.F64[i])
		}
	}
}

func TestSwiGLUF32(t *testing.T) {
	r := rand.New(rand.NewSource(33))
	gate, up, dy := randT(r, 5, 37), randT(r, 5, 37), randT(r, 5, 37)
	checkF32(t, "swiglu", 1e-6, func(dt tensor.DType) []*tensor.Tensor {
		y, dg, du := tensor.New(dt, 5, 37), tensor.New(dt, 5, 37), tensor.New(dt, 5, 37)
		gg, uu := conv(gate, dt), conv(up, dt)
		be.SwiGLUForward(y, gg, uu)
		be.SwiGLUBackward(dg, du, conv(dy, dt), gg, uu)
		return []*tensor.Tensor{y, dg, du}
	})
}
