package attn

import (
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/shoggo/shoggo/backend/cpu/gemm"
	"github.com/shoggo/shoggo/internal/vec"
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
// values. Entries equal to -Inf become 0. For float32 it uses
// vec.ExpSubSum32 (a polynomial exp accurate to about 2 ulp, AVX2/FMA
// assembly where the CPU has it, summed in float32); for float64, math.Exp.
// m is the row's running maximum (forward) or its log-sum-exp (backward),
// so the arguments stay near or below 0, far from Expf's clamp at 88.
func expSub[T gemm.Float](row []T, m T) T {
	if r, ok := any(row).([]float32); ok {
		return T(vec.ExpSubSum32(r, float32(m)))
	}
	var sum T
	for c, x := range row {
		e := T(math.Exp(float64(x - m)))
		row[c] = e
		sum += e
	}
	return sum
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
