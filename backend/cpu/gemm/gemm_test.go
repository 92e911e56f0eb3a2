package gemm

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"testing"
)

// Tolerance: |Sgemm - exact| <= 1e-5*sqrt(k) * (|alpha|*|op(A)_i.|*|op(B)_.j| + |beta*C_ij|),
// where exact is Ref in float64 on the same float32 inputs and |x| is the
// Euclidean norm of row i of op(A) or column j of op(B) (which bounds
// sum_p |op(A)_ip op(B)_pj|). Float32 rounding of a k-term dot product is
// far below this; a wrong element, a missed or doubled k block or a
// misapplied alpha/beta is far above it.
func tolerance(k int) float64 { return 1e-5 * math.Sqrt(float64(k)) }

var testDims = []int{1, 2, 7, 16, 17, 65, 255, 300}

// operands holds one random problem: A, B, C in float32 with padded
// leading dimensions, and the float64 product and its absolute version.
type operands struct {
	transA, transB bool
	m, n, k        int
	a, b, c0       []float32
	lda, ldb, ldc  int
	ab             []float64 // op(A)op(B), m x n, stride n
	rowA, colB     []float64 // norms of the rows of op(A) and the columns of op(B)
}

func newOperands(rng *rand.Rand, transA, transB bool, m, n, k int, withRef bool) *operands {
	o := &operands{transA: transA, transB: transB, m: m, n: n, k: k}
	ar, ac := m, k
	if transA {
		ar, ac = k, m
	}
	br, bc := k, n
	if transB {
		br, bc = n, k
	}
	// Leading dimensions larger than the minimum, with poison in the gaps.
	o.lda, o.ldb, o.ldc = ac+3, bc+5, n+2
	o.a = randMatrix(rng, ar, ac, o.lda)
	o.b = randMatrix(rng, br, bc, o.ldb)
	o.c0 = randMatrix(rng, m, n, o.ldc)
	if !withRef {
		return o
	}
	a64, b64 := make([]float64, len(o.a)), make([]float64, len(o.b))
	for i, v := range o.a {
		a64[i] = float64(v)
	}
	for i, v := range o.b {
		b64[i] = float64(v)
	}
	o.ab = make([]float64, m*n)
	Ref(transA, transB, m, n, k, 1, a64, o.lda, b64, o.ldb, 0, o.ab, n)
	o.rowA, o.colB = make([]float64, m), make([]float64, n)
	for p := 0; p < k; p++ {
		for i := range o.rowA {
			var v float64
			if transA {
				v = a64[p*o.lda+i]
			} else {
				v = a64[i*o.lda+p]
			}
			o.rowA[i] += v * v
		}
		for j := range o.colB {
			var v float64
			if transB {
				v = b64[j*o.ldb+p]
			} else {
				v = b64[p*o.ldb+j]
			}
			o.colB[j] += v * v
		}
	}
	for i := range o.rowA {
		o.rowA[i] = math.Sqrt(o.rowA[i])
	}
	for j := range o.colB {
		o.colB[j] = math.Sqrt(o.colB[j])
	}
	return o
}

// absBound bounds sum_p |op(A)_ip op(B)_pj|.
func (o *operands) absBound(i, j int) float64 { return o.rowA[i] * o.colB[j] }

// randMatrix returns rows x cols values in [-1, 1) at stride ld; the gaps
// between rows hold a large sentinel that must never be read into a result
// or overwritten.
func randMatrix(rng *rand.Rand, rows, cols, ld int) []float32 {
	s := make([]float32, (rows-1)*ld+cols+7) // a tail past the last row, too
	for i := range s {
		s[i] = sentinel
	}
	for i := 0; i < rows; i++ {
		for j := 0; j < cols; j++ {
			s[i*ld+j] = rng.Float32()*2 - 1
		}
	}
	return s
}

const sentinel = 1e30

// check runs Sgemm on a copy of C and compares with the float64 reference.
func (o *operands) check(t *testing.T, alpha, beta float32, nanC bool) {
	t.Helper()
	c := append([]float32(nil), o.c0...)
	if nanC {
		for i := 0; i < o.m; i++ {
			for j := 0; j < o.n; j++ {
				c[i*o.ldc+j] = float32(math.NaN())
			}
		}
	}
	Sgemm(o.transA, o.transB, o.m, o.n, o.k, alpha, o.a, o.lda, o.b, o.ldb, beta, c, o.ldc)
	tol := tolerance(o.k)
	bad := 0
	for i := range c {
		row, col := i/o.ldc, i%o.ldc
		if row >= o.m || col >= o.n {
			if c[i] != o.c0[i] {
				t.Fatalf("%s: element %d outside C changed: %g -> %g", o.name(alpha, beta), i, o.c0[i], c[i])
			}
			continue
		}
		c0 := float64(o.c0[i])
		if beta == 0 {
			c0 = 0
		}
		want := float64(alpha)*o.ab[row*o.n+col] + float64(beta)*c0
		bound := tol * (math.Abs(float64(alpha))*o.absBound(row, col) + math.Abs(float64(beta)*c0))
		if got := float64(c[i]); !(math.Abs(got-want) <= bound) {
			if bad++; bad <= 3 {
				t.Errorf("%s: C[%d,%d] = %g, want %g (bound %g)", o.name(alpha, beta), row, col, got, want, bound)
			}
		}
	}
	if bad > 0 {
		t.Fatalf("%s: %d wrong elements", o.name(alpha, beta), bad)
	}
}

func (o *operands) name(alpha, beta float32) string {
	return fmt.Sprintf("asm=%v tA=%v tB=%v m=%d n=%d k=%d alpha=%g beta=%g", useAsm, o.transA, o.transB, o.m, o.n, o.k, alpha, beta)
}

// kernels runs f with the assembly kernel (where the CPU has one) and with
// the Go fallback.
func kernels(t *testing.T, f func(t *testing.T)) {
	saved := useAsm
	defer func() { useAsm = saved }()
	for _, asm := range []bool{true, false} {
		if asm && !hasAsm {
			t.Log("no AVX2/FMA here: assembly kernel not tested")
			continue
		}
		useAsm = asm
		name := "go"
		if asm {
			name = "asm"
		}
		t.Run(name, f)
	}
}

var layouts = [][2]bool{{false, false}, {false, true}, {true, false}, {true, true}}

// TestSgemm covers every (m, n, k) from testDims, the four layouts,
// beta in {0, 1, 0.5} and alpha in {1, -0.7}, on both kernels.
func TestSgemm(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var cases []*operands
	for _, l := range layouts {
		for _, m := range testDims {
			for _, n := range testDims {
				for _, k := range testDims {
					cases = append(cases, newOperands(rng, l[0], l[1], m, n, k, true))
				}
			}
		}
	}
	kernels(t, func(t *testing.T) {
		for i, o := range cases {
			for _, alpha := range []float32{1, -0.7} {
				for _, beta := range []float32{0, 1, 0.5} {
					// The Go kernel is slow: in -short mode give it one
					// (alpha, beta) pair per shape, rotating through all six.
					if !useAsm && testing.Short() && (i+int(alpha*10)+int(beta*2))%6 != 0 {
						continue
					}
					o.check(t, alpha, beta, false)
				}
			}
		}
	})
}

// TestSgemmSmallBlocks shrinks the cache blocks so that small problems run
// through several mc, kc and nc blocks and partial blocks of each.
func TestSgemmSmallBlocks(t *testing.T) {
	defer func(mc, kc, nc int) { mcMax, kcMax, ncMax = mc, kc, nc }(mcMax, kcMax, ncMax)
	mcMax, kcMax, ncMax = 12, 16, 32
	rng := rand.New(rand.NewPCG(3, 4))
	dims := []int{1, 7, 17, 40, 65, 100}
	var cases []*operands
	for _, l := range layouts {
		for _, m := range dims {
			for _, n := range dims {
				for _, k := range dims {
					cases = append(cases, newOperands(rng, l[0], l[1], m, n, k, true))
				}
			}
		}
	}
	kernels(t, func(t *testing.T) {
		for _, o := range cases {
			o.check(t, -0.7, 0.5, false)
			o.check(t, 1, 0, false)
		}
	})
}

// TestSgemmNaNC checks that beta == 0 overwrites C even where it holds NaN.
func TestSgemmNaNC(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	kernels(t, func(t *testing.T) {
		for _, l := range layouts {
			for _, s := range [][3]int{{1, 1, 1}, {7, 17, 65}, {65, 40, 300}, {6, 16, 8}} {
				o := newOperands(rng, l[0], l[1], s[0], s[1], s[2], true)
				o.check(t, 1, 0, true)
				o.check(t, -0.7, 0, true)
			}
		}
	})
}

// TestSgemmDegenerate covers k == 0 and alpha == 0 (C = beta*C; A and B are
// not read) and empty results.
func TestSgemmDegenerate(t *testing.T) {
	c := []float32{1, 2, float32(math.NaN()), 4}
	Sgemm(false, false, 2, 2, 0, 1, nil, 1, nil, 2, 0.5, c, 2)
	if c[0] != 0.5 || c[1] != 1 || !math.IsNaN(float64(c[2])) || c[3] != 2 {
		t.Fatalf("k=0, beta=0.5: got %v", c)
	}
	a := []float32{float32(math.Inf(1)), 1}
	Sgemm(false, false, 2, 2, 1, 0, a, 1, []float32{1, 1}, 2, 0, c, 2)
	for _, v := range c {
		if v != 0 {
			t.Fatalf("alpha=0, beta=0: got %v", c)
		}
	}
	Sgemm(false, false, 0, 5, 3, 1, nil, 3, nil, 5, 0, nil, 5)
	Sgemm(false, false, 5, 0, 3, 1, nil, 3, nil, 0, 0, nil, 0)
}

// TestSgemmPanics checks that short slices and bad strides are caught.
func TestSgemmPanics(t *testing.T) {
	a, b, c := make([]float32, 6), make([]float32, 6), make([]float32, 4)
	for name, f := range map[string]func(){
		"short a": func() { Sgemm(false, false, 2, 2, 3, 1, a[:5], 3, b, 2, 0, c, 2) },
		"short b": func() { Sgemm(false, false, 2, 2, 3, 1, a, 3, b[:5], 2, 0, c, 2) },
		"short c": func() { Sgemm(false, false, 2, 2, 3, 1, a, 3, b, 2, 0, c[:3], 2) },
		"lda":     func() { Sgemm(false, false, 2, 2, 3, 1, a, 2, b, 2, 0, c, 2) },
		"ldc":     func() { Sgemm(false, false, 2, 2, 3, 1, a, 3, b, 2, 0, c, 1) },
		"neg":     func() { Sgemm(false, false, -1, 2, 3, 1, a, 3, b, 2, 0, c, 2) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			f()
		}()
	}
}

// TestSgemmThreads checks that results are bit-identical for 1, 2, 3 and 5
// threads, with the split forced down to tiny pieces as well.
func TestSgemmThreads(t *testing.T) {
	defer SetThreads(0)
	defer func(w, lo, hi int) { parMinWork, minPiece, maxPiece = w, lo, hi }(parMinWork, minPiece, maxPiece)
	rng := rand.New(rand.NewPCG(7, 8))
	shapes := [][3]int{{256, 768, 300}, {300, 100, 513}, {1000, 70, 65}, {7, 300, 17}, {65, 255, 255}}
	if !testing.Short() {
		shapes = append(shapes, [3]int{256, 3000, 768}, [3]int{3000, 256, 600})
	}
	kernels(t, func(t *testing.T) {
		for _, l := range layouts {
			for _, s := range shapes {
				o := newOperands(rng, l[0], l[1], s[0], s[1], s[2], false)
				run := func(threads, minWork, piece int) []float32 {
					SetThreads(threads)
					parMinWork, minPiece, maxPiece = minWork, piece, 4*piece
					c := append([]float32(nil), o.c0...)
					Sgemm(o.transA, o.transB, o.m, o.n, o.k, -0.7, o.a, o.lda, o.b, o.ldb, 0.5, c, o.ldc)
					return c
				}
				want := run(1, 1<<18, 512)
				for _, cfg := range [][3]int{{2, 1 << 18, 512}, {2, 0, 16}, {3, 0, 40}, {5, 0, 4096}} {
					got := run(cfg[0], cfg[1], cfg[2])
					for i := range want {
						if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
							t.Fatalf("%s threads=%d piece=%d: C[%d] = %g, one thread gives %g",
								o.name(-0.7, 0.5), cfg[0], cfg[2], i, got[i], want[i])
						}
					}
				}
			}
		}
	})
}

// TestSgemmConcurrent runs several multi-threaded calls at once.
func TestSgemmConcurrent(t *testing.T) {
	defer SetThreads(0)
	SetThreads(2)
	rng := rand.New(rand.NewPCG(9, 10))
	var ops []*operands
	for i := 0; i < 6; i++ {
		ops = append(ops, newOperands(rng, i%2 == 0, i%3 == 0, 100+i*13, 200-i*11, 150, true))
	}
	var wg sync.WaitGroup
	errs := make(chan string, len(ops)*4)
	for _, o := range ops {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := 0; r < 4; r++ {
				c := append([]float32(nil), o.c0...)
				Sgemm(o.transA, o.transB, o.m, o.n, o.k, 1, o.a, o.lda, o.b, o.ldb, 0, c, o.ldc)
				for i := 0; i < o.m; i++ {
					for j := 0; j < o.n; j++ {
						want, got := o.ab[i*o.n+j], float64(c[i*o.ldc+j])
						if math.Abs(got-want) > tolerance(o.k)*o.absBound(i, j) {
							errs <- fmt.Sprintf("%s: C[%d,%d] = %g, want %g", o.name(1, 0), i, j, got, want)
							return
						}
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

// TestGemm checks the generic entry point on both element types.
func TestGemm(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	o := newOperands(rng, true, false, 33, 20, 17, true)
	c := append([]float32(nil), o.c0...)
	Gemm(true, false, 33, 20, 17, 1, o.a, o.lda, o.b, o.ldb, 0, c, o.ldc)
	c64 := make([]float64, 33*20)
	a64, b64 := make([]float64, len(o.a)), make([]float64, len(o.b))
	for i, v := range o.a {
		a64[i] = float64(v)
	}
	for i, v := range o.b {
		b64[i] = float64(v)
	}
	Gemm(true, false, 33, 20, 17, 1, a64, o.lda, b64, o.ldb, 0, c64, 20)
	for i := 0; i < 33; i++ {
		for j := 0; j < 20; j++ {
			if c64[i*20+j] != o.ab[i*20+j] {
				t.Fatalf("float64 Gemm differs from Ref at %d,%d", i, j)
			}
			if math.Abs(float64(c[i*o.ldc+j])-o.ab[i*20+j]) > tolerance(17)*o.absBound(i, j) {
				t.Fatalf("float32 Gemm wrong at %d,%d", i, j)
			}
		}
	}
}
