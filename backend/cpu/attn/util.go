package attn

import (
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/shoggo/shoggo/backend/cpu/gemm"
)

// minGemmWork is the smallest m*n*k for which a tile product goes through
// gemm.Gemm; below it a plain loop is cheaper than the call (and, for a
// packed GEMM, than packing the panels). Head sizes of 1..8 stay here.
const minGemmWork = 16 * 16 * 16

// mm computes c = alpha*op(a)*op(b) + beta*c with gemm's conventions,
// sending big products to gemm.Gemm and small ones to plain loops.
func mm[T gemm.Float](transA, transB bool, m, n, k int, alpha T, a []T, lda int, b []T, ldb int, beta T, c []T, ldc int) {
	if m == 0 || n == 0 {
		return
	}
	if m*n*k >= minGemmWork {
		gemm.Gemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	if !transA && transB {
		// Dot-product form: both operands are read along contiguous rows.
		for i := 0; i < m; i++ {
			ar := a[i*lda : i*lda+k]
			cr := c[i*ldc : i*ldc+n]
			for j := range cr {
				br := b[j*ldb : j*ldb+k]
				var s T
				for p, x := range ar {
					s += x * br[p]
				}
				if beta == 0 {
					cr[j] = alpha * s
				} else {
					cr[j] = alpha*s + beta*cr[j]
				}
			}
		}
		return
	}
	gemm.Ref(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// is32 reports whether T is 4 bytes wide (float32 or a type based on it).
func is32[T gemm.Float]() bool {
	var z T
	return unsafe.Sizeof(z) == 4
}

// expSub sets row[c] = exp(row[c] - m) and returns the sum of the new
// values. Entries equal to -Inf become 0. For float32 it uses expf (a
// polynomial exp accurate to about 2 ulp); for float64, math.Exp.
func expSub[T gemm.Float](row []T, m T) T {
	if r, ok := any(row).([]float32); ok {
		return T(expSub32(r, float32(m)))
	}
	var sum T
	for c, x := range row {
		e := T(math.Exp(float64(x - m)))
		row[c] = e
		sum += e
	}
	return sum
}

func expSub32(row []float32, m float32) float32 {
	var sum float32
	n8 := 0
	if useAsm && len(row) >= 8 {
		n8 = len(row) &^ 7
		sum = expSubAVX2(&row[0], n8, m)
	}
	for c := n8; c < len(row); c++ {
		e := expf(row[c] - m)
		row[c] = e
		sum += e
	}
	return sum
}

// expf is exp for float32: Cody-Waite range reduction x = n ln2 + r,
// |r| <= ln2/2, and Cephes' degree-7 polynomial for e^r (relative error
// about 1e-7). Results below the smallest normal float32 flush to 0.
func expf(x float32) float32 {
	const (
		log2e = 1.44269504088896341
		c1    = 0.693359375
		c2    = -2.12194440e-4
	)
	if x < -87.33654 { // also -Inf
		return 0
	}
	if x > 88 || x != x { // overflow range and NaN: rare, take the slow path
		return float32(math.Exp(float64(x)))
	}
	z := x * log2e
	var n int32
	if z >= 0 {
		n = int32(z + 0.5)
	} else {
		n = int32(z - 0.5)
	}
	fn := float32(n)
	r := x - fn*c1
	r -= fn * c2
	r2 := r * r
	p := float32(1.9875691500e-4)
	p = p*r + 1.3981999507e-3
	p = p*r + 8.3334519073e-3
	p = p*r + 4.1665795894e-2
	p = p*r + 1.6666665459e-1
	p = p*r + 5.0000001201e-1
	y := p*r2 + r + 1
	return y * math.Float32frombits(uint32(n+127)<<23)
}

// parallelFor runs body(scratch, i) for every i in [0, n) on at most procs
// goroutines, each with its own scratch from newScratch. Items are handed
// out in increasing order; which goroutine runs an item does not affect
// any result as long as items write disjoint outputs.
func parallelFor[S any](n, procs int, newScratch func() S, body func(S, int)) {
	w := min(procs, n)
	if w <= 1 {
		if n > 0 {
			sc := newScratch()
			for i := 0; i < n; i++ {
				body(sc, i)
			}
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range w {
		wg.Go(func() {
			sc := newScratch()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				body(sc, i)
			}
		})
	}
	wg.Wait()
}

func checkLen(what string, got, want int) {
	if got != want {
		panic(fmt.Sprintf("attn: len(%s) = %d, want %d", what, got, want))
	}
}
