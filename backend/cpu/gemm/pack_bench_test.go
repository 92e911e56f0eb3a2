package gemm

import "testing"

func BenchmarkPackBT(b *testing.B) {
	kc, nb, ldb := 256, 2304, 768
	src := make([]float32, nb*ldb)
	dst := make([]float32, kc*nb)
	b.SetBytes(int64(kc * nb * 4))
	for b.Loop() {
		packB(dst, true, src, ldb, 0, kc, 0, nb)
	}
}
func BenchmarkPackBN(b *testing.B) {
	kc, nb, ldb := 256, 2304, 2304
	src := make([]float32, kc*ldb)
	dst := make([]float32, kc*nb)
	b.SetBytes(int64(kc * nb * 4))
	for b.Loop() {
		packB(dst, false, src, ldb, 0, kc, 0, nb)
	}
}
func BenchmarkPackAN(b *testing.B) {
	kc, mb, lda := 256, 144, 768
	src := make([]float32, mb*lda)
	dst := make([]float32, kc*mb+2)
	b.SetBytes(int64(kc * mb * 4))
	for b.Loop() {
		packA(dst, false, src, lda, 0, mb, 0, kc, 1)
	}
}
func BenchmarkPackAT(b *testing.B) {
	kc, mb, lda := 256, 144, 768
	src := make([]float32, kc*lda)
	dst := make([]float32, kc*mb+2)
	b.SetBytes(int64(kc * mb * 4))
	for b.Loop() {
		packA(dst, true, src, lda, 0, mb, 0, kc, 1)
	}
}
