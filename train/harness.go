package train

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"syscall"
	"time"

	"github.com/shoggo/shoggo/dist"
	"github.com/shoggo/shoggo/internal/atomicfile"
	"github.com/shoggo/shoggo/internal/sysinfo"
	"github.com/shoggo/shoggo/model"
	"github.com/shoggo/shoggo/optim"
	"github.com/shoggo/shoggo/tensor"
)

// Options are the settings every training loop shares. The yaml keys are
// the CLI flags' names with underscores, so recipe files embed them inline.
type Options struct {
	Out         string  `yaml:"out"`
	Accum       int     `yaml:"grad_accum"`
	Steps       int     `yaml:"steps"`
	LR          float64 `yaml:"lr"`
	MinLR       float64 `yaml:"min_lr"`
	Warmup      int     `yaml:"warmup"`
	Schedule    string  `yaml:"schedule"` // constant | cosine | linear
	WeightDecay float64 `yaml:"weight_decay"`
	Beta2       float64 `yaml:"adam_beta2"` // 0: 0.999 (PyTorch's default); the CLI refuses 0
	Clip        float64 `yaml:"clip"`       // gradient norm clipping; 0: none
	EvalEvery   int     `yaml:"eval_every"` // 0: Steps/5
	SampleEvery int     `yaml:"sample_every"`
	SaveEvery   int     `yaml:"save_every"` // 0: only when the run ends or stops
	Seed        uint64  `yaml:"seed"`
	Resume      bool    `yaml:"resume"`
	// Overwrite replaces a previous run in Out (without it, and without
	// Resume, a folder holding a run is refused).
	Overwrite bool `yaml:"overwrite"`
	// TimeLimit stops training (saving a checkpoint) after this long; 0: none.
	TimeLimit time.Duration `yaml:"time_limit"`
	// StopAfter stops after this many steps of this invocation, as Ctrl-C
	// would (checkpoint saved); 0: none. For tests and time-sliced runs.
	StopAfter int `yaml:"stop_after"`
	// PrecisionConfig is the compute precision (precision, bf16, fp16).
	PrecisionConfig `yaml:",inline"`
	// Data-parallel runs (Trainer.Comm with several ranks): Zero = 1 shards
	// the AdamW moments over the ranks (ZeRO-1); BucketMB is the gradient
	// bucket size in MiB (0: 25); NoOverlap all-reduces the gradients after
	// backward instead of while it runs.
	Zero      int     `yaml:"zero"`
	BucketMB  float64 `yaml:"bucket_mb"`
	NoOverlap bool    `yaml:"no_overlap"`
	// Comm is the recipes' communicator (the CLI's dist.FromEnv under
	// mpirun); a Trainer whose Comm is nil uses it.
	Comm dist.Comm `yaml:"-" json:"-"`
}

// Source serves each step's micro-batches and saves and restores its
// position for checkpoints.
type Source interface {
	// Fill sets every micro[i] to the next micro-batch (it may refill the
	// batch in place or replace it).
	Fill(micro []*model.Batch) error
	// MarshalState and RestoreState save and restore the position.
	MarshalState() ([]byte, error)
	RestoreState([]byte) error
}

// Trainer is the harness every training loop runs on. Set the fields, then
// call Run. Everything per micro-batch is the Objective's; the harness's
// own work is per step (schedule, loss scaling, clipping, AdamW, a metrics
// line). Run sets Opts' precision on Model (model.SetPrecision); models
// the Objective holds (a reference) are the recipe's to set.
type Trainer struct {
	Opts      Options
	Model     *model.Transformer
	Trainable Trainable
	Objective Objective
	Data      Source
	Log       io.Writer // progress bar and messages
	// Recipe names the run in summary.json ("pretrain", "sft", ...).
	Recipe string
	// FinalDir is where Trainable.Save writes the result (default
	// Out/final).
	FinalDir string
	// Eval, if set, returns named metrics ("val_loss", "exact_match", ...):
	// before training, every EvalEvery steps and at the end. Stochastic
	// layers are switched off around it.
	Eval func() (map[string]float64, error)
	// Sample, if set, returns a text sample every SampleEvery steps; rng is
	// the run's random source (checkpointed).
	Sample func(rng *rand.Rand) string
	// Lock is Out's run lock when the caller took it already (ClaimRun,
	// before writing anything into Out); else Run takes and releases it.
	Lock *RunLock
	// Scaler is the dynamic loss scaler. With fp16 and none set, Run makes
	// NewGradScaler(); one set here is used at any precision (a caller's
	// settings, e.g. a short growth interval). Its state is checkpointed.
	Scaler *GradScaler
	// Comm, with more than one rank, makes the run data-parallel (see
	// ddp.go): Data must serve this rank's rows (ShardRows), every rank
	// runs Run with the same settings, and only rank 0 writes into Out
	// and Log. nil or one rank: a single process.
	Comm dist.Comm

	// Set by Run.
	Opt   *optim.AdamW
	Sched optim.Schedule
	RNG   *rand.Rand

	pcg  *rand.PCG
	prec tensor.DType // the resolved Opts precision
	// afterBackward, if set, runs after each step's accumulation, before
	// the gradient check (tests inject overflows with it).
	afterBackward func(step int)
	resumed       string // the checkpoint Run resumed from
	start         int
	ckpt          string
	extra         map[string]float64
	metrics       *os.File
	enc           *json.Encoder
	bar           *Progress
	ddp           *ddp // nil: one process
	log0          io.Writer
}

// Summary is OUT/summary.json: the run's headline figures. Field names are
// stable (scripts read them).
type Summary struct {
	Recipe      string             `json:"recipe"`
	Steps       int                `json:"steps"`       // steps done in total (resumed runs included)
	TotalSteps  int                `json:"total_steps"` // steps the run was configured for
	Interrupted bool               `json:"interrupted"`
	Tokens      int64              `json:"tokens"` // tokens processed by this invocation
	TokPerSec   float64            `json:"tokens_per_s"`
	ElapsedS    float64            `json:"elapsed_s"`
	FirstLoss   float64            `json:"first_loss"` // training loss of the run's first step
	FinalLoss   float64            `json:"final_loss"` // training loss of the last step
	Before      map[string]float64 `json:"before,omitempty"`
	After       map[string]float64 `json:"after,omitempty"`
	Output      string             `json:"output"`     // Trainable.Save's directory
	Checkpoint  string             `json:"checkpoint"` // the last checkpoint
	Precision   string             `json:"precision,omitempty"`
	// LossScale and SkippedSteps are the loss scaler's (fp16): its scale at
	// the end and the steps it skipped for overflowing gradients, in total.
	LossScale    float64 `json:"loss_scale,omitempty"`
	SkippedSteps *int    `json:"skipped_steps,omitempty"`
	// Data-parallel runs: the number of ranks (Tokens and TokPerSec count
	// all ranks), ZeRO stage, and the seconds this rank spent waiting for
	// the gradient all-reduce after backward (what overlap did not hide).
	WorldSize int     `json:"world_size,omitempty"`
	Zero      int     `json:"zero,omitempty"`
	CommWaitS float64 `json:"comm_wait_s,omitempty"`
	// Data-parallel runs, rank 0's memory: its AdamW moments (ZeRO-1: its
	// shard) and its peak resident set (VmHWM), in MiB.
	OptimizerStateMiB float64 `json:"optimizer_state_mib,omitempty"`
	PeakRSSMiB        float64 `json:"peak_rss_mib,omitempty"`
}

// Result is what Run returns: the summary.
type Result = Summary

// Metric is one line of metrics.jsonl. Evaluation metrics other than
// val_loss are written into the same line under their own names.
type Metric struct {
	Step     int     `json:"step"`
	Tokens   int64   `json:"tokens"`
	Loss     float64 `json:"loss,omitempty"`
	ValLoss  float64 `json:"val_loss,omitempty"`
	LR       float64 `json:"lr,omitempty"`
	GradNorm float64 `json:"grad_norm,omitempty"`
	// LossScale and SkippedSteps (runs with a loss scaler, fp16): the scale
	// after this step's update of the scaler, and the steps skipped so far.
	LossScale    *float64           `json:"loss_scale,omitempty"`
	SkippedSteps *int               `json:"skipped_steps,omitempty"`
	TokPerSec    float64            `json:"tok_per_s,omitempty"`
	Elapsed      float64            `json:"elapsed_s"`
	Sample       string             `json:"sample,omitempty"`
	Eval         map[string]float64 `json:"-"`
}

// MarshalJSON writes the fields and the evaluation metrics in one object.
func (m Metric) MarshalJSON() ([]byte, error) {
	type plain Metric
	b, err := json.Marshal(plain(m))
	if err != nil || len(m.Eval) == 0 {
		return b, err
	}
	keys := make([]string, 0, len(m.Eval))
	for k := range m.Eval {
		if k != "val_loss" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := m.Eval[k]
		if math.IsNaN(v) || math.IsInf(v, 0) {
			continue
		}
		kb, _ := json.Marshal(k)
		vb, _ := json.Marshal(v)
		b = append(append(append(append(b[:len(b)-1], ','), kb...), ':'), vb...)
		b = append(b, '}')
	}
	return b, nil
}

func (t *Trainer) defaults() error {
	o := &t.Opts
	o.Accum = max(o.Accum, 1)
	if o.Steps <= 0 {
		return fmt.Errorf("train: steps %d must be positive", o.Steps)
	}
	for _, v := range []struct {
		name string
		v    float64
	}{{"lr", o.LR}, {"min_lr", o.MinLR}, {"clip", o.Clip}, {"weight_decay", o.WeightDecay}, {"warmup", float64(o.Warmup)},
		{"save_every", float64(o.SaveEvery)}, {"stop_after", float64(o.StopAfter)}} {
		if !(v.v >= 0) || math.IsInf(v.v, 0) {
			return fmt.Errorf("train: %s %v must be a finite number >= 0", v.name, v.v)
		}
	}
	if !(o.Beta2 >= 0 && o.Beta2 < 1) {
		return fmt.Errorf("train: adam_beta2 %v must be in [0, 1)", o.Beta2)
	}
	if o.Schedule == "" {
		o.Schedule = "cosine"
	}
	if o.EvalEvery <= 0 {
		o.EvalEvery = max(o.Steps/5, 1)
	}
	if o.Out == "" {
		return fmt.Errorf("train: no output directory")
	}
	var err error
	if t.prec, err = o.PrecisionConfig.DType(); err != nil {
		return err
	}
	if t.prec == tensor.F16 && t.Scaler == nil {
		t.Scaler = NewGradScaler()
	}
	if s := t.Scaler; s != nil && !(s.Scale > 0 && s.GrowthFactor >= 1 && s.BackoffFactor > 0 && s.BackoffFactor < 1 && s.GrowthInterval > 0) {
		return fmt.Errorf("train: grad scaler %+v: want scale > 0, growth factor >= 1, backoff factor in (0, 1), growth interval > 0", *s)
	}
	if t.FinalDir == "" {
		t.FinalDir = filepath.Join(o.Out, "final")
	}
	if t.Log == nil {
		t.Log = io.Discard
	}
	if t.Objective == nil {
		t.Objective = LM{}
	}
	if o.Zero != 0 && o.Zero != 1 {
		return fmt.Errorf("train: zero %d: only ZeRO stage 1 (sharded optimizer state) is implemented; 0 turns it off", o.Zero)
	}
	if !(o.BucketMB >= 0) || math.IsInf(o.BucketMB, 0) {
		return fmt.Errorf("train: bucket_mb %v must be a finite number >= 0", o.BucketMB)
	}
	return nil
}

// setup builds the optimizer, schedule and random source and resumes from
// the latest checkpoint if asked; it returns the step to start at.
func (t *Trainer) setup() (int, error) {
	o := &t.Opts
	oc := optim.DefaultConfig()
	oc.WeightDecay = o.WeightDecay
	if o.Beta2 != 0 {
		oc.Beta2 = o.Beta2
	}
	if err := SetPrecision(t.prec, t.Model); err != nil {
		return 0, err
	}
	var err error
	if t.Comm != nil && t.Comm.Size() > 1 {
		if t.ddp, err = newDDP(t.Comm, t.Model, &t.Trainable, o); err != nil {
			return 0, err
		}
	}
	if t.ddp == nil && o.Zero == 1 {
		fmt.Fprintln(t.Log, "zero 1: one process holds all the optimizer state (ZeRO-1 shards it over the ranks of an mpirun job)")
	}
	if t.ddp != nil && o.Zero == 1 {
		if t.ddp.zero, err = newZero1(t.ddp, &t.Trainable, oc); err != nil {
			return 0, err
		}
		t.Opt = t.ddp.zero.opt
	} else if t.Opt, err = optim.NewAdamWOn(t.Model.BE, t.Trainable.Params, oc); err != nil {
		return 0, err
	}
	if t.Sched, err = optim.ParseSchedule(o.Schedule, o.LR, o.MinLR, min(o.Warmup, o.Steps), o.Steps); err != nil {
		return 0, err
	}
	t.ckpt = filepath.Join(o.Out, "checkpoints")
	t.pcg = rand.NewPCG(o.Seed, 0x5406)
	t.RNG = rand.New(t.pcg)
	t.extra = map[string]float64{}
	if t.lead() {
		if err := os.MkdirAll(o.Out, 0o755); err != nil {
			return 0, err
		}
		if err := removeStaleSaves(t.ckpt, t.Log); err != nil {
			return 0, err
		}
	}
	if !o.Resume {
		if t.ddp != nil {
			return t.syncStart(0, State{})
		}
		return 0, nil
	}
	if !t.lead() {
		return t.syncStart(0, State{})
	}
	start, st, err := t.resume()
	if err == nil && t.ddp != nil {
		start, err = t.syncStart(start, st)
	}
	if err == nil && start > o.Steps {
		return 0, fmt.Errorf("resume: the checkpoint is at step %d, beyond --steps %d; pass --steps above %d to continue", start, o.Steps, start)
	}
	if err == nil && start == o.Steps {
		// Killed after its last checkpoint: finish writes the outputs.
		fmt.Fprintf(t.Log, "the run already did its %d steps: writing its outputs (pass a larger --steps to train further)\n", o.Steps)
	}
	return start, err
}

// removeStaleSaves deletes what a killed save left in the checkpoint
// folder (.step-N.tmp* directories); the caller holds the run lock, so no
// save is in progress.
func removeStaleSaves(root string, log io.Writer) error {
	stale, err := filepath.Glob(filepath.Join(root, ".step-*.tmp*"))
	if err != nil {
		return err
	}
	old, _ := filepath.Glob(filepath.Join(root, "step-*.old"))
	stale = append(stale, old...)
	for _, p := range stale {
		if err := os.RemoveAll(p); err != nil {
			return fmt.Errorf("removing the leftover of an interrupted save: %w", err)
		}
		fmt.Fprintf(log, "removed %s (left by an interrupted save)\n", p)
	}
	return nil
}

// lead reports whether this process writes the run's files (rank 0, or
// the only process).
func (t *Trainer) lead() bool { return t.Comm == nil || t.Comm.Rank() == 0 }

func (t *Trainer) resume() (int, State, error) {
	path, err := LatestCheckpoint(t.ckpt)
	if err != nil {
		return 0, State{}, fmt.Errorf("resume: %w", err)
	}
	opt := t.Opt
	if t.ddp != nil && t.ddp.zero != nil {
		opt = nil // the sharded moments are scattered by syncStart
	}
	st, err := LoadCheckpointWith(path, t.Trainable.loadWeights, opt)
	if err != nil {
		return 0, st, fmt.Errorf("resume: %w", err)
	}
	size := 1
	if t.Comm != nil {
		size = t.Comm.Size()
	}
	if ws := max(st.WorldSize, 1); ws != size {
		return 0, st, fmt.Errorf("resume: %s was written by a run of %d rank(s) and this run has %d: resume with the same number of ranks (mpirun -np %d)", path, ws, size, ws)
	}
	if err := t.applyState(path, st, 0); err != nil {
		return 0, st, err
	}
	fmt.Fprintf(t.Log, "resumed from %s at step %d\n", path, st.Step)
	t.resumed = path
	return st.Step, st, nil
}

// applyState restores the RNG, data position, Trainable.State (rank's own
// entry), loss scaler and extra figures from a checkpoint's state.
func (t *Trainer) applyState(path string, st State, rank int) error {
	if err := t.pcg.UnmarshalBinary(st.RNG); err != nil {
		return fmt.Errorf("resume: %s: rng state: %w", path, err)
	}
	if err := t.Data.RestoreState(st.Data); err != nil {
		return fmt.Errorf("resume: %s: data position: %w", path, err)
	}
	for name, s := range t.Trainable.State {
		key := rankKey(name, rank)
		b, ok := st.Aux[key]
		if !ok {
			return fmt.Errorf("resume: %s: no %s state", path, key)
		}
		if err := s.UnmarshalBinary(b); err != nil {
			return fmt.Errorf("resume: %s: %s state: %w", path, key, err)
		}
	}
	if b, ok := st.Aux[scalerState]; ok && t.Scaler != nil {
		if err := t.Scaler.UnmarshalBinary(b); err != nil {
			return fmt.Errorf("resume: %s: %w", path, err)
		}
	} else if t.Scaler != nil {
		fmt.Fprintf(t.Log, "resume: %s has no loss scaler state (not an fp16 run): starting at scale %g\n", path, t.Scaler.Scale)
	}
	for k, v := range st.Extra {
		t.extra[k] = v
	}
	return nil
}

// rankKey is the State.Aux key of rank's copy of a per-rank state: the
// name itself for rank 0 (as a single process writes it), name@rankR
// for the others.
func rankKey(name string, rank int) string {
	if rank == 0 {
		return name
	}
	return fmt.Sprintf("%s@rank%d", name, rank)
}

// Save writes a checkpoint at step. In a data-parallel run every rank
// calls it (it gathers per-rank state and checks that the ranks'
// parameters agree); rank 0 writes and returns the path, the others "".
func (t *Trainer) Save(step int) (string, error) {
	st, err := t.state(step, true)
	if err != nil {
		return "", err
	}
	if t.ddp == nil {
		return SaveCheckpointWith(t.ckpt, t.Trainable.saveWeights, t.Opt, st)
	}
	be := t.Trainable.BE
	if err := t.ddp.checksum(be, t.Trainable.paramTensors(), fmt.Sprintf("step %d: the ranks' parameters diverged", step)); err != nil {
		return "", err
	}
	moments := t.Opt.State()
	if z := t.ddp.zero; z != nil {
		if moments, err = z.fullMoments(); err != nil {
			return "", err
		}
		be = nil
	} else {
		be = t.Opt.Backend()
	}
	if !t.lead() {
		return "", nil
	}
	st.WorldSize = t.ddp.size
	return saveCheckpoint(t.ckpt, t.Trainable.saveWeights, be, moments, t.Opt.StepCount(), true, st)
}

// state is the trainer state a checkpoint saves at step; with gather (a
// collective in data-parallel runs) rank 0 also gets the other ranks'
// Trainable.State.
func (t *Trainer) state(step int, gather bool) (State, error) {
	data, err := t.Data.MarshalState()
	if err != nil {
		return State{}, err
	}
	rs, err := t.pcg.MarshalBinary()
	if err != nil {
		return State{}, err
	}
	st := State{Step: step, RNG: rs, Data: data, Extra: t.extra}
	names := make([]string, 0, len(t.Trainable.State))
	for name := range t.Trainable.State {
		names = append(names, name)
	}
	sort.Strings(names) // the same collective order on every rank
	for _, name := range names {
		b, err := t.Trainable.State[name].MarshalBinary()
		if err != nil {
			return st, fmt.Errorf("checkpoint: %s state: %w", name, err)
		}
		if st.Aux == nil {
			st.Aux = map[string][]byte{}
		}
		st.Aux[name] = b
		if t.ddp == nil || !gather {
			continue
		}
		for r := 1; r < t.ddp.size; r++ {
			var mine []byte
			if t.ddp.rank == r {
				mine = b
			}
			got, err := t.ddp.broadcastBytes(mine, r)
			if err != nil {
				return st, err
			}
			if t.lead() {
				st.Aux[rankKey(name, r)] = got
			}
		}
	}
	if t.Scaler != nil {
		b, err := t.Scaler.MarshalBinary()
		if err != nil {
			return st, err
		}
		if st.Aux == nil {
			st.Aux = map[string][]byte{}
		}
		st.Aux[scalerState] = b
	}
	return st, nil
}

// startState is what rank 0 sends the other ranks when a data-parallel run
// starts.
type startState struct {
	Start   int    `json:"start"`
	Resumed string `json:"resumed,omitempty"`
	OptStep int    `json:"opt_step"`
	State   State  `json:"state"`
}

// syncStart makes every rank start where rank 0 does: rank 0's trainer
// state (st when resumed), parameters and (resumed) optimizer moments are
// broadcast, then the parameters are checksummed across ranks.
func (t *Trainer) syncStart(start int, st State) (int, error) {
	d := t.ddp
	var blob []byte
	if t.lead() {
		if t.resumed == "" {
			var err error
			if st, err = t.state(0, false); err != nil {
				return 0, err
			}
		}
		var err error
		if blob, err = json.Marshal(startState{start, t.resumed, t.Opt.StepCount(), st}); err != nil {
			return 0, err
		}
	}
	blob, err := d.broadcastBytes(blob, 0)
	if err != nil {
		return 0, fmt.Errorf("ddp: start: %w", err)
	}
	var ss startState
	if err := json.Unmarshal(blob, &ss); err != nil {
		return 0, fmt.Errorf("ddp: start: %w", err)
	}
	if !t.lead() {
		t.resumed = ss.Resumed
		if ss.Resumed != "" {
			if err := t.applyState(ss.Resumed+" (from rank 0)", ss.State, d.rank); err != nil {
				return 0, err
			}
		} else if err := t.Data.RestoreState(ss.State.Data); err != nil {
			// The same position on every rank: this checks that every rank
			// built the same data (seed, batch, corpus).
			return 0, fmt.Errorf("ddp: rank %d's data differs from rank 0's: %w", d.rank, err)
		}
		if d.zero == nil {
			t.Opt.SetStepCount(ss.OptStep)
		}
	}
	be := t.Trainable.BE
	if err := d.broadcastTensors(be, t.Trainable.paramTensors()); err != nil {
		return 0, err
	}
	if ss.Resumed != "" {
		if d.zero != nil {
			err = d.zero.loadMoments(ss.Resumed)
		} else {
			err = d.broadcastTensors(t.Opt.Backend(), t.Opt.State())
		}
		if err != nil {
			return 0, fmt.Errorf("ddp: optimizer state: %w", err)
		}
	}
	if err := d.checksum(be, t.Trainable.paramTensors(), "after the broadcast from rank 0"); err != nil {
		return 0, err
	}
	return ss.Start, nil
}

// evaluate runs the Eval hook with stochastic layers off.
func (t *Trainer) evaluate() (map[string]float64, error) {
	if t.Eval == nil {
		return nil, nil
	}
	t.Trainable.setTraining(false)
	defer t.Trainable.setTraining(true)
	return t.Eval()
}

// Run trains from the current weights (or the latest checkpoint, with
// Resume) to Opts.Steps, or until ctx is cancelled, SIGINT/SIGTERM
// arrives, the time limit passes or StopAfter steps are done; in those
// cases it stops cleanly with a checkpoint, and Resume continues bit for
// bit. It writes Out/metrics.jsonl, Out/loss.png, checkpoints under
// Out/checkpoints, the result (Trainable.Save) in FinalDir and
// Out/summary.json.
func (t *Trainer) Run(ctx context.Context) (Result, error) {
	var res Result
	if err := t.defaults(); err != nil {
		return res, err
	}
	if t.Comm == nil {
		t.Comm = t.Opts.Comm
	}
	if !t.lead() {
		t.Log = io.Discard // rank 0 prints for the run
	}
	if t.Lock == nil && t.lead() {
		var extra []string
		if rel, err := filepath.Rel(t.Opts.Out, t.FinalDir); err == nil && filepath.IsLocal(rel) {
			extra = append(extra, rel)
		}
		l, err := ClaimRun(t.Opts.Out, t.Opts.Resume, t.Opts.Overwrite, extra...)
		if err != nil {
			return res, err
		}
		defer l.Release()
	}
	start, err := t.setup()
	if err != nil {
		return res, err
	}
	t.start = start
	if t.lead() {
		if err := t.openMetrics(start); err != nil {
			return res, err
		}
		defer t.metrics.Close()
	} else {
		t.enc = json.NewEncoder(io.Discard)
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() { <-ctx.Done(); stop() }() // a second Ctrl-C kills
	if t.ddp != nil {
		defer t.announceSignals()()
	}
	if start == 0 {
		ev, err := t.evaluate()
		if err != nil {
			return res, err
		}
		for k, v := range ev {
			t.extra["before/"+k] = v
		}
		if len(ev) > 0 {
			fmt.Fprintf(t.Log, "before training:%s\n", formatEval(ev))
		}
	}
	t.Trainable.setTraining(true)
	res, err = t.loop(ctx, start)
	if err != nil {
		return res, err
	}
	return t.finish(res)
}

func (t *Trainer) loop(ctx context.Context, start int) (Result, error) {
	o := &t.Opts
	res := Result{Recipe: t.Recipe, TotalSteps: o.Steps, Precision: PrecisionName(t.prec)}
	micro := make([]*model.Batch, o.Accum)
	t0 := time.Now()
	t.bar = NewProgress(t.Log, o.Steps)
	lastVal := math.NaN()
	lastEval := -1
	step := start
	if d := t.ddp; d != nil {
		// Evaluated after each step's backward and agreed on by all ranks.
		d.wantStop = func() bool {
			return ctx.Err() != nil || (t.lead() && o.TimeLimit > 0 && time.Since(t0) > o.TimeLimit)
		}
	}
	for ; step < o.Steps; step++ {
		if t.ddp == nil && (ctx.Err() != nil || (o.TimeLimit > 0 && time.Since(t0) > o.TimeLimit)) || (o.StopAfter > 0 && step-start >= o.StopAfter) ||
			t.ddp != nil && t.ddp.stopAll {
			res.Interrupted = true
			break
		}
		if err := t.Data.Fill(micro); err != nil {
			return res, fmt.Errorf("step %d: %w", step, err)
		}
		// The schedule follows the updates made: a step skipped for a
		// non-finite gradient does not advance it (Hugging Face Trainer
		// skips lr_scheduler.step() when the GradScaler skipped the
		// optimizer step).
		lr := t.Sched.LR(t.Opt.StepCount())
		var after func()
		if t.afterBackward != nil {
			s := step
			after = func() { t.afterBackward(s) }
		}
		scale := 0.0
		if t.Scaler != nil {
			scale = t.Scaler.Scale
		}
		r, err := stepCore(t.Model, t.Trainable, t.Objective, t.Opt, micro, lr, o.Clip, t.Scaler, after, t.ddp)
		if err != nil {
			return res, fmt.Errorf("step %d: %w", step, err)
		}
		if math.IsNaN(r.Loss) || math.IsInf(r.Loss, 0) {
			t.bar.Done()
			last, _ := LatestCheckpoint(t.ckpt)
			if last == "" {
				last = "none yet"
			}
			hint := "try a lower --lr or --clip"
			if t.prec == tensor.F16 {
				hint += "; in fp16 the forward pass can overflow: try --precision bf16"
			}
			return res, fmt.Errorf("step %d: the training loss is %v: stopped without saving (the last good checkpoint is %s; %s)", step+1, r.Loss, last, hint)
		}
		switch {
		case r.Skipped && t.Scaler != nil:
			t.bar.Message(fmt.Sprintf("step %d: gradient overflow at loss scale %g, update skipped; scale now %g", step+1, scale, t.Scaler.Scale))
		case r.Skipped:
			t.bar.Message(fmt.Sprintf("step %d: non-finite gradient norm %v, update skipped", step, r.GradNorm))
		}
		for _, b := range micro {
			res.Tokens += int64(b.B * b.T)
			if t.ddp != nil {
				res.Tokens += int64(b.B*b.T) * int64(t.ddp.size-1) // every rank's rows have this shape
			}
		}
		if step == 0 {
			t.extra["first_loss"] = r.Loss
		}
		res.FinalLoss = r.Loss
		t.extra["last_loss"] = r.Loss
		el := time.Since(t0).Seconds()
		met := Metric{Step: step + 1, Tokens: res.Tokens, Loss: r.Loss, LR: lr, GradNorm: r.GradNorm, TokPerSec: float64(res.Tokens) / el, Elapsed: el}
		if math.IsNaN(met.GradNorm) || math.IsInf(met.GradNorm, 0) {
			met.GradNorm = 0 // JSON has no NaN or inf (the skip is reported above)
		}
		if s := t.Scaler; s != nil {
			scale, skipped := s.Scale, s.Skipped
			met.LossScale, met.SkippedSteps = &scale, &skipped
		}
		if (step+1)%o.EvalEvery == 0 || step+1 == o.Steps {
			if err := t.evalInto(&met, &res); err != nil {
				return res, err
			}
			lastVal, lastEval = met.ValLoss, step+1
		}
		if t.Sample != nil && o.SampleEvery > 0 && (step+1)%o.SampleEvery == 0 && t.lead() {
			met.Sample = t.Sample(t.RNG)
			t.bar.Message(fmt.Sprintf("step %d sample: %q", step+1, met.Sample))
		}
		t.enc.Encode(met)
		t.bar.Update(step+1, r.Loss, lastVal, met.TokPerSec)
		if o.SaveEvery > 0 && (step+1)%o.SaveEvery == 0 && step+1 < o.Steps {
			if _, err := t.Save(step + 1); err != nil {
				return res, err
			}
		}
	}
	t.bar.Done()
	res.Steps = step
	if s := t.Scaler; s != nil {
		skipped := s.Skipped
		res.LossScale, res.SkippedSteps = s.Scale, &skipped
	}
	res.ElapsedS = time.Since(t0).Seconds()
	res.TokPerSec = float64(res.Tokens) / res.ElapsedS
	if d := t.ddp; d != nil {
		res.WorldSize, res.CommWaitS = d.size, d.waitTime.Seconds()
		if d.zero != nil {
			res.Zero = 1
		}
		m, v := t.Opt.Moments()
		res.OptimizerStateMiB = sysinfo.MiB(int64(m.Flat().Numel()+v.Flat().Numel()) * 4)
		res.PeakRSSMiB = sysinfo.MiB(sysinfo.VmHWM())
	}
	if lastEval != step && t.Eval != nil {
		met := Metric{Step: step, Tokens: res.Tokens, Elapsed: res.ElapsedS}
		if err := t.evalInto(&met, &res); err != nil {
			return res, err
		}
		// A resumed run that had nothing left to do has logged this step
		// already: evaluate for the summary, never repeat the line.
		if step > start {
			t.enc.Encode(met)
		}
	}
	return res, nil
}

// evalInto evaluates, records the metrics in met and res.After and prints
// them above the bar.
func (t *Trainer) evalInto(met *Metric, res *Result) error {
	ev, err := t.evaluate()
	if err != nil || ev == nil {
		return err
	}
	met.Eval, res.After = ev, ev
	met.ValLoss = math.NaN()
	if v, ok := ev["val_loss"]; ok {
		met.ValLoss = v
	}
	if math.IsNaN(met.ValLoss) {
		met.ValLoss = 0
	}
	t.bar.Message(fmt.Sprintf("step %d eval:%s", met.Step, formatEval(ev)))
	return nil
}

// formatEval lists metrics as " name value" in name order.
func formatEval(ev map[string]float64) string {
	keys := make([]string, 0, len(ev))
	for k := range ev {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	msg := ""
	for _, k := range keys {
		msg += fmt.Sprintf(" %s %.4g", k, ev[k])
	}
	return msg
}

// finish saves the checkpoint, the result, the plot and summary.json.
// In a data-parallel run rank 0 writes them while the other ranks wait at
// a barrier, so every rank returns after the outputs exist.
func (t *Trainer) finish(res Result) (Result, error) {
	res, err := t.finishRun(res)
	if t.ddp != nil {
		if berr := t.Comm.Barrier(); err == nil {
			err = berr
		}
	}
	return res, err
}

func (t *Trainer) finishRun(res Result) (Result, error) {
	var err error
	if res.Steps == t.start && t.resumed != "" {
		res.Checkpoint = t.resumed // nothing new to save
	} else if res.Checkpoint, err = t.Save(res.Steps); err != nil {
		return res, err
	}
	if !t.lead() {
		res.Checkpoint = filepath.Join(t.ckpt, CheckpointName(res.Steps)) // rank 0's
	}
	res.FinalLoss = t.extra["last_loss"]
	if res.Interrupted {
		fmt.Fprintf(t.Log, "stopped at step %d; checkpoint saved, continue with --resume\n", res.Steps)
	}
	res.FirstLoss = t.extra["first_loss"]
	for k, v := range t.extra {
		if name, ok := cutPrefix(k, "before/"); ok {
			if res.Before == nil {
				res.Before = map[string]float64{}
			}
			res.Before[name] = v
		}
	}
	t.Trainable.setTraining(false)
	res.Output = t.FinalDir
	if !t.lead() {
		return res, nil
	}
	if err := t.Trainable.Save(t.FinalDir); err != nil {
		return res, err
	}
	t.metrics.Sync()
	if err := PlotMetrics(filepath.Join(t.Opts.Out, "metrics.jsonl"), filepath.Join(t.Opts.Out, "loss.png")); err != nil {
		fmt.Fprintf(t.Log, "plot: %v\n", err)
	}
	return res, WriteSummary(filepath.Join(t.Opts.Out, "summary.json"), res)
}

func cutPrefix(s, p string) (string, bool) {
	if len(s) >= len(p) && s[:len(p)] == p {
		return s[len(p):], true
	}
	return s, false
}

// WriteSummary writes s as indented JSON, atomically; NaN and infinite
// figures are left out.
func WriteSummary(path string, s Summary) error {
	clean := func(m map[string]float64) map[string]float64 {
		out := map[string]float64{}
		for k, v := range m {
			if !math.IsNaN(v) && !math.IsInf(v, 0) {
				out[k] = v
			}
		}
		return out
	}
	s.Before, s.After = clean(s.Before), clean(s.After)
	for _, p := range []*float64{&s.FirstLoss, &s.FinalLoss, &s.TokPerSec} {
		if math.IsNaN(*p) || math.IsInf(*p, 0) {
			*p = 0
		}
	}
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(path, append(b, '\n'), 0o644)
}

// openMetrics opens Out/metrics.jsonl: a fresh file, or on resume the
// existing one cut back to the lines up to step start.
func (t *Trainer) openMetrics(start int) error {
	path := filepath.Join(t.Opts.Out, "metrics.jsonl")
	var keep []byte
	if start > 0 {
		old, err := os.ReadFile(path)
		if err != nil && !os.IsNotExist(err) {
			return err
		}
		keep = metricsUpTo(old, start)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := f.Write(keep); err != nil {
		f.Close()
		return err
	}
	t.metrics, t.enc = f, json.NewEncoder(f)
	return nil
}

// metricsUpTo keeps the lines of a metrics.jsonl whose step is at most step.
func metricsUpTo(b []byte, step int) []byte {
	var out []byte
	for len(b) > 0 {
		i := 0
		for i < len(b) && b[i] != '\n' {
			i++
		}
		line := b[:i]
		if i < len(b) {
			i++
		}
		b = b[i:]
		var m struct {
			Step int     `json:"step"`
			Loss float64 `json:"loss"`
		}
		// Lines of earlier steps, and the training line of the step
		// resumed at (not the evaluation-only line written when the run
		// stopped there: the continuation writes its own).
		if json.Unmarshal(line, &m) == nil && (m.Step < step || (m.Step == step && m.Loss != 0)) {
			out = append(append(out, line...), '\n')
		}
	}
	return out
}
