package dist

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"
)

// runRanks runs fn on every rank of cs in its own goroutine and returns the
// errors by rank.
func runRanks(cs []Comm, fn func(c Comm) error) []error {
	errs := make([]error, len(cs))
	var wg sync.WaitGroup
	for i, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = fn(c)
		}()
	}
	wg.Wait()
	return errs
}

func noErrors(t *testing.T, errs []error) {
	t.Helper()
	for r, err := range errs {
		if err != nil {
			t.Fatalf("rank %d: %v", r, err)
		}
	}
}

// rankData is the deterministic input of rank r (what the MPI tests use too).
func rankData(r, n int) []float32 {
	b := make([]float32, n)
	for i := range b {
		b[i] = float32(r+1)*0.5 + float32(i)*0.25
	}
	return b
}

func TestDistLocalAllReduce(t *testing.T) {
	for _, n := range []int{1, 2, 3, 5} {
		cs := NewLocal(n)
		const m = 37
		got := make([][]float32, n)
		noErrors(t, runRanks(cs, func(c Comm) error {
			b := rankData(c.Rank(), m)
			if err := c.AllReduce(b, Sum); err != nil {
				return err
			}
			got[c.Rank()] = b
			return nil
		}))
		for i := range m {
			var want float32
			for r := range n {
				want += rankData(r, m)[i]
			}
			for r := range n {
				if got[r][i] != want {
					t.Fatalf("n=%d rank %d [%d] = %v, want %v", n, r, i, got[r][i], want)
				}
			}
		}
	}
}

func TestDistLocalOps(t *testing.T) {
	const n, m = 4, 9
	cs := NewLocal(n)
	type res struct {
		avg, mx, mn []float32
		f64         []float64
		bc          []float32
		bb          []byte
		ag, rs      []float32
	}
	out := make([]res, n)
	noErrors(t, runRanks(cs, func(c Comm) error {
		r := c.Rank()
		var o res
		o.avg = rankData(r, m)
		if err := c.AllReduce(o.avg, Avg); err != nil {
			return err
		}
		o.mx = rankData(r, m)
		if err := c.AllReduce(o.mx, Max); err != nil {
			return err
		}
		o.mn = rankData(r, m)
		if err := c.AllReduce(o.mn, Min); err != nil {
			return err
		}
		o.f64 = []float64{float64(r), 1e308, float64(r) * 1e-300}
		if err := c.AllReduceF64(o.f64, Sum); err != nil {
			return err
		}
		o.bc = rankData(r, m)
		if err := c.Broadcast(o.bc, 2); err != nil {
			return err
		}
		o.bb = []byte(fmt.Sprintf("rank%d", r))
		if err := c.BroadcastBytes(o.bb, 1); err != nil {
			return err
		}
		if err := c.Barrier(); err != nil {
			return err
		}
		o.ag = make([]float32, n*m)
		if err := c.AllGather(rankData(r, m), o.ag); err != nil {
			return err
		}
		o.rs = make([]float32, 2)
		if err := c.ReduceScatter(rankData(r, 2*n), o.rs, Sum); err != nil {
			return err
		}
		out[r] = o
		return nil
	}))
	for r, o := range out {
		for i := range m {
			var s float32
			mx, mn := float32(math.Inf(-1)), float32(math.Inf(1))
			for q := range n {
				v := rankData(q, m)[i]
				s += v
				mx = max(mx, v)
				mn = min(mn, v)
			}
			if o.avg[i] != s*(1/float32(n)) || o.mx[i] != mx || o.mn[i] != mn {
				t.Fatalf("rank %d [%d]: avg %v max %v min %v; want %v %v %v", r, i, o.avg[i], o.mx[i], o.mn[i], s/float32(n), mx, mn)
			}
			if o.bc[i] != rankData(2, m)[i] {
				t.Fatalf("rank %d broadcast [%d] = %v", r, i, o.bc[i])
			}
		}
		if o.f64[0] != 6 || !math.IsInf(o.f64[1], 1) || o.f64[2] != 6e-300 {
			t.Fatalf("rank %d f64 %v", r, o.f64)
		}
		if string(o.bb) != "rank1" {
			t.Fatalf("rank %d bytes %q", r, o.bb)
		}
		for q := range n {
			for i := range m {
				if o.ag[q*m+i] != rankData(q, m)[i] {
					t.Fatalf("rank %d allgather block %d [%d] = %v", r, q, i, o.ag[q*m+i])
				}
			}
		}
		for i := range 2 {
			var s float32
			for q := range n {
				s += rankData(q, 2*n)[r*2+i]
			}
			if o.rs[i] != s {
				t.Fatalf("rank %d reducescatter [%d] = %v, want %v", r, i, o.rs[i], s)
			}
		}
	}
}

// Reductions run in rank order: a sum whose result depends on the order
// (1e8 + 1 - 1e8 ...) is the same bits every time and on every rank.
func TestDistLocalDeterministic(t *testing.T) {
	const n = 6
	vals := []float32{1e8, 1, -1e8, 3, 0.1, 7}
	want := vals[0]
	for _, v := range vals[1:] {
		want += v
	}
	for range 20 {
		cs := NewLocal(n)
		got := make([]float32, n)
		noErrors(t, runRanks(cs, func(c Comm) error {
			b := []float32{vals[c.Rank()]}
			err := c.AllReduce(b, Sum)
			got[c.Rank()] = b[0]
			return err
		}))
		for r, g := range got {
			if math.Float32bits(g) != math.Float32bits(want) {
				t.Fatalf("rank %d got %v, want %v (rank-order sum)", r, g, want)
			}
		}
	}
}

func TestDistLocalIAllReduce(t *testing.T) {
	const n, k, m = 3, 8, 100
	cs := NewLocal(n)
	out := make([][][]float32, n)
	noErrors(t, runRanks(cs, func(c Comm) error {
		bufs := make([][]float32, k)
		reqs := make([]Request, k)
		for j := range k {
			bufs[j] = rankData(c.Rank()+j, m)
			reqs[j] = c.IAllReduce(bufs[j], Sum)
		}
		// A blocking collective between pending requests is fine.
		if err := c.Barrier(); err != nil {
			return err
		}
		for j := k - 1; j >= 0; j-- { // any completion order
			if err := reqs[j].Wait(); err != nil {
				return err
			}
		}
		out[c.Rank()] = bufs
		return nil
	}))
	for j := range k {
		for i := range m {
			var s float32
			for q := range n {
				s += rankData(q+j, m)[i]
			}
			for r := range n {
				if out[r][j][i] != s {
					t.Fatalf("request %d rank %d [%d] = %v, want %v", j, r, i, out[r][j][i], s)
				}
			}
		}
	}
}

func TestDistLocalMismatch(t *testing.T) {
	cs := NewLocal(2)
	errs := runRanks(cs, func(c Comm) error {
		if c.Rank() == 0 {
			return c.AllReduce(make([]float32, 4), Sum)
		}
		return c.Broadcast(make([]float32, 4), 0)
	})
	for r, err := range errs {
		if err == nil || !strings.Contains(err.Error(), "mismatch") {
			t.Fatalf("rank %d: %v, want a mismatch error", r, err)
		}
	}
	var de *Error
	if !errors.As(errs[0], &de) || de.Lib != "local" {
		t.Fatalf("error %T %v is not a *dist.Error", errs[0], errs[0])
	}
}

// A rank that leaves (as a killed process would) makes the others' pending
// and later collectives fail with an error naming it.
func TestDistLocalClosedRank(t *testing.T) {
	cs := NewLocal(3)
	errs := runRanks(cs, func(c Comm) error {
		if c.Rank() == 2 {
			time.Sleep(20 * time.Millisecond)
			return c.Close()
		}
		err := c.AllReduce(make([]float32, 4), Sum)
		if err == nil {
			return fmt.Errorf("AllReduce succeeded without rank 2")
		}
		if !strings.Contains(err.Error(), "rank 2 closed") {
			return fmt.Errorf("unexpected error %v", err)
		}
		if err := c.Barrier(); err == nil || !strings.Contains(err.Error(), "rank 2 closed") {
			return fmt.Errorf("Barrier after close: %v", err)
		}
		return nil
	})
	noErrors(t, errs)
}

func TestDistLocalArgs(t *testing.T) {
	c := Single()
	if c.Size() != 1 || c.Rank() != 0 || c.LocalRank() != 0 || c.LocalSize() != 1 {
		t.Fatalf("single: %d/%d local %d/%d", c.Rank(), c.Size(), c.LocalRank(), c.LocalSize())
	}
	b := []float32{1, 2}
	if err := c.AllReduce(b, Avg); err != nil || b[0] != 1 || b[1] != 2 {
		t.Fatalf("single avg: %v %v", b, err)
	}
	if err := c.Broadcast(b, 1); err == nil {
		t.Fatal("broadcast from root 1 of 1 rank succeeded")
	}
	if err := c.AllGather(b, make([]float32, 3)); err == nil {
		t.Fatal("allgather with a wrong receive length succeeded")
	}
	if err := c.AllReduce(b, Op(9)); err == nil {
		t.Fatal("unknown op accepted")
	}
	cs := NewLocalWith(4, LocalOptions{LocalSize: 2})
	if cs[3].LocalRank() != 1 || cs[2].LocalRank() != 0 || cs[3].LocalSize() != 2 {
		t.Fatal("local ranks with 2 ranks per machine")
	}
}

// The simulated link: a 4-rank all-reduce of 100 kB at 10 MB/s with 1 ms
// latency costs 2·3·(1 ms + 25 kB/10 MB/s) = 21 ms; two back to back share
// the link, so the pair takes at least 42 ms (no upper bound: the real
// reduction and scheduling add to it).
func TestDistLocalSimulatedCost(t *testing.T) {
	cs := NewLocalWith(4, LocalOptions{Latency: time.Millisecond, Bandwidth: 10e6})
	start := time.Now()
	noErrors(t, runRanks(cs, func(c Comm) error {
		a, b := make([]float32, 25000), make([]float32, 25000)
		r1 := c.IAllReduce(a, Sum)
		r2 := c.IAllReduce(b, Sum)
		if err := r1.Wait(); err != nil {
			return err
		}
		return r2.Wait()
	}))
	if el := time.Since(start); el < 42*time.Millisecond {
		t.Fatalf("two simulated all-reduces took %v, want at least 42 ms", el)
	}
	h := cs[0].(*localComm).hub
	if got := h.cost(&round{kind: "AllReduce", count: 25000}); got != 21*time.Millisecond {
		t.Fatalf("cost model: %v, want 21ms", got)
	}
	if got := h.cost(&round{kind: "AllGather", count: 25000}); got != 3*(time.Millisecond+10*time.Millisecond) {
		t.Fatalf("all-gather cost: %v", got)
	}
}
