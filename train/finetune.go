package train

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/shoggo/shoggo/model"
	"github.com/shoggo/shoggo/optim"
	"github.com/shoggo/shoggo/tensor"
)

// Trainable is the set of tensors a fine-tuning run updates: the whole
// model's parameters (full fine-tuning) or only adapters (LoRA).
type Trainable struct {
	Params   []optim.Param
	Grads    []*tensor.Tensor
	ZeroGrad func()
	// Save writes the trained result (an HF model directory or a PEFT
	// adapter) to dir.
	Save func(dir string) error
}

// FullTrainable makes every model parameter trainable.
func FullTrainable(m *model.Transformer) Trainable {
	return Trainable{Params: Params(m), Grads: m.Grads.Tensors(), ZeroGrad: m.ZeroGrad,
		Save: func(dir string) error { return m.SaveHF(dir, model.SaveOptions{}) }}
}

// StepTrainable is Step for any Trainable: gradient accumulation over the
// micro-batches with the loss normalised by all their counted tokens, global
// norm clipping, one AdamW update.
func StepTrainable(m *model.Transformer, tr Trainable, opt *optim.AdamW, micro []*model.Batch, lr, clip float64) (StepResult, error) {
	var r StepResult
	r.Tokens = model.CountTargets(micro)
	if r.Tokens == 0 {
		return r, fmt.Errorf("step: no target tokens in %d micro-batches", len(micro))
	}
	scale := 1 / float64(r.Tokens)
	tr.ZeroGrad()
	var sum float64
	for _, b := range micro {
		if m.Planned() != [2]int{b.B, b.T} {
			if err := m.Plan(b.B, b.T); err != nil {
				return r, err
			}
		}
		s, _, err := m.ForwardBackward(b, scale)
		if err != nil {
			return r, err
		}
		sum += s
	}
	r.Loss = sum * scale
	r.GradNorm = optim.ClipGradNorm(tr.Grads, clip)
	if math.IsNaN(r.GradNorm) || math.IsInf(r.GradNorm, 0) {
		r.Skipped = true
		return r, nil
	}
	opt.Step(lr)
	return r, nil
}

// FinetuneConfig configures Finetune.
type FinetuneConfig struct {
	Out         string  `yaml:"out"`
	Accum       int     `yaml:"grad_accum"`
	Epochs      int     `yaml:"epochs"`
	Steps       int     `yaml:"steps"` // 0: Epochs worth of steps
	LR          float64 `yaml:"lr"`
	MinLR       float64 `yaml:"min_lr"`
	Warmup      int     `yaml:"warmup"`
	Schedule    string  `yaml:"schedule"`
	WeightDecay float64 `yaml:"weight_decay"`
	Beta2       float64 `yaml:"adam_beta2"` // 0: 0.999 (PyTorch's default)
	Clip        float64 `yaml:"clip"`
	EvalEvery   int     `yaml:"eval_every"`
	// TimeLimit stops training (saving the result) after this long; 0: none.
	TimeLimit time.Duration `yaml:"time_limit"`
}

// Batches serves micro-batches; sft.Dataset implements it.
type Batches interface {
	Next() (*model.Batch, int)
	NumBatches(epoch int) int
}

// EvalFunc evaluates the model and returns named metrics (eval loss,
// exact match, ...).
type EvalFunc func() (map[string]float64, error)

// FinetuneResult summarises a fine-tuning run.
type FinetuneResult struct {
	Steps       int
	FirstLoss   float64
	FinalLoss   float64
	TokPerSec   float64
	Eval        map[string]float64
	Interrupted bool
	Elapsed     time.Duration
}

// Finetune runs the optimisation loop shared by SFT and LoRA: AdamW over
// tr, micro-batches from ds with gradient accumulation, an LR schedule,
// periodic evaluation, metrics.jsonl and loss.png in cfg.Out, and the
// result saved with tr.Save to cfg.Out/final.
func Finetune(ctx context.Context, cfg FinetuneConfig, m *model.Transformer, tr Trainable, ds Batches, eval EvalFunc, log io.Writer) (FinetuneResult, error) {
	var res FinetuneResult
	if cfg.Accum <= 0 {
		cfg.Accum = 1
	}
	if cfg.Steps == 0 {
		per := ds.NumBatches(1) / cfg.Accum
		cfg.Steps = max(1, per*max(cfg.Epochs, 1))
	}
	if cfg.Clip == 0 {
		cfg.Clip = 1
	}
	if cfg.Schedule == "" {
		cfg.Schedule = "cosine"
	}
	if cfg.EvalEvery == 0 {
		cfg.EvalEvery = max(cfg.Steps/5, 1)
	}
	oc := optim.DefaultConfig()
	oc.WeightDecay = cfg.WeightDecay
	if cfg.Beta2 != 0 {
		oc.Beta2 = cfg.Beta2
	}
	opt, err := optim.NewAdamW(tr.Params, oc)
	if err != nil {
		return res, err
	}
	sched, err := optim.ParseSchedule(cfg.Schedule, cfg.LR, cfg.MinLR, min(cfg.Warmup, cfg.Steps), cfg.Steps)
	if err != nil {
		return res, err
	}
	if err := os.MkdirAll(cfg.Out, 0o755); err != nil {
		return res, err
	}
	mf, err := os.Create(filepath.Join(cfg.Out, "metrics.jsonl"))
	if err != nil {
		return res, err
	}
	defer mf.Close()
	enc := json.NewEncoder(mf)
	t0 := time.Now()
	bar := NewProgress(log, cfg.Steps)
	var tokens int64
	micro := make([]*model.Batch, cfg.Accum)
	step := 0
	evalNow := func(step int) error {
		if eval == nil {
			return nil
		}
		ev, err := eval()
		if err != nil {
			return err
		}
		res.Eval = ev
		rec := map[string]any{"step": step, "elapsed_s": time.Since(t0).Seconds()}
		msg := fmt.Sprintf("step %d eval:", step)
		for k, v := range ev {
			rec[k] = v
			msg += fmt.Sprintf(" %s %.4g", k, v)
		}
		enc.Encode(rec)
		bar.Message(msg)
		return nil
	}
	for ; step < cfg.Steps; step++ {
		if ctx.Err() != nil || (cfg.TimeLimit > 0 && time.Since(t0) > cfg.TimeLimit) {
			res.Interrupted = true
			break
		}
		for i := range micro {
			micro[i], _ = ds.Next()
		}
		lr := sched.LR(step)
		r, err := StepTrainable(m, tr, opt, micro, lr, cfg.Clip)
		if err != nil {
			return res, fmt.Errorf("step %d: %w", step, err)
		}
		for _, b := range micro {
			tokens += int64(b.B * b.T)
		}
		if step == 0 {
			res.FirstLoss = r.Loss
		}
		res.FinalLoss = r.Loss
		el := time.Since(t0).Seconds()
		enc.Encode(Metric{Step: step + 1, Tokens: tokens, Loss: r.Loss, LR: lr, GradNorm: r.GradNorm, TokPerSec: float64(tokens) / el, Elapsed: el})
		bar.Update(step+1, r.Loss, math.NaN(), float64(tokens)/el)
		if (step+1)%cfg.EvalEvery == 0 && step+1 < cfg.Steps {
			if err := evalNow(step + 1); err != nil {
				return res, err
			}
		}
	}
	bar.Done()
	res.Steps = step
	res.Elapsed = time.Since(t0)
	res.TokPerSec = float64(tokens) / res.Elapsed.Seconds()
	if err := evalNow(step); err != nil {
		return res, err
	}
	if err := tr.Save(filepath.Join(cfg.Out, "final")); err != nil {
		return res, err
	}
	if err := PlotMetrics(filepath.Join(cfg.Out, "metrics.jsonl"), filepath.Join(cfg.Out, "loss.png")); err != nil {
		fmt.Fprintf(log, "plot: %v\n", err)
	}
	return res, nil
}
