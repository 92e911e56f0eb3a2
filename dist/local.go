package dist

import (
	"fmt"
	"math"
	"math/bits"
	"sync"
	"time"
)

// LocalOptions configures an in-process group.
type LocalOptions struct {
	// LocalSize is the number of ranks per simulated machine (LocalRank is
	// Rank mod LocalSize); 0 means all ranks share one machine.
	LocalSize int
	// Latency is the simulated per-message latency α and Bandwidth the
	// simulated link bandwidth in bytes/s (0: infinite). When either is set,
	// every collective completes no earlier than the ring cost model says,
	// and collectives share one simulated link (a collective starts when the
	// previous one has finished), so overlapping compute with IAllReduce
	// can be measured. Costs for n ranks and a vector of B bytes:
	//   AllReduce      2(n-1)·(α + B/n/bw)   (ring reduce-scatter + all-gather)
	//   ReduceScatter  (n-1)·(α + B/n/bw)    (B = the full send vector)
	//   AllGather      (n-1)·(α + B/n/bw)    (B = the full receive vector)
	//   Broadcast      ⌈log2 n⌉·(α + B/bw)   (binomial tree)
	//   Barrier        ⌈log2 n⌉·α
	Latency   time.Duration
	Bandwidth float64
}

// NewLocal returns n communicators joined in one process: rank i is the i-th
// element, to be driven by its own goroutine. Reductions run in rank order
// (((r0 op r1) op r2) ...), so results are the same bits on every run and
// every rank.
func NewLocal(n int) []Comm { return NewLocalWith(n, LocalOptions{}) }

// NewLocalWith is NewLocal with simulated machines, latency and bandwidth.
func NewLocalWith(n int, opt LocalOptions) []Comm {
	if n < 1 {
		panic(fmt.Sprintf("dist.NewLocal: %d ranks", n))
	}
	if opt.LocalSize <= 0 || opt.LocalSize > n {
		opt.LocalSize = n
	}
	h := &localHub{n: n, opt: opt, rounds: map[uint64]*round{}, closed: make([]bool, n)}
	cs := make([]Comm, n)
	for i := range cs {
		cs[i] = &localComm{hub: h, rank: i}
	}
	return cs
}

// Single returns a communicator of one rank (no launcher): every collective
// is the identity (Avg of one value is the value).
func Single() Comm { return NewLocal(1)[0] }

type localHub struct {
	n   int
	opt LocalOptions

	mu       sync.Mutex
	rounds   map[uint64]*round
	closed   []bool
	linkFree time.Time
}

// round is one collective: each rank deposits its arguments; the last to
// arrive computes the result for all and closes done.
type round struct {
	seq     uint64
	sig     []string // per rank: what it called, for mismatch errors
	kind    string
	count   int
	op      Op
	root    int
	arrived int
	args    []localArgs
	err     error
	done    chan struct{}
}

type localArgs struct {
	f32, recv32 []float32
	f64         []float64
	bytes       []byte
}

type localComm struct {
	hub    *localHub
	rank   int
	seq    uint64
	closed bool
}

func (c *localComm) Rank() int      { return c.rank }
func (c *localComm) Size() int      { return c.hub.n }
func (c *localComm) LocalRank() int { return c.rank % c.hub.opt.LocalSize }
func (c *localComm) LocalSize() int { return c.hub.opt.LocalSize }

func (c *localComm) AllReduce(buf []float32, op Op) error {
	if err := checkOp("AllReduce", op); err != nil {
		return err
	}
	return c.run(c.next(), "AllReduce", len(buf), op, 0, localArgs{f32: buf})
}

func (c *localComm) AllReduceF64(buf []float64, op Op) error {
	if err := checkOp("AllReduceF64", op); err != nil {
		return err
	}
	return c.run(c.next(), "AllReduceF64", len(buf), op, 0, localArgs{f64: buf})
}

func (c *localComm) Broadcast(buf []float32, root int) error {
	if err := checkRoot("Broadcast", root, c.hub.n); err != nil {
		return err
	}
	return c.run(c.next(), "Broadcast", len(buf), Sum, root, localArgs{f32: buf})
}

func (c *localComm) BroadcastBytes(buf []byte, root int) error {
	if err := checkRoot("BroadcastBytes", root, c.hub.n); err != nil {
		return err
	}
	return c.run(c.next(), "BroadcastBytes", len(buf), Sum, root, localArgs{bytes: buf})
}

func (c *localComm) Barrier() error {
	return c.run(c.next(), "Barrier", 0, Sum, 0, localArgs{})
}

func (c *localComm) AllGather(send, recv []float32) error {
	if err := checkGather("AllGather", len(send), len(recv), c.hub.n); err != nil {
		return err
	}
	return c.run(c.next(), "AllGather", len(send), Sum, 0, localArgs{f32: send, recv32: recv})
}

func (c *localComm) ReduceScatter(send, recv []float32, op Op) error {
	if err := checkOp("ReduceScatter", op); err != nil {
		return err
	}
	if err := checkGather("ReduceScatter", len(recv), len(send), c.hub.n); err != nil {
		return err
	}
	return c.run(c.next(), "ReduceScatter", len(recv), op, 0, localArgs{f32: send, recv32: recv})
}

func (c *localComm) IAllReduce(buf []float32, op Op) Request {
	if err := checkOp("IAllReduce", op); err != nil {
		return doneRequest{err}
	}
	seq := c.next() // the collective's place in this rank's order is fixed now
	r := &chanRequest{done: make(chan struct{})}
	go func() {
		r.err = c.run(seq, "IAllReduce", len(buf), op, 0, localArgs{f32: buf})
		close(r.done)
	}()
	return r
}

// Close leaves the group: collectives of other ranks that need this rank
// fail with an error naming it, as when a process dies.
func (c *localComm) Close() error {
	if c.closed {
		return nil
	}
	c.closed = true
	h := c.hub
	h.mu.Lock()
	h.closed[c.rank] = true
	for seq, r := range h.rounds {
		if r.sig[c.rank] == "" {
			r.err = &Error{Lib: "local", Call: r.kind, Msg: fmt.Sprintf("rank %d closed before collective #%d", c.rank, seq)}
			delete(h.rounds, seq)
			close(r.done)
		}
	}
	h.mu.Unlock()
	return nil
}

type chanRequest struct {
	done chan struct{}
	err  error
}

func (r *chanRequest) Wait() error {
	<-r.done
	return r.err
}

func (c *localComm) next() uint64 {
	c.seq++
	return c.seq
}

func describe(kind string, count int, op Op, root int) string {
	switch kind {
	case "Broadcast", "BroadcastBytes":
		return fmt.Sprintf("%s(%d elements, root %d)", kind, count, root)
	case "Barrier":
		return "Barrier()"
	case "AllGather":
		return fmt.Sprintf("%s(%d elements per rank)", kind, count)
	}
	return fmt.Sprintf("%s(%d elements, %v)", kind, count, op)
}

// run is one rank's part in collective seq.
func (c *localComm) run(seq uint64, kind string, count int, op Op, root int, a localArgs) error {
	if c.closed {
		return &Error{Lib: "local", Call: kind, Msg: fmt.Sprintf("rank %d: communicator closed", c.rank)}
	}
	h := c.hub
	// IAllReduce and AllReduce are the same collective for matching.
	match := kind
	if match == "IAllReduce" {
		match = "AllReduce"
	}
	sig := describe(kind, count, op, root)
	h.mu.Lock()
	r := h.rounds[seq]
	if r == nil {
		r = &round{seq: seq, sig: make([]string, h.n), kind: match, count: count, op: op, root: root,
			args: make([]localArgs, h.n), done: make(chan struct{})}
		for q, cl := range h.closed {
			if cl && q != c.rank {
				h.mu.Unlock()
				return &Error{Lib: "local", Call: kind, Msg: fmt.Sprintf("rank %d closed before collective #%d", q, seq)}
			}
		}
		h.rounds[seq] = r
	}
	r.sig[c.rank] = sig
	r.args[c.rank] = a
	if r.err == nil && (r.kind != match || r.count != count || r.op != op || r.root != root) {
		first := 0
		for q := range r.sig {
			if r.sig[q] != "" && q != c.rank {
				first = q
				break
			}
		}
		r.err = &Error{Lib: "local", Call: kind, Msg: fmt.Sprintf("collective #%d mismatch: rank %d called %s, rank %d called %s",
			seq, c.rank, sig, first, r.sig[first])}
	}
	r.arrived++
	last := r.arrived == h.n
	if last {
		delete(h.rounds, seq)
	}
	h.mu.Unlock()
	if !last {
		<-r.done
		return r.err
	}
	arrived := time.Now()
	if r.err == nil {
		r.compute(h.n)
	}
	h.simulate(arrived, r)
	close(r.done)
	return r.err
}

// compute performs the collective for all ranks (called by the last rank to
// arrive, while the others wait, so every input is stable). Elements are
// independent, so in-place buffers are safe.
func (r *round) compute(n int) {
	switch r.kind {
	case "AllReduce":
		bufs := make([][]float32, n)
		for q := range bufs {
			bufs[q] = r.args[q].f32
		}
		reduceInto(bufs, bufs, r.count, r.op, n)
	case "AllReduceF64":
		bufs := make([][]float64, n)
		for q := range bufs {
			bufs[q] = r.args[q].f64
		}
		reduceInto(bufs, bufs, r.count, r.op, n)
	case "Broadcast":
		src := r.args[r.root].f32
		for q := range n {
			if q != r.root {
				copy(r.args[q].f32, src)
			}
		}
	case "BroadcastBytes":
		src := r.args[r.root].bytes
		for q := range n {
			if q != r.root {
				copy(r.args[q].bytes, src)
			}
		}
	case "AllGather":
		m := r.count
		for q := range n {
			for s := range n {
				copy(r.args[q].recv32[s*m:(s+1)*m], r.args[s].f32)
			}
		}
	case "ReduceScatter":
		m := r.count
		for q := range n {
			in := make([][]float32, n)
			for s := range n {
				in[s] = r.args[s].f32[q*m : (q+1)*m]
			}
			reduceInto(in, [][]float32{r.args[q].recv32}, m, r.op, n)
		}
	}
}

// reduceInto reduces in[0..n) element-wise in rank order and writes the
// result to every slice of out.
func reduceInto[T float32 | float64](in, out [][]T, count int, op Op, n int) {
	var s T = 1 / T(n)
	for j := range count {
		v := in[0][j]
		for q := 1; q < n; q++ {
			x := in[q][j]
			switch op {
			case Sum, Avg:
				v += x
			case Max:
				v = T(math.Max(float64(v), float64(x)))
			case Min:
				v = T(math.Min(float64(v), float64(x)))
			}
		}
		if op == Avg && n > 1 {
			v *= s
		}
		for _, o := range out {
			o[j] = v
		}
	}
}

// simulate sleeps until the collective's simulated completion time.
func (h *localHub) simulate(arrived time.Time, r *round) {
	if h.opt.Latency == 0 && h.opt.Bandwidth == 0 {
		return
	}
	cost := h.cost(r)
	h.mu.Lock()
	start := arrived
	if h.linkFree.After(start) {
		start = h.linkFree
	}
	end := start.Add(cost)
	h.linkFree = end
	h.mu.Unlock()
	if d := time.Until(end); d > 0 {
		time.Sleep(d)
	}
}

// cost is the ring / tree model documented on LocalOptions.
func (h *localHub) cost(r *round) time.Duration {
	n := h.n
	if n == 1 {
		return 0
	}
	alpha := h.opt.Latency.Seconds()
	xfer := func(bytes float64) float64 {
		if h.opt.Bandwidth <= 0 {
			return 0
		}
		return bytes / h.opt.Bandwidth
	}
	logn := float64(bits.Len(uint(n - 1)))
	elem := 4.0
	if r.kind == "AllReduceF64" {
		elem = 8
	} else if r.kind == "BroadcastBytes" {
		elem = 1
	}
	var sec float64
	switch r.kind {
	case "AllReduce", "AllReduceF64":
		b := float64(r.count) * elem
		sec = 2 * float64(n-1) * (alpha + xfer(b/float64(n)))
	case "ReduceScatter", "AllGather":
		b := float64(r.count) * elem * float64(n) // r.count is the per-rank block
		sec = float64(n-1) * (alpha + xfer(b/float64(n)))
	case "Broadcast", "BroadcastBytes":
		sec = logn * (alpha + xfer(float64(r.count)*elem))
	case "Barrier":
		sec = logn * alpha
	}
	return time.Duration(sec * float64(time.Second))
}
