package backend

import "github.com/shoggo/shoggo/tensor"

// LogProber computes log-probabilities of target tokens under the LM head,
// per sequence (DPO, reward models) or per token (PPO, GRPO), with the
// backward pass. Like CrossEntropy, logits are formed chunkRows rows at a
// time, so a (B, T, V) logits tensor never exists.
//
// h (N, C) are final hidden states, w (V, C) the LM head, targets (N) the
// token each position must predict (already shifted) or IgnoreIndex. The N
// rows are N/T sequences of T positions (T must divide N); T = 1 gives one
// value per token. A target outside [0, V) that is not IgnoreIndex is an
// error, reported before anything is written or accumulated.
type LogProber interface {
	// SeqLogProbs sets out[s] (len N/T) to the sum over the positions
	// n in [s*T, (s+1)*T) whose target is not IgnoreIndex of
	// log softmax(h[n] w^T)[targets[n]], added in position order; a
	// sequence with no counted position gets 0.
	SeqLogProbs(h, w *tensor.Tensor, targets []int32, T, chunkRows int, out []float64) error
	// SeqLogProbsBackward accumulates into dh and dw (either may be nil)
	// the gradient of sum_s dout[s] * out[s], out as computed by
	// SeqLogProbs (recomputing the logits). Positions whose sequence has
	// dout[s] == 0 are skipped.
	SeqLogProbsBackward(h, w *tensor.Tensor, targets []int32, T, chunkRows int, dout []float64, dh, dw *tensor.Tensor) error
}
