//go:build ignore

// gen_mixed writes mixed_amd64.s, the assembly of GemmMixed: the row
// conversions of the float32 path's packing (AVX2/F16C), the bf16 path's
// packing (AVX-512) and its AMX-BF16 and AVX512_BF16 micro-kernels, whose
// AMX and VDPBF16PS instructions the Go assembler does not know and which
// are therefore emitted as bytes.
//
//	go run gen_mixed.go > mixed_amd64.s
package main

import (
	"fmt"
	"os"
	"strings"
)

var out strings.Builder

func p(format string, args ...any) { fmt.Fprintf(&out, format+"\n", args...) }

// vdpbf16ps encodes VDPBF16PS zmm(src2), zmm(src1), zmm(dst): dst.fp32[i] +=
// src1.bf16[2i]*src2.bf16[2i] + src1.bf16[2i+1]*src2.bf16[2i+1]
// (EVEX.512.F3.0F38.W0 52 /r, register operands).
func vdpbf16ps(src2, src1, dst int) string {
	p0 := 0x02 // map 0F38
	if dst&8 == 0 {
		p0 |= 0x80 // R
	}
	if src2&16 == 0 {
		p0 |= 0x40 // X (extends rm to 32 registers)
	}
	if src2&8 == 0 {
		p0 |= 0x20 // B
	}
	if dst&16 == 0 {
		p0 |= 0x10 // R'
	}
	p1 := (^src1&15)<<3 | 0x04 | 0x02 // W0, vvvv, pp = F3
	p2 := 0x40                        // L'L = 512 bits
	if src1&16 == 0 {
		p2 |= 0x08 // V'
	}
	modrm := 0xC0 | (dst&7)<<3 | src2&7
	return fmt.Sprintf("BYTE $0x62; BYTE $0x%02X; BYTE $0x%02X; BYTE $0x%02X; BYTE $0x52; BYTE $0x%02X // VDPBF16PS Z%d, Z%d, Z%d",
		p0, p1, p2, modrm, src2, src1, dst)
}

// Conversion kinds, in the order of mixed.go's cvt* constants (from 1).
type kind struct {
	name       string
	srcW, dstW int // element widths in bytes
	body       []string
}

// Register use in the conversion bodies: SI source, DI destination, Y0
// the value, Y1-Y3 scratch, Y8 = 1, Y9 = 0x7fff, Y10 = 0xffff0000,
// Y11 = 0x00400000.
var (
	// loadF32 / loadBF16 / loadF16 put 8 elements in Y0 as float32.
	loadF32  = []string{"VMOVUPS (SI), Y0"}
	loadBF16 = []string{"VPMOVZXWD (SI), Y0", "VPSLLD $16, Y0, Y0"}
	loadF16  = []string{"VCVTPH2PS (SI), Y0"}
	// loadF16Exact widens fp16 like tensor.F16ToF32: VCVTPH2PS quiets a
	// signalling NaN (sets bit 22), Go keeps its payload, so bit 22 of a
	// NaN is put back to the fp16 value's bit 9.
	loadF16Exact = []string{
		"VCVTPH2PS (SI), Y0",
		"VPMOVZXWD (SI), Y1",
		"VPSLLD $13, Y1, Y1",
		"VPANDN Y11, Y1, Y1", // bit 22 where the payload bit is clear
		"VCMPPS $3, Y0, Y0, Y2",
		"VPAND Y2, Y1, Y1",
		"VPXOR Y1, Y0, Y0",
	}
	// roundBF16 leaves in Y1 the bf16 rounding of Y0 (tensor.F32ToBF16)
	// in the upper 16 bits of each element, zero in the lower 16.
	roundBF16 = []string{
		"VPSRLD $16, Y0, Y1",
		"VPAND Y8, Y1, Y1",
		"VPADDD Y9, Y1, Y1",
		"VPADDD Y0, Y1, Y1",
		"VCMPPS $3, Y0, Y0, Y2", // NaN: keep the upper half, quiet it
		"VPOR Y11, Y0, Y3",
		"VBLENDVPS Y2, Y3, Y1, Y1",
		"VPAND Y10, Y1, Y1",
	}
	// roundF16 rounds Y0 to fp16 and back (tensor.F32ToF16, F16ToF32).
	roundF16 = []string{"VCVTPS2PH $0, Y0, X1", "VCVTPH2PS X1, Y0"}
	storeF32 = []string{"VMOVUPS Y0, (DI)"}
	storeY1  = []string{"VMOVUPS Y1, (DI)"}
)

func cat(parts ...[]string) []string {
	var s []string
	for _, x := range parts {
		s = append(s, x...)
	}
	return s
}

var kinds = []kind{
	{"BF16F32", 2, 4, cat(loadBF16, storeF32)},
	{"F16F32", 2, 4, cat(loadF16Exact, storeF32)},
	{"F32RoundBF16", 4, 4, cat(loadF32, roundBF16, storeY1)},
	{"F32RoundF16", 4, 4, cat(loadF32, roundF16, storeF32)},
	{"BF16RoundF16", 2, 4, cat(loadBF16, roundF16, storeF32)},
	{"F16RoundBF16", 2, 4, cat(loadF16, roundBF16, storeY1)},
}

func genConvert() {
	p(`// func cvtRows(kind, rows, n int, src unsafe.Pointer, lds int, dst unsafe.Pointer, ldd int)`)
	p(`//`)
	p(`// Converts rows rows of n elements (n a positive multiple of 8), row r at`)
	p(`// src + r*lds and dst + r*ldd (strides in bytes), as kind says (mixed.go).`)
	p(`TEXT ·cvtRows(SB), NOSPLIT, $0-56`)
	p(`	MOVQ kind+0(FP), AX`)
	p(`	MOVQ rows+8(FP), CX`)
	p(`	MOVQ n+16(FP), DX`)
	p(`	MOVQ src+24(FP), R8`)
	p(`	MOVQ lds+32(FP), R9`)
	p(`	MOVQ dst+40(FP), R10`)
	p(`	MOVQ ldd+48(FP), R11`)
	p(`	SHRQ $3, DX`)
	p(`	MOVL $1, BX`)
	p(`	MOVQ BX, X8`)
	p(`	VPBROADCASTD X8, Y8`)
	p(`	MOVL $0x7fff, BX`)
	p(`	MOVQ BX, X9`)
	p(`	VPBROADCASTD X9, Y9`)
	p(`	MOVL $0xffff0000, BX`)
	p(`	MOVQ BX, X10`)
	p(`	VPBROADCASTD X10, Y10`)
	p(`	MOVL $0x00400000, BX`)
	p(`	MOVQ BX, X11`)
	p(`	VPBROADCASTD X11, Y11`)
	for i := range kinds {
		p(`	CMPQ AX, $%d`, i+1)
		p(`	JEQ  k%s`, kinds[i].name)
	}
	p(`	JMP  done`)
	for _, k := range kinds {
		p(``)
		p(`k%s:`, k.name)
		p(`	MOVQ R8, SI`)
		p(`	MOVQ R10, DI`)
		p(`	MOVQ DX, BX`)
		p(`c%s:`, k.name)
		for _, ins := range k.body {
			p(`	%s`, ins)
		}
		p(`	ADDQ $%d, SI`, 8*k.srcW)
		p(`	ADDQ $%d, DI`, 8*k.dstW)
		p(`	DECQ BX`)
		p(`	JNE  c%s`, k.name)
		p(`	ADDQ R9, R8`)
		p(`	ADDQ R11, R10`)
		p(`	DECQ CX`)
		p(`	JNE  k%s`, k.name)
		p(`	JMP  done`)
	}
	p(``)
	p(`done:`)
	p(`	VZEROUPPER`)
	p(`	RET`)
}

// AMX instructions, VEX-encoded (map 0F38, W0, L0). Registers are named by
// their numbers in the instruction encoding.
var gpr = map[string]int{"AX": 0, "CX": 1, "DX": 2, "BX": 3, "SI": 6, "DI": 7,
	"R8": 8, "R9": 9, "R10": 10, "R11": 11, "R12": 12, "R13": 13}

func vex3(rx, x, b, vvvv, pp int, rest ...int) string {
	b1 := 0x02 | (^rx&8)<<4 | (^x&8)<<3 | (^b&8)<<2
	b2 := (^vvvv&15)<<3 | pp
	s := fmt.Sprintf("BYTE $0xC4; BYTE $0x%02X; BYTE $0x%02X", b1, b2)
	for _, r := range rest {
		s += fmt.Sprintf("; BYTE $0x%02X", r)
	}
	return s
}

// sib encodes a (base)(index*1) memory operand with reg in ModRM.reg.
func sibOperand(reg int, base, index string) []int {
	bs, ix := gpr[base], gpr[index]
	if bs&7 == 5 || ix == 4 {
		panic("unsupported base/index")
	}
	return []int{reg<<3 | 4, (ix&7)<<3 | bs&7}
}

func ldtilecfg(base string) string {
	b := gpr[base]
	if b&7 == 4 || b&7 == 5 {
		panic("unsupported base")
	}
	return vex3(0, 0, b, 0, 0, 0x49, b&7) + fmt.Sprintf(" // LDTILECFG (%s)", base)
}

func tilerelease() string { return vex3(0, 0, 0, 0, 0, 0x49, 0xC0) + " // TILERELEASE" }

func tilezero(t int) string {
	return vex3(0, 0, 0, 0, 3, 0x49, 0xC0|t<<3) + fmt.Sprintf(" // TILEZERO TMM%d", t)
}

func tileloadd(t int, base, index string) string {
	return vex3(0, gpr[index], gpr[base], 0, 3, append([]int{0x4B}, sibOperand(t, base, index)...)...) +
		fmt.Sprintf(" // TILELOADD TMM%d, (%s)(%s*1)", t, base, index)
}

func tilestored(t int, base, index string) string {
	return vex3(0, gpr[index], gpr[base], 0, 2, append([]int{0x4B}, sibOperand(t, base, index)...)...) +
		fmt.Sprintf(" // TILESTORED (%s)(%s*1), TMM%d", base, index, t)
}

// tdpbf16ps: TMM(c) += TMM(a) . TMM(b), a the rows of A (16 x 32 bf16),
// b 16 pairs of rows of B (16 x 16 bf16 pairs).
func tdpbf16ps(c, a, b int) string {
	return vex3(0, 0, 0, b, 2, 0x5C, 0xC0|c<<3|a) + fmt.Sprintf(" // TDPBF16PS TMM%d, TMM%d, TMM%d", c, a, b)
}

// The AMX micro-kernel: for each of npan row panels of 32 rows, the 32x32
// block of C (tiles 0-3: rows 0-15 | 16-31 x columns 0-15 | 16-31) from a
// packed A panel (per 32 values of k: tile 4 = rows 0-15, tile 5 = rows
// 16-31, each 16 rows of 32 bf16) and a packed B panel (per 32 values of
// k: tile 6 = columns 0-15, tile 7 = columns 16-31, each 16 pairs of k
// by 16 columns of bf16 pairs); all tiles 16 rows of 64 bytes.
func genAMX() {
	p(`// func kernelAMX(cfg *byte, steps int, a *uint16, npan int, b *uint16, c *float32, ldc, cstride, load int)`)
	p(`//`)
	p(`// C = AB (load 0) or C + AB (load 1) for npan row panels of 32 rows and 32`)
	p(`// columns, the panels cstride bytes apart in C (row stride ldc bytes) and`)
	p(`// steps*2048 bytes apart in a; b is one panel of steps*2048 bytes.`)
	p(`TEXT ·kernelAMX(SB), NOSPLIT, $0-72`)
	p(`	MOVQ cfg+0(FP), DI`)
	p(`	%s`, ldtilecfg("DI"))
	p(`	MOVQ steps+8(FP), R13`)
	p(`	MOVQ a+16(FP), AX`)
	p(`	MOVQ npan+24(FP), R9`)
	p(`	MOVQ b+32(FP), R12`)
	p(`	MOVQ c+40(FP), SI`)
	p(`	MOVQ ldc+48(FP), CX`)
	p(`	MOVQ cstride+56(FP), R11`)
	p(`	MOVQ load+64(FP), R10`)
	p(`	MOVQ $64, BX`)
	p(`	MOVQ CX, R8`)
	p(`	SHLQ $4, R8 // 16 rows of C`)
	p(`panel:`)
	p(`	LEAQ (SI)(R8*1), DI`)
	p(`	TESTQ R10, R10`)
	p(`	JEQ  zero`)
	p(`	%s`, tileloadd(0, "SI", "CX"))
	p(`	%s`, tileloadd(2, "DI", "CX"))
	p(`	ADDQ $64, SI`)
	p(`	ADDQ $64, DI`)
	p(`	%s`, tileloadd(1, "SI", "CX"))
	p(`	%s`, tileloadd(3, "DI", "CX"))
	p(`	SUBQ $64, SI`)
	p(`	JMP  ready`)
	p(`zero:`)
	for t := 0; t < 4; t++ {
		p(`	%s`, tilezero(t))
	}
	p(`ready:`)
	p(`	MOVQ R12, DX`)
	p(`	MOVQ R13, DI`)
	p(`step:`)
	p(`	%s`, tileloadd(4, "AX", "BX"))
	p(`	%s`, tileloadd(6, "DX", "BX"))
	p(`	%s`, tdpbf16ps(0, 4, 6))
	p(`	ADDQ $1024, DX`)
	p(`	%s`, tileloadd(7, "DX", "BX"))
	p(`	%s`, tdpbf16ps(1, 4, 7))
	p(`	ADDQ $1024, AX`)
	p(`	%s`, tileloadd(5, "AX", "BX"))
	p(`	%s`, tdpbf16ps(2, 5, 6))
	p(`	%s`, tdpbf16ps(3, 5, 7))
	p(`	ADDQ $1024, AX`)
	p(`	ADDQ $1024, DX`)
	p(`	DECQ DI`)
	p(`	JNE  step`)
	p(`	LEAQ (SI)(R8*1), DI`)
	p(`	%s`, tilestored(0, "SI", "CX"))
	p(`	%s`, tilestored(2, "DI", "CX"))
	p(`	ADDQ $64, SI`)
	p(`	ADDQ $64, DI`)
	p(`	%s`, tilestored(1, "SI", "CX"))
	p(`	%s`, tilestored(3, "DI", "CX"))
	p(`	SUBQ $64, SI`)
	p(`	ADDQ R11, SI`)
	p(`	DECQ R9`)
	p(`	JNE  panel`)
	p(`	%s`, tilerelease())
	p(`	RET`)
}

// bf16 packing into AMX panels (AVX-512 F/BW). Source kinds: 0 float32 (rounded to bf16
// as tensor.F32ToBF16 does), 1 bf16 (as is), 2 fp16 (widened, rounded to
// bf16). Z28 = 1, Z29 = 0x7fff, Z30 = 0x00400000, Z31 = 0xffff0000 in
// every dword.
var amxKinds = []string{"F32", "BF16", "F16"}

func amxWidth(kind int) int {
	if kind == 0 {
		return 4
	}
	return 2
}

func amxConsts() {
	for _, c := range []struct {
		z int
		v string
	}{{28, "$1"}, {29, "$0x7fff"}, {30, "$0x00400000"}, {31, "$0xffff0000"}} {
		p(`	MOVL %s, R11`, c.v)
		p(`	VPBROADCASTD R11, Z%d`, c.z)
	}
}

// roundZ leaves in Z(dst) the bf16 rounding of the 16 floats in Z(src) in
// the upper half of each dword (the lower halves are not cleared).
func roundZ(src, dst int) {
	p(`	VPSRLD $16, Z%d, Z%d`, src, dst)
	p(`	VPANDD Z28, Z%d, Z%d`, dst, dst)
	p(`	VPADDD Z29, Z%d, Z%d`, dst, dst)
	p(`	VPADDD Z%d, Z%d, Z%d`, src, dst, dst)
	p(`	VCMPPS $3, Z%d, Z%d, K1`, src, src)
	p(`	VPORD Z30, Z%d, K1, Z%d`, src, dst)
}

// load16hi loads 16 elements at mem as dwords with the bf16 value in the
// upper half (lower half zero for kind 1, garbage otherwise); tmp scratch.
func load16hi(kind int, mem string, dst, tmp int) {
	switch kind {
	case 0:
		p(`	VMOVUPS %s, Z%d`, mem, tmp)
		roundZ(tmp, dst)
	case 1:
		p(`	VPMOVZXWD %s, Z%d`, mem, dst)
		p(`	VPSLLD $16, Z%d, Z%d`, dst, dst)
	case 2:
		p(`	VCVTPH2PS %s, Z%d`, mem, tmp)
		roundZ(tmp, dst)
	}
}

// pairRows sets Z(dst) to the 16 pairs (a[i], b[i]) of 16 elements at ma
// and mb (a in the low half of each dword); uses Z(t0), Z(t1).
func pairRows(kind int, ma, mb string, dst, t0, t1 int) {
	if kind == 1 {
		p(`	VPMOVZXWD %s, Z%d`, ma, dst)
		p(`	VPMOVZXWD %s, Z%d`, mb, t1)
		p(`	VPSLLD $16, Z%d, Z%d`, t1, t1)
		p(`	VPORD Z%d, Z%d, Z%d`, t1, dst, dst)
		return
	}
	load16hi(kind, ma, dst, t0)
	load16hi(kind, mb, t1, t0)
	p(`	VPSRLD $16, Z%d, Z%d`, dst, dst)
	p(`	VPANDD Z31, Z%d, Z%d`, t1, t1)
	p(`	VPORD Z%d, Z%d, Z%d`, t1, dst, dst)
}

// row32 sets Z(dst) to 32 consecutive elements at off(reg) as bf16 (16
// pairs); uses Z(t0)-Z(t2).
func row32(kind int, off int, reg string, dst, t0, t1, t2 int) {
	if kind == 1 {
		p(`	VMOVDQU32 %d(%s), Z%d`, off, reg, dst)
		return
	}
	w := amxWidth(kind)
	load16hi(kind, fmt.Sprintf("%d(%s)", off, reg), t1, t0)
	load16hi(kind, fmt.Sprintf("%d(%s)", off+16*w, reg), t2, t0)
	p(`	VPSRLD $16, Z%d, Z%d`, t1, t1)
	p(`	VPSRLD $16, Z%d, Z%d`, t2, t2)
	p(`	VPMOVDW Z%d, Y%d`, t1, dst)
	p(`	VPMOVDW Z%d, Y%d`, t2, t1)
	p(`	VINSERTI64X4 $1, Y%d, Z%d, Z%d`, t1, dst, dst)
}

// transposeStore transposes the 16x16 dwords in Z0-Z15 (row r in Z(r))
// and stores row q of the result to q*64(DI); uses Z16-Z19.
func transposeStore() {
	for i := 0; i < 8; i++ {
		a, b := 2*i, 2*i+1
		p(`	VPUNPCKLDQ Z%d, Z%d, Z16`, b, a)
		p(`	VPUNPCKHDQ Z%d, Z%d, Z%d`, b, a, b)
		p(`	VMOVDQA32 Z16, Z%d`, a)
	}
	for i := 0; i < 4; i++ {
		t0, t1, t2, t3 := 4*i, 4*i+1, 4*i+2, 4*i+3
		p(`	VPUNPCKLQDQ Z%d, Z%d, Z16`, t2, t0)
		p(`	VPUNPCKHQDQ Z%d, Z%d, Z17`, t2, t0)
		p(`	VPUNPCKLQDQ Z%d, Z%d, Z18`, t3, t1)
		p(`	VPUNPCKHQDQ Z%d, Z%d, Z%d`, t3, t1, t3)
		p(`	VMOVDQA32 Z16, Z%d`, t0)
		p(`	VMOVDQA32 Z17, Z%d`, t1)
		p(`	VMOVDQA32 Z18, Z%d`, t2)
	}
	// Z(4i+c) holds, in 128-bit lane L, column 4L+c of rows 4i..4i+3.
	for c := 0; c < 4; c++ {
		u0, u1, u2, u3 := c, 4+c, 8+c, 12+c
		p(`	VSHUFI32X4 $0x44, Z%d, Z%d, Z16`, u1, u0)
		p(`	VSHUFI32X4 $0xEE, Z%d, Z%d, Z17`, u1, u0)
		p(`	VSHUFI32X4 $0x44, Z%d, Z%d, Z18`, u3, u2)
		p(`	VSHUFI32X4 $0xEE, Z%d, Z%d, Z19`, u3, u2)
		p(`	VSHUFI32X4 $0x88, Z18, Z16, Z%d`, u0)
		p(`	VSHUFI32X4 $0xDD, Z18, Z16, Z%d`, u1)
		p(`	VSHUFI32X4 $0x88, Z19, Z17, Z%d`, u2)
		p(`	VSHUFI32X4 $0xDD, Z19, Z17, Z%d`, u3)
		for L := 0; L < 4; L++ {
			p(`	VMOVDQU32 Z%d, %d(DI)`, []int{u0, u1, u2, u3}[L], 64*(4*L+c))
		}
	}
}

func amxDispatch(name string) {
	p(`	CMPQ R10, $1`)
	p(`	JEQ  %sBF16`, name)
	p(`	JGT  %sF16`, name)
}

// genAMXPack writes the four packing routines: full panels of 32
// columns of B or 32 rows of A, steps full steps of 32 values of k.
func genAMXPack() {
	// B = op(B) stored k x n: pair q of a step comes from rows 2q, 2q+1.
	p(`// func packBN(kind, steps int, src unsafe.Pointer, lds int, dst *uint16)`)
	p(`TEXT ·packBN(SB), NOSPLIT, $0-40`)
	p(`	MOVQ kind+0(FP), R10`)
	p(`	MOVQ steps+8(FP), R9`)
	p(`	MOVQ src+16(FP), R8`)
	p(`	MOVQ lds+24(FP), DX`)
	p(`	MOVQ dst+32(FP), DI`)
	amxConsts()
	amxDispatch("bn")
	for kind, kn := range amxKinds {
		w := amxWidth(kind)
		p(`bn%s:`, kn)
		p(`	MOVQ R8, SI`)
		p(`	MOVQ $16, CX`)
		p(`bn%sq:`, kn)
		p(`	LEAQ (SI)(DX*1), BX`)
		pairRows(kind, "(SI)", "(BX)", 0, 1, 2)
		pairRows(kind, fmt.Sprintf("%d(SI)", 16*w), fmt.Sprintf("%d(BX)", 16*w), 3, 1, 2)
		p(`	VMOVDQU32 Z0, (DI)`)
		p(`	VMOVDQU32 Z3, 1024(DI)`)
		p(`	LEAQ (SI)(DX*2), SI`)
		p(`	ADDQ $64, DI`)
		p(`	DECQ CX`)
		p(`	JNE  bn%sq`, kn)
		p(`	MOVQ SI, R8`)
		p(`	ADDQ $1024, DI`)
		p(`	DECQ R9`)
		p(`	JNE  bn%s`, kn)
		p(`	VZEROUPPER`)
		p(`	RET`)
	}
	p(``)
	// A = op(A) stored m x k: row r of the panel is a run of k.
	p(`// func packAN(kind, rows, steps int, src unsafe.Pointer, lds int, dst *uint16)`)
	p(`TEXT ·packAN(SB), NOSPLIT, $0-48`)
	p(`	MOVQ kind+0(FP), R10`)
	p(`	MOVQ rows+8(FP), R12`)
	p(`	MOVQ steps+16(FP), R13`)
	p(`	MOVQ src+24(FP), R8`)
	p(`	MOVQ lds+32(FP), DX`)
	p(`	MOVQ dst+40(FP), R11`)
	p(`	MOVQ R11, BX`)
	amxConsts()
	amxDispatch("an")
	for kind, kn := range amxKinds {
		w := amxWidth(kind)
		p(`an%s:`, kn)
		p(`	MOVQ R8, SI`)
		p(`	MOVQ BX, DI`)
		p(`	MOVQ R13, CX`)
		p(`an%ss:`, kn)
		row32(kind, 0, "SI", 0, 1, 2, 3)
		p(`	VMOVDQU32 Z0, (DI)`)
		p(`	ADDQ $%d, SI`, 32*w)
		p(`	ADDQ $2048, DI`)
		p(`	DECQ CX`)
		p(`	JNE  an%ss`, kn)
		p(`	ADDQ DX, R8`)
		p(`	ADDQ $64, BX`)
		p(`	DECQ R12`)
		p(`	JNE  an%s`, kn)
		p(`	VZEROUPPER`)
		p(`	RET`)
	}
	p(``)
	// B = op(B) stored n x k (B^T): column jj of the panel is a run of k;
	// 16 of them (16 pairs each) are transposed into a tile.
	p(`// func packBT(kind, steps int, src unsafe.Pointer, lds int, dst *uint16)`)
	p(`TEXT ·packBT(SB), NOSPLIT, $0-40`)
	p(`	MOVQ kind+0(FP), R10`)
	p(`	MOVQ steps+8(FP), R9`)
	p(`	MOVQ src+16(FP), R8`)
	p(`	MOVQ lds+24(FP), DX`)
	p(`	MOVQ dst+32(FP), DI`)
	amxConsts()
	p(`	LEAQ (DX)(DX*2), R12 // 3 rows`)
	amxDispatch("bt")
	for kind, kn := range amxKinds {
		w := amxWidth(kind)
		p(`bt%s:`, kn)
		p(`	MOVQ $2, CX`)
		p(`	MOVQ R8, SI`)
		p(`bt%sh:`, kn)
		for r := 0; r < 16; r++ {
			if r%4 == 0 && r > 0 {
				p(`	LEAQ (SI)(DX*4), SI`)
			}
			reg := []string{"(SI)", "(SI)(DX*1)", "(SI)(DX*2)", "(SI)(R12*1)"}[r%4]
			p(`	LEAQ %s, BX`, reg)
			row32(kind, 0, "BX", r, 16, 17, 18)
		}
		p(`	LEAQ (SI)(DX*4), SI // next 16 columns`)
		transposeStore()
		p(`	ADDQ $1024, DI`)
		p(`	DECQ CX`)
		p(`	JNE  bt%sh`, kn)
		p(`	ADDQ $%d, R8`, 32*w)
		p(`	DECQ R9`)
		p(`	JNE  bt%s`, kn)
		p(`	VZEROUPPER`)
		p(`	RET`)
	}
	p(``)
	// A = op(A) stored k x m (A^T): pair q of a step comes from rows 2q,
	// 2q+1 (16 rows of the panel each); 16 pairs are transposed into a tile.
	p(`// func packAT(kind, steps int, src unsafe.Pointer, lds int, dst *uint16)`)
	p(`TEXT ·packAT(SB), NOSPLIT, $0-40`)
	p(`	MOVQ kind+0(FP), R10`)
	p(`	MOVQ steps+8(FP), R9`)
	p(`	MOVQ src+16(FP), R8`)
	p(`	MOVQ lds+24(FP), DX`)
	p(`	MOVQ dst+32(FP), DI`)
	amxConsts()
	amxDispatch("at")
	for kind, kn := range amxKinds {
		w := amxWidth(kind)
		p(`at%s:`, kn)
		for h := 0; h < 2; h++ {
			p(`	MOVQ R8, SI`)
			for q := 0; q < 16; q++ {
				p(`	LEAQ (SI)(DX*1), BX`)
				pairRows(kind, fmt.Sprintf("%d(SI)", 16*w*h), fmt.Sprintf("%d(BX)", 16*w*h), q, 16, 17)
				p(`	LEAQ (SI)(DX*2), SI`)
			}
			transposeStore()
			p(`	ADDQ $1024, DI`)
		}
		p(`	MOVQ SI, R8`)
		p(`	DECQ R9`)
		p(`	JNE  at%s`, kn)
		p(`	VZEROUPPER`)
		p(`	RET`)
	}
}

// The VDPBF16PS micro-kernel on AMX panels (amx.go): a 32x32 block of C
// as four 8x32 tiles, each in Z0-Z15 (row r in Z(2r), Z(2r+1)); per pair q
// of k, Z16-Z17 hold pair row q of B's two 16-column tiles, Z18-Z19
// broadcast the pair of A of a row.
func genDPB() {
	p(`// func kernelDPB(steps int, a, b *uint16, c *float32, ldc int, alpha, beta float32, mode int)`)
	p(`//`)
	p(`// C = alpha*AB (mode 0), C + alpha*AB (mode 1) or beta*C + alpha*AB (mode`)
	p(`// 2) for the 32x32 block at c (row stride ldc elements) from an AMX A`)
	p(`// panel and B panel of steps steps of 32 values of k.`)
	p(`TEXT ·kernelDPB(SB), NOSPLIT, $0-56`)
	p(`	MOVQ a+8(FP), R11`)
	p(`	MOVQ c+24(FP), DI`)
	p(`	MOVQ ldc+32(FP), SI`)
	p(`	SHLQ $2, SI`)
	p(`	LEAQ (SI)(SI*2), R9`)
	p(`	MOVQ $4, R12`)
	p(`sub:`)
	p(`	LEAQ (DI)(SI*4), R10`)
	for i := 0; i < 16; i++ {
		p(`	VPXORD Z%d, Z%d, Z%d`, i, i, i)
	}
	p(`	MOVQ R11, AX`)
	p(`	MOVQ b+16(FP), BX`)
	p(`	MOVQ steps+0(FP), CX`)
	p(`step:`)
	for q := 0; q < 16; q++ {
		p(`	VMOVDQU32 %d(BX), Z16`, 64*q)
		p(`	VMOVDQU32 %d(BX), Z17`, 1024+64*q)
		for r := 0; r < 8; r++ {
			z := 18 + r%2
			p(`	VPBROADCASTD %d(AX), Z%d`, 64*r+4*q, z)
			p(`	%s`, vdpbf16ps(16, z, 2*r))
			p(`	%s`, vdpbf16ps(17, z, 2*r+1))
		}
	}
	p(`	ADDQ $2048, AX`)
	p(`	ADDQ $2048, BX`)
	p(`	DECQ CX`)
	p(`	JNE  step`)
	p(`	VBROADCASTSS alpha+40(FP), Z20`)
	for i := 0; i < 16; i++ {
		p(`	VMULPS Z20, Z%d, Z%d`, i, i)
	}
	rows := []string{"(DI)", "(DI)(SI*1)", "(DI)(SI*2)", "(DI)(R9*1)", "(R10)", "(R10)(SI*1)", "(R10)(SI*2)", "(R10)(R9*1)"}
	addr := func(r, j int) string {
		if j == 0 {
			return rows[r]
		}
		return "64" + rows[r]
	}
	p(`	MOVQ mode+48(FP), DX`)
	p(`	CMPQ DX, $1`)
	p(`	JEQ  accumulate`)
	p(`	JGT  scale`)
	for r := 0; r < 8; r++ {
		for j := 0; j < 2; j++ {
			p(`	VMOVUPS Z%d, %s`, 2*r+j, addr(r, j))
		}
	}
	p(`	JMP  next`)
	p(`accumulate:`)
	for r := 0; r < 8; r++ {
		for j := 0; j < 2; j++ {
			p(`	VADDPS %s, Z%d, Z%d`, addr(r, j), 2*r+j, 2*r+j)
			p(`	VMOVUPS Z%d, %s`, 2*r+j, addr(r, j))
		}
	}
	p(`	JMP  next`)
	p(`scale:`)
	p(`	VBROADCASTSS beta+44(FP), Z21`)
	for r := 0; r < 8; r++ {
		for j := 0; j < 2; j++ {
			p(`	VMULPS %s, Z21, Z20`, addr(r, j))
			p(`	VADDPS Z20, Z%d, Z%d`, 2*r+j, 2*r+j)
			p(`	VMOVUPS Z%d, %s`, 2*r+j, addr(r, j))
		}
	}
	p(`next:`)
	p(`	LEAQ (DI)(SI*8), DI`)
	p(`	ADDQ $512, R11 // 8 rows of the A panel`)
	p(`	DECQ R12`)
	p(`	JNE  sub`)
	p(`	VZEROUPPER`)
	p(`	RET`)
}

func main() {
	p(`// Code generated by gen_mixed.go; DO NOT EDIT.`)
	p(``)
	p(`#include "textflag.h"`)
	p(``)
	genConvert()
	p(``)
	genAMX()
	p(``)
	genDPB()
	p(``)
	genAMXPack()
	os.Stdout.WriteString(out.String())
}
