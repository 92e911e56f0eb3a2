package cpu

import (
	"math"

	"github.com/shoggo/shoggo/backend/cpu/gemm"
	"github.com/shoggo/shoggo/tensor"
)

const (
	geluS = 0.7978845608028654 // sqrt(2/pi)
	geluC = 0.044715
)

// GELUForward computes y = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))),
// the tanh approximation GPT-2 uses (Hugging Face "gelu_new",
// torch gelu(approximate="tanh")). y may alias x.
func (c *CPU) GELUForward(y, x *tensor.Tensor) {
	const op = "GELUForward"
	checkNumel(op, "y", y, x.Numel(), x)
	switch dtypeOf(op, y, x) {
	case tensor.F32:
		geluForward(s32(y), s32(x))
	case tensor.F64:
		geluForward(s64(y), s64(x))
	}
}

// GELUBackward accumulates dx += dy * gelu'(x). A nil dx does nothing.
func (c *CPU) GELUBackward(dx, dy, x *tensor.Tensor) {
	const op = "GELUBackward"
	if dx == nil {
		return
	}
	checkNumel(op, "dx", dx, x.Numel(), x)
	checkNumel(op, "dy", dy, x.Numel(), x)
	switch dtypeOf(op, dx, dy, x) {
	case tensor.F32:
		geluBackward(s32(dx), s32(dy), s32(x))
	case tensor.F64:
		geluBackward(s64(dx), s64(dy), s64(x))
	}
}

func geluForward[T gemm.Float](y, x []T) {
	for i, v := range x {
		xv := float64(v)
		y[i] = T(0.5 * xv * (1 + math.Tanh(geluS*(xv+geluC*xv*xv*xv))))
	}
}

func geluBackward[T gemm.Float](dx, dy, x []T) {
	for i, v := range x {
		xv := float64(v)
		t := math.Tanh(geluS * (xv + geluC*xv*xv*xv))
		d := 0.5*(1+t) + 0.5*xv*(1-t*t)*geluS*(1+3*geluC*xv*xv)
		dx[i] += T(float64(dy[i]) * d)
	}
}
