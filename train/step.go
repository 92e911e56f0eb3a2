package train

import (
	"fmt"
	"math"
	"path/filepath"

	"github.com/shoggo/shoggo/backend"
	"github.com/shoggo/shoggo/model"
	"github.com/shoggo/shoggo/optim"
	"github.com/shoggo/shoggo/safetensors"
	"github.com/shoggo/shoggo/tensor"
)

// Params returns the model's trainable tensors for the optimizer, grouped by
// optim.DefaultDecay.
func Params(m *model.Transformer) []optim.Param {
	var ps []optim.Param
	for _, w := range m.Params.Tensors() {
		g := m.Grads.Get(w.Name)
		ps = append(ps, optim.Param{Name: w.Name, W: w, G: g, Decay: optim.DefaultDecay(w.Name, w.Shape)})
	}
	return ps
}

// CountTargets counts the positions that contribute to the loss.
func CountTargets(batches []*model.Batch) int { return model.CountTargets(batches) }

// Stateful is random or positional state a checkpoint saves besides the
// weights and the optimizer (rand.PCG implements it).
type Stateful interface {
	MarshalBinary() ([]byte, error)
	UnmarshalBinary([]byte) error
}

// Trainable is the set of tensors a run updates, and how to save them: the
// whole model's parameters (FullTrainable) or only adapters (LoRA).
type Trainable struct {
	Params   []optim.Param
	Grads    []*tensor.Tensor
	ZeroGrad func()
	// GradArena, if set, is the arena most Grads are views of (the model's
	// or the adapters'): data-parallel runs all-reduce its gradients in
	// place, and gradients outside it (a head's) are taken to be final
	// before the model's Backward starts.
	GradArena *tensor.Arena
	// BE is the backend holding Params: the default checkpoint weights go
	// through it (backend.ToHost, backend.FillHost); nil: host tensors.
	BE backend.Backend
	// Save writes the trained result (an HF model directory or a PEFT
	// adapter) to dir.
	Save func(dir string) error
	// SaveWeights and LoadWeights checkpoint the trained tensors bit for
	// bit; nil: the Params' tensors in dir/trainable.safetensors.
	SaveWeights, LoadWeights func(dir string) error
	// SetTraining switches stochastic layers (LoRA dropout) on (training)
	// or off (evaluation); nil: nothing to switch.
	SetTraining func(on bool)
	// State is extra state checkpoints save, by name (the LoRA dropout
	// streams).
	State map[string]Stateful
}

const trainableFile = "trainable.safetensors"

func (tr *Trainable) saveWeights(dir string) error {
	if tr.SaveWeights != nil {
		return tr.SaveWeights(dir)
	}
	ts := make([]*tensor.Tensor, len(tr.Params))
	for i, p := range tr.Params {
		ts[i] = p.W
		if tr.BE != nil {
			ts[i] = backend.ToHost(tr.BE, p.W)
		}
	}
	return safetensors.Write(filepath.Join(dir, trainableFile), ts, nil)
}

func (tr *Trainable) loadWeights(dir string) error {
	if tr.LoadWeights != nil {
		return tr.LoadWeights(dir)
	}
	f, err := safetensors.Open(filepath.Join(dir, trainableFile))
	if err != nil {
		return err
	}
	defer f.Close()
	for _, p := range tr.Params {
		var err error
		if tr.BE != nil {
			backend.FillHost(tr.BE, p.W, func(h *tensor.Tensor) { err = f.ReadInto(p.W.Name, h) })
		} else {
			err = f.ReadInto(p.W.Name, p.W)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (tr *Trainable) setTraining(on bool) {
	if tr.SetTraining != nil {
		tr.SetTraining(on)
	}
}

// FullTrainable makes every model parameter trainable. Its checkpoints hold
// the model as an fp32 HF directory (usable by generate).
func FullTrainable(m *model.Transformer) Trainable {
	return Trainable{Params: Params(m), Grads: m.Grads.Tensors(), ZeroGrad: m.ZeroGrad, BE: m.BE, GradArena: m.Grads,
		Save:        func(dir string) error { return m.SaveHF(dir, model.SaveOptions{}) },
		SaveWeights: func(dir string) error { return m.SaveHF(dir, model.SaveOptions{DType: tensor.F32}) },
		LoadWeights: func(dir string) error { return loadModelWeights(dir, m) }}
}

// StepResult reports one optimisation step.
type StepResult struct {
	Loss     float64 // mean loss per counted unit (token, pair) over all micro-batches
	Tokens   int     // the objective's count (target tokens for LM)
	GradNorm float64 // before clipping (of the unscaled gradients)
	Skipped  bool    // non-finite gradient: no update was made
}

// Step runs one language-model optimisation step over the micro-batches
// (gradient accumulation) for every parameter of m: see StepWith.
func Step(m *model.Transformer, opt *optim.AdamW, micro []*model.Batch, lr, clip float64) (StepResult, error) {
	return StepWith(m, FullTrainable(m), LM{}, opt, micro, lr, clip)
}

// StepWith is one optimisation step of any objective over any Trainable:
// gradient accumulation over the micro-batches with the loss normalised by
// obj.Count of all of them, global-norm clipping of tr.Grads, one AdamW
// update (skipped, and reported, when the gradient norm is not finite).
func StepWith(m *model.Transformer, tr Trainable, obj Objective, opt *optim.AdamW, micro []*model.Batch, lr, clip float64) (StepResult, error) {
	return stepScaled(m, tr, obj, opt, micro, lr, clip, nil, nil)
}

// StepScaled is StepWith with dynamic loss scaling (fp16; sc nil: StepWith),
// as torch.amp.GradScaler does it: the loss's gradient is multiplied by
// sc.Scale before backward; after accumulation, gradients holding an inf
// or NaN skip the update, otherwise they are unscaled (×1/Scale) before
// clipping and the update is made; sc.Update records the outcome. The
// check is the backend's SumSquares over tr.Grads: it accumulates float64
// squares of float32 values (at most ~1.2e77 each), so it is finite
// exactly when every gradient element is. GradNorm is the norm of the
// unscaled gradients (non-finite on a skipped step).
func StepScaled(m *model.Transformer, tr Trainable, obj Objective, opt *optim.AdamW, micro []*model.Batch, lr, clip float64, sc *GradScaler) (StepResult, error) {
	return stepScaled(m, tr, obj, opt, micro, lr, clip, sc, nil)
}

// stepScaled is StepScaled; afterBackward, if set, runs between the accumulation
// and the gradient check (tests inject overflows there).
func stepScaled(m *model.Transformer, tr Trainable, obj Objective, opt *optim.AdamW, micro []*model.Batch, lr, clip float64, sc *GradScaler, afterBackward func()) (StepResult, error) {
	return stepCore(m, tr, obj, opt, micro, lr, clip, sc, afterBackward, nil)
}

// stepCore is stepScaled; with d (several ranks) the count, the gradients
// and the loss are reduced over the ranks (see ddp.go) and ZeRO-1 replaces
// the optimizer's update.
func stepCore(m *model.Transformer, tr Trainable, obj Objective, opt *optim.AdamW, micro []*model.Batch, lr, clip float64, sc *GradScaler, afterBackward func(), d *ddp) (StepResult, error) {
	var r StepResult
	r.Tokens = obj.Count(micro)
	count := float64(r.Tokens)
	if d != nil {
		v, err := d.sumF64(count)
		if err != nil {
			return r, err
		}
		count = v[0]
		r.Tokens = int(count)
	}
	if count <= 0 {
		return r, fmt.Errorf("step: nothing to train on in %d micro-batches", len(micro))
	}
	norm := 1 / count
	scale := norm
	if sc != nil {
		scale *= sc.Scale
	}
	tr.ZeroGrad()
	var sum float64
	for i, b := range micro {
		last := d != nil && i == len(micro)-1
		if last {
			d.arm()
		}
		s, err := obj.ForwardBackward(m, b, scale)
		if last {
			d.disarm()
		}
		if err != nil {
			return r, err
		}
		sum += s
	}
	if d != nil {
		if err := d.reduceGrads(); err != nil {
			return r, err
		}
		var err error
		if sum, err = d.endStep(sum); err != nil {
			return r, err
		}
	}
	r.Loss = sum * norm
	if afterBackward != nil {
		afterBackward()
	}
	if sc != nil {
		ss := m.BE.SumSquares(tr.Grads)
		if math.IsNaN(ss) || math.IsInf(ss, 0) {
			r.GradNorm, r.Skipped = math.Sqrt(ss), true
			sc.Update(true)
			return r, nil
		}
		if sc.Scale != 1 {
			m.BE.ScaleAll(tr.Grads, 1/sc.Scale)
		}
	}
	r.GradNorm = optim.ClipGradNormOn(m.BE, tr.Grads, clip)
	if math.IsNaN(r.GradNorm) || math.IsInf(r.GradNorm, 0) {
		r.Skipped = true
		if sc != nil {
			sc.Update(true)
		}
		return r, nil
	}
	if d != nil && d.zero != nil {
		if err := d.zero.step(lr); err != nil {
			return r, err
		}
	} else {
		opt.Step(lr)
	}
	if sc != nil {
		sc.Update(false)
	}
	return r, nil
}

// Evaluate returns the mean loss per counted token over batches, without
// gradients (re-planning m for each batch shape as needed).
func Evaluate(m *model.Transformer, batches []*model.Batch) (float64, error) {
	var sum float64
	var n int
	for _, b := range batches {
		if err := ensurePlan(m, b); err != nil {
			return 0, err
		}
		if err := m.Forward(b); err != nil {
			return 0, err
		}
		s, c, err := m.Loss(b, 0, false)
		if err != nil {
			return 0, err
		}
		sum += s
		n += c
	}
	if n == 0 {
		return 0, fmt.Errorf("evaluate: no target tokens")
	}
	return sum / float64(n), nil
}
