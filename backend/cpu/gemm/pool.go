package gemm

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// Threading: a persistent pool of worker goroutines, each with its own
// packing buffers. A call large enough to be worth splitting is cut into
// pieces along N (columns of C, in multiples of nr) or M (rows, multiples
// of mr), whichever is larger, so the operand that every piece repacks is
// the smaller one. The calling goroutine and up to Threads()-1 workers take
// pieces from an atomic counter until none are left. Sgemm is safe for
// concurrent use; concurrent calls share the workers.

// parMinWork is the m*n*k below which a call runs on the calling goroutine
// alone: 128^3 takes about 40 us on one core, and waking a worker costs
// several microseconds (more on a loaded machine).
var parMinWork = 1 << 21

// The split aims for pieces of at least minPiece rows or columns of C
// (every piece repacks the other operand, which costs about 7/width of
// its time), up to 4 per thread, or more if they would exceed maxPiece:
// with several pieces per thread, one slowed by the rest of the machine
// takes fewer of them.
var (
	minPiece = 512
	maxPiece = 4096
)

var (
	threads    atomic.Int32 // 0 means runtime.GOMAXPROCS(0)
	poolMu     sync.Mutex
	poolWork   = make(chan *call, 64)
	poolActive int // worker goroutines started
	bufPool    = sync.Pool{New: func() any { return new(buffers) }}
)

// SetThreads sets how many threads Sgemm uses; n <= 0 restores the default,
// runtime.GOMAXPROCS(0). Results do not depend on the thread count.
func SetThreads(n int) {
	if n < 0 {
		n = 0
	}
	threads.Store(int32(n))
}

// Threads reports how many threads Sgemm uses.
func Threads() int {
	if n := int(threads.Load()); n > 0 {
		return n
	}
	return runtime.GOMAXPROCS(0)
}

// ensureWorkers starts workers until there are at least n.
func ensureWorkers(n int) {
	poolMu.Lock()
	defer poolMu.Unlock()
	for ; poolActive < n; poolActive++ {
		go worker()
	}
}

func worker() {
	buf := new(buffers)
	for c := range poolWork {
		c.work(buf)
	}
}

// call is one split Sgemm call.
type call struct {
	p      problem
	splitN bool
	tiles  int // tiles along the split dimension
	pieces int
	next   atomic.Int64
	wg     sync.WaitGroup // counts unfinished pieces
}

// work computes pieces until none are left.
func (c *call) work(buf *buffers) {
	for {
		i := int(c.next.Add(1) - 1)
		if i >= c.pieces {
			return
		}
		sub := c.piece(i)
		sub.run(buf)
		c.wg.Done()
	}
}

// piece returns the sub-problem of piece i.
func (c *call) piece(i int) problem {
	q := c.p
	unit, unitN := q.tile()
	if c.splitN {
		unit = unitN
	}
	t0, t1 := i*c.tiles/c.pieces, (i+1)*c.tiles/c.pieces
	lo := t0 * unit
	if c.splitN {
		hi := min(t1*unit, q.n)
		q.n = hi - lo
		if q.transB {
			q.b = q.b.from(lo * q.ldb)
		} else {
			q.b = q.b.from(lo)
		}
		q.c = q.c[lo:]
	} else {
		hi := min(t1*unit, q.m)
		q.m = hi - lo
		if q.transA {
			q.a = q.a.from(lo)
		} else {
			q.a = q.a.from(lo * q.lda)
		}
		q.c = q.c[lo*q.ldc:]
	}
	return q
}

// parallel runs p, split across threads when it is big enough.
func parallel(p *problem) {
	nt := Threads()
	splitN := p.n >= p.m
	tm, tn := p.tile()
	dim, unit := p.m, tm
	if splitN {
		dim, unit = p.n, tn
	}
	tiles := (dim + unit - 1) / unit
	if nt < 2 || tiles < 2 || p.m*p.n*p.k < parMinWork {
		buf := bufPool.Get().(*buffers)
		p.run(buf)
		bufPool.Put(buf)
		return
	}
	nt = min(nt, tiles)
	pieces := min(dim/minPiece, max(4*nt, (dim+maxPiece-1)/maxPiece))
	pieces = min(max(nt, (pieces+nt-1)/nt*nt), tiles)
	c := &call{p: *p, splitN: splitN, tiles: tiles, pieces: pieces}
	c.wg.Add(pieces)
	ensureWorkers(nt - 1)
	for range nt - 1 {
		select {
		case poolWork <- c:
		default: // every worker is busy and the queue is full: do more here
		}
	}
	buf := bufPool.Get().(*buffers)
	c.work(buf)
	bufPool.Put(buf)
	c.wg.Wait()
}
