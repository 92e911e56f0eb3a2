package cpu

import (
	"math"
	"math/rand"
	"testing"

	"github.com/shoggo/shoggo/tensor"
)

var normShapes = []struct{ N, C int }{{1, 1}, {1, 2}, {3, 5}, {4, 17}, {2, 1}, {7, 3}}

// Gradient check, eps=1e-6, atol=1e-7, rtol=1e-5 (the op is smooth; inputs
// are N(0,1), so rstd stays moderate).
func TestLayerNormGrad(t *testing.T) {
	r := rand.New(rand.NewSource(20))
	for _, s := range normShapes {
		for _, bias := range []bool{true, false} {
			x, w := randT(r, s.N, s.C), randT(r, s.C)
			var b *tensor.Tensor
			if bias {
				b = randT(r, s.C)
			}
			y, mean, rstd := tensor.New(tensor.F64, s.N, s.C), tensor.New(tensor.F64, s.N), tensor.New(tensor.F64, s.N)
			dy := randT(r, s.N, s.C)
			const eps = 1e-5
			op := gradOp{
				names:  []string{"x", "w"},
				inputs: []*tensor.Tensor{x, w},
				loss: func() float64 {
					be.LayerNormForward(y, mean, rstd, x, w, b, eps)
					return dot(dy, y)
				},
				backward: func(g []*tensor.Tensor) {
					be.LayerNormForward(y, mean, rstd, x, w, b, eps)
					be.LayerNormBackward(g[0], g[1], nil, dy, x, w, mean, rstd)
				},
			}
			if bias {
				op.names = append(op.names, "b")
				op.inputs = append(op.inputs, b)
				op.backward = func(g []*tensor.Tensor) {
					be.LayerNormForward(y, mean, rstd, x, w, b, eps)
					be.LayerNormBackward(g[0], g[1], g[2], dy, x, w, mean, rstd)
				}
			}
			checkGrads(t, "layernorm", op, 1e-6, 1e-7, 1e-5)
		}
	}
}

// The forward pass matches torch.nn.LayerNorm: biased variance, eps inside
// the square root. Tolerance 1e-12 absolute (same formula, float64).
func TestLayerNormForward(t *testing.T) {
	r := rand.New(rand.NewSource(21))
	N, C := 3, 6
	x, w, b := randT(r, N, C), randT(r, C), randT(r, C)
	y, mean, rstd := tensor.New(tensor.F64, N, C), tensor.New(tensor.F64, N), tensor.New(tensor.F64, N)
	const eps = 0.1 // large, so eps placement matters
	be.LayerNormForward(y, mean, rstd, x, w, b, eps)
	for n := 0; n < N; n++ {
		row := x.F64[n*C : n*C+C]
		var m, v float64
		for _, a := range row {
			m += a
		}
		m /= float64(C)
		for _, a := range row {
			v += (a - m) * (a - m)
		}
		v /= float64(C)
		if math.Abs(mean.F64[n]-m) > 1e-12 || math.Abs(rstd.F64[n]-1/math.Sqrt(v+eps)) > 1e-12 {
			t.Fatalf("row %d: mean %g rstd %g, want %g %g", n, mean.F64[n], rstd.F64[n], m, 1/math.Sqrt(v+eps))
		}
		for j, a := range row {
			want := (a-m)/math.Sqrt(v+eps)*w.F64[j] + b.F64[j]
			if math.Abs(y.F64[n*C+j]-want) > 1e-12 {
				t.Fatalf("y[%d,%d] = %g, want %g", n, j, y.F64[n*C+j], want)
			}
		}
	}
}

func TestLayerNormF32(t *testing.T) {
	r := rand.New(rand.NewSource(22))
	N, C := 9, 33
	x, w, b, dy := randT(r, N, C), randT(r, C), randT(r, C), randT(r, N, C)
	for i := range x.F64 {
		x.F64[i] = 3 + 2*x.F64[i] // an offset mean, as real activations have
	}
	checkF32(t, "layernorm", 1e-5, func(dt tensor.DType) []*tensor.Tensor {
		y, mean, rstd := tensor.New(dt, N, C), tensor.New(dt, N), tensor.New(dt, N)
		xx, ww := conv(x, dt), conv(w, dt)
		be.LayerNormForward(y, mean, rstd, xx, ww, conv(b, dt), 1e-5)
		dx, dw, db := tensor.New(dt, N, C), tensor.New(dt, C), tensor.New(dt, C)
		be.LayerNormBackward(dx, dw, db, conv(dy, dt), xx, ww, mean, rstd)
		return []*tensor.Tensor{y, mean, rstd, dx, dw, db}
	})
}

// Gradient check, eps=1e-6, atol=1e-7, rtol=1e-5.
func TestRMSNormGrad(t *testing.T) {
	r := rand.New(rand.NewSource(23))
	for _, s := range normShapes {
		x, w := randT(r, s.N, s.C), randT(r, s.C)
		y, rstd := tensor.New(tensor.F64, s.N, s.C), tensor.New(tensor.F64, s.N)
		dy := randT(r, s.N, s.C)
		const eps = 1e-6
		op := gradOp{
			names:  []string{"x", "w"},
			inputs: []*tensor.Tensor{x, w},
			loss: func() float64 {
				be.RMSNormForward(y, rstd, x, w, eps)
				return dot(dy, y)
			},
			backward: func(g []*tensor.Tensor) {
				be.RMSNormForward(y, rstd, x, w, eps)
				be.RMSNormBackward(g[0], g[1], dy, x, w, rstd)
			},
		}
		checkGrads(t, "rmsnorm", op, 1e-6, 1e-7, 1e-5)
	}
}

// The forward pass matches Llama/Qwen2 RMSNorm (eps inside the square root).
// Tolerance 1e-12 absolute.
func TestRMSNormForward(t *testing.T) {
	r := rand.New(rand.NewSource(24))
	N, C := 3, 5
	x, w := randT(r, N, C), randT(r, C)
	y, rstd := tensor.New(tensor.F64, N, C), tensor.New(tensor.F64, N)
	const eps = 0.1
	be.RMSNormForward(y, rstd, x, w, eps)
	for n := 0; n < N; n++ {
		var ms float64
		for _, a := range x.F64[n*C : n*C+C] {
			ms += a * a
		}
		rs := 1 / math.Sqrt(ms/float64(C)+eps)
		if math.Abs(rstd.F64[n]-rs) > 1e-12 {
			t.Fatalf("rstd[%d] = %g, want %g", n, rstd.F64[n], rs)
		}
		for j := 0; j < C; j++ {
			if want := x.F64[n*C+j] * rs * w.F64[j]; math.Abs(y.F64[n*C+j]-want) > 1e-12 {
				t.Fatalf("y[%d,%d] = %g, want %g", n, j, y.F64[n*C+j], want)
			}
		}
	}
}

func TestRMSNormF32(t *testing.T) {
	r := rand.New(rand.NewSource(25))
	N, C := 9, 33
	x, w, dy := randT(r, N, C), randT(r, C), randT(r, N, C)
	checkF32(t, "rmsnorm", 1e-5, func(dt tensor.DType) []*tensor.Tensor {
		y, rstd := tensor.New(dt, N, C), tensor.New(dt, N)
		xx, ww := conv(x, dt), conv(w, dt)
		be.RMSNormForward(y, rstd, xx, ww, 1e-6)
		dx, dw := tensor.New(dt, N, C), tensor.New(dt, C)
		be.RMSNormBackward(dx, dw, conv(dy, dt), xx, ww, rstd)
		return []*tensor.Tensor{y, rstd, dx, dw}
	})
}

func TestNormShapePanic(t *testing.T) {
	x := tensor.New(tensor.F64, 4, 3)
	mustPanic(t, func() {
		be.RMSNormForward(tensor.New(tensor.F64, 4, 3), tensor.New(tensor.F64, 4), x, tensor.New(tensor.F64, 4), 1e-5)
	}, "w", "[4]", "3")
	mustPanic(t, func() {
		be.LayerNormForward(tensor.New(tensor.F64, 4, 3), tensor.New(tensor.F64, 3), tensor.New(tensor.F64, 4), x, tensor.New(tensor.F64, 3), nil, 1e-5)
	}, "mean", "[3]", "4")
}
