package align

import (
	"fmt"
	"math"

	"github.com/shoggo/shoggo/model"
)

// GRPOConfig are GRPO's loss settings, named as in TRL's GRPOConfig.
type GRPOConfig struct {
	Beta        float64 // KL coefficient (k3 estimator); 0: no reference needed
	Epsilon     float64 // lower clip: ratio >= 1-Epsilon
	EpsilonHigh float64 // upper clip: ratio <= 1+EpsilonHigh (0: Epsilon)
	// LossType: "grpo" (mean over sequences of per-sequence token means),
	// "bnpo" (token mean), "dr_grpo" (sum / (sequences · MaxCompletionLength)),
	// "dapo" (sum / tokens of the whole step; TRL's default).
	LossType            string
	MaxCompletionLength int // dr_grpo's normaliser
}

// Validate checks the settings and fills defaults (EpsilonHigh, LossType).
func (c *GRPOConfig) Validate() error {
	if c.LossType == "" {
		c.LossType = "dapo"
	}
	if c.EpsilonHigh == 0 {
		c.EpsilonHigh = c.Epsilon
	}
	switch {
	case c.Epsilon < 0 || c.EpsilonHigh < 0:
		return fmt.Errorf("grpo: epsilon %g/%g must not be negative", c.Epsilon, c.EpsilonHigh)
	case c.Beta < 0:
		return fmt.Errorf("grpo: beta %g must not be negative", c.Beta)
	}
	switch c.LossType {
	case "grpo", "bnpo", "dapo":
	case "dr_grpo":
		if c.MaxCompletionLength <= 0 {
			return fmt.Errorf("grpo: loss type dr_grpo needs max_completion_length > 0")
		}
	default:
		return fmt.Errorf("grpo: loss type %q: want grpo, bnpo, dr_grpo or dapo", c.LossType)
	}
	return nil
}

// GroupAdvantages returns TRL's group-relative advantages: each reward
// minus its group's mean, divided by the group's unbiased standard
// deviation + 1e-4 when scale is true. Groups are G consecutive rewards.
// A group of one has advantage 0.
func GroupAdvantages(rewards []float64, G int, scale bool) ([]float64, error) {
	if G <= 0 || len(rewards)%G != 0 {
		return nil, fmt.Errorf("grpo: %d rewards are not whole groups of %d", len(rewards), G)
	}
	adv := make([]float64, len(rewards))
	for g := 0; g < len(rewards); g += G {
		grp := rewards[g : g+G]
		var mean float64
		for _, r := range grp {
			mean += r
		}
		mean /= float64(G)
		var ss float64
		for _, r := range grp {
			ss += (r - mean) * (r - mean)
		}
		std := math.NaN()
		if G > 1 {
			std = math.Sqrt(ss / float64(G-1))
		}
		for i, r := range grp {
			a := r - mean
			if scale {
				a /= std + 1e-4
			}
			if math.IsNaN(a) {
				a = 0
			}
			adv[g+i] = a
		}
	}
	return adv, nil
}

// GRPOStats are a loss call's diagnostics (sums; divide by Tokens).
type GRPOStats struct {
	Tokens    float64 // completion tokens
	KL        float64 // sum of per-token k3 KL
	Clipped   float64 // tokens whose ratio was clipped (TRL's clip_ratio/region_mean)
	NegLogP   float64 // sum of -log p of the sampled tokens (an entropy estimate)
	SeqKL     float64 // sum over sequences of sum_t (lp - ref) (k1, per sequence)
	Sequences float64
}

// Add accumulates o into s.
func (s *GRPOStats) Add(o GRPOStats) {
	s.Tokens += o.Tokens
	s.KL += o.KL
	s.Clipped += o.Clipped
	s.NegLogP += o.NegLogP
	s.SeqKL += o.SeqKL
	s.Sequences += o.Sequences
}

// GRPOLoss is GRPO's loss over B sequences of T positions: per token
// l = -min(r·A, clip(r, 1-ε, 1+ε_high)·A) + β·k3, r = exp(lp-old),
// k3 = exp(ref-lp) - (ref-lp) - 1, A = adv[row], counted where
// mask = 1. It returns the loss's numerator (for "grpo" each row's sum is
// divided by its token count; the other types sum tokens), the gradient
// of that numerator with respect to lp (the caller divides both by
// GRPOCount) and statistics. old nil means old = lp (one iteration per
// batch, TRL's detach); ref may be nil when Beta is 0.
func GRPOLoss(c GRPOConfig, lp, old, ref, mask, adv []float64, B, T int) (float64, []float64, GRPOStats) {
	var st GRPOStats
	dlp := make([]float64, B*T)
	var sum float64
	for b := 0; b < B; b++ {
		var n, rowSum, seqKL float64
		row := make([]float64, T)
		for t := 0; t < T; t++ {
			i := b*T + t
			if mask[i] == 0 {
				continue
			}
			n++
			A := adv[b]
			o := lp[i]
			if old != nil {
				o = old[i]
			}
			r := math.Exp(lp[i] - o)
			lo, hi := 1-c.Epsilon, 1+c.EpsilonHigh
			rc := min(max(r, lo), hi)
			var l, d float64
			if r*A <= rc*A {
				l, d = -r*A, -r*A // d(-r·A)/dlp
			} else {
				l = -rc * A // clipped: constant in lp
			}
			if (r < lo && A < 0) || (r > hi && A > 0) {
				st.Clipped++
			}
			if c.Beta != 0 && ref != nil {
				x := ref[i] - lp[i]
				k := math.Exp(x) - x - 1
				l += c.Beta * k
				d += c.Beta * (1 - math.Exp(x))
			}
			if ref != nil {
				x := ref[i] - lp[i]
				st.KL += math.Exp(x) - x - 1
				seqKL += lp[i] - ref[i]
			}
			st.NegLogP -= lp[i]
			rowSum += l
			row[t] = d
		}
		w := 1.0
		if c.LossType == "grpo" {
			w = 1 / max(n, 1)
		}
		sum += w * rowSum
		for t := range row {
			dlp[b*T+t] = w * row[t]
		}
		st.Tokens += n
		st.SeqKL += seqKL
		st.Sequences++
	}
	return sum, dlp, st
}

// GRPOCount is the normaliser of a step with these completion masks (one
// per micro-batch, B rows each): sequences ("grpo"), tokens ("bnpo",
// "dapo") or sequences · MaxCompletionLength ("dr_grpo").
func GRPOCount(c GRPOConfig, masks [][]float64, rows []int) int {
	var seqs, toks int
	for k, m := range masks {
		seqs += rows[k]
		for _, v := range m {
			if v != 0 {
				toks++
			}
		}
	}
	switch c.LossType {
	case "grpo":
		return seqs
	case "dr_grpo":
		return seqs * c.MaxCompletionLength
	}
	return toks
}

// GRPOBatch is what the GRPO objective needs of one micro-batch besides
// its tokens: the completion mask, per-row advantages and the reference's
// per-token log-probs (nil without a KL term).
type GRPOBatch struct {
	Mask []float64
	Adv  []float64
	Ref  []float64
	Old  []float64 // nil: one iteration per batch (old = current, detached)
}

// GRPO is the GRPO objective for the trainer harness. Data maps each
// micro-batch (filled by the rollout source) to its GRPOBatch; Stats
// accumulates diagnostics until the caller resets it.
type GRPO struct {
	Cfg   GRPOConfig
	Data  map[*model.Batch]*GRPOBatch
	Stats GRPOStats
}

// Count is GRPOCount over the micro-batches.
func (o *GRPO) Count(micro []*model.Batch) int {
	masks, rows := make([][]float64, len(micro)), make([]int, len(micro))
	for i, b := range micro {
		if d := o.Data[b]; d != nil {
			masks[i], rows[i] = d.Mask, b.B
		}
	}
	return GRPOCount(o.Cfg, masks, rows)
}

// ForwardBackward runs the policy on b, computes GRPOLoss and propagates
// gradScale times its gradient through the model.
func (o *GRPO) ForwardBackward(m *model.Transformer, b *model.Batch, gradScale float64) (float64, error) {
	d := o.Data[b]
	if d == nil {
		return 0, fmt.Errorf("grpo: micro-batch without rollout data")
	}
	lp, err := PolicyLogProbs(m, b)
	if err != nil {
		return 0, err
	}
	sum, dlp, st := GRPOLoss(o.Cfg, lp, d.Old, d.Ref, d.Mask, d.Adv, b.B, b.T)
	o.Stats.Add(st)
	for i := range dlp {
		dlp[i] *= gradScale
	}
	if err := m.TokenLogProbsBackward(b, dlp); err != nil {
		return 0, err
	}
	m.Backward(b)
	return sum, nil
}

// PolicyLogProbs plans m for b if needed, runs Forward and returns the
// per-token log-probs of b's targets (0 where ignored).
func PolicyLogProbs(m *model.Transformer, b *model.Batch) ([]float64, error) {
	if m.Planned() != [2]int{b.B, b.T} {
		if err := m.Plan(b.B, b.T); err != nil {
			return nil, err
		}
	}
	if err := m.Forward(b); err != nil {
		return nil, err
	}
	lp := make([]float64, b.B*b.T)
	return lp, m.TokenLogProbs(b, lp)
}
