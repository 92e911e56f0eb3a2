package model

import (
	"fmt"

	"github.com/shoggo/shoggo/backend"
	"github.com/shoggo/shoggo/tensor"
)

// layerActs are the activations one block saves for its backward pass.
type layerActs struct {
	ln1, ln1Mean, ln1Rstd *tensor.Tensor
	q, k, v               *tensor.Tensor // q and k after RoPE
	att, lse              *tensor.Tensor
	mid                   *tensor.Tensor // residual after attention
	ln2, ln2Mean, ln2Rstd *tensor.Tensor
	h1, h2, act           *tensor.Tensor // GPT-2: fc pre-activation (h1), gelu (act); SwiGLU: gate (h1), up (h2), silu(gate)*up (act)
	qp, kp, qRstd, kRstd  *tensor.Tensor // per-head q/k norm (Qwen3): q and k projections before it, its rstd
}

// activations are sized once for (B, T) and reused every step.
type activations struct {
	B, T                  int
	resid                 []*tensor.Tensor // L+1 residual streams (N, C): resid[0] embeddings, resid[l+1] block l output
	layers                []layerActs
	lnf, lnfMean, lnfRstd *tensor.Tensor
	tmp                   *tensor.Tensor // (N, C) scratch

	// gradient scratch, shared by all layers
	dres, dmid, dln, dhidden *tensor.Tensor
	datt, dq, dk, dv         *tensor.Tensor
	dact, dh1, dh2           *tensor.Tensor
	dqp, dkp                 *tensor.Tensor // per-head q/k norm: gradients of the projections
	pos                      []int32        // default positions 0..T-1
}

// SetCheckpointing turns gradient checkpointing on or off: with it, only
// each block's input is kept and the block's forward is recomputed during
// backward (one extra forward per step, activation memory ~1/L). It takes
// effect at the next Plan (called here if a plan exists).
func (m *Transformer) SetCheckpointing(on bool) error {
	m.checkpointing = on
	if m.acts != nil {
		return m.Plan(m.acts.B, m.acts.T)
	}
	return nil
}

// Plan sizes the activation buffers for batches of B sequences of T tokens.
// Forward then accepts only that shape; call Plan again to change it.
func (m *Transformer) Plan(B, T int) error {
	c := &m.Cfg
	if B <= 0 || T <= 0 {
		return fmt.Errorf("plan: batch %d x %d must be positive", B, T)
	}
	if T > c.MaxPositionEmbeddings {
		return fmt.Errorf("plan: sequence length %d exceeds max_position_embeddings %d", T, c.MaxPositionEmbeddings)
	}
	nLayers := c.NumHiddenLayers
	if m.checkpointing {
		nLayers = 1 // one shared set, refilled by recomputation during backward
	}
	m.acts = m.newActivations(B, T, nLayers, true)
	return nil
}

// newActivations allocates the activations of B x T tokens with nLayers
// per-layer sets (1: shared by all layers). With train, it also allocates
// the gradient scratch, the attention's saved log-sum-exp and one residual
// stream per layer; without (decoding), the residual streams alternate
// between two buffers and nothing for backward exists. It is the one
// place activations are allocated.
func (m *Transformer) newActivations(B, T, nLayers int, train bool) *activations {
	c := &m.Cfg
	N, C, I := B*T, c.HiddenSize, c.IntermediateSize
	hs := c.HeadDim()
	Q, KV := c.NumAttentionHeads*hs, c.NumKeyValueHeads*hs
	nt := func(shape ...int) *tensor.Tensor { return m.BE.Alloc(m.DType, shape...) }
	// ht allocates an activation saved for backward: 16-bit under mixed
	// precision (SetPrecision), in the model's dtype otherwise. Decoding
	// (train false) always computes in the model's dtype.
	ht := nt
	if train && m.precision != tensor.F32 {
		ht = func(shape ...int) *tensor.Tensor { return m.BE.Alloc(m.precision, shape...) }
	}
	a := &activations{B: B, T: T}
	for l := 0; l <= c.NumHiddenLayers; l++ {
		if !train && l >= 2 {
			a.resid = append(a.resid, a.resid[l%2])
			continue
		}
		a.resid = append(a.resid, nt(N, C))
	}
	a.layers = make([]layerActs, nLayers)
	for l := range a.layers {
		la := &a.layers[l]
		la.ln1, la.ln1Mean, la.ln1Rstd = ht(N, C), nt(N), nt(N)
		la.q, la.k, la.v = ht(N, Q), ht(N, KV), ht(N, KV)
		la.att = ht(N, Q)
		if train {
			la.lse = nt(B * c.NumAttentionHeads * T)
		}
		la.mid = nt(N, C)
		la.ln2, la.ln2Mean, la.ln2Rstd = ht(N, C), nt(N), nt(N)
		la.h1, la.act = ht(N, I), ht(N, I)
		if m.fam.MLP == SwiGLUMLP {
			la.h2 = ht(N, I)
		}
		if m.fam.QKNorm {
			la.qp, la.kp = ht(N, Q), ht(N, KV)
			la.qRstd, la.kRstd = nt(N*c.NumAttentionHeads), nt(N*c.NumKeyValueHeads)
		}
	}
	a.lnf, a.lnfMean, a.lnfRstd = ht(N, C), nt(N), nt(N)
	a.tmp = nt(N, C)
	if !train {
		return a
	}
	a.dres, a.dmid, a.dln, a.dhidden = nt(N, C), nt(N, C), nt(N, C), nt(N, C)
	a.datt, a.dq, a.dk, a.dv = nt(N, Q), nt(N, Q), nt(N, KV), nt(N, KV)
	a.dact, a.dh1, a.dh2 = nt(N, I), nt(N, I), nt(N, I)
	if m.fam.QKNorm {
		a.dqp, a.dkp = nt(N, Q), nt(N, KV)
	}
	a.pos = make([]int32, N)
	for i := range a.pos {
		a.pos[i] = int32(i % T)
	}
	return a
}

// Planned returns the (B, T) of the current plan, or zeros.
func (m *Transformer) Planned() [2]int {
	if m.acts == nil {
		return [2]int{}
	}
	return [2]int{m.acts.B, m.acts.T}
}

func (m *Transformer) checkBatch(b *Batch) error {
	if m.acts == nil {
		if err := m.Plan(b.B, b.T); err != nil {
			return err
		}
	}
	a := m.acts
	if b.B != a.B || b.T != a.T {
		return fmt.Errorf("batch shape %dx%d differs from the planned %dx%d (call Plan to change it)", b.B, b.T, a.B, a.T)
	}
	n := b.B * b.T
	if len(b.IDs) != n {
		return fmt.Errorf("batch: %d input ids for %dx%d", len(b.IDs), b.B, b.T)
	}
	for name, s := range map[string][]int32{"Pos": b.Pos, "KeyMask": b.KeyMask, "Segments": b.Segments, "Targets": b.Targets} {
		if s != nil && len(s) != n {
			return fmt.Errorf("batch: %s has %d entries for %dx%d", name, len(s), b.B, b.T)
		}
	}
	if b.Pos != nil {
		for i, p := range b.Pos {
			if p < 0 || int(p) >= m.Cfg.MaxPositionEmbeddings {
				return fmt.Errorf("batch: position id %d at index %d outside [0, %d)", p, i, m.Cfg.MaxPositionEmbeddings)
			}
		}
	}
	return nil
}

func (m *Transformer) attnParams(b *Batch) backend.AttnParams {
	c := &m.Cfg
	return backend.AttnParams{B: b.B, T: b.T, NH: c.NumAttentionHeads, KVH: c.NumKeyValueHeads, HS: c.HeadDim(),
		KeyMask: b.KeyMask, Segments: b.Segments}
}

// Forward runs the model on b and leaves the final normalised hidden states
// (N, C) in Hidden().
func (m *Transformer) Forward(b *Batch) error {
	if err := m.checkBatch(b); err != nil {
		return err
	}
	be, a := m.BE, m.acts
	pos := b.Pos
	if pos == nil {
		pos = a.pos
	}
	m.syncCompute()
	if err := be.EmbeddingForward(a.resid[0], m.Embed, b.IDs, false); err != nil {
		return err
	}
	if m.PosEmbed != nil {
		if err := be.EmbeddingForward(a.resid[0], m.PosEmbed, pos, true); err != nil {
			return err
		}
	}
	ap := m.attnParams(b)
	for l := range m.Blocks {
		m.blockForward(a, l, pos, ap, nil)
	}
	m.NormF.Forward(a.lnf, a.lnfMean, a.lnfRstd, a.resid[len(m.Blocks)])
	return nil
}

// layerActs returns the activation struct block l uses: its own, or with
// gradient checkpointing the single shared one.
func (a *activations) layer(l int) *layerActs {
	if len(a.layers) == 1 {
		return &a.layers[0]
	}
	return &a.layers[l]
}

// kvStep is the attention of a decoding step: the KV-cache op over the
// layer caches K[l], V[l] with parameters p.
type kvStep struct {
	K, V []*tensor.Tensor
	p    backend.KVParams
}

// blockForward runs block l of the a.B x a.T tokens in a from a.resid[l]
// to a.resid[l+1], saving its activations for backward. Attention is the
// training attention (causal over the tokens in a, ap) or, with kv
// non-nil, the KV-cache attention of a decoding step: training and
// decoding run this same block.
func (m *Transformer) blockForward(a *activations, l int, pos []int32, ap backend.AttnParams, kv *kvStep) {
	be, c := m.BE, &m.Cfg
	blk, la := m.Blocks[l], a.layer(l)
	hs := c.HeadDim()
	in, out := a.resid[l], a.resid[l+1]
	blk.Norm1.Forward(la.ln1, la.ln1Mean, la.ln1Rstd, in)
	q, k := la.q, la.k
	if blk.QNorm != nil {
		q, k = la.qp, la.kp // projections before the per-head q/k norms
	}
	blk.Q.Forward(q, la.ln1)
	blk.K.Forward(k, la.ln1)
	blk.V.Forward(la.v, la.ln1)
	if blk.QNorm != nil {
		nq, nk := a.B*a.T*c.NumAttentionHeads, a.B*a.T*c.NumKeyValueHeads
		blk.QNorm.Forward(la.q.Reshape(nq, hs), nil, la.qRstd, q.Reshape(nq, hs))
		blk.KNorm.Forward(la.k.Reshape(nk, hs), nil, la.kRstd, k.Reshape(nk, hs))
	}
	if !m.fam.LearnedPositions {
		be.RoPE(la.q.Reshape(a.B, a.T, c.NumAttentionHeads, hs), pos, c.RopeTheta, false)
		be.RoPE(la.k.Reshape(a.B, a.T, c.NumKeyValueHeads, hs), pos, c.RopeTheta, false)
	}
	if kv != nil {
		be.KVAttention(la.att, la.q, la.k, la.v, kv.K[l], kv.V[l], kv.p)
	} else {
		be.AttentionForward(la.att, la.lse, la.q, la.k, la.v, ap)
	}
	blk.O.Forward(a.tmp, la.att)
	be.Add(la.mid, in, a.tmp)
	blk.Norm2.Forward(la.ln2, la.ln2Mean, la.ln2Rstd, la.mid)
	if m.fam.MLP == GELUMLP {
		blk.Fc.Forward(la.h1, la.ln2)
		be.GELUForward(la.act, la.h1)
		blk.Proj.Forward(a.tmp, la.act)
	} else {
		blk.Gate.Forward(la.h1, la.ln2)
		blk.Up.Forward(la.h2, la.ln2)
		be.SwiGLUForward(la.act, la.h1, la.h2)
		blk.Down.Forward(a.tmp, la.act)
	}
	be.Add(out, la.mid, a.tmp)
}

// Hidden returns the final normalised hidden states (N, C) of the last Forward.
func (m *Transformer) Hidden() *tensor.Tensor { return m.acts.lnf }

// DHidden returns the buffer holding the gradient of the loss with respect
// to Hidden(); losses other than the LM loss (reward heads, DPO) write here
// before calling Backward.
func (m *Transformer) DHidden() *tensor.Tensor { return m.acts.dhidden }

// Loss computes the summed cross-entropy of b.Targets from the hidden
// states of the last Forward. With grad, it also clears DHidden and fills it
// (and the LM head's gradient) with the gradient of gradScale·lossSum.
func (m *Transformer) Loss(b *Batch, gradScale float64, grad bool) (lossSum float64, count int, err error) {
	if b.Targets == nil {
		return 0, 0, fmt.Errorf("loss: batch has no targets")
	}
	var dh, dw *tensor.Tensor
	if grad {
		m.BE.Zero(m.acts.dhidden)
		dh, dw = m.acts.dhidden, m.DLMHead
	}
	return m.BE.CrossEntropy(m.acts.lnf, m.LMHead, b.Targets, m.ChunkRows, gradScale, dh, dw)
}

// Logits returns the full (N, V) logits of the last Forward, a backend
// tensor (read it with backend.ToHost). For tests and small models only:
// training never forms them.
func (m *Transformer) Logits() *tensor.Tensor {
	n := m.acts.B * m.acts.T
	out := m.BE.Alloc(m.DType, n, m.Cfg.VocabSize)
	m.BE.LinearForward(out, m.acts.lnf, m.LMHead, nil)
	return out
}

// Backward propagates DHidden() through the model, accumulating parameter
// gradients. It must follow Forward on the same batch.
func (m *Transformer) Backward(b *Batch) {
	be, c, a := m.BE, &m.Cfg, m.acts
	pos := b.Pos
	if pos == nil {
		pos = a.pos
	}
	L := len(m.Blocks)
	ap := m.attnParams(b)
	hs := c.HeadDim()
	be.Zero(a.dres)
	m.NormF.Backward(a.dres, a.dhidden, a.resid[L], a.lnfMean, a.lnfRstd)
	if m.BackwardHook != nil {
		m.BackwardHook(L)
	}
	for l := L - 1; l >= 0; l-- {
		if m.checkpointing {
			// Recompute the block's activations from its saved input. The
			// recomputation rewrites resid[l+1] with identical values.
			if m.RecomputeHook != nil {
				m.RecomputeHook(true)
			}
			m.blockForward(a, l, pos, ap, nil)
			if m.RecomputeHook != nil {
				m.RecomputeHook(false)
			}
		}
		blk, la := m.Blocks[l], a.layer(l)
		in := a.resid[l]
		// out = mid + mlp(norm2(mid))
		be.Copy(a.dmid, a.dres)
		be.Zero(a.dact)
		be.Zero(a.dh1)
		be.Zero(a.dln)
		if m.fam.MLP == GELUMLP {
			blk.Proj.Backward(a.dact, a.dres, la.act)
			be.GELUBackward(a.dh1, a.dact, la.h1)
			blk.Fc.Backward(a.dln, a.dh1, la.ln2)
		} else {
			be.Zero(a.dh2)
			blk.Down.Backward(a.dact, a.dres, la.act)
			be.SwiGLUBackward(a.dh1, a.dh2, a.dact, la.h1, la.h2)
			blk.Gate.Backward(a.dln, a.dh1, la.ln2)
			blk.Up.Backward(a.dln, a.dh2, la.ln2)
		}
		blk.Norm2.Backward(a.dmid, a.dln, la.mid, la.ln2Mean, la.ln2Rstd)
		// mid = in + o(attn(norm1(in)))
		be.Zero(a.datt)
		blk.O.Backward(a.datt, a.dmid, la.att)
		be.Zero(a.dq)
		be.Zero(a.dk)
		be.Zero(a.dv)
		be.AttentionBackward(a.dq, a.dk, a.dv, a.datt, la.q, la.k, la.v, la.att, la.lse, ap)
		if !m.fam.LearnedPositions {
			be.RoPE(a.dq.Reshape(b.B, b.T, c.NumAttentionHeads, hs), pos, c.RopeTheta, true)
			be.RoPE(a.dk.Reshape(b.B, b.T, c.NumKeyValueHeads, hs), pos, c.RopeTheta, true)
		}
		dq, dk := a.dq, a.dk
		if blk.QNorm != nil {
			nq, nk := b.B*b.T*c.NumAttentionHeads, b.B*b.T*c.NumKeyValueHeads
			be.Zero(a.dqp)
			be.Zero(a.dkp)
			blk.QNorm.Backward(a.dqp.Reshape(nq, hs), a.dq.Reshape(nq, hs), la.qp.Reshape(nq, hs), nil, la.qRstd)
			blk.KNorm.Backward(a.dkp.Reshape(nk, hs), a.dk.Reshape(nk, hs), la.kp.Reshape(nk, hs), nil, la.kRstd)
			dq, dk = a.dqp, a.dkp
		}
		be.Zero(a.dln)
		blk.Q.Backward(a.dln, dq, la.ln1)
		blk.K.Backward(a.dln, dk, la.ln1)
		blk.V.Backward(a.dln, a.dv, la.ln1)
		be.Copy(a.dres, a.dmid)
		blk.Norm1.Backward(a.dres, a.dln, in, la.ln1Mean, la.ln1Rstd)
		if m.BackwardHook != nil {
			m.BackwardHook(l)
		}
	}
	if m.DEmbed != nil {
		be.EmbeddingBackward(m.DEmbed, a.dres, b.IDs)
	}
	if m.DPosEmbed != nil {
		be.EmbeddingBackward(m.DPosEmbed, a.dres, pos)
	}
	if m.BackwardHook != nil {
		m.BackwardHook(-1)
	}
}

// ForwardBackward runs forward, the LM loss and backward on one
// micro-batch, accumulating gradients of gradScale·lossSum.
func (m *Transformer) ForwardBackward(b *Batch, gradScale float64) (lossSum float64, count int, err error) {
	if err := m.Forward(b); err != nil {
		return 0, 0, err
	}
	lossSum, count, err = m.Loss(b, gradScale, true)
	if err != nil {
		return 0, 0, err
	}
	m.Backward(b)
	return lossSum, count, nil
}
