package parallel

import (
	"sync"
	"sync/atomic"
	"testing"
)

// For covers [0, n) exactly once, with ranges starting at multiples of
// grain, for any thread count.
func TestForCoversOnce(t *testing.T) {
	defer SetThreads(0)
	for _, threads := range []int{1, 2, 3, 8} {
		SetThreads(threads)
		for _, n := range []int{0, 1, 5, 64, 1000, 4097} {
			for _, grain := range []int{0, 1, 8, 100, 5000} {
				hits := make([]int32, n)
				For(n, grain, func(lo, hi int) {
					if g := max(grain, 1); lo%g != 0 {
						t.Errorf("threads %d n %d grain %d: range starts at %d", threads, n, grain, lo)
					}
					if lo >= hi {
						t.Errorf("empty range [%d, %d)", lo, hi)
					}
					for i := lo; i < hi; i++ {
						atomic.AddInt32(&hits[i], 1)
					}
				})
				for i, h := range hits {
					if h != 1 {
						t.Fatalf("threads %d n %d grain %d: index %d visited %d times", threads, n, grain, i, h)
					}
				}
			}
		}
	}
}

// Nested and concurrent calls finish and cover their ranges.
func TestForNestedConcurrent(t *testing.T) {
	SetThreads(3)
	defer SetThreads(0)
	var total atomic.Int64
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			For(20, 1, func(lo, hi int) {
				for range hi - lo {
					For(50, 4, func(a, b int) { total.Add(int64(b - a)) })
				}
			})
		})
	}
	wg.Wait()
	if got := total.Load(); got != 4*20*50 {
		t.Fatalf("visited %d, want %d", got, 4*20*50)
	}
}

// Blocks are fixed by n and the block size, whatever the thread count.
func TestBlocks(t *testing.T) {
	defer SetThreads(0)
	for _, threads := range []int{1, 4} {
		SetThreads(threads)
		n, block := 1003, 100
		if NumBlocks(n, block) != 11 || NumBlocks(0, 5) != 0 {
			t.Fatalf("NumBlocks")
		}
		got := make([][2]int, NumBlocks(n, block))
		Blocks(n, block, func(b, lo, hi int) { got[b] = [2]int{lo, hi} })
		for b, r := range got {
			if r[0] != b*block || r[1] != min((b+1)*block, n) {
				t.Fatalf("threads %d: block %d = %v", threads, b, r)
			}
		}
	}
}

func BenchmarkForOverhead(b *testing.B) {
	x := make([]float32, 1<<14)
	for b.Loop() {
		For(len(x), 1<<12, func(lo, hi int) {
			for i := lo; i < hi; i++ {
				x[i]++
			}
		})
	}
}
