package train

import (
	"fmt"

	"github.com/shoggo/shoggo/model"
	"github.com/shoggo/shoggo/optim"
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

// StepResult reports one optimisation step.
type StepResult struct {
	Loss     float64 // mean loss per counted token over all micro-batches
	Tokens   int     // counted target tokens
	GradNorm float64 // before clipping
	Skipped  bool    // non-finite gradient: no update was made
}

// Step runs one optimisation step over the micro-batches (gradient
// accumulation) for every parameter of m: see StepTrainable.
func Step(m *model.Transformer, opt *optim.AdamW, micro []*model.Batch, lr, clip float64) (StepResult, error) {
	return StepTrainable(m, FullTrainable(m), opt, micro, lr, clip)
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
