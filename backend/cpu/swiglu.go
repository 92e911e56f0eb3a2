package cpu

import (
	"math"

	"github.com/shoggo/shoggo/backend/cpu/gemm"
	"github.com/shoggo/shoggo/internal/parallel"
	"github.com/shoggo/shoggo/internal/vec"
	"github.com/shoggo/shoggo/tensor"
)

// SwiGLUForward computes y = silu(gate) * up elementwise, with
// silu(g) = g * sigmoid(g); all three are (N, I). y may alias gate or up.
//
// Any of y, gate, up may be BF16 or F16 (an autocast call, autocast.go):
// computed in float32 (the F32 kernel) on the widened inputs, y rounded
// when 16-bit.
func (c *CPU) SwiGLUForward(y, gate, up *tensor.Tensor) {
	const op = "SwiGLUForward"
	n := gate.Numel()
	checkNumel(op, "up", up, n, gate)
	checkNumel(op, "y", y, n, gate)
	if P, ok := autocastP(gate, up, y); ok {
		args := []marg{{"y", y, true}, {"gate", gate, true}, {"up", up, true}}
		checkMixed(op, P, halfArgs(args...), args...)
		forChunks(n, grainExp, 3, func(lo, hi int, bufs [][]float32) {
			gv := chunkF32(gate, lo, hi, bufs[0])
			uv := chunkF32(up, lo, hi, bufs[1])
			yv := outChunk(y, lo, hi, bufs[2])
			vec.SwiGLU(yv, gv, uv)
			storeChunk(y, lo, hi, yv)
		})
		return
	}
	switch dtypeOf(op, y, gate, up) {
	case tensor.F32:
		swigluForward(s32(y), s32(gate), s32(up))
	case tensor.F64:
		swigluForward(s64(y), s64(gate), s64(up))
	}
}

// SwiGLUBackward accumulates dgate += dy * up * silu'(gate) and
// dup += dy * silu(gate); either may be nil. gate and up may be BF16 or
// F16 (widened; the gradients and dy are F32).
func (c *CPU) SwiGLUBackward(dgate, dup, dy, gate, up *tensor.Tensor) {
	const op = "SwiGLUBackward"
	if dgate == nil && dup == nil {
		return
	}
	n := gate.Numel()
	checkNumel(op, "up", up, n, gate)
	checkNumel(op, "dy", dy, n, gate)
	checkNumel(op, "dgate", dgate, n, gate)
	checkNumel(op, "dup", dup, n, gate)
	if P, ok := autocastP(gate, up); ok {
		args := []marg{{"dgate", dgate, false}, {"dup", dup, false}, {"dy", dy, false}, {"gate", gate, true}, {"up", up, true}}
		checkMixed(op, P, halfArgs(args...), args...)
		dg32, du32, dy32 := s32(dgate), s32(dup), s32(dy)
		forChunks(n, grainExp, 2, func(lo, hi int, bufs [][]float32) {
			var dg, du []float32
			if dg32 != nil {
				dg = dg32[lo:hi]
			}
			if du32 != nil {
				du = du32[lo:hi]
			}
			vec.SwiGLUBackward(dg, du, dy32[lo:hi], chunkF32(gate, lo, hi, bufs[0]), chunkF32(up, lo, hi, bufs[1]))
		})
		return
	}
	switch dtypeOf(op, dgate, dup, dy, gate, up) {
	case tensor.F32:
		swigluBackward(s32(dgate), s32(dup), s32(dy), s32(gate), s32(up))
	case tensor.F64:
		swigluBackward(s64(dgate), s64(dup), s64(dy), s64(gate), s64(up))
	}
}

func sigmoid(x float64) float64 { return 1 / (1 + math.Exp(-x)) }

// The float32 kernels are vec.SwiGLU and vec.SwiGLUBackward, split across
// threads; float64 keeps math.Exp.
func swigluForward[T gemm.Float](y, gate, up []T) {
	if y32, ok := any(y).([]float32); ok {
		g32, u32 := any(gate).([]float32), any(up).([]float32)
		parallel.For(len(y), grainExp, func(lo, hi int) { vec.SwiGLU(y32[lo:hi], g32[lo:hi], u32[lo:hi]) })
		return
	}
	parallel.For(len(y), grainExp, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			gv := float64(gate[i])
			y[i] = T(gv * sigmoid(gv) * float64(up[i]))
		}
	})
}

// swigluBackward: silu'(g) = s (1 + g (1 - s)) with s = sigmoid(g).
func swigluBackward[T gemm.Float](dgate, dup, dy, gate, up []T) {
	if dy32, ok := any(dy).([]float32); ok {
		dg32, du32 := any(dgate).([]float32), any(dup).([]float32)
		g32, u32 := any(gate).([]float32), any(up).([]float32)
		parallel.For(len(dy32), grainExp, func(lo, hi int) {
			var dg, du []float32
			if dg32 != nil {
				dg = dg32[lo:hi]
			}
			if du32 != nil {
				du = du32[lo:hi]
			}
			vec.SwiGLUBackward(dg, du, dy32[lo:hi], g32[lo:hi], u32[lo:hi])
		})
		return
	}
	parallel.For(len(dy), grainExp, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			gv := float64(gate[i])
			s := sigmoid(gv)
			d := float64(dy[i])
			if dgate != nil {
				dgate[i] += T(d * float64(up[i]) * s * (1 + gv*(1-s)))
			}
			if dup != nil {
				dup[i] += T(d * gv * s)
			}
		}
	})
}
