package train

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/shoggo/shoggo/backend/cpu"
	"github.com/shoggo/shoggo/dist"
	"github.com/shoggo/shoggo/internal/parallel"
	"github.com/shoggo/shoggo/model"
	"github.com/shoggo/shoggo/tensor"
)

// BenchmarkDDPOverlap measures how much of the gradient all-reduce the
// bucketed overlap hides behind backward, on 2 in-process ranks whose
// collectives go over a simulated link (dist.NewLocalWith: the ring cost
// model, a sleep, no CPU), so that the measurement is of the overlap
// machinery and not of a shared core:
//
//	comm   = step(no overlap) − step(infinite link)     the exposed all-reduce
//	hidden = (step(no overlap) − step(overlap)) / comm
//
// go test -run '^$' -bench DDPOverlap -benchtime 1x ./train
func BenchmarkDDPOverlap(b *testing.B) {
	const steps, rounds = 10, 3
	parallel.SetThreads(1) // one compute thread per rank: each rank has a core of its own
	defer parallel.SetThreads(0)
	for _, bw := range []float64{0.2e9, 0.1e9} {
		var all [3][]float64 // step times: infinite link, no overlap, overlap
		for range rounds {   // interleaved, against drifting machine load
			for k, mode := range []struct {
				bw      float64
				overlap bool
			}{{0, false}, {bw, false}, {bw, true}} {
				all[k] = append(all[k], ddpStepMS(b, steps, mode.bw, mode.overlap)...)
			}
		}
		var ms [3]float64
		for k := range ms {
			ms[k] = median(all[k])
		}
		comm := ms[1] - ms[0]
		hidden := (ms[1] - ms[2]) / comm
		b.Logf("link %.2f GB/s (16 MiB all-reduce: %.0f ms in the model): median step %.1f ms (infinite link), %.1f ms (all-reduce after backward), %.1f ms (overlapped): exposed all-reduce %.1f ms, hidden %.0f%%",
			bw/1e9, 16*(1<<20)/bw*1000, ms[0], ms[1], ms[2], comm, 100*hidden)
		b.ReportMetric(hidden, fmt.Sprintf("hidden@%.2fGB/s", bw/1e9))
	}
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[len(s)/2]
}

// ddpStepMS runs shoggo-4m (1 MiB buckets) on 2 in-process ranks for steps
// steps of batch 2×64 per rank and returns rank 0's step times in ms
// (after the first, timed between their all-reduces' ends).
func ddpStepMS(b *testing.B, steps int, bw float64, overlap bool) []float64 {
	b.Helper()
	comms := dist.NewLocalWith(2, dist.LocalOptions{Bandwidth: bw, Latency: 5 * time.Microsecond})
	var wg sync.WaitGroup
	var times []float64
	errs := make([]error, 2)
	for k := range 2 {
		cfg, err := model.LookupPreset("shoggo-4m")
		if err != nil {
			b.Fatal(err)
		}
		cfg.VocabSize = 4096
		m, err := model.New(cfg, cpu.New(), tensor.F32, true)
		if err != nil {
			b.Fatal(err)
		}
		m.InitWeights(rand.New(rand.NewPCG(5, 1)))
		o := Options{Out: b.TempDir(), Steps: steps, LR: 1e-3, Clip: 1, EvalEvery: 1 << 30, BucketMB: 1, NoOverlap: !overlap}
		tr := &Trainer{Opts: o, Model: m, Trainable: FullTrainable(m), Comm: comms[k],
			Data: ShardRows(&seqSource{B: 4, T: 64, V: cfg.VocabSize}, comms[k])}
		var last time.Time
		tr.afterBackward = func(step int) { // after the all-reduce
			if k != 0 {
				return
			}
			if step > 0 {
				times = append(times, float64(time.Since(last).Microseconds())/1000)
			}
			last = time.Now()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer comms[k].Close()
			_, errs[k] = tr.Run(context.Background())
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			b.Fatal(err)
		}
	}
	return times
}

// seqSource serves batchFor(n, B, T, V), batchFor(n+1, ...), ...
type seqSource struct{ n, B, T, V int }

func (s *seqSource) Fill(micro []*model.Batch) error {
	for i := range micro {
		micro[i] = batchFor(s.n, s.B, s.T, s.V)
		s.n++
	}
	return nil
}
func (s *seqSource) MarshalState() ([]byte, error) { return json.Marshal(s.n) }
func (s *seqSource) RestoreState(b []byte) error   { return json.Unmarshal(b, &s.n) }
