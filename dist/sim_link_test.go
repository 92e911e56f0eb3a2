package dist

import (
	"testing"
	"time"
)

// TestDistSimLinkQueue pins down the simulated link's queueing that
// docs/SCALING.md and bench/scaling rely on: non-blocking all-reduces in
// flight share one link, so buckets launched together finish after the sum
// of their ring costs, and a bucket launched while the link is idle starts
// at once (the overlap event model: start_k = max(launch_k, end_{k-1})).
// The lower bounds are exact (a collective never completes before its
// simulated end); the upper bounds leave room for a loaded machine.
func TestDistSimLinkQueue(t *testing.T) {
	const n = 4
	opt := LocalOptions{Latency: 2 * time.Millisecond, Bandwidth: 100e6}
	// all-reduce of b bytes: 2(n-1)·(α + b/n/bw)
	cost := func(elems int) time.Duration {
		b := float64(4 * elems)
		return time.Duration(2 * float64(n-1) * (opt.Latency.Seconds() + b/n/opt.Bandwidth) * float64(time.Second))
	}
	sizes := []int{100_000, 50_000, 25_000} // 24 + 16.5 + 14.25 ms
	run := func(gap time.Duration) time.Duration {
		cs := NewLocalWith(n, opt)
		done := make(chan time.Duration, n)
		start := time.Now()
		for r := range n {
			go func() {
				var reqs []Request
				for k, e := range sizes {
					if k == len(sizes)-1 && gap > 0 {
						time.Sleep(gap) // the last bucket is launched late
					}
					reqs = append(reqs, cs[r].IAllReduce(make([]float32, e), Sum))
				}
				for _, q := range reqs {
					if err := q.Wait(); err != nil {
						t.Error(err)
					}
				}
				done <- time.Since(start)
			}()
		}
		var last time.Duration
		for range n {
			last = max(last, <-done)
		}
		return last
	}
	c0, c1, c2 := cost(sizes[0]), cost(sizes[1]), cost(sizes[2])
	// launched together: they queue
	queued := c0 + c1 + c2
	if got := run(0); got < queued || got > queued+queued/2 {
		t.Errorf("3 buckets launched together: %v, want the sum of their costs %v (≤ +50%%)", got, queued)
	}
	// the last bucket launched after the link went idle: it starts at its
	// launch, not at the end of the previous one
	gap := c0 + c1 + 20*time.Millisecond
	want := gap + c2
	if got := run(gap); got < want || got > want+want/2 {
		t.Errorf("last bucket launched at %v: step %v, want %v (≤ +50%%)", gap, got, want)
	}
}
