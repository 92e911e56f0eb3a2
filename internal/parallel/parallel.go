// Package parallel runs loops over index ranges on a persistent pool of
// worker goroutines, for the CPU kernels.
//
// For(n, grain, fn) cuts [0, n) into ranges whose boundaries are multiples
// of grain and calls fn on each, on the calling goroutine and up to
// Threads()-1 workers. Ranges are handed out dynamically, so a kernel gets
// results that do not depend on the thread count (nor on scheduling) as
// long as each output element is written by one range and computed the
// same way whichever range holds it. Aligned boundaries make that easy for
// kernels that work in SIMD blocks: with grain a multiple of the block, a
// block never straddles two ranges, so the same elements always take the
// vector path.
//
// A reduction across ranges needs a fixed combination order: either
// partition the outputs instead (each range owns some output columns and
// sums over all rows in order), or use Blocks, whose block boundaries depend
// only on n and the block size, with one partial result per block combined
// in block order afterwards.
//
// Calls may nest and may run concurrently: a call that finds every worker
// busy runs its ranges on the calling goroutine.
package parallel

import (
	"runtime"
	"sync"
	"sync/atomic"
)

var (
	threads atomic.Int32 // 0 means runtime.GOMAXPROCS(0)
	poolMu  sync.Mutex
	started int
	work    = make(chan *job, 64)
)

// SetThreads sets how many goroutines (the caller included) a call uses;
// n <= 0 restores the default, runtime.GOMAXPROCS(0).
func SetThreads(n int) {
	threads.Store(int32(max(n, 0)))
}

// Threads reports how many goroutines a call uses.
func Threads() int {
	if n := int(threads.Load()); n > 0 {
		return n
	}
	return runtime.GOMAXPROCS(0)
}

// job is one For call in progress. It is never reused: a worker may pick
// it off the queue after every range is done, and must then find nothing
// left to do.
type job struct {
	fn       func(lo, hi int)
	n, grain int
	units    int // ceil(n / grain)
	pieces   int
	next     atomic.Int64
	wg       sync.WaitGroup
}

// piece returns the bounds of piece i: pieces cover whole grain units.
func (j *job) piece(i int) (lo, hi int) {
	u0, u1 := i*j.units/j.pieces, (i+1)*j.units/j.pieces
	return u0 * j.grain, min(u1*j.grain, j.n)
}

func (j *job) run() {
	for {
		i := int(j.next.Add(1) - 1)
		if i >= j.pieces {
			return
		}
		lo, hi := j.piece(i)
		j.fn(lo, hi)
		j.wg.Done()
	}
}

func worker() {
	for j := range work {
		j.run()
	}
}

func ensureWorkers(n int) {
	poolMu.Lock()
	for ; started < n; started++ {
		go worker()
	}
	poolMu.Unlock()
}

// piecesPerThread is how many ranges each thread gets when there is enough
// work: on a machine shared with other work, a thread that is slowed down
// takes fewer of them.
const piecesPerThread = 4

// For calls fn(lo, hi) on consecutive ranges that together cover [0, n),
// each starting at a multiple of grain (grain < 1 counts as 1) and all
// but the last a whole number of grains long, running ranges concurrently
// on up to Threads() goroutines. It returns when every call has returned.
// fn must make each output depend only on the indices it is given (see
// the package comment); n <= 0 does nothing.
func For(n, grain int, fn func(lo, hi int)) {
	if n <= 0 {
		return
	}
	grain = max(grain, 1)
	units := (n + grain - 1) / grain
	nt := min(Threads(), units)
	if nt <= 1 {
		fn(0, n)
		return
	}
	j := &job{fn: fn, n: n, grain: grain, units: units, pieces: min(units, nt*piecesPerThread)}
	j.wg.Add(j.pieces)
	ensureWorkers(nt - 1)
	for range nt - 1 {
		select {
		case work <- j:
		default: // queue full: the caller does more itself
		}
	}
	j.run()
	j.wg.Wait()
}

// Blocks calls fn(b, lo, hi) for block b = [b*block, min((b+1)*block, n))
// of [0, n), for every b in [0, NumBlocks(n, block)), concurrently. The
// blocks depend only on n and block, so per-block partial results combined
// in block order give the same answer for any thread count.
func Blocks(n, block int, fn func(b, lo, hi int)) {
	block = max(block, 1)
	nb := NumBlocks(n, block)
	For(nb, 1, func(b0, b1 int) {
		for b := b0; b < b1; b++ {
			fn(b, b*block, min((b+1)*block, n))
		}
	})
}

// NumBlocks is the number of blocks Blocks(n, block, ...) makes.
func NumBlocks(n, block int) int {
	if n <= 0 {
		return 0
	}
	block = max(block, 1)
	return (n + block - 1) / block
}
