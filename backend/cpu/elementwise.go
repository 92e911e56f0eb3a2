package cpu

import (
	"fmt"

	"github.com/shoggo/shoggo/backend/cpu/gemm"
	"github.com/shoggo/shoggo/internal/parallel"
	"github.com/shoggo/shoggo/internal/vec"
	"github.com/shoggo/shoggo/tensor"
)

// Add computes y = a + b elementwise (equal element counts; shapes may
// differ, e.g. (B, T, C) and (N, C)). y may alias a or b. Any of y, a, b
// may be 16-bit (one 16-bit dtype per call, the others F32): the sum is
// formed in float32 and rounded when y is 16-bit.
func (c *CPU) Add(y, a, b *tensor.Tensor) {
	const op = "Add"
	checkNumel(op, "b", b, a.Numel(), a)
	checkNumel(op, "y", y, a.Numel(), a)
	if P, ok := autocastP(y, a, b); ok {
		args := []marg{{"y", y, true}, {"a", a, true}, {"b", b, true}}
		checkMixed(op, P, halfArgs(args...), args...)
		forChunks(a.Numel(), grainMem, 3, func(lo, hi int, bufs [][]float32) {
			av, bv := chunkF32(a, lo, hi, bufs[0]), chunkF32(b, lo, hi, bufs[1])
			yv := outChunk(y, lo, hi, bufs[2])
			vec.Add(yv, av, bv)
			storeChunk(y, lo, hi, yv)
		})
		return
	}
	switch dtypeOf(op, y, a, b) {
	case tensor.F32:
		add(s32(y), s32(a), s32(b))
	case tensor.F64:
		add(s64(y), s64(a), s64(b))
	}
}

// AddInto computes dst += src (a residual gradient, say). dst and/or src
// may be 16-bit (one 16-bit dtype, the other F32): the sum is formed in
// float32 and rounded when dst is 16-bit.
func (c *CPU) AddInto(dst, src *tensor.Tensor) {
	const op = "AddInto"
	checkNumel(op, "src", src, dst.Numel(), dst)
	if P, ok := autocastP(dst, src); ok {
		args := []marg{{"dst", dst, true}, {"src", src, true}}
		checkMixed(op, P, halfArgs(args...), args...)
		forChunks(dst.Numel(), grainMem, 2, func(lo, hi int, bufs [][]float32) {
			sv := chunkF32(src, lo, hi, bufs[0])
			dv := chunkF32(dst, lo, hi, bufs[1])
			vec.AddInto(dv, sv)
			storeChunk(dst, lo, hi, dv)
		})
		return
	}
	switch dtypeOf(op, dst, src) {
	case tensor.F32:
		addInto(s32(dst), s32(src))
	case tensor.F64:
		addInto(s64(dst), s64(src))
	}
}

// Scale computes x *= s (s rounded to x's dtype first; a 16-bit x is
// scaled in float32, s rounded to float32, and the product rounded back).
func (c *CPU) Scale(x *tensor.Tensor, s float64) {
	if isHalfDT(x.DType) {
		s32 := float32(s)
		forChunks(x.Numel(), grainMem, 1, func(lo, hi int, bufs [][]float32) {
			v := chunkF32(x, lo, hi, bufs[0])
			vec.Scale(v, s32)
			storeChunk(x, lo, hi, v)
		})
		return
	}
	switch dtypeOf("Scale", x) {
	case tensor.F32:
		scale(s32(x), float32(s))
	case tensor.F64:
		scale(s64(x), s)
	}
}

// Copy sets dst = src; both have the same number of elements. Beyond the
// interface's same-dtype contract, Copy also converts between any two float
// dtypes (F32, F64, F16, BF16; narrowing rounds to nearest even), which
// mixed precision uses to move between master weights and compute copies.
// Non-float tensors are copied byte for byte when the dtypes match.
func (c *CPU) Copy(dst, src *tensor.Tensor) {
	n := src.Numel()
	checkNumel("Copy", "dst", dst, n, src)
	if dst.DType == src.DType {
		switch dst.DType {
		case tensor.F32:
			parCopy(dst.F32[:n], src.F32[:n])
		case tensor.F64:
			parCopy(dst.F64[:n], src.F64[:n])
		case tensor.F16, tensor.BF16:
			copy(dst.U16[:n], src.U16[:n])
		default:
			s := dst.DType.Size()
			copy(dst.Bytes[:n*s], src.Bytes[:n*s])
		}
		return
	}
	if !dst.DType.IsFloat() || !src.DType.IsFloat() {
		panic(fmt.Sprintf("cpu.Copy: cannot copy %s into %s", src, dst))
	}
	switch {
	case dst.DType == tensor.F32 && isHalfDT(src.DType):
		parWiden(dst.F32[:n], src.U16[:n], src.DType)
	case isHalfDT(dst.DType) && src.DType == tensor.F32:
		parRound(dst.U16[:n], src.F32[:n], dst.DType)
	case dst.DType == tensor.F32 && src.DType == tensor.F64:
		for i, v := range src.F64[:n] {
			dst.F32[i] = float32(v)
		}
	case dst.DType == tensor.F64 && src.DType == tensor.F32:
		for i, v := range src.F32[:n] {
			dst.F64[i] = float64(v)
		}
	default: // through float32, as tensor.Convert rounds
		for i := 0; i < n; i++ {
			dst.Set(i, src.At(i))
		}
	}
}

// Grains (elements per parallel unit) of the elementwise kernels: large
// enough that a unit costs several microseconds (waking a worker costs
// about one), multiples of 8 so SIMD blocks never straddle two units.
const (
	grainMem = 1 << 15 // memory-bound kernels (add, copy, scale)
	grainExp = 1 << 12 // kernels with an exp per element
)

func add[T gemm.Float](y, a, b []T) {
	if y32, ok := any(y).([]float32); ok {
		a32, b32 := any(a).([]float32), any(b).([]float32)
		parallel.For(len(y), grainMem, func(lo, hi int) { vec.Add(y32[lo:hi], a32[lo:hi], b32[lo:hi]) })
		return
	}
	parallel.For(len(y), grainMem, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			y[i] = a[i] + b[i]
		}
	})
}

func addInto[T gemm.Float](dst, src []T) {
	if d32, ok := any(dst).([]float32); ok {
		s32 := any(src).([]float32)
		parallel.For(len(dst), grainMem, func(lo, hi int) { vec.AddInto(d32[lo:hi], s32[lo:hi]) })
		return
	}
	parallel.For(len(dst), grainMem, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			dst[i] += src[i]
		}
	})
}

func scale[T gemm.Float](x []T, s T) {
	if x32, ok := any(x).([]float32); ok {
		s32 := float32(s)
		parallel.For(len(x), grainMem, func(lo, hi int) { vec.Scale(x32[lo:hi], s32) })
		return
	}
	parallel.For(len(x), grainMem, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			x[i] *= s
		}
	})
}

// parCopy is copy(dst, src) split across threads.
func parCopy[E any](dst, src []E) {
	parallel.For(len(src), grainMem, func(lo, hi int) { copy(dst[lo:hi], src[lo:hi]) })
}
