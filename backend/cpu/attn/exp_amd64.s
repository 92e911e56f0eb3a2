#include "textflag.h"

// Constants, each repeated in 8 lanes (AVX2 has no embedded broadcast).
DATA explo<>+0(SB)/4, $0xc2aeac4f
DATA explo<>+4(SB)/4, $0xc2aeac4f
DATA explo<>+8(SB)/4, $0xc2aeac4f
DATA explo<>+12(SB)/4, $0xc2aeac4f
DATA explo<>+16(SB)/4, $0xc2aeac4f
DATA explo<>+20(SB)/4, $0xc2aeac4f
DATA explo<>+24(SB)/4, $0xc2aeac4f
DATA explo<>+28(SB)/4, $0xc2aeac4f
GLOBL explo<>(SB), RODATA|NOPTR, $32
DATA exphi<>+0(SB)/4, $0x42b00000
DATA exphi<>+4(SB)/4, $0x42b00000
DATA exphi<>+8(SB)/4, $0x42b00000
DATA exphi<>+12(SB)/4, $0x42b00000
DATA exphi<>+16(SB)/4, $0x42b00000
DATA exphi<>+20(SB)/4, $0x42b00000
DATA exphi<>+24(SB)/4, $0x42b00000
DATA exphi<>+28(SB)/4, $0x42b00000
GLOBL exphi<>(SB), RODATA|NOPTR, $32
DATA explog2e<>+0(SB)/4, $0x3fb8aa3b
DATA explog2e<>+4(SB)/4, $0x3fb8aa3b
DATA explog2e<>+8(SB)/4, $0x3fb8aa3b
DATA explog2e<>+12(SB)/4, $0x3fb8aa3b
DATA explog2e<>+16(SB)/4, $0x3fb8aa3b
DATA explog2e<>+20(SB)/4, $0x3fb8aa3b
DATA explog2e<>+24(SB)/4, $0x3fb8aa3b
DATA explog2e<>+28(SB)/4, $0x3fb8aa3b
GLOBL explog2e<>(SB), RODATA|NOPTR, $32
DATA expmagic<>+0(SB)/4, $0x4b400000
DATA expmagic<>+4(SB)/4, $0x4b400000
DATA expmagic<>+8(SB)/4, $0x4b400000
DATA expmagic<>+12(SB)/4, $0x4b400000
DATA expmagic<>+16(SB)/4, $0x4b400000
DATA expmagic<>+20(SB)/4, $0x4b400000
DATA expmagic<>+24(SB)/4, $0x4b400000
DATA expmagic<>+28(SB)/4, $0x4b400000
GLOBL expmagic<>(SB), RODATA|NOPTR, $32
DATA expc1<>+0(SB)/4, $0x3f318000
DATA expc1<>+4(SB)/4, $0x3f318000
DATA expc1<>+8(SB)/4, $0x3f318000
DATA expc1<>+12(SB)/4, $0x3f318000
DATA expc1<>+16(SB)/4, $0x3f318000
DATA expc1<>+20(SB)/4, $0x3f318000
DATA expc1<>+24(SB)/4, $0x3f318000
DATA expc1<>+28(SB)/4, $0x3f318000
GLOBL expc1<>(SB), RODATA|NOPTR, $32
DATA expc2<>+0(SB)/4, $0xb95e8083
DATA expc2<>+4(SB)/4, $0xb95e8083
DATA expc2<>+8(SB)/4, $0xb95e8083
DATA expc2<>+12(SB)/4, $0xb95e8083
DATA expc2<>+16(SB)/4, $0xb95e8083
DATA expc2<>+20(SB)/4, $0xb95e8083
DATA expc2<>+24(SB)/4, $0xb95e8083
DATA expc2<>+28(SB)/4, $0xb95e8083
GLOBL expc2<>(SB), RODATA|NOPTR, $32
DATA expp0<>+0(SB)/4, $0x39506967
DATA expp0<>+4(SB)/4, $0x39506967
DATA expp0<>+8(SB)/4, $0x39506967
DATA expp0<>+12(SB)/4, $0x39506967
DATA expp0<>+16(SB)/4, $0x39506967
DATA expp0<>+20(SB)/4, $0x39506967
DATA expp0<>+24(SB)/4, $0x39506967
DATA expp0<>+28(SB)/4, $0x39506967
GLOBL expp0<>(SB), RODATA|NOPTR, $32
DATA expp1<>+0(SB)/4, $0x3ab743ce
DATA expp1<>+4(SB)/4, $0x3ab743ce
DATA expp1<>+8(SB)/4, $0x3ab743ce
DATA expp1<>+12(SB)/4, $0x3ab743ce
DATA expp1<>+16(SB)/4, $0x3ab743ce
DATA expp1<>+20(SB)/4, $0x3ab743ce
DATA expp1<>+24(SB)/4, $0x3ab743ce
DATA expp1<>+28(SB)/4, $0x3ab743ce
GLOBL expp1<>(SB), RODATA|NOPTR, $32
DATA expp2<>+0(SB)/4, $0x3c088908
DATA expp2<>+4(SB)/4, $0x3c088908
DATA expp2<>+8(SB)/4, $0x3c088908
DATA expp2<>+12(SB)/4, $0x3c088908
DATA expp2<>+16(SB)/4, $0x3c088908
DATA expp2<>+20(SB)/4, $0x3c088908
DATA expp2<>+24(SB)/4, $0x3c088908
DATA expp2<>+28(SB)/4, $0x3c088908
GLOBL expp2<>(SB), RODATA|NOPTR, $32
DATA expp3<>+0(SB)/4, $0x3d2aa9c1
DATA expp3<>+4(SB)/4, $0x3d2aa9c1
DATA expp3<>+8(SB)/4, $0x3d2aa9c1
DATA expp3<>+12(SB)/4, $0x3d2aa9c1
DATA expp3<>+16(SB)/4, $0x3d2aa9c1
DATA expp3<>+20(SB)/4, $0x3d2aa9c1
DATA expp3<>+24(SB)/4, $0x3d2aa9c1
DATA expp3<>+28(SB)/4, $0x3d2aa9c1
GLOBL expp3<>(SB), RODATA|NOPTR, $32
DATA expp4<>+0(SB)/4, $0x3e2aaaaa
DATA expp4<>+4(SB)/4, $0x3e2aaaaa
DATA expp4<>+8(SB)/4, $0x3e2aaaaa
DATA expp4<>+12(SB)/4, $0x3e2aaaaa
DATA expp4<>+16(SB)/4, $0x3e2aaaaa
DATA expp4<>+20(SB)/4, $0x3e2aaaaa
DATA expp4<>+24(SB)/4, $0x3e2aaaaa
DATA expp4<>+28(SB)/4, $0x3e2aaaaa
GLOBL expp4<>(SB), RODATA|NOPTR, $32
DATA expp5<>+0(SB)/4, $0x3f000000
DATA expp5<>+4(SB)/4, $0x3f000000
DATA expp5<>+8(SB)/4, $0x3f000000
DATA expp5<>+12(SB)/4, $0x3f000000
DATA expp5<>+16(SB)/4, $0x3f000000
DATA expp5<>+20(SB)/4, $0x3f000000
DATA expp5<>+24(SB)/4, $0x3f000000
DATA expp5<>+28(SB)/4, $0x3f000000
GLOBL expp5<>(SB), RODATA|NOPTR, $32
DATA expone<>+0(SB)/4, $0x3f800000
DATA expone<>+4(SB)/4, $0x3f800000
DATA expone<>+8(SB)/4, $0x3f800000
DATA expone<>+12(SB)/4, $0x3f800000
DATA expone<>+16(SB)/4, $0x3f800000
DATA expone<>+20(SB)/4, $0x3f800000
DATA expone<>+24(SB)/4, $0x3f800000
DATA expone<>+28(SB)/4, $0x3f800000
GLOBL expone<>(SB), RODATA|NOPTR, $32
DATA exp127<>+0(SB)/4, $0x0000007f
DATA exp127<>+4(SB)/4, $0x0000007f
DATA exp127<>+8(SB)/4, $0x0000007f
DATA exp127<>+12(SB)/4, $0x0000007f
DATA exp127<>+16(SB)/4, $0x0000007f
DATA exp127<>+20(SB)/4, $0x0000007f
DATA exp127<>+24(SB)/4, $0x0000007f
DATA exp127<>+28(SB)/4, $0x0000007f
GLOBL exp127<>(SB), RODATA|NOPTR, $32

// func expSubAVX2(x *float32, n int, m float32) (sum float32)
//
// x[i] = exp(x[i] - m) for i < n (n a multiple of 8), returning the sum of
// the results. Same method as expf: t = x*log2e rounded to the integer n
// (the 1.5*2^23 trick), r = x - n*ln2 in two parts (Cody-Waite), Cephes'
// polynomial for e^r, times 2^n built in the exponent bits. x is clamped
// to [-87.33654, 88] so 2^n stays a normal float32; lanes below -87.33654
// (-Inf included) give 0.
TEXT ·expSubAVX2(SB), NOSPLIT, $0-28
	MOVQ         x+0(FP), SI
	MOVQ         n+8(FP), CX
	VBROADCASTSS m+16(FP), Y0
	VXORPS       Y15, Y15, Y15
	VMOVUPS      explog2e<>(SB), Y14
	VMOVUPS      expmagic<>(SB), Y13
	VMOVUPS      explo<>(SB), Y12
	VMOVUPS      exphi<>(SB), Y11
	VMOVUPS      expc1<>(SB), Y10
	VMOVUPS      expc2<>(SB), Y9

loop:
	CMPQ CX, $8
	JLT  done
	VMOVUPS (SI), Y1
	VSUBPS  Y0, Y1, Y1           // x = v - m
	VCMPPS  $1, Y12, Y1, Y8      // dead = x < lo (ordered: NaN is not dead)
	VMINPS  Y1, Y11, Y1          // x = min(hi, x), NaN propagates
	VMAXPS  Y1, Y12, Y1          // x = max(lo, x)
	VMOVAPS Y1, Y2
	VFMADD213PS Y13, Y14, Y2     // t = x*log2e + magic
	VSUBPS  Y13, Y2, Y3          // fn = t - magic = round(x*log2e)
	VCVTPS2DQ Y3, Y4             // n
	VPADDD  exp127<>(SB), Y4, Y4
	VPSLLD  $23, Y4, Y4          // 2^n
	VFNMADD231PS Y10, Y3, Y1     // r = x - fn*c1
	VFNMADD231PS Y9, Y3, Y1      // r -= fn*c2
	VMULPS  Y1, Y1, Y5           // r2
	VMOVUPS expp0<>(SB), Y6
	VFMADD213PS expp1<>(SB), Y1, Y6
	VFMADD213PS expp2<>(SB), Y1, Y6
	VFMADD213PS expp3<>(SB), Y1, Y6
	VFMADD213PS expp4<>(SB), Y1, Y6
	VFMADD213PS expp5<>(SB), Y1, Y6
	VFMADD213PS Y1, Y5, Y6       // p*r2 + r
	VADDPS  expone<>(SB), Y6, Y6 // + 1
	VMULPS  Y4, Y6, Y6           // * 2^n
	VANDNPS Y6, Y8, Y6           // dead lanes -> 0
	VMOVUPS Y6, (SI)
	VADDPS  Y6, Y15, Y15
	ADDQ    $32, SI
	SUBQ    $8, CX
	JMP     loop

done:
	VEXTRACTF128 $1, Y15, X1
	VADDPS       X1, X15, X15
	VHADDPS      X15, X15, X15
	VHADDPS      X15, X15, X15
	VZEROUPPER
	MOVSS        X15, sum+24(FP)
	RET

// func cpuid(eaxArg, ecxArg uint32) (eax, ebx, ecx, edx uint32)
TEXT ·cpuid(SB), NOSPLIT, $0-24
	MOVL eaxArg+0(FP), AX
	MOVL ecxArg+4(FP), CX
	CPUID
	MOVL AX, eax+8(FP)
	MOVL BX, ebx+12(FP)
	MOVL CX, ecx+16(FP)
	MOVL DX, edx+20(FP)
	RET

// func xgetbv() (eax, edx uint32)
TEXT ·xgetbv(SB), NOSPLIT, $0-8
	MOVL $0, CX
	XGETBV
	MOVL AX, eax+0(FP)
	MOVL DX, edx+4(FP)
	RET
