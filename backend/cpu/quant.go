package cpu

import (
	"fmt"

	"github.com/shoggo/shoggo/backend"
	"github.com/shoggo/shoggo/backend/cpu/gemm"
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
// (quant.HostForward). A BF16/F16 x makes it an autocast call at x's dtype
// P (quant.HostForwardMixed): each dequantized panel of W enters
// gemm.GemmMixed rounded to P, float32 accumulation, and y (F32 or P) is
// round_P(x round_P(W)ᵀ + round_P(b)); b is F32.
func (c *CPU) QuantLinearForward(y, x *tensor.Tensor, w *backend.QuantWeight, b *tensor.Tensor) {
	const op = "QuantLinearForward"
	N, in := rc(x)
	if in != w.In {
		panic(fmt.Sprintf("cpu.%s: %s has shape %v, want (N, %d)", op, label("x", x), x.Shape, w.In))
	}
	checkRC(op, "y", y, N, w.Out)
	checkNumel(op, "b", b, w.Out, y)
	if P, ok := autocastP(x); ok {
		checkMixed(op, P, "x", marg{"y", y, true}, marg{"b", b, false})
		mustHost(op, "x", x)
		mustHost(op, "y", y)
		mustHost(op, "b", b)
		X := gemm.HalfOp(u16(x), P, P)
		if isHalfDT(y.DType) {
			quant.HostForwardMixed(nil, u16(y), X, s32(b), N, quantWeight(w), P)
		} else {
			quant.HostForwardMixed(s32(y), nil, X, s32(b), N, quantWeight(w), P)
		}
		return
	}
	if dtypeOf(op, y, x, b) != tensor.F32 {
		panic(fmt.Sprintf("cpu.%s: want F32 tensors, got %s", op, x))
	}
	mustHost(op, "x", x)
	mustHost(op, "y", y)
	mustHost(op, "b", b)
	quant.HostForward(s32(y), s32(x), s32(b), N, quantWeight(w))
}

// QuantLinearBackward: dx += dy W (quant.HostBackward). With w.Compute
// BF16 or F16 (bnb_4bit_compute_dtype) dy and each dequantized panel of W
// enter gemm.GemmMixed rounded to it (quant.HostBackwardMixed); dx and dy
// are F32 either way.
func (c *CPU) QuantLinearBackward(dx, dy *tensor.Tensor, w *backend.QuantWeight) {
	const op = "QuantLinearBackward"
	N, out := rc(dy)
	if out != w.Out {
		panic(fmt.Sprintf("cpu.%s: %s has shape %v, want (N, %d)", op, label("dy", dy), dy.Shape, w.Out))
	}
	checkRC(op, "dx", dx, N, w.In)
	if P := w.Compute; P != tensor.F32 {
		if !isHalfDT(P) {
			panic(fmt.Sprintf("cpu.%s: w.Compute is %v, want F32, BF16 or F16", op, P))
		}
		checkMixed(op, P, "w.Compute", marg{"dx", dx, false}, marg{"dy", dy, false})
		mustHost(op, "dx", dx)
		mustHost(op, "dy", dy)
		quant.HostBackwardMixed(s32(dx), gemm.F32Op(s32(dy), P), N, quantWeight(w), P)
		return
	}
	if dtypeOf(op, dx, dy) != tensor.F32 {
		panic(fmt.Sprintf("cpu.%s: want F32 tensors, got %s", op, dy))
	}
	mustHost(op, "dx", dx)
	mustHost(op, "dy", dy)
	quant.HostBackward(s32(dx), s32(dy), N, quantWeight(w))
}
