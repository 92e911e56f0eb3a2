package train

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"math/rand/v2"

	"github.com/shoggo/shoggo/backend/cpu"
	"github.com/shoggo/shoggo/dist"
	"github.com/shoggo/shoggo/lora"
	"github.com/shoggo/shoggo/model"
	"github.com/shoggo/shoggo/tensor"
)

// globalSource serves batchFor(n, B, 8, V), batchFor(n+1, ...), ...: B is
// the GLOBAL batch; ShardRows gives each rank its rows.
type globalSource struct {
	n, B, V int
}

func (s *globalSource) Fill(micro []*model.Batch) error {
	for i := range micro {
		micro[i] = batchFor(s.n, s.B, 8, s.V)
		s.n++
	}
	return nil
}
func (s *globalSource) MarshalState() ([]byte, error) { return json.Marshal(s.n) }
func (s *globalSource) RestoreState(b []byte) error   { return json.Unmarshal(b, &s.n) }

// ddpRun is one run of the harness on n in-process ranks (n = 1: no Comm).
type ddpRun struct {
	preset string
	ranks  int
	batch  int // global rows per micro-batch
	opts   Options
	lora   bool
	// setup, if set, adjusts each rank's trainer before it runs.
	setup func(rank int, tr *Trainer)
	// per rank, filled by run
	models   []*model.Transformer
	adapters []*lora.Adapters
	trainers []*Trainer
	res      []Result
}

func (r *ddpRun) run(t *testing.T) error {
	t.Helper()
	var comms []dist.Comm
	if r.ranks > 1 {
		comms = dist.NewLocal(r.ranks)
	}
	r.models, r.res = make([]*model.Transformer, r.ranks), make([]Result, r.ranks)
	r.adapters, r.trainers = make([]*lora.Adapters, r.ranks), make([]*Trainer, r.ranks)
	errs := make([]error, r.ranks)
	var wg sync.WaitGroup
	for k := range r.ranks {
		m, _ := newTiny(t, r.preset, 5)
		if k > 0 {
			// Other ranks start from different weights: the broadcast from
			// rank 0 must fix that.
			m2, _ := newTiny(t, r.preset, 77)
			m = m2
		}
		r.models[k] = m
		trainable := FullTrainable(m)
		if r.lora {
			cfg, _ := model.LookupPreset(r.preset)
			base, err := model.New(cfg, cpu.New(), tensor.F32, false)
			if err != nil {
				t.Fatal(err)
			}
			base.InitWeights(rand.New(rand.NewPCG(5, 1)))
			// Per-rank seeds: A starts differently (rank 0's is broadcast)
			// and the dropout masks are drawn independently.
			a, err := lora.Apply(base, lora.Config{R: 2, Alpha: 4, Dropout: 0.2, Targets: []string{"q_proj", "v_proj", "down_proj"}, Seed: 1 + 1000*uint64(k)})
			if err != nil {
				t.Fatal(err)
			}
			m, r.models[k], r.adapters[k] = base, base, a
			trainable = LoRA(base, a)
		}
		tr := &Trainer{Opts: r.opts, Model: m, Trainable: trainable,
			Data: &globalSource{B: r.batch, V: m.Cfg.VocabSize}}
		r.trainers[k] = tr
		if r.setup != nil {
			r.setup(k, tr)
		}
		if comms != nil {
			tr.Comm = comms[k]
			tr.Data = ShardRows(tr.Data, comms[k])
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if comms != nil {
				defer comms[k].Close()
			}
			r.res[k], errs[k] = tr.Run(context.Background())
		}()
	}
	wg.Wait()
	for k, err := range errs {
		if err != nil {
			return fmt.Errorf("rank %d: %w", k, err)
		}
	}
	return nil
}

func maxAbsDiff(a, b []float32) float64 {
	worst := 0.0
	for i := range a {
		worst = max(worst, math.Abs(float64(a[i])-float64(b[i])))
	}
	return worst
}

func diffStats(a, b []float32) string {
	maxAbs, n5, n6 := 0.0, 0, 0
	for i := range a {
		d := math.Abs(float64(a[i]) - float64(b[i]))
		maxAbs = max(maxAbs, d)
		if d > 1e-5 {
			n5++
		}
		if d > 1e-6 {
			n6++
		}
	}
	return fmt.Sprintf("max |diff| %.3g; %d of %d elements differ by more than 1e-6, %d by more than 1e-5", maxAbs, n6, len(a), n5)
}

func sameBits(t *testing.T, what string, a, b []float32) {
	t.Helper()
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			t.Fatalf("%s: element %d: %v vs %v", what, i, a[i], b[i])
		}
	}
}

func ddpOpts(out string) Options {
	return Options{Out: out, Steps: 6, Accum: 2, LR: 3e-3, MinLR: 3e-4, Warmup: 2, Schedule: "cosine", WeightDecay: 0.1, Clip: 1,
		EvalEvery: 3, SaveEvery: 2, Seed: 3}
}

// 2 in-process ranks × batch b step like 1 rank × batch 2b: same losses
// and weights up to float rounding (the gradient's sum over rows is split
// into two partial sums added by the all-reduce, another order than one
// GEMM over all rows), every rank holds the same bits, and only rank 0
// writes.
func TestDDPLocalMatchesOneRank(t *testing.T) {
	for _, preset := range []string{"tiny-llama", "tiny-gpt2"} {
		t.Run(preset, func(t *testing.T) {
			one := &ddpRun{preset: preset, ranks: 1, batch: 4, opts: ddpOpts(t.TempDir())}
			if err := one.run(t); err != nil {
				t.Fatal(err)
			}
			two := &ddpRun{preset: preset, ranks: 2, batch: 4, opts: ddpOpts(t.TempDir())}
			two.opts.BucketMB = 0.01 // several buckets on the tiny model
			if err := two.run(t); err != nil {
				t.Fatal(err)
			}
			a, b := one.models[0].Params.Flat().F32, two.models[0].Params.Flat().F32
			sameBits(t, "rank 1 vs rank 0", two.models[1].Params.Flat().F32, b)
			// Measured: max |Δw| 4.5e-7 (Llama), 4e-6 (GPT-2: near-zero
			// biases, where Adam's m/√v turns a rounding-level gradient
			// difference into a visible one) after 6 steps at lr 3e-3.
			maxAbs := maxAbsDiff(a, b)
			t.Logf("%s: 2 ranks × 2 rows vs 1 rank × 4 rows, %d steps: %s", preset, one.opts.Steps, diffStats(a, b))
			if maxAbs > 1e-5 {
				t.Errorf("weights differ by %.3g, more than 1e-5 (lr/300)", maxAbs)
			}
			l1 := metricsLosses(t, filepath.Join(one.opts.Out, "metrics.jsonl"))
			l2 := metricsLosses(t, filepath.Join(two.opts.Out, "metrics.jsonl"))
			if len(l1) != len(l2) {
				t.Fatalf("%d vs %d loss lines", len(l1), len(l2))
			}
			for i := range l1 {
				if math.Abs(l1[i]-l2[i]) > 1e-5*l1[i] {
					t.Errorf("step %d loss: %v (1 rank) vs %v (2 ranks)", i+1, l1[i], l2[i])
				}
			}
			r0, r1 := two.res[0], two.res[1]
			if r0.WorldSize != 2 || r0.Tokens != one.res[0].Tokens || r1.Output != r0.Output || r1.FirstLoss != r0.FirstLoss || r1.Checkpoint != r0.Checkpoint {
				t.Errorf("summaries: rank 0 %+v, rank 1 %+v, one rank %+v", r0, r1, one.res[0])
			}
			for _, f := range []string{"summary.json", "final/model.safetensors", "checkpoints/latest", "metrics.jsonl"} {
				if _, err := os.Stat(filepath.Join(two.opts.Out, f)); err != nil {
					t.Error(err)
				}
			}
			st := readState(t, filepath.Join(two.opts.Out, "checkpoints", CheckpointName(6)))
			if st.WorldSize != 2 {
				t.Errorf("checkpoint world size %d", st.WorldSize)
			}
		})
	}
}

func readState(t *testing.T, dir string) State {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	if err != nil {
		t.Fatal(err)
	}
	var st State
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// Overlapped buckets, buckets after backward and ZeRO-1 give the same bits
// (the in-process all-reduce adds in rank order whatever the buckets; AdamW
// is elementwise).
func TestDDPLocalOverlapAndZero(t *testing.T) {
	base := &ddpRun{preset: "tiny-qwen3", ranks: 2, batch: 4, opts: ddpOpts(t.TempDir())}
	base.opts.NoOverlap = true
	if err := base.run(t); err != nil {
		t.Fatal(err)
	}
	want := base.models[0].Params.Flat().F32
	for _, c := range []struct {
		name    string
		bucket  float64
		overlap bool
		zero    int
		ranks   int
	}{{"overlap", 0.002, true, 0, 2}, {"zero1", 0, true, 1, 2}, {"zero1-buckets", 0.002, true, 1, 2}} {
		t.Run(c.name, func(t *testing.T) {
			r := &ddpRun{preset: "tiny-qwen3", ranks: c.ranks, batch: 4, opts: ddpOpts(t.TempDir())}
			r.opts.BucketMB, r.opts.NoOverlap, r.opts.Zero = c.bucket, !c.overlap, c.zero
			if err := r.run(t); err != nil {
				t.Fatal(err)
			}
			for k := range r.models {
				sameBits(t, fmt.Sprintf("rank %d", k), r.models[k].Params.Flat().F32, want)
			}
			if d := r.trainers[0].ddp; c.bucket > 0 && (d.early == 0 || d.early >= d.buckets) {
				t.Errorf("%d of %d buckets launched during backward", d.early, d.buckets)
			} else {
				t.Logf("%d of %d buckets launched during backward", d.early, d.buckets)
			}
			if c.zero == 1 && r.res[0].Zero != 1 {
				t.Errorf("summary zero = %d", r.res[0].Zero)
			}
			// ZeRO's checkpoint holds the full moments, as plain DDP's does.
			a := filepath.Join(base.opts.Out, "checkpoints", CheckpointName(6), optFile)
			b := filepath.Join(r.opts.Out, "checkpoints", CheckpointName(6), optFile)
			ba, err := os.ReadFile(a)
			if err != nil {
				t.Fatal(err)
			}
			bb, err := os.ReadFile(b)
			if err != nil {
				t.Fatal(err)
			}
			if string(ba) != string(bb) {
				t.Errorf("%s differs from plain DDP's", b)
			}
		})
	}
}

// A DDP run stopped after 2 steps and resumed continues bit for bit (plain
// and ZeRO-1); a resume on another number of ranks is refused.
func TestDDPLocalResume(t *testing.T) {
	for _, zero := range []int{0, 1} {
		t.Run(fmt.Sprintf("zero%d", zero), func(t *testing.T) {
			full := &ddpRun{preset: "tiny-llama", ranks: 2, batch: 4, opts: ddpOpts(t.TempDir())}
			full.opts.Zero = zero
			if err := full.run(t); err != nil {
				t.Fatal(err)
			}
			part := &ddpRun{preset: "tiny-llama", ranks: 2, batch: 4, opts: ddpOpts(t.TempDir())}
			part.opts.Zero, part.opts.StopAfter, part.opts.SaveEvery = zero, 3, 0
			if err := part.run(t); err != nil {
				t.Fatal(err)
			}
			if !part.res[0].Interrupted || part.res[0].Steps != 3 || part.res[1].Steps != 3 {
				t.Fatalf("stop-after: %+v / %+v", part.res[0], part.res[1])
			}
			part.opts.StopAfter, part.opts.Resume = 0, true
			if err := part.run(t); err != nil {
				t.Fatal(err)
			}
			sameBits(t, "resumed vs uninterrupted", part.models[0].Params.Flat().F32, full.models[0].Params.Flat().F32)
			sameBits(t, "resumed rank 1", part.models[1].Params.Flat().F32, full.models[0].Params.Flat().F32)
			l1 := metricsLosses(t, filepath.Join(full.opts.Out, "metrics.jsonl"))
			l2 := metricsLosses(t, filepath.Join(part.opts.Out, "metrics.jsonl"))
			if fmt.Sprint(l1) != fmt.Sprint(l2) {
				t.Errorf("losses %v vs %v", l2, l1)
			}
			one := &ddpRun{preset: "tiny-llama", ranks: 1, batch: 4, opts: part.opts}
			one.opts.Steps = 8
			err := one.run(t)
			if err == nil || !strings.Contains(err.Error(), "2 rank(s) and this run has 1") {
				t.Errorf("resume on 1 rank: %v", err)
			}
		})
	}
}

// Every gradient the backward hook marks final keeps its value to the end
// of backward (the overlap all-reduces it from then on), for each family
// and for LoRA adapters.
func TestDDPBackwardHookStages(t *testing.T) {
	for _, preset := range []string{"tiny-gpt2", "tiny-llama", "tiny-qwen3"} {
		m, _ := newTiny(t, preset, 5)
		tr := FullTrainable(m)
		d, err := newDDP(dist.Single(), m, &tr, &Options{})
		if err != nil {
			t.Fatal(err)
		}
		b := batchFor(0, 2, 8, m.Cfg.VocabSize)
		if err := ensurePlan(m, b); err != nil {
			t.Fatal(err)
		}
		snap := map[int][]float32{}
		staged := 0
		m.BackwardHook = func(l int) {
			for _, i := range d.stage[l+1] {
				snap[i] = append([]float32(nil), d.grads[i]...)
				staged++
			}
		}
		tr.ZeroGrad()
		if _, _, err := m.ForwardBackward(b, 1); err != nil {
			t.Fatal(err)
		}
		m.BackwardHook = nil
		for i, s := range snap {
			sameBits(t, preset+" "+tr.Grads[i].Name, d.grads[i], s)
		}
		// Everything but the embeddings is staged before the end.
		if staged < len(tr.Grads)-2 {
			t.Errorf("%s: %d of %d gradients staged", preset, staged, len(tr.Grads))
		}
	}
}

// The checksum names the tensor that differs.
func TestDDPChecksumNamesTensor(t *testing.T) {
	comms := dist.NewLocal(2)
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for k := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := &ddp{c: comms[k], rank: k, size: 2}
			a, b := tensor.New(tensor.F32, 3), tensor.New(tensor.F32, 2)
			a.Name, b.Name = "same", "differs"
			b.F32[1] = float32(k)
			errs[k] = d.checksum(nil, []*tensor.Tensor{a, b}, "test")
		}()
	}
	wg.Wait()
	for k, err := range errs {
		if err == nil || !strings.Contains(err.Error(), `"differs"`) {
			t.Errorf("rank %d: %v", k, err)
		}
	}
}

// LoRA with dropout on 2 ranks: each rank draws its own masks; a checkpoint
// holds every rank's dropout streams, so a stop and resume continues bit
// for bit.
func TestDDPLocalLoRAResume(t *testing.T) {
	full := &ddpRun{preset: "tiny-llama", ranks: 2, batch: 4, lora: true, opts: ddpOpts(t.TempDir())}
	if err := full.run(t); err != nil {
		t.Fatal(err)
	}
	w0 := full.adapters[0].WeightArena.Flat().F32
	sameBits(t, "rank 1 adapters", full.adapters[1].WeightArena.Flat().F32, w0)
	part := &ddpRun{preset: "tiny-llama", ranks: 2, batch: 4, lora: true, opts: ddpOpts(t.TempDir())}
	part.opts.StopAfter, part.opts.SaveEvery = 3, 0
	if err := part.run(t); err != nil {
		t.Fatal(err)
	}
	st := readState(t, filepath.Join(part.opts.Out, "checkpoints", CheckpointName(3)))
	if len(st.Aux["lora_dropout"]) == 0 || len(st.Aux["lora_dropout@rank1"]) == 0 || string(st.Aux["lora_dropout"]) == string(st.Aux["lora_dropout@rank1"]) {
		t.Fatalf("checkpoint aux: %d keys, rank 0 and rank 1 dropout states equal or missing", len(st.Aux))
	}
	part.opts.StopAfter, part.opts.Resume = 0, true
	if err := part.run(t); err != nil {
		t.Fatal(err)
	}
	sameBits(t, "resumed adapters", part.adapters[0].WeightArena.Flat().F32, w0)
	sameBits(t, "resumed adapters, rank 1", part.adapters[1].WeightArena.Flat().F32, w0)
}

// overflowLM injects an infinite gradient on one rank at one step.
type overflowLM struct {
	tr        *Trainable
	at, calls int
}

func (o *overflowLM) Count(micro []*model.Batch) int { return LM{}.Count(micro) }
func (o *overflowLM) ForwardBackward(m *model.Transformer, b *model.Batch, s float64) (float64, error) {
	l, err := LM{}.ForwardBackward(m, b, s)
	o.calls++
	if o.calls == o.at {
		o.tr.Grads[3].F32[0] = float32(math.Inf(1))
	}
	return l, err
}

// fp16 loss scaling decides on the global gradient: an overflow on rank 1
// alone makes every rank skip the update and back off the scale.
func TestDDPLocalGlobalOverflow(t *testing.T) {
	r := &ddpRun{preset: "tiny-llama", ranks: 2, batch: 4, opts: ddpOpts(t.TempDir())}
	r.opts.Precision = "fp16"
	r.setup = func(k int, tr *Trainer) {
		o := &overflowLM{tr: &tr.Trainable, at: -1}
		if k == 1 {
			o.at = 3 // step 2's first micro-batch
		}
		tr.Objective = o
	}
	if err := r.run(t); err != nil {
		t.Fatal(err)
	}
	for k, res := range r.res {
		if res.SkippedSteps == nil || *res.SkippedSteps != 1 {
			t.Errorf("rank %d: skipped %v", k, res.SkippedSteps)
		}
	}
	sameBits(t, "rank 1", r.models[1].Params.Flat().F32, r.models[0].Params.Flat().F32)
}

// A communicator of one rank is the single-process path: the same bits,
// and no world size in the checkpoint.
func TestDDPSingleRankIsPlain(t *testing.T) {
	a := &ddpRun{preset: "tiny-llama", ranks: 1, batch: 4, opts: ddpOpts(t.TempDir())}
	if err := a.run(t); err != nil {
		t.Fatal(err)
	}
	b := &ddpRun{preset: "tiny-llama", ranks: 1, batch: 4, opts: ddpOpts(t.TempDir())}
	b.opts.Comm = dist.Single()
	if err := b.run(t); err != nil {
		t.Fatal(err)
	}
	sameBits(t, "Single() vs no Comm", b.models[0].Params.Flat().F32, a.models[0].Params.Flat().F32)
	if st := readState(t, filepath.Join(b.opts.Out, "checkpoints", CheckpointName(6))); st.WorldSize != 0 || b.res[0].WorldSize != 0 {
		t.Errorf("world size %d in the checkpoint, %d in the summary", st.WorldSize, b.res[0].WorldSize)
	}
}
