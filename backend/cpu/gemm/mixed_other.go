//go:build !amd64

package gemm

import "unsafe"

func cvtRows(kind, rows, n int, src unsafe.Pointer, lds int, dst unsafe.Pointer, ldd int) {
	panic("gemm: no assembly kernel on this architecture")
}

func kernelDPB(steps int, a, b *uint16, c *float32, ldc int, alpha, beta float32, mode int) {
	panic("gemm: no assembly kernel on this architecture")
}

func kernelAMX(cfg *byte, steps int, a *uint16, npan int, b *uint16, c *float32, ldc, cstride, load int) {
	panic("gemm: no assembly kernel on this architecture")
}

func packBN(kind, steps int, src unsafe.Pointer, lds int, dst *uint16) {
	panic("gemm: no assembly kernel on this architecture")
}

func packBT(kind, steps int, src unsafe.Pointer, lds int, dst *uint16) {
	panic("gemm: no assembly kernel on this architecture")
}

func packAN(kind, rows, steps int, src unsafe.Pointer, lds int, dst *uint16) {
	panic("gemm: no assembly kernel on this architecture")
}

func packAT(kind, steps int, src unsafe.Pointer, lds int, dst *uint16) {
	panic("gemm: no assembly kernel on this architecture")
}
