package model

import (
	"fmt"
)

// Log-probabilities of a batch's targets under the model, for objectives
// other than the LM loss (DPO, reward models, PPO, GRPO). The call order of
// one step is
//
//	Forward(b) -> SeqLogProbs(b, lp) -> objective(lp) gives dlp ->
//	SeqLogProbsBackward(b, dlp) -> Backward(b)
//
// SeqLogProbsBackward recomputes the logits chunk by chunk (ChunkRows rows
// at a time), so no (B, T, V) tensor exists in either direction.

// checkLogProbBatch checks that b has targets and matches the last Forward.
func (m *Transformer) checkLogProbBatch(op string, b *Batch) error {
	if m.acts == nil {
		return fmt.Errorf("%s: no forward pass yet (call Forward first)", op)
	}
	if b.B != m.acts.B || b.T != m.acts.T {
		return fmt.Errorf("%s: batch shape %dx%d differs from the planned %dx%d", op, b.B, b.T, m.acts.B, m.acts.T)
	}
	if b.Targets == nil {
		return fmt.Errorf("%s: batch has no targets", op)
	}
	if len(b.Targets) != b.B*b.T {
		return fmt.Errorf("%s: batch has %d targets for %dx%d", op, len(b.Targets), b.B, b.T)
	}
	return nil
}

func checkLen(op, name string, got, want int) error {
	if got != want {
		return fmt.Errorf("%s: %s has %d entries, want %d", op, name, got, want)
	}
	return nil
}

// SeqLogProbs sets out[i] (len b.B) to the sum, over the positions t of
// sequence i whose target is not backend.IgnoreIndex, of
// log p(b.Targets[i*T+t] | tokens before it), from the hidden states of the
// last Forward on b. Mask prompt and padding positions with IgnoreIndex.
func (m *Transformer) SeqLogProbs(b *Batch, out []float64) error {
	const op = "seq log-probs"
	if err := m.checkLogProbBatch(op, b); err != nil {
		return err
	}
	if err := checkLen(op, "out", len(out), b.B); err != nil {
		return err
	}
	return m.BE.SeqLogProbs(m.acts.lnf, m.LMHead, b.Targets, b.T, m.ChunkRows, out)
}

// TokenLogProbs sets out[n] (len b.B*b.T) to log p(b.Targets[n] | tokens
// before it), or 0 where the target is backend.IgnoreIndex, from the
// hidden states of the last Forward on b.
func (m *Transformer) TokenLogProbs(b *Batch, out []float64) error {
	const op = "token log-probs"
	if err := m.checkLogProbBatch(op, b); err != nil {
		return err
	}
	if err := checkLen(op, "out", len(out), b.B*b.T); err != nil {
		return err
	}
	return m.BE.SeqLogProbs(m.acts.lnf, m.LMHead, b.Targets, 1, m.ChunkRows, out)
}

// SeqLogProbsBackward clears DHidden() and fills it with the gradient of
// sum_i dout[i]*lp[i], lp as computed by SeqLogProbs (len(dout) = b.B),
// accumulating the LM head's gradient too (none for a frozen head). Call
// Backward(b) next to propagate it through the model.
func (m *Transformer) SeqLogProbsBackward(b *Batch, dout []float64) error {
	const op = "seq log-probs backward"
	if err := m.checkLogProbBatch(op, b); err != nil {
		return err
	}
	if err := checkLen(op, "dout", len(dout), b.B); err != nil {
		return err
	}
	return m.logProbsBackward(b, b.T, dout)
}

// TokenLogProbsBackward is SeqLogProbsBackward for per-token coefficients:
// the gradient of sum_n dout[n]*lp[n] (len(dout) = b.B*b.T), lp as
// computed by TokenLogProbs.
func (m *Transformer) TokenLogProbsBackward(b *Batch, dout []float64) error {
	const op = "token log-probs backward"
	if err := m.checkLogProbBatch(op, b); err != nil {
		return err
	}
	if err := checkLen(op, "dout", len(dout), b.B*b.T); err != nil {
		return err
	}
	return m.logProbsBackward(b, 1, dout)
}

func (m *Transformer) logProbsBackward(b *Batch, T int, dout []float64) error {
	m.BE.Zero(m.acts.dhidden)
	return m.BE.SeqLogProbsBackward(m.acts.lnf, m.LMHead, b.Targets, T, m.ChunkRows, dout, m.acts.dhidden, m.DLMHead)
}
