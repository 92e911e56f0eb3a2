package cpu

import (
	"fmt"
	"math/rand/v2"

	"github.com/shoggo/shoggo/tensor"
)

// checkMask panics unless mask is a host U8 tensor covering n bits.
func checkMask(op string, mask *tensor.Tensor, n int) []byte {
	mustHost(op, "mask", mask)
	if mask.DType != tensor.U8 || mask.Numel() < (n+7)/8 {
		panic(fmt.Sprintf("cpu.%s: %s: want a U8 mask of at least %d bytes", op, label("mask", mask), (n+7)/8))
	}
	return mask.Bytes[:(n+7)/8]
}

// DropoutMask draws a keep mask for n elements (see backend.DropoutOps).
func (c *CPU) DropoutMask(mask *tensor.Tensor, n int, p float64, rng *rand.Rand) {
	m := checkMask("DropoutMask", mask, n)
	clear(m)
	// keep with probability 1-p: a uniform 64-bit draw at or above p·2⁶⁴.
	thr := ^uint64(0)
	if f := p * (1 << 64); f < 1<<64 {
		thr = uint64(f)
	}
	for i := 0; i < n; i++ {
		if rng.Uint64() >= thr {
			m[i>>3] |= 1 << (i & 7)
		}
	}
}

// DropoutForward sets y = x·scale where the mask keeps, 0 elsewhere. x
// and/or y may be 16-bit (one 16-bit dtype, the other F32; LoRA dropout on
// a 16-bit activation): x·scale is formed in float32 (scale rounded to
// float32) and rounded when y is 16-bit.
func (c *CPU) DropoutForward(y, x, mask *tensor.Tensor, scale float64) {
	const op = "DropoutForward"
	n := x.Numel()
	checkNumel(op, "y", y, n, x)
	m := checkMask(op, mask, n)
	if P, ok := autocastP(x, y); ok {
		args := []marg{{"x", x, true}, {"y", y, true}}
		checkMixed(op, P, halfArgs(args...), args...)
		s := float32(scale)
		forChunks(n, grainMem, 2, func(lo, hi int, bufs [][]float32) {
			xv := chunkF32(x, lo, hi, bufs[0])
			yv := outChunk(y, lo, hi, bufs[1])
			maskMulFrom(yv, xv, m, lo, s)
			storeChunk(y, lo, hi, yv)
		})
		return
	}
	switch dtypeOf(op, y, x) {
	case tensor.F32:
		maskMul(s32(y), s32(x), m, float32(scale))
	case tensor.F64:
		maskMul(s64(y), s64(x), m, scale)
	}
}

// DropoutBackward accumulates dx += dy·scale where the mask keeps. dx
// and/or dy may be 16-bit (as in DropoutForward; a 16-bit dx is rounded
// after the float32 addition).
func (c *CPU) DropoutBackward(dx, dy, mask *tensor.Tensor, scale float64) {
	const op = "DropoutBackward"
	n := dy.Numel()
	checkNumel(op, "dx", dx, n, dy)
	m := checkMask(op, mask, n)
	if P, ok := autocastP(dy, dx); ok {
		args := []marg{{"dy", dy, true}, {"dx", dx, true}}
		checkMixed(op, P, halfArgs(args...), args...)
		s := float32(scale)
		forChunks(n, grainMem, 2, func(lo, hi int, bufs [][]float32) {
			dyv := chunkF32(dy, lo, hi, bufs[0])
			dxv := chunkF32(dx, lo, hi, bufs[1])
			maskAddFrom(dxv, dyv, m, lo, s)
			storeChunk(dx, lo, hi, dxv)
		})
		return
	}
	switch dtypeOf(op, dx, dy) {
	case tensor.F32:
		maskAdd(s32(dx), s32(dy), m, float32(scale))
	case tensor.F64:
		maskAdd(s64(dx), s64(dy), m, scale)
	}
}

func maskMul[T float32 | float64](dst, src []T, mask []byte, s T) {
	for i := range dst {
		if mask[i>>3]>>(i&7)&1 != 0 {
			dst[i] = src[i] * s
		} else {
			dst[i] = 0
		}
	}
}

func maskAdd[T float32 | float64](dst, src []T, mask []byte, s T) {
	for i := range dst {
		if mask[i>>3]>>(i&7)&1 != 0 {
			dst[i] += src[i] * s
		}
	}
}

// maskMulFrom and maskAddFrom are maskMul and maskAdd on elements
// [off, off+len(dst)) of the masked vector.
func maskMulFrom(dst, src []float32, mask []byte, off int, s float32) {
	for i := range dst {
		k := off + i
		if mask[k>>3]>>(k&7)&1 != 0 {
			dst[i] = src[i] * s
		} else {
			dst[i] = 0
		}
	}
}

func maskAddFrom(dst, src []float32, mask []byte, off int, s float32) {
	for i := range dst {
		k := off + i
		if mask[k>>3]>>(k&7)&1 != 0 {
			dst[i] += float32(src[i] * s) // rounded product, never fused
		}
	}
}
