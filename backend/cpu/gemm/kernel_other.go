//go:build !amd64

package gemm

func kernel6x16(k int, a, b, c *float32, ldc int, beta float32, mode int) {
	panic("gemm: no assembly kernel on this architecture")
}

func packB16T(kc int, src *float32, ldb int, dst *float32) {
	panic("gemm: no assembly kernel on this architecture")
}

func packA6N(kc int, src *float32, lda int, dst *float32, alpha float32) {
	panic("gemm: no assembly kernel on this architecture")
}

func packB16N(kc int, src *float32, ldb int, dst *float32) {
	panic("gemm: no assembly kernel on this architecture")
}

func packA6T(kc int, src *float32, lda int, dst *float32, alpha float32) {
	panic("gemm: no assembly kernel on this architecture")
}

func prefetchRows(addr *float32, stride, rows, bytes int) {}
