#include "textflag.h"

// AVX2/FMA kernels for the quantized matrix-vector products. See
// kernels_amd64.go for the contracts.

DATA nibmask<>+0(SB)/4, $0x0f
GLOBL nibmask<>(SB), RODATA|NOPTR, $4

// LOOK16 turns the 8 code bytes at off(SI) into 16 table values in ymm
// registers ra (elements 0-7) and rb (8-15), element 2k being the high
// nibble of byte k. Y13 = 0x0f in every dword, Y14/Y15 = table[0:8]/[8:16].
// Clobbers Y0-Y3, Y6-Y8.
#define LOOK16(off, ra, rb) \
	VPMOVZXBD   off(SI), Y0; \
	VPSRLD      $4, Y0, Y1; \
	VPAND       Y13, Y0, Y0; \
	VPUNPCKLDQ  Y0, Y1, Y2; \
	VPUNPCKHDQ  Y0, Y1, Y3; \
	VPERM2I128  $0x20, Y3, Y2, ra; \
	VPERM2I128  $0x31, Y3, Y2, rb; \
	VPERMPS     Y14, ra, Y6; \
	VPERMPS     Y15, ra, Y7; \
	VPSLLD      $28, ra, Y8; \
	VBLENDVPS   Y8, Y7, Y6, ra; \
	VPERMPS     Y14, rb, Y6; \
	VPERMPS     Y15, rb, Y7; \
	VPSLLD      $28, rb, Y8; \
	VBLENDVPS   Y8, Y7, Y6, rb

// func dot4Blocks(table *[16]float32, codes *byte, x *float32, scales *float32, nblk, blkBytes int) float32
// Returns sum_b scales[b] * sum_{i<2*blkBytes} table[code_i] * x[b*2*blkBytes+i],
// code 2k/2k+1 the high/low nibble of byte k. blkBytes is a positive
// multiple of 8.
TEXT ·dot4Blocks(SB), NOSPLIT, $0-52
	MOVQ table+0(FP), AX
	MOVQ codes+8(FP), SI
	MOVQ x+16(FP), DI
	MOVQ scales+24(FP), BX
	MOVQ nblk+32(FP), CX
	MOVQ blkBytes+40(FP), DX
	VMOVUPS (AX), Y14
	VMOVUPS 32(AX), Y15
	VPBROADCASTD nibmask<>(SB), Y13
	VXORPS Y12, Y12, Y12
	TESTQ CX, CX
	JE done

block:
	VXORPS Y9, Y9, Y9
	VXORPS Y10, Y10, Y10
	MOVQ DX, R8

inner:
	LOOK16(0, Y4, Y5)
	VFMADD231PS (DI), Y4, Y9
	VFMADD231PS 32(DI), Y5, Y10
	ADDQ $8, SI
	ADDQ $64, DI
	SUBQ $8, R8
	JNE inner

	VADDPS Y10, Y9, Y9
	VBROADCASTSS (BX), Y11
	VFMADD231PS Y11, Y9, Y12
	ADDQ $4, BX
	DECQ CX
	JNE block

done:
	VEXTRACTF128 $1, Y12, X0
	VADDPS X0, X12, X0
	VMOVHLPS X0, X0, X1
	VADDPS X1, X0, X0
	VMOVSHDUP X0, X1
	VADDSS X1, X0, X0
	MOVSS X0, ret+48(FP)
	VZEROUPPER
	RET

// func dotI8(q *int8, x *float32, n int) float32
// Returns sum_i float32(q[i]) * x[i]; n is a positive multiple of 16.
TEXT ·dotI8(SB), NOSPLIT, $0-28
	MOVQ q+0(FP), SI
	MOVQ x+8(FP), DI
	MOVQ n+16(FP), CX
	VXORPS Y8, Y8, Y8
	VXORPS Y9, Y9, Y9
	VXORPS Y10, Y10, Y10
	VXORPS Y11, Y11, Y11
	CMPQ CX, $32
	JLT tail16

loop32:
	VPMOVSXBD (SI), Y0
	VPMOVSXBD 8(SI), Y1
	VPMOVSXBD 16(SI), Y2
	VPMOVSXBD 24(SI), Y3
	VCVTDQ2PS Y0, Y0
	VCVTDQ2PS Y1, Y1
	VCVTDQ2PS Y2, Y2
	VCVTDQ2PS Y3, Y3
	VFMADD231PS (DI), Y0, Y8
	VFMADD231PS 32(DI), Y1, Y9
	VFMADD231PS 64(DI), Y2, Y10
	VFMADD231PS 96(DI), Y3, Y11
	ADDQ $32, SI
	ADDQ $128, DI
	SUBQ $32, CX
	CMPQ CX, $32
	JGE loop32

tail16:
	TESTQ CX, CX
	JE sum
	VPMOVSXBD (SI), Y0
	VPMOVSXBD 8(SI), Y1
	VCVTDQ2PS Y0, Y0
	VCVTDQ2PS Y1, Y1
	VFMADD231PS (DI), Y0, Y8
	VFMADD231PS 32(DI), Y1, Y9

sum:
	VADDPS Y9, Y8, Y8
	VADDPS Y11, Y10, Y10
	VADDPS Y10, Y8, Y8
	VEXTRACTF128 $1, Y8, X0
	VADDPS X0, X8, X0
	VMOVHLPS X0, X0, X1
	VADDPS X1, X0, X0
	VMOVSHDUP X0, X1
	VADDSS X1, X0, X0
	MOVSS X0, ret+24(FP)
	VZEROUPPER
	RET

// func dotU4Blocks(codes *byte, x *float32, scales *float32, nblk, blkBytes int) float32
// dot4Blocks with table[v] = v: the codes are converted, not looked up.
TEXT ·dotU4Blocks(SB), NOSPLIT, $0-44
	MOVQ codes+0(FP), SI
	MOVQ x+8(FP), DI
	MOVQ scales+16(FP), BX
	MOVQ nblk+24(FP), CX
	MOVQ blkBytes+32(FP), DX
	VPBROADCASTD nibmask<>(SB), Y13
	VXORPS Y12, Y12, Y12
	TESTQ CX, CX
	JE udone

ublock:
	VXORPS Y9, Y9, Y9
	VXORPS Y10, Y10, Y10
	MOVQ DX, R8

uinner:
	VPMOVZXBD   (SI), Y0
	VPSRLD      $4, Y0, Y1
	VPAND       Y13, Y0, Y0
	VPUNPCKLDQ  Y0, Y1, Y2
	VPUNPCKHDQ  Y0, Y1, Y3
	VPERM2I128  $0x20, Y3, Y2, Y4
	VPERM2I128  $0x31, Y3, Y2, Y5
	VCVTDQ2PS   Y4, Y4
	VCVTDQ2PS   Y5, Y5
	VFMADD231PS (DI), Y4, Y9
	VFMADD231PS 32(DI), Y5, Y10
	ADDQ $8, SI
	ADDQ $64, DI
	SUBQ $8, R8
	JNE uinner

	VADDPS Y10, Y9, Y9
	VBROADCASTSS (BX), Y11
	VFMADD231PS Y11, Y9, Y12
	ADDQ $4, BX
	DECQ CX
	JNE ublock

udone:
	VEXTRACTF128 $1, Y12, X0
	VADDPS X0, X12, X0
	VMOVHLPS X0, X0, X1
	VADDPS X1, X0, X0
	VMOVSHDUP X0, X1
	VADDSS X1, X0, X0
	MOVSS X0, ret+40(FP)
	VZEROUPPER
	RET


// func deq4Blocks(table *[16]float32, codes *byte, dst *float32, scales *float32, nblk, blkBytes int)
// dst[i] = table[code_i] * scales[block of i] for nblk blocks of 2*blkBytes
// elements (the codes as in dot4Blocks); blkBytes is a positive multiple of 8.
TEXT ·deq4Blocks(SB), NOSPLIT, $0-48
	MOVQ table+0(FP), AX
	MOVQ codes+8(FP), SI
	MOVQ dst+16(FP), DI
	MOVQ scales+24(FP), BX
	MOVQ nblk+32(FP), CX
	MOVQ blkBytes+40(FP), DX
	VMOVUPS (AX), Y14
	VMOVUPS 32(AX), Y15
	VPBROADCASTD nibmask<>(SB), Y13
	TESTQ CX, CX
	JE qdone

qblock:
	VBROADCASTSS (BX), Y11
	MOVQ DX, R8

qinner:
	LOOK16(0, Y4, Y5)
	VMULPS Y11, Y4, Y4
	VMULPS Y11, Y5, Y5
	VMOVUPS Y4, (DI)
	VMOVUPS Y5, 32(DI)
	ADDQ $8, SI
	ADDQ $64, DI
	SUBQ $8, R8
	JNE qinner

	ADDQ $4, BX
	DECQ CX
	JNE qblock

qdone:
	VZEROUPPER
	RET

// func deqU4Blocks(codes *byte, dst *float32, scales, zeros *float32, nblk, blkBytes int)
// dst[i] = (float32(u_i) - zeros[b]) * scales[b] for nblk groups b of
// 2*blkBytes elements; blkBytes is a positive multiple of 8.
TEXT ·deqU4Blocks(SB), NOSPLIT, $0-48
	MOVQ codes+0(FP), SI
	MOVQ dst+8(FP), DI
	MOVQ scales+16(FP), BX
	MOVQ zeros+24(FP), AX
	MOVQ nblk+32(FP), CX
	MOVQ blkBytes+40(FP), DX
	VPBROADCASTD nibmask<>(SB), Y13
	TESTQ CX, CX
	JE zdone

zblock:
	VBROADCASTSS (BX), Y11
	VBROADCASTSS (AX), Y10
	MOVQ DX, R8

zinner:
	VPMOVZXBD   (SI), Y0
	VPSRLD      $4, Y0, Y1
	VPAND       Y13, Y0, Y0
	VPUNPCKLDQ  Y0, Y1, Y2
	VPUNPCKHDQ  Y0, Y1, Y3
	VPERM2I128  $0x20, Y3, Y2, Y4
	VPERM2I128  $0x31, Y3, Y2, Y5
	VCVTDQ2PS   Y4, Y4
	VCVTDQ2PS   Y5, Y5
	VSUBPS      Y10, Y4, Y4
	VSUBPS      Y10, Y5, Y5
	VMULPS      Y11, Y4, Y4
	VMULPS      Y11, Y5, Y5
	VMOVUPS     Y4, (DI)
	VMOVUPS     Y5, 32(DI)
	ADDQ $8, SI
	ADDQ $64, DI
	SUBQ $8, R8
	JNE zinner

	ADDQ $4, BX
	ADDQ $4, AX
	DECQ CX
	JNE zblock

zdone:
	VZEROUPPER
	RET

// func deqI8(q *int8, dst *float32, n int, s, t float32)
// dst[i] = (float32(q[i]) * s) * t, each product rounded (bitsandbytes'
// int8 dequantization); n is a positive multiple of 16.
TEXT ·deqI8(SB), NOSPLIT, $0-32
	MOVQ q+0(FP), SI
	MOVQ dst+8(FP), DI
	MOVQ n+16(FP), CX
	VBROADCASTSS s+24(FP), Y10
	VBROADCASTSS t+28(FP), Y11

iloop:
	VPMOVSXBD (SI), Y0
	VPMOVSXBD 8(SI), Y1
	VCVTDQ2PS Y0, Y0
	VCVTDQ2PS Y1, Y1
	VMULPS Y10, Y0, Y0
	VMULPS Y10, Y1, Y1
	VMULPS Y11, Y0, Y0
	VMULPS Y11, Y1, Y1
	VMOVUPS Y0, (DI)
	VMOVUPS Y1, 32(DI)
	ADDQ $16, SI
	ADDQ $64, DI
	SUBQ $16, CX
	JNE iloop
	VZEROUPPER
	RET
