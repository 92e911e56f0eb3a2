package gemm

// kernel6x16 is the AVX2/FMA micro-kernel (kernel_amd64.s): it computes the
// 6x16 tile AB from a packed 6 x k panel a and a packed k x 16 panel b and
// writes it to the tile at c (row stride ldc, in elements): mode 0 stores
// AB, mode 1 adds it to C, mode 2 stores beta*C + AB.
//
//go:noescape
func kernel6x16(k int, a, b, c *float32, ldc int, beta float32, mode int)

// packB16T packs a full 16-column panel of B^T, kc a positive multiple of 8
// (pack_amd64.s).
//
//go:noescape
func packB16T(kc int, src *float32, ldb int, dst *float32)

// packA6N packs a full 6-row panel of alpha*A, kc a positive multiple of 8;
// it writes 2 floats past the panel (pack_amd64.s).
//
//go:noescape
func packA6N(kc int, src *float32, lda int, dst *float32, alpha float32)

// packB16N packs a full 16-column panel of B, kc >= 1 (pack_amd64.s).
//
//go:noescape
func packB16N(kc int, src *float32, ldb int, dst *float32)

// packA6T packs a full 6-row panel of alpha*A^T, kc >= 1; it writes 2
// floats past the panel (pack_amd64.s).
//
//go:noescape
func packA6T(kc int, src *float32, lda int, dst *float32, alpha float32)

// prefetchRows prefetches rows runs of bytes bytes, stride bytes apart,
// starting at addr (pack_amd64.s).
//
//go:noescape
func prefetchRows(addr *float32, stride, rows, bytes int)
