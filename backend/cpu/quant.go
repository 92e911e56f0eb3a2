package cpu

import (
	"fmt"

	"github.com/shoggo/shoggo/backend"
	"github.com/shoggo/shoggo/quant"
	"github.com/shoggo/shoggo/tensor"
)

// cpuQuantKey keys the CPU backend's kernel view of a backend.QuantWeight.
type cpuQuantKey struct{}

// quantWeight returns the quant.Weight over w's host parts, built once.
func quantWeight(w *backend.QuantWeight) quant.Weight {
	return w.Prepared(cpuQuantKey{}, func() any {
		qw, err := quant.FromParts(w)
		if err != nil {
			panic(fmt.Sprintf("cpu: quantized weight: %v", err))
		}
		return qw
	}).(quant.Weight)
}

// QuantLinearForward: y = x Wᵀ + b with W dequantized on the fly
// (quant.HostForward).
func (c *CPU) QuantLinearForward(y, x *tensor.Tensor, w *backend.QuantWeight, b *tensor.Tensor) {
	const op = "QuantLinearForward"
	N, in := rc(x)
	if in != w.In {
		panic(fmt.Sprintf("cpu.%s: %s has shape %v, want (N, %d)", op, label("x", x), x.Shape, w.In))
	}
	checkRC(op, "y", y, N, w.Out)
	checkNumel(op, "b", b, w.Out, y)
	if dtypeOf(op, y, x, b) != tensor.F32 {
		panic(fmt.Sprintf("cpu.%s: want F32 tensors, got %s", op, x))
	}
	mustHost(op, "x", x)
	mustHost(op, "y", y)
	mustHost(op, "b", b)
	quant.HostForward(s32(y), s32(x), s32(b), N, quantWeight(w))
}

// QuantLinearBackward: dx += dy W (quant.HostBackward).
func (c *CPU) QuantLinearBackward(dx, dy *tensor.Tensor, w *backend.QuantWeight) {
	const op = "QuantLinearBackward"
	N, out := rc(dy)
	if out != w.Out {
		panic(fmt.Sprintf("cpu.%s: %s has shape %v, want (N, %d)", op, label("dy", dy), dy.Shape, w.Out))
	}
	checkRC(op, "dx", dx, N, w.In)
	if dtypeOf(op, dx, dy) != tensor.F32 {
		panic(fmt.Sprintf("cpu.%s: want F32 tensors, got %s", op, dy))
	}
	mustHost(op, "dx", dx)
	mustHost(op, "dy", dy)
	quant.HostBackward(s32(dx), s32(dy), N, quantWeight(w))
}
