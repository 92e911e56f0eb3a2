// Command allreduce measures the all-reduce bandwidth of shoggo's Open MPI
// binding (dist.OpenMPI, through purego and the MPI goroutine) and, for
// comparison, of the in-process communicator. Run it under mpirun; see
// run.sh, which also runs Open MPI's own loop in C (ref/ref.c) the same way.
//
//	mpirun --oversubscribe -np 2 go-allreduce [-max 64MiB] [-mode block|nonblock|overlap]
//
// Every size from 1 KiB to -max (×4) is timed osu_allreduce-style: warm-up,
// barrier, timed iterations, the slowest rank's mean. Rank 0 prints
//
//	RESULT impl=go-mpi op=allreduce ranks=2 bytes=1024 us=... algbw_GBps=... busbw_GBps=...
//
// (algbw = bytes/time; busbw = algbw·2(n-1)/n, nccl-tests' convention).
// -mode overlap times one IAllReduce of -bucket bytes while the rank
// computes for as long as the blocking all-reduce takes, and prints the
// fraction of the communication hidden behind the compute.
package main

import (
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/shoggo/shoggo/dist"
)

func main() {
	maxBytes := flag.Int("max", 64<<20, "largest message in bytes")
	mode := flag.String("mode", "block", "block (AllReduce), nonblock (IAllReduce+Wait), overlap")
	bucket := flag.Int("bucket", dist.DefaultBucketBytes, "overlap: bucket bytes")
	flag.Parse()
	c, err := dist.FromEnv()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer c.Close()
	switch *mode {
	case "block", "nonblock":
		sweep(c, *maxBytes, *mode == "nonblock")
	case "overlap":
		overlap(c, *bucket)
	default:
		fmt.Fprintf(os.Stderr, "unknown -mode %q\n", *mode)
		os.Exit(2)
	}
}

func must(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// slowest returns the maximum of d over the ranks (in seconds).
func slowest(c dist.Comm, d time.Duration) float64 {
	v := []float64{d.Seconds()}
	must(c.AllReduceF64(v, dist.Max))
	return v[0]
}

func sweep(c dist.Comm, maxBytes int, nonblock bool) {
	buf := make([]float32, maxBytes/4)
	impl := "go-mpi"
	if nonblock {
		impl = "go-mpi-async-" + asyncMode()
	}
	run := func(b []float32) {
		if nonblock {
			must(c.IAllReduce(b, dist.Sum).Wait())
		} else {
			must(c.AllReduce(b, dist.Sum))
		}
	}
	n := c.Size()
	for bytes := 1024; bytes <= maxBytes; bytes *= 4 {
		b := buf[:bytes/4]
		iters := 20
		switch {
		case bytes <= 1<<16:
			iters = 1000
		case bytes <= 1<<22:
			iters = 100
		}
		for range iters/10 + 1 {
			run(b)
		}
		must(c.Barrier())
		start := time.Now()
		for range iters {
			run(b)
		}
		t := slowest(c, time.Since(start)) / float64(iters)
		if c.Rank() == 0 {
			algbw := float64(bytes) / t / 1e9
			fmt.Printf("RESULT impl=%s op=allreduce ranks=%d bytes=%d us=%.2f algbw_GBps=%.3f busbw_GBps=%.3f\n",
				impl, n, bytes, t*1e6, algbw, algbw*2*float64(n-1)/float64(n))
		}
	}
}

// asyncMode is how the binding runs IAllReduce (dist.MPIAsync or
// SHOGGO_MPI_ASYNC).
func asyncMode() string {
	if v := os.Getenv("SHOGGO_MPI_ASYNC"); v != "" {
		return v
	}
	return dist.MPIAsync
}

// busy computes for d on this goroutine.
func busy(d time.Duration) {
	x := 1.0
	for start := time.Now(); time.Since(start) < d; {
		for range 1000 {
			x = x*1.0000001 + 1e-9
		}
	}
	if x == 0 {
		fmt.Println()
	}
}

func overlap(c dist.Comm, bytes int) {
	b := make([]float32, bytes/4)
	for range 3 {
		must(c.AllReduce(b, dist.Sum))
	}
	const reps = 5
	var comm, both time.Duration
	for range reps {
		must(c.Barrier())
		s := time.Now()
		must(c.AllReduce(b, dist.Sum))
		comm += time.Since(s)
	}
	comm /= reps
	compute := comm
	for range reps {
		must(c.Barrier())
		s := time.Now()
		r := c.IAllReduce(b, dist.Sum)
		busy(compute)
		must(r.Wait())
		both += time.Since(s)
	}
	both /= reps
	tc := slowest(c, comm)
	tb := slowest(c, both)
	hidden := (tc + compute.Seconds() - tb) / tc
	if c.Rank() == 0 {
		fmt.Printf("RESULT impl=go-mpi-async-%s op=overlap ranks=%d bytes=%d comm_ms=%.2f compute_ms=%.2f both_ms=%.2f hidden=%.2f progress_us=%d\n",
			asyncMode(), c.Size(), bytes, tc*1e3, compute.Seconds()*1e3, tb*1e3, hidden, dist.ProgressInterval.Microseconds())
	}
}
