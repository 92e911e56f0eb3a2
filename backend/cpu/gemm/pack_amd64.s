#include "textflag.h"

// Packing kernels (AVX), used by packA and packB for full panels; the
// remainder of kc below a multiple of 8 is packed in Go.

// TRANSPOSE4 turns four ymm registers holding [row0|row4], [row1|row5],
// [row2|row6], [row3|row7] (four consecutive elements each) into four
// registers o0..o3 holding, for each of the four elements in turn, the
// values of rows 0..7. Clobbers Y8-Y11.
#define TRANSPOSE4(r0, r1, r2, r3, o0, o1, o2, o3) \
	VUNPCKLPS r1, r0, Y8; \
	VUNPCKHPS r1, r0, Y9; \
	VUNPCKLPS r3, r2, Y10; \
	VUNPCKHPS r3, r2, Y11; \
	VSHUFPS   $0x44, Y10, Y8, o0; \
	VSHUFPS   $0xEE, Y10, Y8, o1; \
	VSHUFPS   $0x44, Y11, Y9, o2; \
	VSHUFPS   $0xEE, Y11, Y9, o3

// LOAD8 loads elements [off, off+4) of rows 0..7 (row r at base + r*stride;
// R12 = base, R13 = base + 4*stride, SI = stride, R9 = 3*stride) into
// Y0..Y3 as [row0|row4], [row1|row5], [row2|row6], [row3|row7].
#define LOAD8(off) \
	VMOVUPS     off(R12), X0; \
	VINSERTF128 $1, off(R13), Y0, Y0; \
	VMOVUPS     off(R12)(SI*1), X1; \
	VINSERTF128 $1, off(R13)(SI*1), Y1, Y1; \
	VMOVUPS     off(R12)(SI*2), X2; \
	VINSERTF128 $1, off(R13)(SI*2), Y2, Y2; \
	VMOVUPS     off(R12)(R9*1), X3; \
	VINSERTF128 $1, off(R13)(R9*1), Y3, Y3

// func packB16T(kc int, src *float32, ldb int, dst *float32)
//
// Packs a 16-column panel of op(B) = B^T: row jj of B (16 rows at src,
// stride ldb) becomes column jj of the kc x 16 panel at dst. kc must be a
// positive multiple of 8.
TEXT ·packB16T(SB), NOSPLIT, $0-32
	MOVQ kc+0(FP), CX
	MOVQ src+8(FP), AX
	MOVQ ldb+16(FP), SI
	MOVQ dst+24(FP), DI
	SHLQ $2, SI
	LEAQ (SI)(SI*2), R9
	LEAQ (AX)(SI*8), R10 // rows 8..15
	SHRQ $3, CX

loopB:
	// Rows 0..7 -> columns 0..7 of the panel rows p..p+7.
	MOVQ AX, R12
	LEAQ (AX)(SI*4), R13
	LOAD8(0)
	TRANSPOSE4(Y0, Y1, Y2, Y3, Y4, Y5, Y6, Y7)
	VMOVUPS Y4, 0(DI)
	VMOVUPS Y5, 64(DI)
	VMOVUPS Y6, 128(DI)
	VMOVUPS Y7, 192(DI)
	LOAD8(16)
	TRANSPOSE4(Y0, Y1, Y2, Y3, Y4, Y5, Y6, Y7)
	VMOVUPS Y4, 256(DI)
	VMOVUPS Y5, 320(DI)
	VMOVUPS Y6, 384(DI)
	VMOVUPS Y7, 448(DI)

	// Rows 8..15 -> columns 8..15.
	MOVQ R10, R12
	LEAQ (R10)(SI*4), R13
	LOAD8(0)
	TRANSPOSE4(Y0, Y1, Y2, Y3, Y4, Y5, Y6, Y7)
	VMOVUPS Y4, 32(DI)
	VMOVUPS Y5, 96(DI)
	VMOVUPS Y6, 160(DI)
	VMOVUPS Y7, 224(DI)
	LOAD8(16)
	TRANSPOSE4(Y0, Y1, Y2, Y3, Y4, Y5, Y6, Y7)
	VMOVUPS Y4, 288(DI)
	VMOVUPS Y5, 352(DI)
	VMOVUPS Y6, 416(DI)
	VMOVUPS Y7, 480(DI)

	ADDQ $32, AX
	ADDQ $32, R10
	ADDQ $512, DI
	DECQ CX
	JNE  loopB
	VZEROUPPER
	RET

// LOAD6 is LOAD8 for six rows: rows 6 and 7 read as zero (a VEX load into
// an xmm register clears the upper half).
#define LOAD6(off) \
	VMOVUPS     off(R12), X0; \
	VINSERTF128 $1, off(R13), Y0, Y0; \
	VMOVUPS     off(R12)(SI*1), X1; \
	VINSERTF128 $1, off(R13)(SI*1), Y1, Y1; \
	VMOVUPS     off(R12)(SI*2), X2; \
	VMOVUPS     off(R12)(R9*1), X3

// func packA6N(kc int, src *float32, lda int, dst *float32, alpha float32)
//
// Packs a 6-row panel of alpha*op(A) = alpha*A: row ii of A (6 rows at src,
// stride lda) becomes element ii of each of the kc groups of 6 at dst. kc
// must be a positive multiple of 8. Each group is written with a 32-byte
// store whose last 8 bytes (zeros) the next group overwrites, so 8 bytes
// past the panel's end are written: the caller leaves room for them.
TEXT ·packA6N(SB), NOSPLIT, $0-36
	MOVQ kc+0(FP), CX
	MOVQ src+8(FP), R12
	MOVQ lda+16(FP), SI
	MOVQ dst+24(FP), DI
	VBROADCASTSS alpha+32(FP), Y15
	SHLQ $2, SI
	LEAQ (SI)(SI*2), R9
	LEAQ (R12)(SI*4), R13
	SHRQ $3, CX

loopA:
	LOAD6(0)
	TRANSPOSE4(Y0, Y1, Y2, Y3, Y4, Y5, Y6, Y7)
	VMULPS  Y15, Y4, Y4
	VMULPS  Y15, Y5, Y5
	VMULPS  Y15, Y6, Y6
	VMULPS  Y15, Y7, Y7
	VMOVUPS Y4, 0(DI)
	VMOVUPS Y5, 24(DI)
	VMOVUPS Y6, 48(DI)
	VMOVUPS Y7, 72(DI)
	LOAD6(16)
	TRANSPOSE4(Y0, Y1, Y2, Y3, Y4, Y5, Y6, Y7)
	VMULPS  Y15, Y4, Y4
	VMULPS  Y15, Y5, Y5
	VMULPS  Y15, Y6, Y6
	VMULPS  Y15, Y7, Y7
	VMOVUPS Y4, 96(DI)
	VMOVUPS Y5, 120(DI)
	VMOVUPS Y6, 144(DI)
	VMOVUPS Y7, 168(DI)

	ADDQ $32, R12
	ADDQ $32, R13
	ADDQ $192, DI
	DECQ CX
	JNE  loopA
	VZEROUPPER
	RET

// func packB16N(kc int, src *float32, ldb int, dst *float32)
//
// Packs a 16-column panel of op(B) = B: 16 consecutive elements of each of
// kc rows of B (at src, stride ldb) become the kc rows of the panel at dst.
TEXT ·packB16N(SB), NOSPLIT, $0-32
	MOVQ kc+0(FP), CX
	MOVQ src+8(FP), AX
	MOVQ ldb+16(FP), SI
	MOVQ dst+24(FP), DI
	SHLQ $2, SI
	LEAQ (SI)(SI*2), R9
	CMPQ CX, $4
	JLT  tailN

loopN:
	VMOVUPS (AX), Y0
	VMOVUPS 32(AX), Y1
	VMOVUPS (AX)(SI*1), Y2
	VMOVUPS 32(AX)(SI*1), Y3
	VMOVUPS (AX)(SI*2), Y4
	VMOVUPS 32(AX)(SI*2), Y5
	VMOVUPS (AX)(R9*1), Y6
	VMOVUPS 32(AX)(R9*1), Y7
	VMOVUPS Y0, (DI)
	VMOVUPS Y1, 32(DI)
	VMOVUPS Y2, 64(DI)
	VMOVUPS Y3, 96(DI)
	VMOVUPS Y4, 128(DI)
	VMOVUPS Y5, 160(DI)
	VMOVUPS Y6, 192(DI)
	VMOVUPS Y7, 224(DI)
	LEAQ    (AX)(SI*4), AX
	ADDQ    $256, DI
	SUBQ    $4, CX
	CMPQ    CX, $4
	JGE     loopN

tailN:
	TESTQ CX, CX
	JEQ   doneN

tail1N:
	VMOVUPS (AX), Y0
	VMOVUPS 32(AX), Y1
	VMOVUPS Y0, (DI)
	VMOVUPS Y1, 32(DI)
	ADDQ    SI, AX
	ADDQ    $64, DI
	DECQ    CX
	JNE     tail1N

doneN:
	VZEROUPPER
	RET

// func packA6T(kc int, src *float32, lda int, dst *float32, alpha float32)
//
// Packs a 6-row panel of alpha*op(A) = alpha*A^T: 6 consecutive elements of
// each of kc rows of A (at src, stride lda) become the kc groups of 6 at
// dst. Like packA6N it writes 8 bytes past the panel's end.
TEXT ·packA6T(SB), NOSPLIT, $0-36
	MOVQ kc+0(FP), CX
	MOVQ src+8(FP), AX
	MOVQ lda+16(FP), SI
	MOVQ dst+24(FP), DI
	VBROADCASTSS alpha+32(FP), Y15
	SHLQ $2, SI
	LEAQ (SI)(SI*2), R9
	CMPQ CX, $4
	JLT  tailT

loopT:
	VMOVUPS     (AX), X0
	VMOVSD      16(AX), X1
	VMOVUPS     (AX)(SI*1), X2
	VMOVSD      16(AX)(SI*1), X3
	VMOVUPS     (AX)(SI*2), X4
	VMOVSD      16(AX)(SI*2), X5
	VMOVUPS     (AX)(R9*1), X6
	VMOVSD      16(AX)(R9*1), X7
	VINSERTF128 $1, X1, Y0, Y0
	VINSERTF128 $1, X3, Y2, Y2
	VINSERTF128 $1, X5, Y4, Y4
	VINSERTF128 $1, X7, Y6, Y6
	VMULPS      Y15, Y0, Y0
	VMULPS      Y15, Y2, Y2
	VMULPS      Y15, Y4, Y4
	VMULPS      Y15, Y6, Y6
	VMOVUPS     Y0, (DI)
	VMOVUPS     Y2, 24(DI)
	VMOVUPS     Y4, 48(DI)
	VMOVUPS     Y6, 72(DI)
	LEAQ        (AX)(SI*4), AX
	ADDQ        $96, DI
	SUBQ        $4, CX
	CMPQ        CX, $4
	JGE         loopT

tailT:
	TESTQ CX, CX
	JEQ   doneT

tail1T:
	VMOVUPS     (AX), X0
	VMOVSD      16(AX), X1
	VINSERTF128 $1, X1, Y0, Y0
	VMULPS      Y15, Y0, Y0
	VMOVUPS     Y0, (DI)
	ADDQ        SI, AX
	ADDQ        $24, DI
	DECQ        CX
	JNE         tail1T

doneT:
	VZEROUPPER
	RET

// func prefetchRows(addr *float32, stride, rows, bytes int)
//
// Prefetches rows runs of bytes bytes, stride bytes apart, from addr into
// L1 (one PREFETCHT0 per cache line, plus the line holding the last byte).
TEXT ·prefetchRows(SB), NOSPLIT, $0-32
	MOVQ addr+0(FP), AX
	MOVQ stride+8(FP), SI
	MOVQ rows+16(FP), CX
	MOVQ bytes+24(FP), DX
	TESTQ CX, CX
	JLE  donePF
	DECQ DX

rowPF:
	XORQ BX, BX

linePF:
	PREFETCHT0 (AX)(BX*1)
	ADDQ $64, BX
	CMPQ BX, DX
	JLT  linePF
	PREFETCHT0 (AX)(DX*1)
	ADDQ SI, AX
	DECQ CX
	JNE  rowPF

donePF:
	RET
