#include "textflag.h"

// The AVX2/FMA micro-kernel: a 6x16 tile of C from a packed 6 x k panel of
// op(A) (k groups of 6 floats, alpha already applied) and a packed k x 16
// panel of op(B) (k rows of 16 floats). Twelve ymm accumulators Y0-Y11 hold
// the tile (row i in Y(2i), Y(2i+1)); Y12-Y13 hold a row of B, Y14-Y15
// broadcast elements of A.
//
// mode 0: C = AB; mode 1: C = C + AB; mode 2: C = beta*C + AB (the product
// beta*C rounded, then the sum rounded, as the Go edge path does).

// KSTEP multiplies one column of the A panel by one row of the B panel.
#define KSTEP(aoff, boff) \
	VMOVUPS      boff(BX), Y12; \
	VMOVUPS      boff+32(BX), Y13; \
	VBROADCASTSS aoff(AX), Y14; \
	VFMADD231PS  Y12, Y14, Y0; \
	VFMADD231PS  Y13, Y14, Y1; \
	VBROADCASTSS aoff+4(AX), Y15; \
	VFMADD231PS  Y12, Y15, Y2; \
	VFMADD231PS  Y13, Y15, Y3; \
	VBROADCASTSS aoff+8(AX), Y14; \
	VFMADD231PS  Y12, Y14, Y4; \
	VFMADD231PS  Y13, Y14, Y5; \
	VBROADCASTSS aoff+12(AX), Y15; \
	VFMADD231PS  Y12, Y15, Y6; \
	VFMADD231PS  Y13, Y15, Y7; \
	VBROADCASTSS aoff+16(AX), Y14; \
	VFMADD231PS  Y12, Y14, Y8; \
	VFMADD231PS  Y13, Y14, Y9; \
	VBROADCASTSS aoff+20(AX), Y15; \
	VFMADD231PS  Y12, Y15, Y10; \
	VFMADD231PS  Y13, Y15, Y11

// func kernel6x16(k int, a, b, c *float32, ldc int, beta float32, mode int)
TEXT ·kernel6x16(SB), NOSPLIT, $0-56
	MOVQ k+0(FP), CX
	MOVQ a+8(FP), AX
	MOVQ b+16(FP), BX
	MOVQ c+24(FP), DI
	MOVQ ldc+32(FP), SI
	SHLQ $2, SI               // row stride of C in bytes
	LEAQ (SI)(SI*2), R9       // 3*stride
	LEAQ (DI)(SI*4), R10      // row 4

	// Fetch the C tile while the products are computed.
	PREFETCHT0 (DI)
	PREFETCHT0 60(DI)
	PREFETCHT0 (DI)(SI*1)
	PREFETCHT0 60(DI)(SI*1)
	PREFETCHT0 (DI)(SI*2)
	PREFETCHT0 60(DI)(SI*2)
	PREFETCHT0 (DI)(R9*1)
	PREFETCHT0 60(DI)(R9*1)
	PREFETCHT0 (R10)
	PREFETCHT0 60(R10)
	PREFETCHT0 (R10)(SI*1)
	PREFETCHT0 60(R10)(SI*1)

	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	VXORPS Y8, Y8, Y8
	VXORPS Y9, Y9, Y9
	VXORPS Y10, Y10, Y10
	VXORPS Y11, Y11, Y11

	CMPQ CX, $4
	JLT  tail

loop4:
	KSTEP(0, 0)
	KSTEP(24, 64)
	KSTEP(48, 128)
	KSTEP(72, 192)
	ADDQ $96, AX
	ADDQ $256, BX
	SUBQ $4, CX
	CMPQ CX, $4
	JGE  loop4

tail:
	TESTQ CX, CX
	JEQ   store

tail1:
	KSTEP(0, 0)
	ADDQ $24, AX
	ADDQ $64, BX
	DECQ CX
	JNE  tail1

store:
	MOVQ mode+48(FP), DX
	CMPQ DX, $1
	JEQ  accumulate
	JGT  scale

	VMOVUPS Y0, (DI)
	VMOVUPS Y1, 32(DI)
	VMOVUPS Y2, (DI)(SI*1)
	VMOVUPS Y3, 32(DI)(SI*1)
	VMOVUPS Y4, (DI)(SI*2)
	VMOVUPS Y5, 32(DI)(SI*2)
	VMOVUPS Y6, (DI)(R9*1)
	VMOVUPS Y7, 32(DI)(R9*1)
	VMOVUPS Y8, (R10)
	VMOVUPS Y9, 32(R10)
	VMOVUPS Y10, (R10)(SI*1)
	VMOVUPS Y11, 32(R10)(SI*1)
	VZEROUPPER
	RET

accumulate:
	VADDPS  (DI), Y0, Y0
	VADDPS  32(DI), Y1, Y1
	VADDPS  (DI)(SI*1), Y2, Y2
	VADDPS  32(DI)(SI*1), Y3, Y3
	VADDPS  (DI)(SI*2), Y4, Y4
	VADDPS  32(DI)(SI*2), Y5, Y5
	VADDPS  (DI)(R9*1), Y6, Y6
	VADDPS  32(DI)(R9*1), Y7, Y7
	VADDPS  (R10), Y8, Y8
	VADDPS  32(R10), Y9, Y9
	VADDPS  (R10)(SI*1), Y10, Y10
	VADDPS  32(R10)(SI*1), Y11, Y11
	VMOVUPS Y0, (DI)
	VMOVUPS Y1, 32(DI)
	VMOVUPS Y2, (DI)(SI*1)
	VMOVUPS Y3, 32(DI)(SI*1)
	VMOVUPS Y4, (DI)(SI*2)
	VMOVUPS Y5, 32(DI)(SI*2)
	VMOVUPS Y6, (DI)(R9*1)
	VMOVUPS Y7, 32(DI)(R9*1)
	VMOVUPS Y8, (R10)
	VMOVUPS Y9, 32(R10)
	VMOVUPS Y10, (R10)(SI*1)
	VMOVUPS Y11, 32(R10)(SI*1)
	VZEROUPPER
	RET

#define SCALEROW(src, acc) \
	VMULPS src, Y12, Y13; \
	VADDPS Y13, acc, acc; \
	VMOVUPS acc, src

scale:
	VBROADCASTSS beta+40(FP), Y12
	SCALEROW((DI), Y0)
	SCALEROW(32(DI), Y1)
	SCALEROW((DI)(SI*1), Y2)
	SCALEROW(32(DI)(SI*1), Y3)
	SCALEROW((DI)(SI*2), Y4)
	SCALEROW(32(DI)(SI*2), Y5)
	SCALEROW((DI)(R9*1), Y6)
	SCALEROW(32(DI)(R9*1), Y7)
	SCALEROW((R10), Y8)
	SCALEROW(32(R10), Y9)
	SCALEROW((R10)(SI*1), Y10)
	SCALEROW(32(R10)(SI*1), Y11)
	VZEROUPPER
	RET
