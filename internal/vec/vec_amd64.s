#include "textflag.h"

// Constants, each repeated in 8 lanes. Exp: Cody-Waite reduction and
// Cephes' polynomial, as Expf in vec.go.
DATA vexplo<>+0(SB)/4, $0xc2aeac4f
DATA vexplo<>+4(SB)/4, $0xc2aeac4f
DATA vexplo<>+8(SB)/4, $0xc2aeac4f
DATA vexplo<>+12(SB)/4, $0xc2aeac4f
DATA vexplo<>+16(SB)/4, $0xc2aeac4f
DATA vexplo<>+20(SB)/4, $0xc2aeac4f
DATA vexplo<>+24(SB)/4, $0xc2aeac4f
DATA vexplo<>+28(SB)/4, $0xc2aeac4f
GLOBL vexplo<>(SB), RODATA|NOPTR, $32
DATA vexphi<>+0(SB)/4, $0x42b00000
DATA vexphi<>+4(SB)/4, $0x42b00000
DATA vexphi<>+8(SB)/4, $0x42b00000
DATA vexphi<>+12(SB)/4, $0x42b00000
DATA vexphi<>+16(SB)/4, $0x42b00000
DATA vexphi<>+20(SB)/4, $0x42b00000
DATA vexphi<>+24(SB)/4, $0x42b00000
DATA vexphi<>+28(SB)/4, $0x42b00000
GLOBL vexphi<>(SB), RODATA|NOPTR, $32
DATA vexplog2e<>+0(SB)/4, $0x3fb8aa3b
DATA vexplog2e<>+4(SB)/4, $0x3fb8aa3b
DATA vexplog2e<>+8(SB)/4, $0x3fb8aa3b
DATA vexplog2e<>+12(SB)/4, $0x3fb8aa3b
DATA vexplog2e<>+16(SB)/4, $0x3fb8aa3b
DATA vexplog2e<>+20(SB)/4, $0x3fb8aa3b
DATA vexplog2e<>+24(SB)/4, $0x3fb8aa3b
DATA vexplog2e<>+28(SB)/4, $0x3fb8aa3b
GLOBL vexplog2e<>(SB), RODATA|NOPTR, $32
DATA vexpmagic<>+0(SB)/4, $0x4b400000
DATA vexpmagic<>+4(SB)/4, $0x4b400000
DATA vexpmagic<>+8(SB)/4, $0x4b400000
DATA vexpmagic<>+12(SB)/4, $0x4b400000
DATA vexpmagic<>+16(SB)/4, $0x4b400000
DATA vexpmagic<>+20(SB)/4, $0x4b400000
DATA vexpmagic<>+24(SB)/4, $0x4b400000
DATA vexpmagic<>+28(SB)/4, $0x4b400000
GLOBL vexpmagic<>(SB), RODATA|NOPTR, $32
DATA vexpc1<>+0(SB)/4, $0x3f318000
DATA vexpc1<>+4(SB)/4, $0x3f318000
DATA vexpc1<>+8(SB)/4, $0x3f318000
DATA vexpc1<>+12(SB)/4, $0x3f318000
DATA vexpc1<>+16(SB)/4, $0x3f318000
DATA vexpc1<>+20(SB)/4, $0x3f318000
DATA vexpc1<>+24(SB)/4, $0x3f318000
DATA vexpc1<>+28(SB)/4, $0x3f318000
GLOBL vexpc1<>(SB), RODATA|NOPTR, $32
DATA vexpc2<>+0(SB)/4, $0xb95e8083
DATA vexpc2<>+4(SB)/4, $0xb95e8083
DATA vexpc2<>+8(SB)/4, $0xb95e8083
DATA vexpc2<>+12(SB)/4, $0xb95e8083
DATA vexpc2<>+16(SB)/4, $0xb95e8083
DATA vexpc2<>+20(SB)/4, $0xb95e8083
DATA vexpc2<>+24(SB)/4, $0xb95e8083
DATA vexpc2<>+28(SB)/4, $0xb95e8083
GLOBL vexpc2<>(SB), RODATA|NOPTR, $32
DATA vexpp0<>+0(SB)/4, $0x39506967
DATA vexpp0<>+4(SB)/4, $0x39506967
DATA vexpp0<>+8(SB)/4, $0x39506967
DATA vexpp0<>+12(SB)/4, $0x39506967
DATA vexpp0<>+16(SB)/4, $0x39506967
DATA vexpp0<>+20(SB)/4, $0x39506967
DATA vexpp0<>+24(SB)/4, $0x39506967
DATA vexpp0<>+28(SB)/4, $0x39506967
GLOBL vexpp0<>(SB), RODATA|NOPTR, $32
DATA vexpp1<>+0(SB)/4, $0x3ab743ce
DATA vexpp1<>+4(SB)/4, $0x3ab743ce
DATA vexpp1<>+8(SB)/4, $0x3ab743ce
DATA vexpp1<>+12(SB)/4, $0x3ab743ce
DATA vexpp1<>+16(SB)/4, $0x3ab743ce
DATA vexpp1<>+20(SB)/4, $0x3ab743ce
DATA vexpp1<>+24(SB)/4, $0x3ab743ce
DATA vexpp1<>+28(SB)/4, $0x3ab743ce
GLOBL vexpp1<>(SB), RODATA|NOPTR, $32
DATA vexpp2<>+0(SB)/4, $0x3c088908
DATA vexpp2<>+4(SB)/4, $0x3c088908
DATA vexpp2<>+8(SB)/4, $0x3c088908
DATA vexpp2<>+12(SB)/4, $0x3c088908
DATA vexpp2<>+16(SB)/4, $0x3c088908
DATA vexpp2<>+20(SB)/4, $0x3c088908
DATA vexpp2<>+24(SB)/4, $0x3c088908
DATA vexpp2<>+28(SB)/4, $0x3c088908
GLOBL vexpp2<>(SB), RODATA|NOPTR, $32
DATA vexpp3<>+0(SB)/4, $0x3d2aa9c1
DATA vexpp3<>+4(SB)/4, $0x3d2aa9c1
DATA vexpp3<>+8(SB)/4, $0x3d2aa9c1
DATA vexpp3<>+12(SB)/4, $0x3d2aa9c1
DATA vexpp3<>+16(SB)/4, $0x3d2aa9c1
DATA vexpp3<>+20(SB)/4, $0x3d2aa9c1
DATA vexpp3<>+24(SB)/4, $0x3d2aa9c1
DATA vexpp3<>+28(SB)/4, $0x3d2aa9c1
GLOBL vexpp3<>(SB), RODATA|NOPTR, $32
DATA vexpp4<>+0(SB)/4, $0x3e2aaaaa
DATA vexpp4<>+4(SB)/4, $0x3e2aaaaa
DATA vexpp4<>+8(SB)/4, $0x3e2aaaaa
DATA vexpp4<>+12(SB)/4, $0x3e2aaaaa
DATA vexpp4<>+16(SB)/4, $0x3e2aaaaa
DATA vexpp4<>+20(SB)/4, $0x3e2aaaaa
DATA vexpp4<>+24(SB)/4, $0x3e2aaaaa
DATA vexpp4<>+28(SB)/4, $0x3e2aaaaa
GLOBL vexpp4<>(SB), RODATA|NOPTR, $32
DATA vexpp5<>+0(SB)/4, $0x3f000000
DATA vexpp5<>+4(SB)/4, $0x3f000000
DATA vexpp5<>+8(SB)/4, $0x3f000000
DATA vexpp5<>+12(SB)/4, $0x3f000000
DATA vexpp5<>+16(SB)/4, $0x3f000000
DATA vexpp5<>+20(SB)/4, $0x3f000000
DATA vexpp5<>+24(SB)/4, $0x3f000000
DATA vexpp5<>+28(SB)/4, $0x3f000000
GLOBL vexpp5<>(SB), RODATA|NOPTR, $32
DATA vone<>+0(SB)/4, $0x3f800000
DATA vone<>+4(SB)/4, $0x3f800000
DATA vone<>+8(SB)/4, $0x3f800000
DATA vone<>+12(SB)/4, $0x3f800000
DATA vone<>+16(SB)/4, $0x3f800000
DATA vone<>+20(SB)/4, $0x3f800000
DATA vone<>+24(SB)/4, $0x3f800000
DATA vone<>+28(SB)/4, $0x3f800000
GLOBL vone<>(SB), RODATA|NOPTR, $32
DATA vexp127<>+0(SB)/4, $0x7f
DATA vexp127<>+4(SB)/4, $0x7f
DATA vexp127<>+8(SB)/4, $0x7f
DATA vexp127<>+12(SB)/4, $0x7f
DATA vexp127<>+16(SB)/4, $0x7f
DATA vexp127<>+20(SB)/4, $0x7f
DATA vexp127<>+24(SB)/4, $0x7f
DATA vexp127<>+28(SB)/4, $0x7f
GLOBL vexp127<>(SB), RODATA|NOPTR, $32
DATA vgeluA<>+0(SB)/4, $0xbfcc422a
DATA vgeluA<>+4(SB)/4, $0xbfcc422a
DATA vgeluA<>+8(SB)/4, $0xbfcc422a
DATA vgeluA<>+12(SB)/4, $0xbfcc422a
DATA vgeluA<>+16(SB)/4, $0xbfcc422a
DATA vgeluA<>+20(SB)/4, $0xbfcc422a
DATA vgeluA<>+24(SB)/4, $0xbfcc422a
DATA vgeluA<>+28(SB)/4, $0xbfcc422a
GLOBL vgeluA<>(SB), RODATA|NOPTR, $32
DATA vgeluB<>+0(SB)/4, $0xbd922279
DATA vgeluB<>+4(SB)/4, $0xbd922279
DATA vgeluB<>+8(SB)/4, $0xbd922279
DATA vgeluB<>+12(SB)/4, $0xbd922279
DATA vgeluB<>+16(SB)/4, $0xbd922279
DATA vgeluB<>+20(SB)/4, $0xbd922279
DATA vgeluB<>+24(SB)/4, $0xbd922279
DATA vgeluB<>+28(SB)/4, $0xbd922279
GLOBL vgeluB<>(SB), RODATA|NOPTR, $32
DATA vgeluS<>+0(SB)/4, $0x3f4c422a
DATA vgeluS<>+4(SB)/4, $0x3f4c422a
DATA vgeluS<>+8(SB)/4, $0x3f4c422a
DATA vgeluS<>+12(SB)/4, $0x3f4c422a
DATA vgeluS<>+16(SB)/4, $0x3f4c422a
DATA vgeluS<>+20(SB)/4, $0x3f4c422a
DATA vgeluS<>+24(SB)/4, $0x3f4c422a
DATA vgeluS<>+28(SB)/4, $0x3f4c422a
GLOBL vgeluS<>(SB), RODATA|NOPTR, $32
DATA vgeluQ<>+0(SB)/4, $0x3ddb33b6
DATA vgeluQ<>+4(SB)/4, $0x3ddb33b6
DATA vgeluQ<>+8(SB)/4, $0x3ddb33b6
DATA vgeluQ<>+12(SB)/4, $0x3ddb33b6
DATA vgeluQ<>+16(SB)/4, $0x3ddb33b6
DATA vgeluQ<>+20(SB)/4, $0x3ddb33b6
DATA vgeluQ<>+24(SB)/4, $0x3ddb33b6
DATA vgeluQ<>+28(SB)/4, $0x3ddb33b6
GLOBL vgeluQ<>(SB), RODATA|NOPTR, $32

// EXP sets Y6 = exp(Y1) lane by lane, with Y1 clamped to [lo, 88] and lanes
// below lo (-Inf included) giving 0; NaN propagates. Needs Y11 = hi,
// Y12 = lo, Y13 = magic (1.5*2^23). Clobbers Y1-Y5, Y8.
#define EXP \
	VCMPPS       $1, Y12, Y1, Y8; \
	VMINPS       Y1, Y11, Y1; \
	VMAXPS       Y1, Y12, Y1; \
	VMOVAPS      Y1, Y2; \
	VFMADD132PS  vexplog2e<>(SB), Y13, Y2; \
	VSUBPS       Y13, Y2, Y3; \
	VCVTPS2DQ    Y3, Y4; \
	VPADDD       vexp127<>(SB), Y4, Y4; \
	VPSLLD       $23, Y4, Y4; \
	VFNMADD231PS vexpc1<>(SB), Y3, Y1; \
	VFNMADD231PS vexpc2<>(SB), Y3, Y1; \
	VMULPS       Y1, Y1, Y5; \
	VMOVUPS      vexpp0<>(SB), Y6; \
	VFMADD213PS  vexpp1<>(SB), Y1, Y6; \
	VFMADD213PS  vexpp2<>(SB), Y1, Y6; \
	VFMADD213PS  vexpp3<>(SB), Y1, Y6; \
	VFMADD213PS  vexpp4<>(SB), Y1, Y6; \
	VFMADD213PS  vexpp5<>(SB), Y1, Y6; \
	VFMADD213PS  Y1, Y5, Y6; \
	VADDPS       vone<>(SB), Y6, Y6; \
	VMULPS       Y4, Y6, Y6; \
	VANDNPS      Y6, Y8, Y6;

#define EXPSETUP \
	VMOVUPS vexphi<>(SB), Y11; \
	VMOVUPS vexplo<>(SB), Y12; \
	VMOVUPS vexpmagic<>(SB), Y13;

// func maxAVX2(x *float32, n int) float32
TEXT ·maxAVX2(SB), NOSPLIT, $0-20
	MOVQ    x+0(FP), SI
	MOVQ    n+8(FP), CX
	VMOVUPS (SI), Y0
	ADDQ    $32, SI
	SUBQ    $8, CX
maxloop:
	CMPQ    CX, $8
	JLT     maxdone
	VMAXPS  (SI), Y0, Y0
	ADDQ    $32, SI
	SUBQ    $8, CX
	JMP     maxloop
maxdone:
	VEXTRACTF128 $1, Y0, X1
	VMAXPS       X1, X0, X0
	VPERMILPS    $0x4e, X0, X1
	VMAXPS       X1, X0, X0
	VPERMILPS    $0xb1, X0, X1
	VMAXPS       X1, X0, X0
	VZEROUPPER
	MOVSS        X0, ret+16(FP)
	RET

// func expSubSumAVX2(x *float32, n int, m float32) float64
TEXT ·expSubSumAVX2(SB), NOSPLIT, $0-32
	MOVQ         x+0(FP), SI
	MOVQ         n+8(FP), CX
	VBROADCASTSS m+16(FP), Y0
	EXPSETUP
	VXORPD       Y14, Y14, Y14
	VXORPD       Y15, Y15, Y15
esloop:
	CMPQ      CX, $8
	JLT       esdone
	VMOVUPS   (SI), Y1
	VSUBPS    Y0, Y1, Y1
	EXP
	VMOVUPS   Y6, (SI)
	VCVTPS2PD X6, Y7
	VADDPD    Y7, Y14, Y14
	VEXTRACTF128 $1, Y6, X6
	VCVTPS2PD X6, Y7
	VADDPD    Y7, Y15, Y15
	ADDQ      $32, SI
	SUBQ      $8, CX
	JMP       esloop
esdone:
	VADDPD       Y15, Y14, Y14
	VEXTRACTF128 $1, Y14, X1
	VADDPD       X1, X14, X14
	VHADDPD      X14, X14, X14
	VZEROUPPER
	MOVSD        X14, ret+24(FP)
	RET

// func expSubSum32AVX2(x *float32, n int, m float32) float32
//
// expSubSumAVX2 with the sum kept in 8 float32 lanes, added up at the end
// as (l0+l4 + l1+l5) + (l2+l6 + l3+l7).
TEXT ·expSubSum32AVX2(SB), NOSPLIT, $0-28
	MOVQ         x+0(FP), SI
	MOVQ         n+8(FP), CX
	VBROADCASTSS m+16(FP), Y0
	EXPSETUP
	VXORPS       Y15, Y15, Y15
es32loop:
	CMPQ    CX, $8
	JLT     es32done
	VMOVUPS (SI), Y1
	VSUBPS  Y0, Y1, Y1
	EXP
	VMOVUPS Y6, (SI)
	VADDPS  Y6, Y15, Y15
	ADDQ    $32, SI
	SUBQ    $8, CX
	JMP     es32loop
es32done:
	VEXTRACTF128 $1, Y15, X1
	VADDPS       X1, X15, X15
	VHADDPS      X15, X15, X15
	VHADDPS      X15, X15, X15
	VZEROUPPER
	MOVSS        X15, ret+24(FP)
	RET

// func scaleAVX2(x *float32, n int, k float32)
TEXT ·scaleAVX2(SB), NOSPLIT, $0-20
	MOVQ         x+0(FP), SI
	MOVQ         n+8(FP), CX
	VBROADCASTSS k+16(FP), Y0
scloop:
	CMPQ    CX, $8
	JLT     scdone
	VMULPS  (SI), Y0, Y1
	VMOVUPS Y1, (SI)
	ADDQ    $32, SI
	SUBQ    $8, CX
	JMP     scloop
scdone:
	VZEROUPPER
	RET

// func addAVX2(y, a, b *float32, n int)
TEXT ·addAVX2(SB), NOSPLIT, $0-32
	MOVQ y+0(FP), DI
	MOVQ a+8(FP), SI
	MOVQ b+16(FP), DX
	MOVQ n+24(FP), CX
	XORQ AX, AX
adloop32:
	CMPQ    CX, $32
	JLT     adloop8
	VMOVUPS (SI)(AX*1), Y0
	VMOVUPS 32(SI)(AX*1), Y1
	VMOVUPS 64(SI)(AX*1), Y2
	VMOVUPS 96(SI)(AX*1), Y3
	VADDPS  (DX)(AX*1), Y0, Y0
	VADDPS  32(DX)(AX*1), Y1, Y1
	VADDPS  64(DX)(AX*1), Y2, Y2
	VADDPS  96(DX)(AX*1), Y3, Y3
	VMOVUPS Y0, (DI)(AX*1)
	VMOVUPS Y1, 32(DI)(AX*1)
	VMOVUPS Y2, 64(DI)(AX*1)
	VMOVUPS Y3, 96(DI)(AX*1)
	ADDQ    $128, AX
	SUBQ    $32, CX
	JMP     adloop32
adloop8:
	CMPQ    CX, $8
	JLT     addone
	VMOVUPS (SI)(AX*1), Y0
	VADDPS  (DX)(AX*1), Y0, Y0
	VMOVUPS Y0, (DI)(AX*1)
	ADDQ    $32, AX
	SUBQ    $8, CX
	JMP     adloop8
addone:
	VZEROUPPER
	RET

// func accumF64AVX2(acc *float64, x *float32, n int)
TEXT ·accumF64AVX2(SB), NOSPLIT, $0-24
	MOVQ acc+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ n+16(FP), CX
acloop:
	CMPQ      CX, $8
	JLT       acdone
	VCVTPS2PD (SI), Y0
	VCVTPS2PD 16(SI), Y1
	VADDPD    (DI), Y0, Y0
	VADDPD    32(DI), Y1, Y1
	VMOVUPD   Y0, (DI)
	VMOVUPD   Y1, 32(DI)
	ADDQ      $32, SI
	ADDQ      $64, DI
	SUBQ      $8, CX
	JMP       acloop
acdone:
	VZEROUPPER
	RET

// func sumSquaresAVX2(x *float32, n int) float64
TEXT ·sumSquaresAVX2(SB), NOSPLIT, $0-24
	MOVQ   x+0(FP), SI
	MOVQ   n+8(FP), CX
	VXORPD Y0, Y0, Y0
	VXORPD Y1, Y1, Y1
	VXORPD Y2, Y2, Y2
	VXORPD Y3, Y3, Y3
ssloop16:
	CMPQ        CX, $16
	JLT         ssloop8
	VCVTPS2PD   (SI), Y4
	VCVTPS2PD   16(SI), Y5
	VCVTPS2PD   32(SI), Y6
	VCVTPS2PD   48(SI), Y7
	VFMADD231PD Y4, Y4, Y0
	VFMADD231PD Y5, Y5, Y1
	VFMADD231PD Y6, Y6, Y2
	VFMADD231PD Y7, Y7, Y3
	ADDQ        $64, SI
	SUBQ        $16, CX
	JMP         ssloop16
ssloop8:
	CMPQ        CX, $8
	JLT         ssdone
	VCVTPS2PD   (SI), Y4
	VCVTPS2PD   16(SI), Y5
	VFMADD231PD Y4, Y4, Y0
	VFMADD231PD Y5, Y5, Y1
	ADDQ        $32, SI
	SUBQ        $8, CX
	JMP         ssloop8
ssdone:
	VADDPD       Y1, Y0, Y0
	VADDPD       Y3, Y2, Y2
	VADDPD       Y2, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPD       X1, X0, X0
	VHADDPD      X0, X0, X0
	VZEROUPPER
	MOVSD        X0, ret+16(FP)
	RET

// func geluAVX2(y, x *float32, n int)
// y = x / (1 + exp(x (A + B x^2)))
TEXT ·geluAVX2(SB), NOSPLIT, $0-24
	MOVQ    y+0(FP), DI
	MOVQ    x+8(FP), SI
	MOVQ    n+16(FP), CX
	EXPSETUP
	VMOVUPS vgeluB<>(SB), Y14
	VMOVUPS vone<>(SB), Y15
gfloop:
	CMPQ        CX, $8
	JLT         gfdone
	VMOVUPS     (SI), Y0
	VMULPS      Y0, Y0, Y1
	VFMADD213PS vgeluA<>(SB), Y14, Y1
	VMULPS      Y0, Y1, Y1
	EXP
	VADDPS      Y15, Y6, Y6
	VDIVPS      Y6, Y0, Y7
	VMOVUPS     Y7, (DI)
	ADDQ        $32, SI
	ADDQ        $32, DI
	SUBQ        $8, CX
	JMP         gfloop
gfdone:
	VZEROUPPER
	RET

// func geluBwdAVX2(dx, dy, x *float32, n int)
// dx += dy * (s + 2 (s (e s)) (x q)), e = exp(x (A + B x^2)), s = 1/(1+e),
// q = S + Q x^2.
TEXT ·geluBwdAVX2(SB), NOSPLIT, $0-32
	MOVQ    dx+0(FP), DI
	MOVQ    dy+8(FP), DX
	MOVQ    x+16(FP), SI
	MOVQ    n+24(FP), CX
	EXPSETUP
	VMOVUPS vgeluB<>(SB), Y14
	VMOVUPS vone<>(SB), Y15
	VMOVUPS vgeluQ<>(SB), Y10
gbloop:
	CMPQ        CX, $8
	JLT         gbdone
	VMOVUPS     (SI), Y0
	VMULPS      Y0, Y0, Y7
	VMOVAPS     Y7, Y1
	VFMADD213PS vgeluA<>(SB), Y14, Y1
	VMULPS      Y0, Y1, Y1
	VFMADD213PS vgeluS<>(SB), Y10, Y7
	VMULPS      Y0, Y7, Y7
	EXP
	VADDPS      Y15, Y6, Y1
	VDIVPS      Y1, Y15, Y2
	VMULPS      Y2, Y6, Y6
	VMULPS      Y6, Y2, Y6
	VADDPS      Y6, Y6, Y6
	VMULPS      Y7, Y6, Y6
	VADDPS      Y6, Y2, Y6
	VMULPS      (DX), Y6, Y6
	VADDPS      (DI), Y6, Y6
	VMOVUPS     Y6, (DI)
	ADDQ        $32, SI
	ADDQ        $32, DX
	ADDQ        $32, DI
	SUBQ        $8, CX
	JMP         gbloop
gbdone:
	VZEROUPPER
	RET

// func swigluAVX2(y, gate, up *float32, n int)
// y = g / (1 + exp(-g)) * u
TEXT ·swigluAVX2(SB), NOSPLIT, $0-32
	MOVQ   y+0(FP), DI
	MOVQ   gate+8(FP), SI
	MOVQ   up+16(FP), DX
	MOVQ   n+24(FP), CX
	EXPSETUP
	VMOVUPS vone<>(SB), Y15
	VXORPS Y14, Y14, Y14
sfloop:
	CMPQ    CX, $8
	JLT     sfdone
	VMOVUPS (SI), Y0
	VSUBPS  Y0, Y14, Y1
	EXP
	VADDPS  Y15, Y6, Y6
	VDIVPS  Y6, Y0, Y7
	VMULPS  (DX), Y7, Y7
	VMOVUPS Y7, (DI)
	ADDQ    $32, SI
	ADDQ    $32, DX
	ADDQ    $32, DI
	SUBQ    $8, CX
	JMP     sfloop
sfdone:
	VZEROUPPER
	RET

// func swigluBwdAVX2(dg, du, dy, gate, up *float32, n int)
// e = exp(-g), s = 1/(1+e): dg += dy*u*(s*(1 + g*(e*s))), du += dy*(g*s)
TEXT ·swigluBwdAVX2(SB), NOSPLIT, $0-48
	MOVQ    dg+0(FP), DI
	MOVQ    du+8(FP), R8
	MOVQ    dy+16(FP), DX
	MOVQ    gate+24(FP), SI
	MOVQ    up+32(FP), R9
	MOVQ    n+40(FP), CX
	EXPSETUP
	VMOVUPS vone<>(SB), Y15
	VXORPS  Y14, Y14, Y14
sbloop:
	CMPQ    CX, $8
	JLT     sbdone
	VMOVUPS (SI), Y0
	VSUBPS  Y0, Y14, Y1
	EXP
	VADDPS  Y15, Y6, Y1
	VDIVPS  Y1, Y15, Y2
	VMULPS  Y2, Y6, Y6
	VMULPS  Y0, Y6, Y6
	VADDPS  Y15, Y6, Y6
	VMULPS  Y2, Y6, Y6
	VMOVUPS (DX), Y3
	VMULPS  (R9), Y3, Y4
	VMULPS  Y6, Y4, Y6
	VADDPS  (DI), Y6, Y6
	VMOVUPS Y6, (DI)
	VMULPS  Y2, Y0, Y5
	VMULPS  Y5, Y3, Y5
	VADDPS  (R8), Y5, Y5
	VMOVUPS Y5, (R8)
	ADDQ    $32, SI
	ADDQ    $32, DX
	ADDQ    $32, DI
	ADDQ    $32, R8
	ADDQ    $32, R9
	SUBQ    $8, CX
	JMP     sbloop
sbdone:
	VZEROUPPER
	RET

// func adamwAVX2(w, grad, m, v *float32, n int, k *AdamW, small int)
// The float32 AdamW update of AdamW.Update, no fused multiply-adds.
TEXT ·adamwAVX2(SB), NOSPLIT, $0-56
	MOVQ         w+0(FP), DI
	MOVQ         grad+8(FP), SI
	MOVQ         m+16(FP), R8
	MOVQ         v+24(FP), R9
	MOVQ         n+32(FP), CX
	MOVQ         k+40(FP), AX
	MOVQ         small+48(FP), BX
	VBROADCASTSS 0(AX), Y0  // Decay
	VBROADCASTSS 4(AX), Y1  // LerpW
	VBROADCASTSS 8(AX), Y2  // LerpWc
	VBROADCASTSS 12(AX), Y3 // Beta2
	VBROADCASTSS 16(AX), Y4 // OneMinusB2
	VBROADCASTSS 20(AX), Y5 // Bc2Sqrt
	VBROADCASTSS 24(AX), Y6 // Eps
	VBROADCASTSS 28(AX), Y7 // NegStep
awloop:
	CMPQ    CX, $8
	JLT     awdone
	VMOVUPS (DI), Y8
	VMULPS  Y0, Y8, Y8     // p = p*decay
	VMOVUPS (SI), Y9       // g
	VMOVUPS (R8), Y10      // m
	VSUBPS  Y10, Y9, Y11   // g - m
	TESTQ   BX, BX
	JZ      awlarge
	VMULPS  Y11, Y1, Y11   // lerpW*(g-m)
	VADDPS  Y11, Y10, Y10  // m + ...
	JMP     awv
awlarge:
	VMULPS  Y2, Y11, Y11   // (g-m)*lerpWc
	VSUBPS  Y11, Y9, Y10   // g - ...
awv:
	VMOVUPS (R9), Y12
	VMULPS  Y3, Y12, Y12   // v*beta2
	VMULPS  Y9, Y4, Y13    // oneMinusB2*g
	VMULPS  Y9, Y13, Y13   // *g
	VADDPS  Y13, Y12, Y12  // v
	VSQRTPS Y12, Y13
	VDIVPS  Y5, Y13, Y13   // sqrt(v)/bc2Sqrt
	VADDPS  Y6, Y13, Y13   // + eps
	VMULPS  Y10, Y7, Y14   // negStep*m
	VDIVPS  Y13, Y14, Y14  // / denom
	VADDPS  Y14, Y8, Y8    // p + ...
	VMOVUPS Y8, (DI)
	VMOVUPS Y10, (R8)
	VMOVUPS Y12, (R9)
	ADDQ    $32, DI
	ADDQ    $32, SI
	ADDQ    $32, R8
	ADDQ    $32, R9
	SUBQ    $8, CX
	JMP     awloop
awdone:
	VZEROUPPER
	RET
