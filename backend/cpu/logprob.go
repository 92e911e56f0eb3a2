package cpu

import (
	"fmt"

	"github.com/shoggo/shoggo/backend"
	"github.com/shoggo/shoggo/tensor"
)

// SeqLogProbs sets out[s] to the summed log-probability of the counted
// targets of sequence s (rows [s*T, (s+1)*T) of h). It runs the chunked
// LM-head kernel of CrossEntropy (headRows) without gradients: a row's
// log-probability is exactly minus its cross-entropy loss, and the rows of
// a sequence are added in position order, in float64. w may be BF16 or F16
// (a frozen LM head). out is not written when a target is out of range.
func (c *CPU) SeqLogProbs(h, w *tensor.Tensor, targets []int32, T, chunkRows int, out []float64) error {
	const op = "SeqLogProbs"
	a, err := headArgs(op, h, w, targets, chunkRows, nil, nil)
	if err != nil {
		return err
	}
	checkSeqs(op, "out", a.N, T, len(out))
	counted := make([]int, 0, a.N)
	for n, t := range targets {
		if t != backend.IgnoreIndex {
			counted = append(counted, n)
		}
	}
	rowLoss := make([]float64, a.N)
	a.run(c, h, w, counted, chunkRows, 0, nil, nil, nil, rowLoss)
	clear(out)
	for _, n := range counted {
		out[n/T] -= rowLoss[n]
	}
	return nil
}

// SeqLogProbsBackward accumulates the gradient of sum_s dout[s]*out[s]:
// with p = softmax(h[n] w^T), row n of a counted position contributes
// g_n = dout[n/T] * (onehot(target) - p), i.e. CrossEntropy's gradient with
// the per-row scale -dout[n/T]: dh[n] += g_n w, dw += g_n^T h[n]. The
// logits are recomputed chunk by chunk; rows whose dout is 0 are skipped.
// dw must be nil when w is 16-bit.
func (c *CPU) SeqLogProbsBackward(h, w *tensor.Tensor, targets []int32, T, chunkRows int, dout []float64, dh, dw *tensor.Tensor) error {
	const op = "SeqLogProbsBackward"
	a, err := headArgs(op, h, w, targets, chunkRows, dh, dw)
	if err != nil {
		return err
	}
	checkSeqs(op, "dout", a.N, T, len(dout))
	if dh == nil && dw == nil {
		return nil
	}
	counted := make([]int, 0, a.N)
	scale := make([]float64, a.N)
	for n, t := range targets {
		if d := dout[n/T]; t != backend.IgnoreIndex && d != 0 {
			counted = append(counted, n)
			scale[n] = -d
		}
	}
	a.run(c, h, w, counted, chunkRows, 0, scale, dh, dw, nil)
	return nil
}

// checkSeqs panics unless T >= 1 divides N and the per-sequence slice has
// N/T entries.
func checkSeqs(op, name string, N, T, got int) {
	if T < 1 || N%T != 0 {
		panic(fmt.Sprintf("cpu.%s: %d rows are not whole sequences of T = %d", op, N, T))
	}
	if got != N/T {
		panic(fmt.Sprintf("cpu.%s: %s has %d entries, want N/T = %d/%d = %d", op, name, got, N, T, N/T))
	}
}
