//go:build darwin || freebsd || linux || netbsd

package dist

import (
	"fmt"
	"math"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// runWorker runs one MPI scenario as a rank of an mpirun job and returns the
// exit code.
func runWorker(scenario string) int {
	c, err := FromEnv() // mpirun's variables: Open MPI's world
	if err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		return 2
	}
	if _, ok := c.(*mpiComm); !ok {
		fmt.Fprintf(os.Stderr, "worker: FromEnv under mpirun gave %T\n", c)
		return 2
	}
	var werr error
	switch scenario {
	case "collectives":
		werr = workerCollectives(c)
	case "killrank":
		werr = workerKillRank(c)
	case "bucketer":
		werr = workerBucketer(c)
	default:
		werr = fmt.Errorf("unknown scenario %q", scenario)
	}
	if werr != nil {
		fmt.Printf("rank %d/%d FAIL: %v\n", c.Rank(), c.Size(), werr)
		return 1 // no Close: MPI_Finalize could wait on the failed peer
	}
	if err := c.Close(); err != nil {
		fmt.Printf("rank %d/%d close: %v\n", c.Rank(), c.Size(), err)
		return 1
	}
	if err := closeSemantics(c); err != nil {
		fmt.Printf("rank %d/%d after close: %v\n", c.Rank(), c.Size(), err)
		return 1
	}
	fmt.Printf("rank %d/%d ok\n", c.Rank(), c.Size())
	return 0
}

// expectedSum is what AllReduce(Sum) of rankData over n ranks must give:
// the values are multiples of 0.25 below 2^20, so every order of summation
// is exact and the result is known bit for bit.
func expectedSum(n, m int) []float32 {
	want := make([]float32, m)
	for r := range n {
		for i, v := range rankData(r, m) {
			want[i] += v
		}
	}
	return want
}

func same32(what string, got, want []float32) error {
	if len(got) != len(want) {
		return fmt.Errorf("%s: %d elements, want %d", what, len(got), len(want))
	}
	for i := range got {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			return fmt.Errorf("%s[%d] = %v, want %v", what, i, got[i], want[i])
		}
	}
	return nil
}

func workerCollectives(c Comm) error {
	n, r := c.Size(), c.Rank()
	if n < 2 {
		return fmt.Errorf("world of %d rank(s): not launched by mpirun?", n)
	}
	if l := DetectLaunch(); l.Launcher != MPIRun || l.Rank != r || l.Size != n || l.LocalRank != c.LocalRank() || l.LocalSize != c.LocalSize() {
		return fmt.Errorf("launch %+v disagrees with MPI's rank %d/%d local %d/%d", l, r, n, c.LocalRank(), c.LocalSize())
	}
	if c.LocalSize() != n || c.LocalRank() != r {
		return fmt.Errorf("local rank %d/%d on one machine, want %d/%d", c.LocalRank(), c.LocalSize(), r, n)
	}
	// Sizes around the MPI chunking and protocol switch points.
	for _, m := range []int{1, 7, 1000, 1 << 16, 3<<20 + 5} {
		b := rankData(r, m)
		if err := c.AllReduce(b, Sum); err != nil {
			return err
		}
		if err := same32(fmt.Sprintf("AllReduce(%d)", m), b, expectedSum(n, m)); err != nil {
			return err
		}
	}
	// Avg: Sum then ×1/n, the same float32 multiply as the local comm.
	b := rankData(r, 33)
	if err := c.AllReduce(b, Avg); err != nil {
		return err
	}
	want := expectedSum(n, 33)
	scale32(want, n)
	if err := same32("AllReduce(avg)", b, want); err != nil {
		return err
	}
	b = rankData(r, 5)
	if err := c.AllReduce(b, Max); err != nil {
		return err
	}
	if err := same32("AllReduce(max)", b, rankData(n-1, 5)); err != nil {
		return err
	}
	b = rankData(r, 5)
	if err := c.AllReduce(b, Min); err != nil {
		return err
	}
	if err := same32("AllReduce(min)", b, rankData(0, 5)); err != nil {
		return err
	}
	f := []float64{float64(r + 1), 1e-300 * float64(r+1), 1 << 52}
	if err := c.AllReduceF64(f, Sum); err != nil {
		return err
	}
	sumR := float64(n * (n + 1) / 2)
	if f[0] != sumR || f[1] != 1e-300*sumR && n == 2 || f[2] != float64(n)*(1<<52) {
		return fmt.Errorf("AllReduceF64 = %v", f)
	}
	// Broadcast from the last rank, including a buffer MPI must segment.
	for _, m := range []int{3, 1 << 20} {
		b = rankData(r, m)
		if err := c.Broadcast(b, n-1); err != nil {
			return err
		}
		if err := same32(fmt.Sprintf("Broadcast(%d)", m), b, rankData(n-1, m)); err != nil {
			return err
		}
	}
	id := []byte(fmt.Sprintf("id-of-rank-%03d", r))
	if err := c.BroadcastBytes(id, 0); err != nil {
		return err
	}
	if string(id) != "id-of-rank-000" {
		return fmt.Errorf("BroadcastBytes = %q", id)
	}
	if err := c.Barrier(); err != nil {
		return err
	}
	const m = 1001
	ag := make([]float32, n*m)
	if err := c.AllGather(rankData(r, m), ag); err != nil {
		return err
	}
	for q := range n {
		if err := same32(fmt.Sprintf("AllGather block %d", q), ag[q*m:(q+1)*m], rankData(q, m)); err != nil {
			return err
		}
	}
	rs := make([]float32, m)
	if err := c.ReduceScatter(rankData(r, n*m), rs, Sum); err != nil {
		return err
	}
	if err := same32("ReduceScatter", rs, expectedSum(n, n*m)[r*m:(r+1)*m]); err != nil {
		return err
	}
	// Non-blocking: several in flight, a blocking collective in between,
	// waited in reverse order, some while this goroutine computes.
	sizes := []int{10, 1 << 18, 3, 1 << 20}
	bufs := make([][]float32, len(sizes))
	reqs := make([]Request, len(sizes))
	for j, m := range sizes {
		bufs[j] = rankData(r+j, m)
		reqs[j] = c.IAllReduce(bufs[j], Sum)
	}
	busy(20 * time.Millisecond)
	if err := c.Barrier(); err != nil {
		return err
	}
	for j := len(sizes) - 1; j >= 0; j-- {
		if err := reqs[j].Wait(); err != nil {
			return err
		}
		want := make([]float32, sizes[j])
		for q := range n {
			for i, v := range rankData(q+j, sizes[j]) {
				want[i] += v
			}
		}
		if err := same32(fmt.Sprintf("IAllReduce #%d", j), bufs[j], want); err != nil {
			return err
		}
	}
	avg := rankData(r, 8)
	if err := c.IAllReduce(avg, Avg).Wait(); err != nil {
		return err
	}
	want = expectedSum(n, 8)
	scale32(want, n)
	if err := same32("IAllReduce(avg)", avg, want); err != nil {
		return err
	}
	// Go's runtime still owns its signals after MPI_Init: a nil dereference
	// is a recoverable panic (Open MPI's SIGSEGV handler would abort), and
	// goroutine preemption (SIGURG) still works.
	if err := nilPanicRecovers(); err != nil {
		return err
	}
	if err := preemptionWorks(); err != nil {
		return err
	}
	fmt.Printf("rank %d: %s\n", r, c.(*mpiComm).Library())
	return nil
}

// busy computes for d (the overlap a trainer's backward gives).
func busy(d time.Duration) {
	x := 1.0
	for start := time.Now(); time.Since(start) < d; {
		for range 1000 {
			x = x*1.0000001 + 1e-9
		}
	}
	_ = x
}

func nilPanicRecovers() (err error) {
	defer func() {
		if recover() == nil {
			err = fmt.Errorf("nil dereference did not panic")
		}
	}()
	var p *int
	_ = *p
	return nil
}

// preemptionWorks: with GOMAXPROCS 1, a tight loop without calls can only be
// interrupted by asynchronous preemption (SIGURG).
func preemptionWorks() error {
	old := runtime.GOMAXPROCS(1)
	defer runtime.GOMAXPROCS(old)
	stop := make(chan struct{})
	var flag atomic.Int32 // Load is an intrinsic: the loop has no call
	go func() {
		for flag.Load() == 0 {
		}
		close(stop)
	}()
	runtime.Gosched()
	time.Sleep(5 * time.Millisecond) // needs the loop preempted to run
	flag.Store(1)
	select {
	case <-stop:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("a tight loop was not preempted (SIGURG lost?)")
	}
}

// workerKillRank: the last rank dies abruptly (SIGKILL to itself, as an OOM
// kill would) in the middle of training; the others keep all-reducing.
func workerKillRank(c Comm) error {
	// Report how the survivors end: a SIGTERM from the launcher is printed
	// (with the time since the kill); SHOGGO_DIST_IGNORE_TERM=1 keeps running
	// after it, to see whether a SIGKILL follows.
	killed := make(chan time.Time, 1)
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	go func() {
		for s := range sigs {
			fmt.Printf("rank %d: received %v from the launcher\n", c.Rank(), s)
			os.Stdout.Sync()
			if os.Getenv("SHOGGO_DIST_IGNORE_TERM") != "1" {
				os.Exit(128 + int(s.(syscall.Signal)))
			}
		}
	}()
	_ = killed
	b := make([]float32, 1<<16)
	for step := 0; ; step++ {
		if c.Rank() == c.Size()-1 && step == 3 {
			fmt.Printf("rank %d: killing myself at step %d\n", c.Rank(), step)
			os.Stdout.Sync()
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
		}
		if err := c.AllReduce(b, Sum); err != nil {
			fmt.Printf("rank %d: AllReduce at step %d returned: %v\n", c.Rank(), step, err)
			return err
		}
		if step == 100000 {
			return fmt.Errorf("rank %d: the dead rank was never noticed", c.Rank())
		}
		time.Sleep(time.Millisecond)
	}
}

// workerBucketer: DDP's gradient path on real MPI. Arena-laid gradients
// (in-place buckets) and loose ones (staged) are bucketed, marked ready last
// to first with compute in between, and must equal a plain per-tensor
// AllReduce bit for bit (2 ranks: a+b is exact whatever the algorithm).
func workerBucketer(c Comm) error {
	sizes := []int{1000, 7, 100000, 64, 300000, 33, 50000}
	for _, arena := range []bool{true, false} {
		var flat []float32
		var grads [][]float32
		if arena {
			flat, grads = arenaGrads(sizes)
		} else {
			for _, n := range sizes {
				grads = append(grads, make([]float32, n))
			}
		}
		for _, op := range []Op{Sum, Avg} {
			bk, err := NewBucketer(c, grads, BucketOptions{CapBytes: 256 << 10, Op: op, Flat: flat})
			if err != nil {
				return err
			}
			for step := range 3 {
				fillGrads(grads, c.Rank(), step)
				plain := make([][]float32, len(grads))
				for i, g := range grads {
					plain[i] = append([]float32(nil), g...)
				}
				for i := len(grads) - 1; i >= 0; i-- {
					busy(time.Millisecond)
					if err := bk.Ready(i); err != nil {
						return err
					}
				}
				if err := bk.WaitAll(); err != nil {
					return err
				}
				for i, p := range plain {
					if err := c.AllReduce(p, op); err != nil {
						return err
					}
					if err := same32(fmt.Sprintf("arena=%v %v step %d grad %d", arena, op, step, i), grads[i], p); err != nil {
						return err
					}
				}
			}
			st := bk.Stats()
			if arena && st.StagedElems != 0 || !arena && st.InPlaceElems != 0 {
				return fmt.Errorf("arena=%v: %+v", arena, st)
			}
		}
	}
	return nil
}

// closeSemantics: after Close every call fails with "communicator closed"
// and OpenMPI cannot start MPI again (checked by the collectives scenario's
// caller after the ok line).
func closeSemantics(c Comm) error {
	if err := c.Barrier(); err == nil || !strings.Contains(err.Error(), "communicator closed") {
		return fmt.Errorf("Barrier after Close: %v", err)
	}
	if err := c.IAllReduce(make([]float32, 4), Sum).Wait(); err == nil {
		return fmt.Errorf("IAllReduce after Close succeeded")
	}
	if _, err := OpenMPI(); err == nil || !strings.Contains(err.Error(), "cannot be initialised again") {
		return fmt.Errorf("OpenMPI after Close: %v", err)
	}
	return nil
}
