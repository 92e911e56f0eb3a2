package gemm

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"testing"
	"unsafe"

	"github.com/shoggo/shoggo/internal/cpu"
	"github.com/shoggo/shoggo/tensor"
)

// Tolerances of GemmMixed against mixedRef (both sum the same rounded
// operands' products in float32, in different orders). With
// S = |alpha|*sum_p |op(A)_ip op(B)_pj| + |beta*C_ij| over the rounded
// operands and u = 2^-24:
//
//   - float32 kernel (AVX2/FMA or Go): |got - ref| <= 2(k+2)u*S, twice
//     the classic bound on the error of a k-term float32 sum (each of the
//     two results is within (k+2)u*S of the exact value; the +2 covers
//     alpha, which Sgemm applies to the packed A, and beta*C).
//   - bf16 kernel (VDPBF16PS): the same 2(k+2)u*S, plus k*2^-120 absolute:
//     VDPBF16PS treats bf16 denormals (|x| < 2^-126) in the operands as
//     zero and flushes denormal float32 partial sums, each flush an
//     absolute error below 2^-126 times the other factor's magnitude (the
//     test data keeps that below 16). TestGemmMixedBF16Denormals shows the
//     flush itself.
//
// Both bounds are deterministic (worst case), not statistical; random
// data lands far below them, while a lost or doubled k block, a wrong
// element, a missing conversion (an operand not rounded to its precision:
// an error near 2^-9 S for bf16) or a misapplied alpha/beta is far above.
func mixedBound(k int, s float64, bf16 bool) float64 {
	b := 2 * float64(k+2) * 0x1p-24 * s
	if bf16 {
		b += float64(k) * 0x1p-120
	}
	return b
}

// opKinds are the operand types and precisions GemmMixed accepts:
// {storage (F32 or the 16-bit dtype), precision}.
var opKinds = [][2]tensor.DType{
	{tensor.F32, tensor.F32}, {tensor.F32, tensor.BF16}, {tensor.F32, tensor.F16},
	{tensor.BF16, tensor.BF16}, {tensor.BF16, tensor.F32}, {tensor.BF16, tensor.F16},
	{tensor.F16, tensor.F16}, {tensor.F16, tensor.F32}, {tensor.F16, tensor.BF16},
}

// randOperand returns a rows x cols operand at stride ld of the given
// storage and precision; values are uniform in [-1, 1) times 2^e, e in
// [-3, 3], and the gaps between rows hold Inf (or 1e30 for float32, Inf
// at half precision), so reading them spoils the result.
func randOperand(rng *rand.Rand, rows, cols, ld int, store, prec tensor.DType) Operand {
	n := (rows-1)*ld + cols + 7
	val := func() float32 {
		return (rng.Float32()*2 - 1) * float32(math.Ldexp(1, rng.IntN(7)-3))
	}
	if store == tensor.F32 {
		s := make([]float32, n)
		for i := range s {
			s[i] = 1e30
		}
		for i := 0; i < rows; i++ {
			for j := 0; j < cols; j++ {
				s[i*ld+j] = val()
			}
		}
		return F32Op(s, prec)
	}
	s := make([]uint16, n)
	to, inf := tensor.F32ToBF16, uint16(0x7f80)
	if store == tensor.F16 {
		to, inf = tensor.F32ToF16, 0x7c00
	}
	for i := range s {
		s[i] = inf
	}
	for i := 0; i < rows; i++ {
		for j := 0; j < cols; j++ {
			s[i*ld+j] = to(val())
		}
	}
	return HalfOp(s, store, prec)
}

type mixedCase struct {
	transA, transB bool
	m, n, k        int
	a, b           Operand
	lda, ldb, ldc  int
	c0             []float32
	// Cached by check: mixedRef's result per (alpha, beta), and S/|alpha|
	// without the beta term.
	ref map[[2]float32][]float32
	abs []float64
}

func newMixedCase(rng *rand.Rand, transA, transB bool, m, n, k int, ka, kb [2]tensor.DType) *mixedCase {
	mc := &mixedCase{transA: transA, transB: transB, m: m, n: n, k: k}
	ar, ac := m, k
	if transA {
		ar, ac = k, m
	}
	br, bc := k, n
	if transB {
		br, bc = n, k
	}
	mc.lda, mc.ldb, mc.ldc = ac+3, bc+1, n+2
	mc.a = randOperand(rng, ar, ac, mc.lda, ka[0], ka[1])
	mc.b = randOperand(rng, br, bc, mc.ldb, kb[0], kb[1])
	mc.c0 = randMatrix(rng, m, n, mc.ldc)
	return mc
}

func opName(o Operand) string {
	if o.U16 != nil {
		return fmt.Sprintf("%v@%v", o.Src, o.Prec)
	}
	return fmt.Sprintf("F32@%v", o.Prec)
}

func (mc *mixedCase) name(alpha, beta float32) string {
	return fmt.Sprintf("%s tA=%v tB=%v m=%d n=%d k=%d A=%s B=%s alpha=%g beta=%g",
		kernelName(), mc.transA, mc.transB, mc.m, mc.n, mc.k, opName(mc.a), opName(mc.b), alpha, beta)
}

// kernelName says which path GemmMixed takes for two BF16 operands.
func kernelName() string {
	switch {
	case useAsm && useBF16 && useAMX:
		return "amx"
	case useAsm && useBF16:
		return "bf16"
	case useAsm:
		return "asm"
	}
	return "go"
}

func (mc *mixedCase) run(alpha, beta float32, c []float32) {
	GemmMixed(mc.transA, mc.transB, mc.m, mc.n, mc.k, alpha, mc.a, mc.lda, mc.b, mc.ldb, beta, c, mc.ldc)
}

// check compares GemmMixed with mixedRef within mixedBound.
func (mc *mixedCase) check(t *testing.T, alpha, beta float32) {
	t.Helper()
	got := append([]float32(nil), mc.c0...)
	mc.run(alpha, beta, got)
	want := mc.ref[[2]float32{alpha, beta}]
	if want == nil {
		want = append([]float32(nil), mc.c0...)
		mixedRef(mc.transA, mc.transB, mc.m, mc.n, mc.k, alpha, &mc.a, mc.lda, &mc.b, mc.ldb, beta, want, mc.ldc)
		if mc.ref == nil {
			mc.ref = map[[2]float32][]float32{}
		}
		mc.ref[[2]float32{alpha, beta}] = want
	}
	bf16 := useAsm && useBF16 && mc.a.Prec == tensor.BF16 && mc.b.Prec == tensor.BF16
	if mc.abs == nil {
		// sum_p |op(A)_ip op(B)_pj| in float64 from the rounded operands.
		av := make([]float64, mc.m*mc.k) // op(A), m x k
		bv := make([]float64, mc.k*mc.n) // op(B)^T, n x k
		for i := 0; i < mc.m; i++ {
			for p := 0; p < mc.k; p++ {
				idx := i*mc.lda + p
				if mc.transA {
					idx = p*mc.lda + i
				}
				av[i*mc.k+p] = math.Abs(float64(mc.a.at(idx)))
			}
		}
		for p := 0; p < mc.k; p++ {
			for j := 0; j < mc.n; j++ {
				idx := p*mc.ldb + j
				if mc.transB {
					idx = j*mc.ldb + p
				}
				bv[j*mc.k+p] = math.Abs(float64(mc.b.at(idx)))
			}
		}
		mc.abs = make([]float64, mc.m*mc.n)
		for i := 0; i < mc.m; i++ {
			for j := 0; j < mc.n; j++ {
				ar, bc := av[i*mc.k:(i+1)*mc.k], bv[j*mc.k:(j+1)*mc.k]
				var s float64
				for p, v := range ar {
					s += v * bc[p]
				}
				mc.abs[i*mc.n+j] = s
			}
		}
	}
	bad := 0
	for i := range got {
		row, col := i/mc.ldc, i%mc.ldc
		if row >= mc.m || col >= mc.n {
			if math.Float32bits(got[i]) != math.Float32bits(mc.c0[i]) {
				t.Fatalf("%s: element %d outside C changed: %g -> %g", mc.name(alpha, beta), i, mc.c0[i], got[i])
			}
			continue
		}
		s := mc.abs[row*mc.n+col] * math.Abs(float64(alpha))
		if beta != 0 {
			s += math.Abs(float64(beta) * float64(mc.c0[i]))
		}
		bound := mixedBound(mc.k, s, bf16)
		if d := math.Abs(float64(got[i]) - float64(want[i])); !(d <= bound) {
			if bad++; bad <= 3 {
				t.Errorf("%s: C[%d,%d] = %g, mixedRef %g (diff %g, bound %g)", mc.name(alpha, beta), row, col, got[i], want[i], d, bound)
			}
		}
	}
	if bad > 0 {
		t.Fatalf("%s: %d wrong elements", mc.name(alpha, beta), bad)
	}
}

// mixedKernels runs f on each GemmMixed path this CPU has: the bf16
// kernel, the float32 assembly kernel (with the assembly conversions) and
// the Go kernel (with Go conversions).
func mixedKernels(t *testing.T, f func(t *testing.T)) {
	defer func(a, b, x bool) { useAsm, useBF16, useAMX = a, b, x }(useAsm, useBF16, useAMX)
	for _, k := range []string{"amx", "bf16", "asm", "go"} {
		useAMX = false
		switch k {
		case "amx":
			if !hasAMX || !hasAsm || !cpu.EnableAMX() {
				t.Log("no AMX-BF16 here: AMX kernel not tested")
				continue
			}
			useAsm, useBF16, useAMX = true, true, true
		case "bf16":
			if !hasBF16 || !hasAsm {
				t.Log("no AVX512_BF16 here: bf16 kernel not tested")
				continue
			}
			useAsm, useBF16 = true, true
		case "asm":
			if !hasAsm {
				t.Log("no AVX2/FMA here: assembly kernel not tested")
				continue
			}
			useAsm, useBF16 = true, false
		default:
			useAsm, useBF16 = false, false
		}
		t.Run(k, f)
	}
}

// mixedShapes are (m, n, k) with each of 1, 7, 17, 33, 130, 257 and
// 1000+ in each role.
var mixedShapes = [][3]int{
	{1, 1, 1}, {7, 17, 33}, {17, 7, 1}, {33, 130, 7}, {130, 33, 257}, {257, 1, 17},
	{1, 257, 130}, {7, 1031, 17}, {1030, 7, 33}, {17, 33, 1029}, {130, 257, 65}, {64, 128, 96},
}

// TestGemmMixed compares GemmMixed with mixedRef on every path, for the
// shapes above in the four layouts, alpha in {1, -0.7} and beta in {0, 1,
// 0.5}, and operands of every storage and precision: each shape and layout
// gets the nine both-at-BF16 pairs (the bf16 kernel's), the nine
// both-at-F16 pairs and a rotating share of the rest.
func TestGemmMixed(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	var cases []*mixedCase
	var at = func(p tensor.DType) [][2]tensor.DType {
		var s [][2]tensor.DType
		for _, k := range opKinds {
			if k[1] == p {
				s = append(s, k)
			}
		}
		return s
	}
	i := 0
	for _, s := range mixedShapes {
		for _, l := range layouts {
			big := s[0]*s[1]*s[2] > 200000
			for _, p := range []tensor.DType{tensor.BF16, tensor.F16} {
				for ai, ka := range at(p) {
					for bi, kb := range at(p) {
						if big && (ai+bi+i)%3 != 0 { // a third of the pairs on the big shapes
							continue
						}
						cases = append(cases, newMixedCase(rng, l[0], l[1], s[0], s[1], s[2], ka, kb))
					}
				}
			}
			for r := 0; r < 4; r++ {
				ka, kb := opKinds[(i+r)%len(opKinds)], opKinds[(3*i+5*r)%len(opKinds)]
				cases = append(cases, newMixedCase(rng, l[0], l[1], s[0], s[1], s[2], ka, kb))
			}
			i++
		}
	}
	mixedKernels(t, func(t *testing.T) {
		for i, mc := range cases {
			j := 0
			for _, alpha := range []float32{1, -0.7} {
				for _, beta := range []float32{0, 1, 0.5} {
					// In -short mode, one (alpha, beta) pair per case, rotating.
					if testing.Short() && (i+j)%6 != 0 {
						j++
						continue
					}
					j++
					mc.check(t, alpha, beta)
				}
			}
		}
	})
}

// TestGemmMixedSmallBlocks shrinks the cache blocks so that the shapes run
// through several mc, kc and nc blocks, partial ones included.
func TestGemmMixedSmallBlocks(t *testing.T) {
	defer func(mc, kc, nc, mch, kch, nch, mcx, kcx, ncx int) {
		mcMax, kcMax, ncMax, mcDPB, kcDPB, ncDPB, mcAMX, kcAMX, ncAMX = mc, kc, nc, mch, kch, nch, mcx, kcx, ncx
	}(mcMax, kcMax, ncMax, mcDPB, kcDPB, ncDPB, mcAMX, kcAMX, ncAMX)
	mcMax, kcMax, ncMax = 12, 17, 32
	mcDPB, kcDPB, ncDPB = 32, 32, 64
	mcAMX, kcAMX, ncAMX = 64, 32, 64
	rng := rand.New(rand.NewPCG(23, 24))
	dims := []int{1, 7, 40, 65, 140}
	var cases []*mixedCase
	i := 0
	for _, l := range layouts {
		for _, m := range dims {
			for _, n := range dims {
				for _, k := range dims {
					ka, kb := opKinds[1+i%8], opKinds[1+(5*i)%8]
					if i%2 == 0 {
						ka, kb = opKinds[[]int{1, 3, 8}[i%3]], opKinds[[]int{1, 3, 8}[(i/3)%3]]
					}
					cases = append(cases, newMixedCase(rng, l[0], l[1], m, n, k, ka, kb))
					i++
				}
			}
		}
	}
	mixedKernels(t, func(t *testing.T) {
		for i, mc := range cases {
			if i%2 == 0 {
				mc.check(t, -0.7, 0.5)
			} else {
				mc.check(t, 1, 0)
			}
		}
	})
}

// TestGemmMixedThreads checks bit-identical results for 1, 2, 3 and 5
// threads, with the split forced down to tiny pieces as well, on every path.
func TestGemmMixedThreads(t *testing.T) {
	defer SetThreads(0)
	defer func(w, lo, hi int) { parMinWork, minPiece, maxPiece = w, lo, hi }(parMinWork, minPiece, maxPiece)
	rng := rand.New(rand.NewPCG(25, 26))
	shapes := [][3]int{{256, 768, 300}, {300, 100, 513}, {1000, 70, 65}, {7, 300, 17}, {65, 255, 255}}
	kinds := [][2][2]tensor.DType{
		{opKinds[3], opKinds[1]}, {opKinds[1], opKinds[3]}, {opKinds[6], opKinds[2]},
		{opKinds[8], opKinds[1]}, {opKinds[0], opKinds[4]},
	}
	mixedKernels(t, func(t *testing.T) {
		for li, l := range layouts {
			for si, s := range shapes {
				kk := kinds[(li+si)%len(kinds)]
				mc := newMixedCase(rng, l[0], l[1], s[0], s[1], s[2], kk[0], kk[1])
				run := func(threads, minWork, piece int) []float32 {
					SetThreads(threads)
					parMinWork, minPiece, maxPiece = minWork, piece, 4*piece
					c := append([]float32(nil), mc.c0...)
					mc.run(-0.7, 0.5, c)
					return c
				}
				want := run(1, 1<<18, 512)
				for _, cfg := range [][3]int{{2, 1 << 18, 512}, {2, 0, 16}, {3, 0, 40}, {5, 0, 4096}} {
					got := run(cfg[0], cfg[1], cfg[2])
					for i := range want {
						if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
							t.Fatalf("%s threads=%d piece=%d: C[%d] = %g, one thread gives %g",
								mc.name(-0.7, 0.5), cfg[0], cfg[2], i, got[i], want[i])
						}
					}
				}
			}
		}
	})
}

// TestGemmMixedDegenerate covers k == 0 and alpha == 0 (C = beta*C, A and
// B not read), beta == 0 over a NaN C, and the panics.
func TestGemmMixedDegenerate(t *testing.T) {
	c := []float32{1, 2, float32(math.NaN()), 4}
	GemmMixed(false, false, 2, 2, 0, 1, HalfOp(nil, tensor.BF16, tensor.BF16), 1, F32Op(nil, tensor.BF16), 2, 0.5, c, 2)
	if c[0] != 0.5 || c[1] != 1 || !math.IsNaN(float64(c[2])) || c[3] != 2 {
		t.Fatalf("k=0, beta=0.5: got %v", c)
	}
	a := HalfOp([]uint16{0x7f80, 0x3f80}, tensor.BF16, tensor.BF16) // Inf, 1
	GemmMixed(false, false, 2, 2, 1, 0, a, 1, F32Op([]float32{1, 1}, tensor.BF16), 2, 0, c, 2)
	for _, v := range c {
		if v != 0 {
			t.Fatalf("alpha=0, beta=0: got %v", c)
		}
	}
	mixedKernels(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(27, 28))
		for _, l := range layouts {
			mc := newMixedCase(rng, l[0], l[1], 13, 70, 9, opKinds[3], opKinds[1])
			for i := range mc.c0 {
				if i/mc.ldc < mc.m && i%mc.ldc < mc.n {
					mc.c0[i] = float32(math.NaN())
				}
			}
			mc.check(t, 1, 0)
		}
	})
	u := make([]uint16, 6)
	f := make([]float32, 6)
	for name, fn := range map[string]func(){
		"short a": func() {
			GemmMixed(false, false, 2, 2, 3, 1, HalfOp(u[:5], tensor.BF16, tensor.BF16), 3, F32Op(f, tensor.BF16), 2, 0, f[:4], 2)
		},
		"short b": func() {
			GemmMixed(false, false, 2, 2, 3, 1, HalfOp(u, tensor.BF16, tensor.BF16), 3, F32Op(f[:5], tensor.BF16), 2, 0, f[:4], 2)
		},
		"short c": func() {
			GemmMixed(false, false, 2, 2, 3, 1, HalfOp(u, tensor.BF16, tensor.BF16), 3, F32Op(f, tensor.BF16), 2, 0, f[:3], 2)
		},
		"both": func() {
			GemmMixed(false, false, 2, 2, 3, 1, Operand{F32: f, U16: u}, 3, F32Op(f, tensor.BF16), 2, 0, f[:4], 2)
		},
		"bad src": func() {
			GemmMixed(false, false, 2, 2, 3, 1, HalfOp(u, tensor.F32, tensor.BF16), 3, F32Op(f, tensor.BF16), 2, 0, f[:4], 2)
		},
		"bad prec": func() {
			GemmMixed(false, false, 2, 2, 3, 1, HalfOp(u, tensor.BF16, tensor.F64), 3, F32Op(f, tensor.BF16), 2, 0, f[:4], 2)
		},
		"negative": func() {
			GemmMixed(false, false, -1, 2, 3, 1, HalfOp(u, tensor.BF16, tensor.BF16), 3, F32Op(f, tensor.BF16), 2, 0, f[:4], 2)
		},
		"small lda": func() {
			GemmMixed(false, false, 2, 2, 3, 1, HalfOp(u, tensor.BF16, tensor.BF16), 2, F32Op(f, tensor.BF16), 2, 0, f[:4], 2)
		},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			fn()
		}()
	}
}

// TestGemmMixedBF16Denormals shows the one documented difference of the
// bf16 kernel: bf16 denormals in the operands count as zero, while
// mixedRef (and the float32 kernel) multiply them exactly.
func TestGemmMixedBF16Denormals(t *testing.T) {
	if !hasBF16 || !hasAsm {
		t.Skip("no AVX512_BF16 here")
	}
	defer func(a, b, x bool) { useAsm, useBF16, useAMX = a, b, x }(useAsm, useBF16, useAMX)
	const k = 10
	a := make([]uint16, k)
	b := make([]float32, k)
	for i := range a {
		a[i] = 0x0040 // 2^-127, a bf16 denormal
		b[i] = 4
	}
	run := func(bf, amx bool) float32 {
		useAsm, useBF16, useAMX = true, bf, amx
		c := []float32{0}
		GemmMixed(false, true, 1, 1, k, 1, HalfOp(a, tensor.BF16, tensor.BF16), k, F32Op(b, tensor.BF16), k, 0, c, 1)
		return c[0]
	}
	if got := run(false, false); got != 10*0x1p-125 {
		t.Errorf("float32 kernel: got %g, want %g", got, 10*0x1p-125)
	}
	if got := run(true, false); got != 0 {
		t.Errorf("bf16 kernel: got %g, want 0 (denormal operands flushed)", got)
	}
	if hasAMX && cpu.EnableAMX() {
		if got := run(true, true); got != 0 {
			t.Errorf("AMX kernel: got %g, want 0 (denormal operands flushed)", got)
		}
	}
}

// specialF32 are float32 bit patterns at the edges of the conversions.
var specialF32 = []uint32{
	0, 0x80000000, 0x7f800000, 0xff800000, // ±0, ±Inf
	0x7fc00000, 0xffc00000, 0x7f800001, 0xff800001, 0x7fbfffff, 0x7f810000, 0x7fff0000, 0x7f80ffff, // NaNs
	0x00000001, 0x80000001, 0x007fffff, 0x807fffff, 0x00400000, 0x007f8000, 0x007f7fff, 0x00008000, // denormals
	0x00800000, 0x7f7fffff, 0xff7fffff, 0x7f7f8000, 0x7f7f7fff, 0x7f7f0000, // min normal, max, rounding to Inf
	0x3f808000, 0x3f818000, 0x3f808001, 0x3f807fff, 0x3f800000, // bf16 ties (even/odd), above, below
	0x3f801000, 0x3f803000, 0x3f801001, 0x3f800fff, // fp16 ties
	0x477fe000, 0x477fefff, 0x477ff000, 0x477fffff, 0x47800000, 0xc77ff000, // fp16 max 65504, ties to Inf
	0x33800000, 0x33000000, 0x33000001, 0x32ffffff, 0x387fc000, 0x38800000, 0x387fe000, 0x337fffff, // fp16 subnormal edges
}

// TestConvertAsm checks that cvtRows gives tensor's conversions bit for
// bit: every 16-bit pattern for the 16-bit sources, and the special
// float32 values above plus random bit patterns for the float32 sources,
// over rows with strides and tails (convertF32 finishes the columns past
// a multiple of 8 in Go). TestBF16Pack covers the bf16 path's rounding.
func TestConvertAsm(t *testing.T) {
	if !hasAsm || !hasF16C {
		t.Skip("no AVX2/F16C here")
	}
	defer func(a bool) { useAsm = a }(useAsm)
	rng := rand.New(rand.NewPCG(29, 30))
	f32 := make([]float32, 0, 1<<17)
	for _, b := range specialF32 {
		f32 = append(f32, math.Float32frombits(b))
	}
	for len(f32) < 1<<17 {
		f32 = append(f32, math.Float32frombits(rng.Uint32()))
	}
	u16 := make([]uint16, 1<<16)
	for i := range u16 {
		u16[i] = uint16(i)
	}
	bf := func(h uint16) float32 { return tensor.BF16ToF32(h) }
	hf := func(h uint16) float32 { return tensor.F16ToF32(h) }
	toBF := func(v float32) float32 { return bf(tensor.F32ToBF16(v)) }
	toHF := func(v float32) float32 { return hf(tensor.F32ToF16(v)) }
	type conv struct {
		name string
		cvt  int
		op   Operand
		want func(i int) uint32 // bits of the result for element i
	}
	convs := []conv{
		{"bf16->f32", cvtBF16F32, HalfOp(u16, tensor.BF16, tensor.BF16), func(i int) uint32 { return math.Float32bits(bf(u16[i])) }},
		{"f16->f32", cvtF16F32, HalfOp(u16, tensor.F16, tensor.F16), func(i int) uint32 { return math.Float32bits(hf(u16[i])) }},
		{"f32 round bf16", cvtF32RoundBF16, F32Op(f32, tensor.BF16), func(i int) uint32 { return math.Float32bits(toBF(f32[i])) }},
		{"f32 round f16", cvtF32RoundF16, F32Op(f32, tensor.F16), func(i int) uint32 { return math.Float32bits(toHF(f32[i])) }},
		{"bf16 round f16", cvtBF16RoundF16, HalfOp(u16, tensor.BF16, tensor.F16), func(i int) uint32 { return math.Float32bits(toHF(bf(u16[i]))) }},
		{"f16 round bf16", cvtF16RoundBF16, HalfOp(u16, tensor.F16, tensor.BF16), func(i int) uint32 { return math.Float32bits(toBF(hf(u16[i]))) }},
	}
	for _, c := range convs {
		n := len(c.op.U16) + len(c.op.F32)
		// Shapes: one long row; rows of 16 at stride 19; rows of 37 (a
		// tail of 5) at stride 40; rows of 7 (Go only) at stride 7.
		for _, sh := range [][2]int{{n, n}, {16, 19}, {37, 40}, {7, 7}} {
			cols, ld := sh[0], sh[1]
			rows := (n - cols) / ld
			if cols == n {
				rows = 1
			}
			for _, asm := range []bool{true, false} {
				useAsm = asm
				got := make([]uint32, rows*cols)
				dst := make([]float32, rows*cols)
				convertF32(dst, cols, &c.op, c.cvt, 0, ld, rows, cols)
				for i, v := range dst {
					got[i] = math.Float32bits(v)
				}
				bad := 0
				for r := 0; r < rows; r++ {
					for j := 0; j < cols; j++ {
						src := r*ld + j
						if w := c.want(src); got[r*cols+j] != w {
							if bad++; bad <= 5 {
								var in uint32
								if c.op.U16 != nil {
									in = uint32(c.op.U16[src])
								} else {
									in = math.Float32bits(c.op.F32[src])
								}
								t.Errorf("%s asm=%v cols=%d: input %#x gives %#x, want %#x", c.name, asm, cols, in, got[r*cols+j], w)
							}
						}
					}
				}
			}
		}
	}
}

// TestCvtRowsStrides checks cvtRows's own strides and that it writes
// nothing past the n elements of each row.
func TestCvtRowsStrides(t *testing.T) {
	if !hasAsm || !hasF16C {
		t.Skip("no AVX2/F16C here")
	}
	src := make([]float32, 3*40)
	for i := range src {
		src[i] = float32(i) + 0.5
	}
	dst := make([]float32, 3*50)
	for i := range dst {
		dst[i] = -1
	}
	cvtRows(cvtF32RoundBF16, 3, 32, unsafe.Pointer(&src[0]), 40*4, unsafe.Pointer(&dst[0]), 50*4)
	for r := 0; r < 3; r++ {
		for j := 0; j < 50; j++ {
			want := float32(-1)
			if j < 32 {
				want = Round(src[r*40+j], tensor.BF16)
			}
			if dst[r*50+j] != want {
				t.Fatalf("row %d col %d: %g, want %g", r, j, dst[r*50+j], want)
			}
		}
	}
}

// TestGemmMixedNoAsm runs this test in child processes with SHOGGO_NOASM=1
// (no assembly at all: neither kernels nor conversions), SHOGGO_NOBF16=1
// (neither bf16 kernel) and SHOGGO_NOAMX=1 (no AMX kernel): the switches
// must be off, and GemmMixed must still match mixedRef.
func TestGemmMixedNoAsm(t *testing.T) {
	if env := os.Getenv("GEMM_TEST_CHILD"); env != "" {
		switch env {
		case "SHOGGO_NOASM":
			if useAsm || useBF16 || useAMX {
				t.Fatalf("SHOGGO_NOASM=1 but useAsm=%v useBF16=%v useAMX=%v", useAsm, useBF16, useAMX)
			}
		case "SHOGGO_NOBF16":
			if useAsm != hasAsm || useBF16 || useAMX {
				t.Fatalf("SHOGGO_NOBF16=1 but useAsm=%v useBF16=%v useAMX=%v", useAsm, useBF16, useAMX)
			}
		case "SHOGGO_NOAMX":
			if useAsm != hasAsm || useBF16 != hasBF16 || useAMX {
				t.Fatalf("SHOGGO_NOAMX=1 but useAsm=%v useBF16=%v useAMX=%v", useAsm, useBF16, useAMX)
			}
		}
		rng := rand.New(rand.NewPCG(31, 32))
		for _, l := range layouts {
			newMixedCase(rng, l[0], l[1], 33, 70, 40, opKinds[3], opKinds[1]).check(t, 1, 0)
			newMixedCase(rng, l[0], l[1], 17, 20, 130, opKinds[6], opKinds[2]).check(t, -0.7, 0.5)
		}
		return
	}
	if testing.Short() && !hasAsm {
		t.Skip("no assembly here anyway")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Skip(err)
	}
	for _, env := range []string{"SHOGGO_NOASM", "SHOGGO_NOBF16", "SHOGGO_NOAMX"} {
		cmd := exec.Command(exe, "-test.run=^TestGemmMixedNoAsm$", "-test.v")
		cmd.Env = append(os.Environ(), env+"=1", "GEMM_TEST_CHILD="+env)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("child with %s=1: %v\n%s", env, err, out)
		}
	}
}

// TestBF16Pack checks the bf16 path's assembly packing routines against
// the Go packing bit for bit, for the four layouts and the three source kinds
// (float32, bf16, fp16), with special values (NaN, Inf, denormals, rounding
// ties) among random ones, full and partial panels, and k with and without
// a tail.
func TestBF16Pack(t *testing.T) {
	if !hasBF16 || !hasAsm {
		t.Skip("no AVX512_BF16 here")
	}
	defer func(v bool) { bf16AsmPack = v }(bf16AsmPack)
	rng := rand.New(rand.NewPCG(33, 34))
	specials := specialF32
	for _, kind := range [][2]tensor.DType{opKinds[1], opKinds[3], opKinds[8]} {
		for _, l := range layouts {
			for _, s := range [][3]int{{64, 96, 96}, {40, 70, 77}, {32, 32, 32}, {33, 31, 200}} {
				m, n, k := s[0], s[1], s[2]
				mc := newMixedCase(rng, l[0], l[1], m, n, k, kind, kind)
				// Sprinkle special values over both operands.
				for _, o := range []*Operand{&mc.a, &mc.b} {
					for i := 0; i < 200; i++ {
						v := math.Float32frombits(specials[rng.IntN(len(specials))])
						if o.F32 != nil {
							o.F32[rng.IntN(len(o.F32))] = v
						} else if o.Src == tensor.BF16 {
							o.U16[rng.IntN(len(o.U16))] = tensor.F32ToBF16(v)
						} else {
							o.U16[rng.IntN(len(o.U16))] = tensor.F32ToF16(v)
						}
					}
				}
				p := problem{transA: mc.transA, transB: mc.transB, m: m, n: n, k: k, a: mc.a, b: mc.b,
					lda: mc.lda, ldb: mc.ldb, cvtA: mc.a.cvtBF16(), cvtB: mc.b.cvtBF16(), bf16: true}
				pack := func(asm bool) ([]uint16, []uint16) {
					bf16AsmPack = asm
					var x bf16Buffers
					steps := (k + kX - 1) / kX
					x.ensure((m+mrX-1)/mrX*steps*1024, (n+nrX-1)/nrX*steps*1024)
					for i := range x.a {
						x.a[i] = 0xdead
					}
					for i := range x.b {
						x.b[i] = 0xdead
					}
					p.packABF16(&x, 0, m, 0, k)
					for j := 0; j < n; j += nrX {
						p.packBBF16(x.b[j/nrX*steps*1024:(j/nrX+1)*steps*1024], 0, k, j, min(nrX, n-j))
					}
					return x.a, x.b
				}
				ga, gb := pack(false)
				aa, ab := pack(true)
				for _, c := range []struct {
					name      string
					got, want []uint16
				}{{"A", aa, ga}, {"B", ab, gb}} {
					for i := range c.want {
						if c.got[i] != c.want[i] {
							t.Fatalf("%s %s tA=%v tB=%v m=%d n=%d k=%d: packed %s[%d] = %#x, Go packs %#x",
								opName(mc.a), opName(mc.b), l[0], l[1], m, n, k, c.name, i, c.got[i], c.want[i])
						}
					}
				}
			}
		}
	}
}

// TestGemmMixedConcurrent runs multi-threaded GemmMixed calls from several
// goroutines at once, with garbage collections (and so preemption signals)
// in between, on every path: each result must equal the same call's
// result computed alone, bit for bit (the AMX tile state is per thread).
func TestGemmMixedConcurrent(t *testing.T) {
	defer SetThreads(0)
	SetThreads(2)
	rng := rand.New(rand.NewPCG(35, 36))
	var cases []*mixedCase
	for i := 0; i < 6; i++ {
		cases = append(cases, newMixedCase(rng, i%2 == 0, i%3 == 0, 100+i*13, 200-i*11, 150, opKinds[3], opKinds[1+i%2]))
	}
	mixedKernels(t, func(t *testing.T) {
		want := make([][]float32, len(cases))
		for i, mc := range cases {
			want[i] = append([]float32(nil), mc.c0...)
			mc.run(1, 0, want[i])
		}
		var wg sync.WaitGroup
		errs := make(chan string, len(cases))
		for i, mc := range cases {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for r := 0; r < 8; r++ {
					c := append([]float32(nil), mc.c0...)
					mc.run(1, 0, c)
					for j := range c {
						if math.Float32bits(c[j]) != math.Float32bits(want[i][j]) {
							errs <- fmt.Sprintf("%s: C[%d] = %g, alone %g", mc.name(1, 0), j, c[j], want[i][j])
							return
						}
					}
					if r%3 == 0 {
						runtime.GC()
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for e := range errs {
			t.Error(e)
		}
	})
}
