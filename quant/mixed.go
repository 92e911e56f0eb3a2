package quant

import (
	"fmt"

	"github.com/shoggo/shoggo/backend/cpu/gemm"
	"github.com/shoggo/shoggo/internal/parallel"
	"github.com/shoggo/shoggo/tensor"
)

// Mixed precision (autocast calls, see package backend/cpu): the quantized
// matmuls at a compute dtype P (BF16 or F16; bitsandbytes'
// bnb_4bit_compute_dtype). The weight is dequantized a panel at a time, as
// in HostForward/HostBackward, and each panel enters gemm.GemmMixed rounded
// to P (a float32 operand at precision P: the dequantized values are
// float32, bitsandbytes dequantizes straight to the compute dtype), with
// float32 accumulation. A full copy of W never exists.

func checkPrec(op string, p tensor.DType) {
	if p != tensor.BF16 && p != tensor.F16 {
		panic(fmt.Sprintf("quant.%s: compute dtype %v, want BF16 or F16", op, p))
	}
}

func roundF32(x []float32, p tensor.DType) {
	if p == tensor.F16 {
		for i, v := range x {
			x[i] = tensor.FastF16ToF32(tensor.FastF32ToF16(v))
		}
		return
	}
	for i, v := range x {
		x[i] = tensor.BF16ToF32(tensor.F32ToBF16(v))
	}
}

func roundU16(dst []uint16, src []float32, p tensor.DType) {
	if p == tensor.F16 {
		for i, v := range src {
			dst[i] = tensor.FastF32ToF16(v)
		}
		return
	}
	for i, v := range src {
		dst[i] = tensor.F32ToBF16(v)
	}
}

// HostForwardMixed is the autocast quantized linear forward at precision
// p: y = round_p(X round_p(W)ᵀ + round_p(bias)) with float32 accumulation
// (the bias added to the float32 sum, then one rounding). X (N x in) is a
// GEMM operand (a 16-bit activation: gemm.HalfOp(x, p, p)); bias may be
// nil. The result goes to Y (float32, N x out, holding P values) when Y16
// is nil, else to Y16 (16-bit values of dtype p), formed a panel of output
// columns at a time in per-goroutine scratch.
func HostForwardMixed(Y []float32, Y16 []uint16, X gemm.Operand, bias []float32, N int, w Weight, p tensor.DType) {
	checkPrec("HostForwardMixed", p)
	out, in := w.Dims()
	if N == 0 || out == 0 {
		return
	}
	P := panelSize(out, in)
	np := ceilDiv(out, P)
	parallel.For(np, 1, func(lo, hi int) {
		sp := getScratch(P * max(in, 1))
		defer scratchPool.Put(sp)
		var op *[]float32
		if Y16 != nil {
			op = getScratch(N * P)
			defer scratchPool.Put(op)
		}
		s := *sp
		for pi := lo; pi < hi; pi++ {
			r0, r1 := pi*P, min((pi+1)*P, out)
			nc := r1 - r0
			// The panel's output: Y's columns [r0, r1) (stride out), or
			// scratch (stride nc).
			var dst []float32
			ldc := out
			if Y16 != nil {
				dst, ldc = (*op)[:N*nc], nc
			} else {
				dst = Y[r0:]
			}
			var beta float32
			if bias != nil {
				for n := 0; n < N; n++ {
					row := dst[n*ldc : n*ldc+nc]
					copy(row, bias[r0:r1])
					roundF32(row, p)
				}
				beta = 1
			} else if in == 0 {
				for n := 0; n < N; n++ {
					clear(dst[n*ldc : n*ldc+nc])
				}
			}
			if in > 0 {
				w.DequantizeRows(s[:nc*in], r0, r1)
				gemm.GemmMixed(false, true, N, nc, in, 1, X, in, gemm.F32Op(s[:nc*in], p), in, beta, dst, ldc)
			}
			for n := 0; n < N; n++ {
				row := dst[n*ldc : n*ldc+nc]
				if Y16 != nil {
					roundU16(Y16[n*out+r0:n*out+r1], row, p)
				} else {
					roundF32(row, p)
				}
			}
		}
	})
}

// HostBackwardMixed is the autocast quantized input gradient at precision
// p: DX (N x in) += DY round_p(W) with float32 accumulation, DY (N x out)
// a GEMM operand (the float32 upstream gradient rounded to p:
// gemm.F32Op(dy, p)); DX is not rounded. W is dequantized a panel of
// columns at a time.
func HostBackwardMixed(DX []float32, DY gemm.Operand, N int, w Weight, p tensor.DType) {
	checkPrec("HostBackwardMixed", p)
	out, in := w.Dims()
	if N == 0 || in == 0 || out == 0 {
		return
	}
	C := panelSize(in, out)
	np := ceilDiv(in, C)
	parallel.For(np, 1, func(lo, hi int) {
		sp := getScratch(C * out)
		defer scratchPool.Put(sp)
		s := *sp
		for pi := lo; pi < hi; pi++ {
			c0, c1 := pi*C, min((pi+1)*C, in)
			cw := c1 - c0
			w.DequantizeCols(s[:out*cw], c0, c1)
			gemm.GemmMixed(false, false, N, cw, out, 1, DY, out, gemm.F32Op(s[:out*cw], p), cw, 1, DX[c0:], in)
		}
	})
}
