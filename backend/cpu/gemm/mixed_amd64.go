package gemm

import "unsafe"

// cvtRows converts rows rows of n elements (n a positive multiple of 8),
// row r at src + r*lds and dst + r*ldd (strides in bytes), as the cvt*
// constant kind says (mixed_amd64.s, AVX2 and F16C).
//
//go:noescape
func cvtRows(kind, rows, n int, src unsafe.Pointer, lds int, dst unsafe.Pointer, ldd int)

// kernelDPB is the AVX512_BF16 micro-kernel (mixed_amd64.s): the 32x32
// block alpha*AB of a packed A panel and B panel (bf16.go) of steps steps
// of 32 values of k, written to c (row stride ldc) as mode says: 0 stores
// it, 1 adds it to C, 2 stores beta*C + alpha*AB.
//
//go:noescape
func kernelDPB(steps int, a, b *uint16, c *float32, ldc int, alpha, beta float32, mode int)

// kernelAMX is the AMX-BF16 micro-kernel (mixed_amd64.s): for npan row
// panels of 32 rows, the 32x32 block AB of packed panels (bf16.go) is
// stored to C (load 0) or added to it (load 1); ldc is C's row stride and
// cstride the distance between row panels, in bytes.
//
//go:noescape
func kernelAMX(cfg *byte, steps int, a *uint16, npan int, b *uint16, c *float32, ldc, cstride, load int)

// The bf16 path's packing (mixed_amd64.s, AVX-512 F/BW): full panels
// (bf16.go) of steps steps of 32 values of k from a source of kind 0
// (float32, rounded to bf16), 1 (bf16) or 2 (fp16, rounded to bf16) at
// src, row stride lds bytes. packBN: 32 columns of a row-major k x n B;
// packBT: 32 rows of n x k storage (op(B) = B^T); packAN: rows (<= 32)
// rows of a m x k A; packAT: 32 columns of k x m storage (op(A) = A^T).
//
//go:noescape
func packBN(kind, steps int, src unsafe.Pointer, lds int, dst *uint16)

//go:noescape
func packBT(kind, steps int, src unsafe.Pointer, lds int, dst *uint16)

//go:noescape
func packAN(kind, rows, steps int, src unsafe.Pointer, lds int, dst *uint16)

//go:noescape
func packAT(kind, steps int, src unsafe.Pointer, lds int, dst *uint16)
