package main

import (
	"fmt"
	"math"
	"sort"
	"sync"
	"time"

	"github.com/shoggo/shoggo/dist"
)

// The simulation runs dist's in-process communicator (dist.NewLocalWith)
// with a simulated link. How that link works (dist/local.go):
//
//   - A collective completes when its last rank has arrived and a single
//     sleep of the whole ring cost has passed: AllReduce of b bytes costs
//     2(n-1)·(α + b/n/bw), AllGather of a b-byte result (n-1)·(α + b/n/bw).
//     The ring's 2(n-1) steps are not simulated one by one; the formula is
//     evaluated once and slept.
//   - All collectives share one link: a collective starts at
//     max(arrival of its last rank, end of the previous collective), so
//     buckets in flight queue behind each other, as on a single ring.
//     The queue is kept in nominal (formula) time.
//   - The real reduction (in rank order, by the goroutine of the last rank to
//     arrive) runs inside that window: it costs nothing simulated unless it
//     takes longer than the sleep.
//   - The link costs no CPU: ranks that compute while IAllReduce is pending
//     are not slowed down (unlike Open MPI's busy-polling progress).
//
// So the predictions below are the same ring formula, summed over the buckets
// the Bucketer makes with the overlap event model of model.go (bucket k starts
// at max(its launch, end of bucket k-1)). What the simulation adds is the
// real machinery: dist.PlanBuckets/Bucketer launching buckets in plan order as
// Ready calls come in, IAllReduce goroutines, in-place reductions over a
// gradient arena, timer wake-ups — and whether a step really ends when the
// model says.
//
// Two knobs keep the machine out of the measurement:
//   - scale s: every gradient (and the bucket cap) is s times its real size
//     and the simulated bandwidth is s·bw, so each bucket's transfer time is
//     unchanged while the real in-memory reduction is s times cheaper.
//   - dilation τ: α and 1/bw (and the simulated backward compute) are
//     multiplied by τ, and measured times divided by τ. Go's timers on this
//     VM wake up ~1 ms late for sleeps under 1 ms (the "timer" RESULT line
//     measures it), so sub-millisecond collectives are run dilated.

// simLink is the simulated link for scale s and dilation tau.
func simLink(l link, s, tau float64) dist.LocalOptions {
	return dist.LocalOptions{
		Latency:   time.Duration(l.alpha * tau * float64(time.Second)),
		Bandwidth: l.bw * s / tau,
	}
}

func median(xs []float64) float64 {
	ys := append([]float64(nil), xs...)
	sort.Float64s(ys)
	m := len(ys) / 2
	if len(ys)%2 == 1 {
		return ys[m]
	}
	return (ys[m-1] + ys[m]) / 2
}

func minOf(xs []float64) float64 {
	m := math.Inf(1)
	for _, x := range xs {
		m = math.Min(m, x)
	}
	return m
}

// result is one RESULT line.
type result struct {
	scenario  string
	what      string
	link      link
	n         int
	bytes     float64 // real (unscaled) bytes all-reduced per step
	simBytes  float64
	buckets   int
	scale     float64
	tau       float64
	bwd       float64 // simulated backward compute, real seconds (0: none)
	measured  []float64
	predicted float64
	replay    float64 // prediction from the arrival times the run recorded (0: n/a)
	comm      float64 // the step's all-reduce time, all buckets back to back (overlap only)
	other     float64 // forward + optimizer of the setup (overlap only): step = other + measured
}

func (r result) print() {
	med := median(r.measured)
	fmt.Printf("RESULT scenario=%s what=%q link=%s n=%d bytes=%.0f sim_bytes=%.0f buckets=%d scale=%g tau=%g bwd_ms=%.3f measured_ms=%.3f measured_min_ms=%.3f predicted_ms=%.3f ratio=%.3f",
		r.scenario, r.what, r.link.name, r.n, r.bytes, r.simBytes, r.buckets, r.scale, r.tau, r.bwd*1e3,
		med*1e3, minOf(r.measured)*1e3, r.predicted*1e3, med/r.predicted)
	if r.replay > 0 {
		fmt.Printf(" replay_ms=%.3f ratio_replay=%.3f", r.replay*1e3, med/r.replay)
	}
	if r.bwd > 0 {
		// hidden = share of the all-reduce time that did not lengthen backward;
		// efficiency = compute / step, step = forward + optimizer + (backward and
		// the all-reduce).
		hid := func(t float64) float64 { return (r.bwd + r.comm - t) / r.comm }
		eff := func(t float64) float64 { return (r.other + r.bwd) / (r.other + t) }
		fmt.Printf(" comm_ms=%.3f exposed_pred_ms=%.3f exposed_meas_ms=%.3f", r.comm*1e3, (r.predicted-r.bwd)*1e3, (med-r.bwd)*1e3)
		if r.buckets > 1 { // one bucket: launched at the end, nothing to hide
			fmt.Printf(" hidden_pred=%.3f hidden_meas=%.3f", hid(r.predicted), hid(med))
		}
		fmt.Printf(" eff_pred=%.3f eff_meas=%.3f", eff(r.predicted), eff(med))
	}
	fmt.Println()
}

// autoTau picks the dilation: the smallest collective must take at least
// minColl and the whole measured span at least minSpan (simulated time).
func autoTau(minCost, span float64) float64 {
	const minColl, minSpan = 5e-3, 50e-3
	t := math.Max(minColl/minCost, minSpan/span)
	return math.Max(1, math.Ceil(t))
}

// runRanks runs f on n goroutines and returns, per rank, what f returned.
func runRanks(n int, f func(r int) time.Time) []time.Time {
	out := make([]time.Time, n)
	var wg sync.WaitGroup
	for r := range n {
		wg.Go(func() { out[r] = f(r) })
	}
	wg.Wait()
	return out
}

func latest(ts []time.Time) time.Time {
	m := ts[0]
	for _, t := range ts[1:] {
		if t.After(m) {
			m = t
		}
	}
	return m
}

// simAllReduce times one blocking AllReduce of realBytes (scaled by s) on n
// ranks.
func simAllReduce(l link, n int, realBytes, s, tau float64, reps int) result {
	elems := max(1, int(math.Round(realBytes*s/4)))
	simB := 4 * float64(elems)
	pred := ringAllReduce(n, simB/s, l)
	if tau <= 0 {
		tau = autoTau(pred, pred)
	}
	cs := dist.NewLocalWith(n, simLink(l, s, tau))
	bufs := make([][]float32, n)
	for r := range bufs {
		bufs[r] = make([]float32, elems)
	}
	res := result{scenario: "allreduce", what: fmt.Sprintf("%.0f B", simB/s), link: l, n: n, bytes: simB / s,
		simBytes: simB, buckets: 1, scale: s, tau: tau, predicted: pred}
	for rep := -1; rep < reps; rep++ {
		t0 := time.Now()
		end := runRanks(n, func(r int) time.Time {
			if err := cs[r].AllReduce(bufs[r], dist.Sum); err != nil {
				panic(err)
			}
			return time.Now()
		})
		if rep >= 0 {
			res.measured = append(res.measured, latest(end).Sub(t0).Seconds()/tau)
		}
	}
	return res
}

// scaledGrads builds each rank's gradient arena (16-element aligned, as
// tensor.Arena pads) with every gradient s times its real size, and the
// views.
func scaledGrads(w *workload, s float64) (sizes []int, arena func() ([]float32, [][]float32)) {
	sizes = make([]int, len(w.grads))
	total := 0
	for i, g := range w.grads {
		sizes[i] = max(1, int(math.Round(float64(g.elems)*s)))
		total += (sizes[i] + 15) &^ 15
	}
	return sizes, func() ([]float32, [][]float32) {
		flat := make([]float32, total)
		views := make([][]float32, len(sizes))
		off := 0
		for i, n := range sizes {
			views[i] = flat[off : off+n : off+n]
			off += (n + 15) &^ 15
		}
		return flat, views
	}
}

// simStep runs the trainer's bucketed all-reduce for workload w on n ranks:
// backward is simulated as sleeps until each stage's nominal end (bwd real
// seconds in all, split by w.weight; 0: every gradient is ready at once),
// Ready is called for
// each stage's gradients as it ends (the embeddings are left to WaitAll, as
// train/ddp.go does), then WaitAll. Measured: from the start of backward to
// the last rank's WaitAll return.
func simStep(scenario string, w *workload, l link, n int, s, tau, bwd float64, reps int) result {
	sizes, newArena := scaledGrads(w, s)
	capBytes := max(1, int(math.Round(float64(dist.DefaultBucketBytes)*s)))
	plan := dist.PlanBuckets(sizes, capBytes)
	bb := bucketBytes(plan)
	cost := make([]float64, len(bb))
	minCost, total, simBytes := math.Inf(1), 0.0, 0.0
	for k, b := range bb {
		cost[k] = ringAllReduce(n, b/s, l)
		minCost = math.Min(minCost, cost[k])
		total += cost[k]
		simBytes += b
	}
	ends := w.stageEnds()
	ready := bucketReady(w, plan)
	for k := range ready {
		ready[k] *= bwd
	}
	pred := math.Max(bwd, overlap(ready, cost))
	if tau <= 0 {
		tau = autoTau(minCost, pred)
	}
	cs := dist.NewLocalWith(n, simLink(l, s, tau))
	bks := make([]*dist.Bucketer, n)
	for r := range n {
		flat, views := newArena()
		var err error
		if bks[r], err = dist.NewBucketer(cs[r], views, dist.BucketOptions{CapBytes: capBytes, Op: dist.Sum, Flat: flat}); err != nil {
			panic(err)
		}
		for k := range plan {
			if !bks[r].InPlace(k) {
				panic(fmt.Sprintf("bucket %d not in place", k))
			}
		}
	}
	// stage -> gradients, and the sleep per stage (simulated time)
	L := w.layers
	byStage := make([][]int, L+2)
	for i, g := range w.grads {
		byStage[g.stage] = append(byStage[g.stage], i)
	}
	stageAt := make([]time.Duration, L+2) // nominal end of each stage (simulated time)
	for st := range L + 1 {
		stageAt[st] = time.Duration(ends[st] * bwd * tau * float64(time.Second))
	}
	res := result{scenario: scenario, what: w.name, link: l, n: n, bytes: simBytes / s, simBytes: simBytes,
		buckets: len(plan), scale: s, tau: tau, bwd: bwd, predicted: pred, comm: total}
	var replays []float64
	for rep := -1; rep < reps; rep++ {
		launched := make([][]time.Time, n) // per rank, per bucket: when this rank launched it
		t0 := time.Now()
		end := runRanks(n, func(r int) time.Time {
			bk := bks[r]
			at := make([]time.Time, 0, len(plan))
			base := bk.Stats().Launched
			mark := func() {
				now := time.Now()
				for len(at) < bk.Stats().Launched-base {
					at = append(at, now)
				}
			}
			for st := range L + 1 {
				// sleep until the stage's nominal end (absolute, so timer
				// lateness does not accumulate over the stages)
				if d := time.Until(t0.Add(stageAt[st])); d > 0 {
					time.Sleep(d)
				}
				for _, i := range byStage[st] {
					if err := bk.Ready(i); err != nil {
						panic(err)
					}
				}
				mark()
			}
			now := time.Now()
			for len(at) < len(plan) {
				at = append(at, now) // launched by WaitAll
			}
			if err := bk.WaitAll(); err != nil {
				panic(err)
			}
			launched[r] = at
			return time.Now()
		})
		if rep < 0 {
			continue
		}
		res.measured = append(res.measured, latest(end).Sub(t0).Seconds()/tau)
		// replay: the same event model with the arrival times of this run
		arr := make([]float64, len(plan))
		for k := range plan {
			for r := range n {
				arr[k] = math.Max(arr[k], launched[r][k].Sub(t0).Seconds()/tau)
			}
		}
		replays = append(replays, overlap(arr, cost))
	}
	res.replay = median(replays)
	return res
}

// simZeroGather times ZeRO-1's parameter all-gather as train/zero.go does it:
// each rank owns ceil(P/n) elements and the parameters are gathered in chunks
// of zeroChunk (1 Mi) elements per rank, each an AllGather of n·chunk
// elements followed by a copy of the result into the parameters.
func simZeroGather(w *workload, l link, n int, s, tau float64, reps int) result {
	const zeroChunk = 1 << 20
	P := int(math.Round(float64(w.params()) * s))
	S := (P + n - 1) / n
	k := max(1, min(int(math.Round(zeroChunk*s)), S))
	var pred, minCost float64 = 0, math.Inf(1)
	calls := 0
	for c := 0; c < S; c += k {
		m := min(k, S-c)
		cst := ringAllGather(n, 4*float64(n*m)/s, l)
		pred += cst
		minCost = math.Min(minCost, cst)
		calls++
	}
	if tau <= 0 {
		// blocking collectives in a row: each pays the wake-up and copy
		// overheads the link model ignores, so dilate at least 10×
		tau = math.Max(10, autoTau(minCost, pred))
	}
	cs := dist.NewLocalWith(n, simLink(l, s, tau))
	params := make([][]float32, n)
	for r := range n {
		params[r] = make([]float32, P)
	}
	res := result{scenario: "zero1-allgather", what: w.name, link: l, n: n, bytes: 4 * float64(P) / s,
		simBytes: 4 * float64(P), buckets: calls, scale: s, tau: tau, predicted: pred}
	for rep := -1; rep < reps; rep++ {
		t0 := time.Now()
		end := runRanks(n, func(r int) time.Time {
			send, recv := make([]float32, k), make([]float32, n*k)
			lo := min(r*S, P)
			hi := min(lo+S, P)
			for c := 0; c < S; c += k {
				m := min(k, S-c)
				clear(send[:m])
				if x := lo + c; x < hi {
					copy(send[:m], params[r][x:hi])
				}
				if err := cs[r].AllGather(send[:m], recv[:n*m]); err != nil {
					panic(err)
				}
				for q := range n {
					x := q*S + c
					if x >= P {
						break
					}
					copy(params[r][x:min(x+m, P)], recv[q*m:q*m+m])
				}
			}
			return time.Now()
		})
		if rep >= 0 {
			res.measured = append(res.measured, latest(end).Sub(t0).Seconds()/tau)
		}
	}
	return res
}

// timerCheck measures how late Go's timers wake up here (what forces the
// dilation): one undilated 4 KiB all-reduce on the fast link, and bare sleeps.
func timerCheck(reps int) {
	for _, d := range []time.Duration{20 * time.Microsecond, 200 * time.Microsecond, time.Millisecond, 5 * time.Millisecond} {
		var xs []float64
		for range max(reps, 20) {
			t := time.Now()
			time.Sleep(d)
			xs = append(xs, time.Since(t).Seconds())
		}
		fmt.Printf("RESULT scenario=timer sleep_ms=%.3f measured_ms=%.3f late_ms=%.3f\n", d.Seconds()*1e3, median(xs)*1e3, (median(xs)-d.Seconds())*1e3)
	}
}
