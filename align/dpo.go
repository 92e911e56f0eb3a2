package align

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/shoggo/shoggo/backend"
	"github.com/shoggo/shoggo/model"
)

// DPO loss types.
const (
	Sigmoid = "sigmoid" // -log σ(β·Δ); with label smoothing ε the conservative form (cDPO)
	Hinge   = "hinge"   // max(0, 1 - β·Δ)
	IPO     = "ipo"     // (Δ/len - 1/(2β))², Δ per completion token (TRL's normalisation)
	Robust  = "robust"  // label-noise-robust DPO (TRL's "robust", uses ε)
)

// LossTypes lists the DPO loss types.
var LossTypes = []string{Sigmoid, IPO, Hinge, Robust}

// DPOLoss is a DPO loss: its type, β and label smoothing ε.
type DPOLoss struct {
	Type           string  // Sigmoid (default), IPO, Hinge or Robust
	Beta           float64 // β (TRL's default 0.1)
	LabelSmoothing float64 // ε, for Sigmoid and Robust, in [0, 0.5)
}

// Validate checks the loss's settings.
func (l DPOLoss) Validate() error {
	switch l.Type {
	case Sigmoid, IPO, Hinge, Robust:
	default:
		return fmt.Errorf("--loss-type %q: want one of sigmoid, ipo, hinge, robust", l.Type)
	}
	if !(l.Beta > 0) || math.IsInf(l.Beta, 0) {
		return fmt.Errorf("--beta %v must be positive", l.Beta)
	}
	if l.LabelSmoothing < 0 || l.LabelSmoothing >= 0.5 {
		return fmt.Errorf("--label-smoothing %v must be in [0, 0.5)", l.LabelSmoothing)
	}
	if l.LabelSmoothing > 0 && (l.Type == IPO || l.Type == Hinge) {
		return fmt.Errorf("--label-smoothing applies to the sigmoid and robust losses, not %s", l.Type)
	}
	return nil
}

// PairTerms are one pair's inputs to the loss: the policy's and the
// reference's summed log-probabilities of the chosen and rejected
// completions and the completions' token counts (for IPO).
type PairTerms struct {
	Chosen, Rejected       float64 // policy log-probs
	RefChosen, RefRejected float64 // reference log-probs
	NChosen, NRejected     int     // completion tokens
}

// Pair returns the pair's loss and its gradient with respect to the
// policy's chosen and rejected log-probs, as TRL 1.16's DPOTrainer computes
// them (reverse KL; per-pair, before the mean over pairs).
func (l DPOLoss) Pair(p PairTerms) (loss, dChosen, dRejected float64) {
	dc, dr := p.Chosen-p.RefChosen, p.Rejected-p.RefRejected
	b, eps := l.Beta, l.LabelSmoothing
	z := b * (dc - dr)
	var dz float64
	switch l.Type {
	case IPO:
		nc, nr := float64(max(p.NChosen, 1)), float64(max(p.NRejected, 1))
		d := dc/nc - dr/nr - 1/(2*b)
		return d * d, 2 * d / nc, -2 * d / nr
	case Hinge:
		loss = math.Max(0, 1-z)
		if 1-z > 0 {
			dz = -1
		}
	case Robust:
		loss = (-(1-eps)*logSigmoid(z) + eps*logSigmoid(-z)) / (1 - 2*eps)
		dz = (-(1-eps)*sigmoid(-z) - eps*sigmoid(z)) / (1 - 2*eps)
	default: // Sigmoid
		loss = -(1-eps)*logSigmoid(z) - eps*logSigmoid(-z)
		dz = -(1-eps)*sigmoid(-z) + eps*sigmoid(z)
	}
	return loss, b * dz, -b * dz
}

// logSigmoid is log σ(x), stable for large |x|.
func logSigmoid(x float64) float64 {
	if x < 0 {
		return x - math.Log1p(math.Exp(x))
	}
	return -math.Log1p(math.Exp(-x))
}

func sigmoid(x float64) float64 {
	if x < 0 {
		e := math.Exp(x)
		return e / (1 + e)
	}
	return 1 / (1 + math.Exp(-x))
}

// RefCache holds reference log-probs of sequences, computed once before
// training, keyed by a row's ids and targets.
type RefCache map[string]float64

// rowKey is the cache key of row r of b.
func rowKey(b *model.Batch, r int) string {
	buf := make([]byte, 0, 8*b.T)
	for _, s := range [][]int32{b.IDs[r*b.T : (r+1)*b.T], b.Targets[r*b.T : (r+1)*b.T]} {
		for _, v := range s {
			buf = binary.LittleEndian.AppendUint32(buf, uint32(v))
		}
	}
	return string(buf)
}

// Fill scores every row of batches with m (no gradients) and stores the
// log-probs in c.
func (c RefCache) Fill(m *model.Transformer, batches []*model.Batch) error {
	for _, b := range batches {
		lp, err := SeqLogProbs(m, b)
		if err != nil {
			return err
		}
		for r := range b.B {
			c[rowKey(b, r)] = lp[r]
		}
	}
	return nil
}

// SeqLogProbs runs m forward on b and returns each row's summed target
// log-probs.
func SeqLogProbs(m *model.Transformer, b *model.Batch) ([]float64, error) {
	if err := ensurePlan(m, b); err != nil {
		return nil, err
	}
	if err := m.Forward(b); err != nil {
		return nil, err
	}
	lp := make([]float64, b.B)
	return lp, m.SeqLogProbs(b, lp)
}

// completionTokens counts row r's targets that are not ignored.
func completionTokens(b *model.Batch, r int) int {
	n := 0
	for _, t := range b.Targets[r*b.T : (r+1)*b.T] {
		if t != backend.IgnoreIndex {
			n++
		}
	}
	return n
}

// PairStats are TRL's DPO metrics summed over pairs (divide by N).
type PairStats struct {
	N                                   int
	Loss, Chosen, Rejected, Acc, Margin float64
}

// Add records one pair.
func (s *PairStats) Add(l DPOLoss, p PairTerms, loss float64) {
	rc, rr := l.Beta*(p.Chosen-p.RefChosen), l.Beta*(p.Rejected-p.RefRejected)
	s.N++
	s.Loss += loss
	s.Chosen += rc
	s.Rejected += rr
	s.Margin += rc - rr
	if rc > rr {
		s.Acc++
	}
}

// Metrics returns the means under TRL's names (with prefix, e.g. "eval_").
func (s PairStats) Metrics(prefix string) map[string]float64 {
	n := float64(max(s.N, 1))
	return map[string]float64{prefix + "loss": s.Loss / n, prefix + "rewards/chosen": s.Chosen / n,
		prefix + "rewards/rejected": s.Rejected / n, prefix + "rewards/accuracies": s.Acc / n, prefix + "rewards/margins": s.Margin / n}
}

// DPOObjective is the DPO objective (a train.Objective): batches laid out
// by PairBatch, the policy is the trained model, the reference log-probs
// come from Ref (filled before training from the starting weights: the
// frozen copy for full fine-tuning, the base without adapters for LoRA,
// which is the same thing at the start). It counts pairs.
//
// SFTWeight > 0 adds TRL's "sft" loss (loss_type ["sigmoid", "sft"] with
// loss_weights [1, SFTWeight]): SFTWeight times the mean negative
// log-likelihood of the chosen completions' tokens of the micro-batch.
type DPOObjective struct {
	Loss      DPOLoss
	Ref       RefCache
	SFTWeight float64
	Stats     PairStats // training statistics since the caller last cleared them
}

// Count counts the pairs.
func (o *DPOObjective) Count(micro []*model.Batch) int { return CountPairs(micro) }

// Terms returns the PairTerms of pair i of b given the policy log-probs lp.
func (o *DPOObjective) Terms(b *model.Batch, lp []float64, i int) (PairTerms, error) {
	rc, ok1 := o.Ref[rowKey(b, 2*i)]
	rr, ok2 := o.Ref[rowKey(b, 2*i+1)]
	if !ok1 || !ok2 {
		return PairTerms{}, fmt.Errorf("dpo: pair %d of the batch has no cached reference log-probs", i)
	}
	return PairTerms{Chosen: lp[2*i], Rejected: lp[2*i+1], RefChosen: rc, RefRejected: rr,
		NChosen: completionTokens(b, 2*i), NRejected: completionTokens(b, 2*i+1)}, nil
}

// ForwardBackward runs the policy on b, the loss of each pair, and the
// backward pass of gradScale times the summed loss.
func (o *DPOObjective) ForwardBackward(m *model.Transformer, b *model.Batch, gradScale float64) (float64, error) {
	lp, err := SeqLogProbs(m, b)
	if err != nil {
		return 0, err
	}
	dout := make([]float64, b.B)
	var sum, chosenLP float64
	pairs, chosenTok := 0, 0
	for i := 0; 2*i+1 < b.B; i++ {
		if !rowUsed(b, 2*i) {
			continue
		}
		p, err := o.Terms(b, lp, i)
		if err != nil {
			return 0, err
		}
		loss, dc, dr := o.Loss.Pair(p)
		o.Stats.Add(o.Loss, p, loss)
		sum += loss
		dout[2*i], dout[2*i+1] = gradScale*dc, gradScale*dr
		pairs, chosenTok, chosenLP = pairs+1, chosenTok+p.NChosen, chosenLP+p.Chosen
	}
	if o.SFTWeight > 0 && chosenTok > 0 {
		// Σ over the micro-batch's pairs of SFTWeight·(mean chosen NLL).
		k := o.SFTWeight * float64(pairs) / float64(chosenTok)
		sum -= k * chosenLP
		for i := 0; 2*i+1 < b.B; i++ {
			if rowUsed(b, 2*i) {
				dout[2*i] -= gradScale * k
			}
		}
	}
	if err := m.SeqLogProbsBackward(b, dout); err != nil {
		return 0, err
	}
	m.Backward(b)
	return sum, nil
}

// Evaluate returns the loss and TRL's reward metrics over batches (no
// gradients).
func (o *DPOObjective) Evaluate(m *model.Transformer, batches []*model.Batch) (PairStats, error) {
	var s PairStats
	for _, b := range batches {
		lp, err := SeqLogProbs(m, b)
		if err != nil {
			return s, err
		}
		for i := 0; 2*i+1 < b.B; i++ {
			if !rowUsed(b, 2*i) {
				continue
			}
			p, err := o.Terms(b, lp, i)
			if err != nil {
				return s, err
			}
			loss, _, _ := o.Loss.Pair(p)
			s.Add(o.Loss, p, loss)
		}
	}
	return s, nil
}

// ensurePlan re-plans m's activations when b has another shape.
func ensurePlan(m *model.Transformer, b *model.Batch) error {
	if m.Planned() != [2]int{b.B, b.T} {
		return m.Plan(b.B, b.T)
	}
	return nil
}
