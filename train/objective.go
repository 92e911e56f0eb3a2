package train

import "github.com/shoggo/shoggo/model"

// Objective is the loss a training step minimises. The harness asks it for
// the step's normaliser once, before the first micro-batch, then runs it on
// each micro-batch with gradScale = 1/Count: ForwardBackward accumulates
// the gradients of gradScale·lossSum into the trainable tensors and returns
// lossSum, so the step's loss is (Σ lossSum)/Count.
//
// The language-model loss counts target tokens. A preference objective
// (DPO: the policy is m, the frozen reference model lives in the objective;
// chosen and rejected sequences are rows of one batch, scored by
// per-sequence log-probabilities) counts pairs; a reward model (a scalar
// head the objective owns, its parameters part of the Trainable) counts
// pairs or sequences. None of them needs a change to the harness.
type Objective interface {
	// Count returns the normaliser of the whole accumulated step (> 0).
	Count(micro []*model.Batch) int
	// ForwardBackward runs one micro-batch through m and its loss,
	// accumulating gradients of gradScale·lossSum, and returns lossSum.
	ForwardBackward(m *model.Transformer, b *model.Batch, gradScale float64) (lossSum float64, err error)
}

// LM is the causal language-model objective: the summed cross-entropy of
// the batch's targets, normalised by the number of counted target tokens of
// the whole accumulated step.
type LM struct{}

// Count counts the target tokens of micro.
func (LM) Count(micro []*model.Batch) int { return model.CountTargets(micro) }

// ForwardBackward plans m for b's shape if needed and runs forward, loss
// and backward.
func (LM) ForwardBackward(m *model.Transformer, b *model.Batch, gradScale float64) (float64, error) {
	if err := ensurePlan(m, b); err != nil {
		return 0, err
	}
	s, _, err := m.ForwardBackward(b, gradScale)
	return s, err
}

// ensurePlan re-plans m's activations when b has another shape.
func ensurePlan(m *model.Transformer, b *model.Batch) error {
	if m.Planned() != [2]int{b.B, b.T} {
		return m.Plan(b.B, b.T)
	}
	return nil
}
