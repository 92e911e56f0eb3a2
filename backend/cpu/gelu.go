package cpu

import (
	"math"

	"github.com/shoggo/shoggo/backend/cpu/gemm"
	"github.com/shoggo/shoggo/internal/parallel"
	"github.com/shoggo/shoggo/internal/vec"
	"github.com/shoggo/shoggo/tensor"
)

const (
	geluS = 0.7978845608028654 // sqrt(2/pi)
	geluC = 0.044715
)

// GELUForward computes y = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))),
// the tanh approximation GPT-2 uses (Hugging Face "gelu_new",
// torch gelu(approximate="tanh")). y may alias x.
//
// x and/or y may be BF16 or F16 (an autocast call, autocast.go): computed in
// float32 (the F32 kernel) on the widened x, y rounded when 16-bit.
func (c *CPU) GELUForward(y, x *tensor.Tensor) {
	const op = "GELUForward"
	checkNumel(op, "y", y, x.Numel(), x)
	if P, ok := autocastP(x, y); ok {
		args := []marg{{"y", y, true}, {"x", x, true}}
		checkMixed(op, P, halfArgs(args...), args...)
		forChunks(x.Numel(), grainExp, 2, func(lo, hi int, bufs [][]float32) {
			xv := chunkF32(x, lo, hi, bufs[0])
			yv := outChunk(y, lo, hi, bufs[1])
			vec.GELU(yv, xv)
			storeChunk(y, lo, hi, yv)
		})
		return
	}
	switch dtypeOf(op, y, x) {
	case tensor.F32:
		geluForward(s32(y), s32(x))
	case tensor.F64:
		geluForward(s64(y), s64(x))
	}
}

// GELUBackward accumulates dx += dy * gelu'(x). A nil dx does nothing. x
// may be BF16 or F16 (widened; dx and dy are F32).
func (c *CPU) GELUBackward(dx, dy, x *tensor.Tensor) {
	const op = "GELUBackward"
	if dx == nil {
		return
	}
	checkNumel(op, "dx", dx, x.Numel(), x)
	checkNumel(op, "dy", dy, x.Numel(), x)
	if P, ok := autocastP(x); ok {
		checkMixed(op, P, "x", marg{"dx", dx, false}, marg{"dy", dy, false})
		dx32, dy32 := s32(dx), s32(dy)
		forChunks(x.Numel(), grainExp, 1, func(lo, hi int, bufs [][]float32) {
			vec.GELUBackward(dx32[lo:hi], dy32[lo:hi], chunkF32(x, lo, hi, bufs[0]))
		})
		return
	}
	switch dtypeOf(op, dx, dy, x) {
	case tensor.F32:
		geluBackward(s32(dx), s32(dy), s32(x))
	case tensor.F64:
		geluBackward(s64(dx), s64(dy), s64(x))
	}
}

// The float32 kernels are vec.GELU and vec.GELUBackward (x / (1 + exp(-2u)),
// a polynomial exp; AVX2 where available), split across threads; float64
// keeps math.Tanh for the gradient checks.
func geluForward[T gemm.Float](y, x []T) {
	if y32, ok := any(y).([]float32); ok {
		x32 := any(x).([]float32)
		parallel.For(len(y), grainExp, func(lo, hi int) { vec.GELU(y32[lo:hi], x32[lo:hi]) })
		return
	}
	parallel.For(len(y), grainExp, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			xv := float64(x[i])
			y[i] = T(0.5 * xv * (1 + math.Tanh(geluS*(xv+geluC*xv*xv*xv))))
		}
	})
}

func geluBackward[T gemm.Float](dx, dy, x []T) {
	if dx32, ok := any(dx).([]float32); ok {
		dy32, x32 := any(dy).([]float32), any(x).([]float32)
		parallel.For(len(dx), grainExp, func(lo, hi int) { vec.GELUBackward(dx32[lo:hi], dy32[lo:hi], x32[lo:hi]) })
		return
	}
	parallel.For(len(dx), grainExp, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			xv := float64(x[i])
			t := math.Tanh(geluS * (xv + geluC*xv*xv*xv))
			d := 0.5*(1+t) + 0.5*xv*(1-t*t)*geluS*(1+3*geluC*xv*xv)
			dx[i] += T(float64(dy[i]) * d)
		}
	})
}
