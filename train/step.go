package train

import (
	"fmt"
	"math"

	"github.com/shoggo/shoggo/backend"
	"github.com/shoggo/shoggo/model"
	"github.com/shoggo/shoggo/optim"
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
func CountTargets(batches []*model.Batch) int {
	n := 0
	for _, b := range batches {
		for _, t := range b.Targets {
			if t != backend.IgnoreIndex {
				n++
			}
		}
	}
	return n
}

// StepResult reports one optimisation step.
type StepResult struct {
	Loss     float64 // mean loss per counted token over all micro-batches
	Tokens   int     // counted target tokens
	GradNorm float64 // before clipping
	Skipped  bool    // non-finite gradient: no update was made
}

// Step runs one optimisation step over the micro-batches (gradient
// accumulation): gradients are of the loss averaged over every counted
// token of all micro-batches together, then clipped to clip (0: no
// clipping) and applied with learning rate lr.
func Step(m *model.Transformer, opt *optim.AdamW, micro []*model.Batch, lr, clip float64) (StepResult, error) {
	var r StepResult
	r.Tokens = CountTargets(micro)
	if r.Tokens == 0 {
		return r, fmt.Errorf("step: no target tokens in %d micro-batches", len(micro))
	}
	scale := 1 / float64(r.Tokens)
	m.ZeroGrad()
	var sum float64
	for _, b := range micro {
		s, _, err := m.ForwardBackward(b, scale)
		if err != nil {
			return r, err
		}
		sum += s
	}
	r.Loss = sum * scale
	grads := m.Grads.Tensors()
	if clip > 0 {
		r.GradNorm = optim.ClipGradNorm(grads, clip)
	} else {
		r.GradNorm = optim.ClipGradNorm(grads, 0) // measure only
	}
	if math.IsNaN(r.GradNorm) || math.IsInf(r.GradNorm, 0) {
		r.Skipped = true
		return r, nil
	}
	opt.Step(lr)
	return r, nil
}

// Evaluate returns the mean loss per counted token over batches, without
// gradients.
func Evaluate(m *model.Transformer, batches []*model.Batch) (float64, error) {
	var sum float64
	var n int
	for _, b := range batches {
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

var _ = tensor.F32
