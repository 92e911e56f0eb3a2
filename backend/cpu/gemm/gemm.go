// Package gemm provides general matrix multiplication for the CPU backend:
// a reference kernel, generic over float32 and float64, and the float32
// entry point Sgemm that the rest of shoggo calls.
//
// All matrices are row-major. With op(X) = X or X^T:
//
//	C = alpha * op(A) * op(B) + beta * C,  op(A) is m x k, op(B) is k x n.
//
// lda, ldb, ldc are the row strides of A, B and C as stored (so for transA
// A is stored k x m with stride lda >= m). beta == 0 means C is overwritten
// (its old contents, even NaN, are ignored).
//
// Sgemm packs its operands into panels (BLIS/GotoBLAS style, sgemm.go) and
// runs an AVX2/FMA micro-kernel in Go assembly (kernel_amd64.s) when the
// CPU has AVX2 and FMA, a pure-Go kernel otherwise or when the environment
// sets SHOGGO_NOASM=1. It splits large products across SetThreads threads
// (default GOMAXPROCS) through a persistent worker pool (pool.go); results
// are bit-identical for every thread count.
//
// GemmMixed (mixed.go) is the same product with half-precision operands
// (bf16/fp16 values, or float32 values rounded to bf16/fp16) and float32
// accumulation, the matmul of mixed-precision training. It converts each
// operand while packing it, so no full float32 (or bf16) copy is made, and
// runs Sgemm's loops and kernel on the converted panels; when both
// operands enter at bf16 it packs them as bf16 instead and runs an AMX-BF16
// kernel (amx.go) or an AVX512_BF16 one (bf16.go) where the CPU has them.
// SHOGGO_NOASM=1 turns all assembly off; SHOGGO_NOBF16=1 the bf16 kernels,
// SHOGGO_NOAMX=1 the AMX one.
package gemm

// Float is the set of element types the reference kernels accept.
type Float interface{ ~float32 | ~float64 }

// Ref is the reference GEMM: straightforward loops, accumulating in T.
func Ref[T Float](transA, transB bool, m, n, k int, alpha T, a []T, lda int, b []T, ldb int, beta T, c []T, ldc int) {
	for i := 0; i < m; i++ {
		crow := c[i*ldc : i*ldc+n]
		if beta == 0 {
			clear(crow)
		} else if beta != 1 {
			for j := range crow {
				crow[j] *= beta
			}
		}
		for p := 0; p < k; p++ {
			var av T
			if transA {
				av = a[p*lda+i]
			} else {
				av = a[i*lda+p]
			}
			av *= alpha
			if av == 0 {
				continue
			}
			if transB {
				for j := 0; j < n; j++ {
					crow[j] += av * b[j*ldb+p]
				}
			} else {
				brow := b[p*ldb : p*ldb+n]
				for j, bv := range brow {
					crow[j] += av * bv
				}
			}
		}
	}
}

// Sgemm is the float32 GEMM used by the CPU backend: packed panels, an
// AVX2/FMA assembly micro-kernel where the CPU has one (a Go kernel
// elsewhere), split across Threads() threads. It panics if a slice is too
// short for its matrix or a leading dimension is smaller than its row.
//
// Unlike Ref, which skips zero elements of op(A), it follows BLAS: alpha == 0
// or k == 0 only scales C (A and B are not read), but otherwise a zero in A
// times an Inf or NaN in B gives NaN. Results are bit-identical for any
// thread count; they differ from Ref by rounding only (the summation order
// over k differs).
func Sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	sgemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// Gemm dispatches on the element type: Sgemm for float32, Ref for float64.
func Gemm[T Float](transA, transB bool, m, n, k int, alpha T, a []T, lda int, b []T, ldb int, beta T, c []T, ldc int) {
	switch any(a).(type) {
	case []float32:
		Sgemm(transA, transB, m, n, k, float32(alpha), any(a).([]float32), lda, any(b).([]float32), ldb, float32(beta), any(c).([]float32), ldc)
	default:
		Ref(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
	}
}
