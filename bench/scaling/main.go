// Command scaling is the data-parallel scaling model of docs/SCALING.md and
// the simulation that checks it at small scale.
//
//	go run ./bench/scaling -paper        # the model's tables (markdown)
//	go run ./bench/scaling               # the simulation: RESULT lines
//	go run ./bench/scaling -quick        # fewer cases and repetitions
//
// The simulation drives dist.NewLocalWith (in-process ranks, simulated link
// latency and bandwidth) with gradient buffers shaped like the real models'
// and bucketed by dist.PlanBuckets / dist.Bucketer as the trainer does, and
// prints measured against predicted times (see sim.go for the link model
// and the correspondence).
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"strings"
	"time"
)

func main() {
	paperFlag := flag.Bool("paper", false, "print the model's tables instead of simulating")
	quick := flag.Bool("quick", false, "fewer cases and repetitions")
	reps := flag.Int("reps", 3, "timed repetitions per case (after one warm-up)")
	only := flag.String("only", "", "comma-separated scenarios to run (timer, allreduce, buckets, overlap, zero1); empty: all")
	tau := flag.Float64("tau", 0, "time dilation (0: automatic)")
	flag.Parse()
	if *paperFlag {
		paper()
		return
	}
	want := func(s string) bool {
		if *only == "" {
			return true
		}
		for _, x := range strings.Split(*only, ",") {
			if strings.TrimSpace(x) == s {
				return true
			}
		}
		return false
	}
	ns := []int{2, 4, 8}
	r := *reps
	if *quick {
		r = 2
	}
	eth, ib := ethHi, ibHi
	eth.name, ib.name = "eth25_a50us", "ib400_a5us"
	fmt.Printf("# bench/scaling: GOMAXPROCS=%d, %s, %d reps after 1 warm-up; times in real (undilated) units\n", runtime.GOMAXPROCS(0), time.Now().UTC().Format(time.RFC3339), r)
	start := time.Now()

	if want("timer") {
		timerCheck(r)
		// undilated all-reduces whose simulated cost is under, near and
		// over a millisecond: what the dilation protects against
		for _, c := range []struct {
			l link
			n int
			b float64
		}{{ib, 2, 4 << 10}, {ib, 8, 1 << 20}, {eth, 2, 4 << 10}, {eth, 2, 1 << 20}, {eth, 8, 1 << 20}} {
			res := simAllReduce(c.l, c.n, c.b, 1, 1, max(r, 5))
			res.scenario = "timer-allreduce"
			res.print()
		}
	}
	if want("allreduce") {
		for _, l := range []link{eth, ib} {
			for _, b := range []float64{4 << 10, 1 << 20, 25 << 20} {
				s := 1.0
				if b > 1<<20 {
					s = float64(1<<20) / b // buffers of at most 1 MiB
				}
				for _, n := range ns {
					simAllReduce(l, n, b, s, *tau, max(r, 5)).print()
				}
			}
		}
	}
	g, gl := fullWorkload("gpt2"), loraWorkload("gpt2", 8)
	q, ql := fullWorkload("qwen1.5-1.8b"), loraWorkload("qwen1.5-1.8b", 8)
	ss := setups()
	find := func(w *workload, comp string) compute {
		for _, s := range ss {
			if s.w.name == w.name && s.c.name == comp {
				return s.c
			}
		}
		panic("no setup " + w.name + " " + comp)
	}
	if want("buckets") {
		// every gradient ready at once: the buckets queue on the link
		type wc struct {
			w *workload
			s float64
		}
		cases := []wc{{g, 1.0 / 256}, {gl, 1.0 / 16}, {ql, 1.0 / 16}, {q, 1.0 / 1024}}
		if *quick {
			cases = cases[:3]
		}
		for _, c := range cases {
			for _, l := range []link{eth, ib} {
				for _, n := range ns {
					simStep("buckets", c.w, l, n, c.s, *tau, 0, r).print()
				}
			}
		}
	}
	if want("overlap") {
		type oc struct {
			w    *workload
			comp string
			l    link
			s    float64
		}
		cases := []oc{
			{g, "CPU VM", eth, 1.0 / 256},
			{g, "H100-class", ib, 1.0 / 256},
			{g, "H100-class", eth, 1.0 / 256},
			{ql, "H100-class", ib, 1.0 / 16},
			{q, "H100-class", ib, 1.0 / 1024},
		}
		if *quick {
			cases = cases[:2]
		}
		for _, c := range cases {
			comp := find(c.w, c.comp)
			for _, n := range ns {
				res := simStep("overlap", c.w, c.l, n, c.s, *tau, comp.bwd, r)
				res.what += ", " + c.comp + " backward"
				res.other = comp.fwd + comp.opt
				res.print()
			}
		}
	}
	if want("zero1") {
		for _, n := range ns {
			simZeroGather(g, eth, n, 1.0/256, *tau, r).print()
		}
	}
	fmt.Fprintf(os.Stderr, "done in %.1f s\n", time.Since(start).Seconds())
}
