package model

import (
	"fmt"

	"github.com/shoggo/shoggo/backend"
	"github.com/shoggo/shoggo/tensor"
)

// KVCache holds the attention keys (after RoPE) and values of up to Slots
// sequences of at most MaxT cache positions each, for incremental decoding
// with ForwardKV. Each slot is an independent sequence: slots fill at
// their own pace, and a slot can be emptied (Free) and reused while others
// keep decoding. A position can hold padding (left padding of a batched
// prompt), which is masked out of attention and takes no position id.
type KVCache struct {
	Slots, MaxT int
	// K and V are the per-layer caches (Slots, MaxT, KVH, HS).
	K, V []*tensor.Tensor
	// Len[s] is the number of cache positions slot s holds, padding
	// included: the next token goes to position Len[s].
	Len []int32
	// Real[s] is the number of real (unpadded) tokens of slot s: the
	// position id of its next token.
	Real []int32
	// Mask (Slots, MaxT) is 1 where a position holds a real token.
	Mask []int32

	step, prefill *activations // decoding scratch (see scratch)
	pos           []int32
	last          *tensor.Tensor // (B, C) hidden states of each row's last token
}

// NewKVCache allocates a cache for slots sequences of up to maxT positions
// (maxT <= 0: max_position_embeddings). It is the one place the cache's
// memory is allocated; the activation scratch comes from newActivations
// on first use (see scratch).
func (m *Transformer) NewKVCache(slots, maxT int) (*KVCache, error) {
	c := &m.Cfg
	if slots <= 0 {
		return nil, fmt.Errorf("kv cache: %d slots, want at least 1", slots)
	}
	if maxT <= 0 {
		maxT = c.MaxPositionEmbeddings
	}
	kc := &KVCache{Slots: slots, MaxT: maxT, Len: make([]int32, slots), Real: make([]int32, slots), Mask: make([]int32, slots*maxT)}
	for range m.Blocks {
		kc.K = append(kc.K, m.BE.Alloc(m.DType, slots, maxT, c.NumKeyValueHeads, c.HeadDim()))
		kc.V = append(kc.V, m.BE.Alloc(m.DType, slots, maxT, c.NumKeyValueHeads, c.HeadDim()))
	}
	kc.last = m.BE.Alloc(m.DType, slots, c.HiddenSize)
	return kc, nil
}

// Free empties slot s (its positions are overwritten by the next use).
func (kc *KVCache) Free(s int) {
	kc.Len[s], kc.Real[s] = 0, 0
	clear(kc.Mask[s*kc.MaxT : (s+1)*kc.MaxT])
}

// scratch returns decoding activations for B x T tokens: one set kept for
// steps (T = 1) and one for prefills, each made again (newActivations)
// when the shape changes, so rows finishing or joining cost one small
// allocation and no list of activation fields exists outside forward.go.
func (kc *KVCache) scratch(m *Transformer, B, T int) *activations {
	slot := &kc.prefill
	if T == 1 {
		slot = &kc.step
	}
	if a := *slot; a == nil || a.B != B || a.T != T {
		*slot = m.newActivations(B, T, 1, false)
	}
	return *slot
}

// ForwardKV runs B rows of Tn new tokens each (ids, (B, Tn)) through the
// model after the tokens cached in slots (one distinct slot per row),
// appends their keys and values to those slots, and writes the logits of
// each row's last token into logits (B, V). pad[b] (nil: none) is the
// number of leading padding tokens of row b in this call: they are stored
// but masked, and the row's position ids continue from its real tokens
// (left padding, as in Hugging Face's attention_mask). The logits of other
// positions are never formed. A row that would exceed the cache or the
// model's positions is an error, and nothing is changed.
func (m *Transformer) ForwardKV(kc *KVCache, slots []int32, ids []int32, Tn int, pad []int32, logits *tensor.Tensor) error {
	c := &m.Cfg
	B := len(slots)
	if B == 0 || Tn <= 0 || len(ids) != B*Tn {
		return fmt.Errorf("forward kv: %d ids for %d rows of %d tokens", len(ids), B, Tn)
	}
	if pad != nil && len(pad) != B {
		return fmt.Errorf("forward kv: %d padding counts for %d rows", len(pad), B)
	}
	if logits.Numel() != B*c.VocabSize {
		return fmt.Errorf("forward kv: logits of shape %v, want (%d, %d)", logits.Shape, B, c.VocabSize)
	}
	seen := map[int32]bool{}
	start := make([]int32, B)
	if len(kc.pos) < B*Tn {
		kc.pos = make([]int32, B*Tn)
	}
	pos := kc.pos[:B*Tn]
	for b, s := range slots {
		if s < 0 || int(s) >= kc.Slots || seen[s] {
			return fmt.Errorf("forward kv: row %d: slot %d out of [0, %d) or repeated", b, s, kc.Slots)
		}
		seen[s] = true
		np := 0
		if pad != nil {
			np = int(pad[b])
		}
		if np < 0 || np > Tn {
			return fmt.Errorf("forward kv: row %d: %d padding tokens of %d", b, np, Tn)
		}
		if int(kc.Len[s])+Tn > kc.MaxT {
			return fmt.Errorf("forward kv: slot %d: %d cached + %d new positions exceed the cache of %d", s, kc.Len[s], Tn, kc.MaxT)
		}
		if int(kc.Real[s])+Tn-np > c.MaxPositionEmbeddings {
			return fmt.Errorf("forward kv: slot %d: %d + %d tokens exceed max_position_embeddings %d", s, kc.Real[s], Tn-np, c.MaxPositionEmbeddings)
		}
		start[b] = kc.Len[s]
		for t := 0; t < Tn; t++ {
			pos[b*Tn+t] = 0
			if t >= np {
				pos[b*Tn+t] = kc.Real[s] + int32(t-np)
			}
		}
	}
	be := m.BE
	a := kc.scratch(m, B, Tn)
	if err := be.EmbeddingForward(a.resid[0], m.Embed, ids, false); err != nil {
		return err
	}
	if m.PosEmbed != nil {
		if err := be.EmbeddingForward(a.resid[0], m.PosEmbed, pos, true); err != nil {
			return err
		}
	}
	// The new positions are valid keys (for themselves and later tokens)
	// unless they are padding.
	for b, s := range slots {
		np := 0
		if pad != nil {
			np = int(pad[b])
		}
		row := kc.Mask[int(s)*kc.MaxT : (int(s)+1)*kc.MaxT]
		for t := 0; t < Tn; t++ {
			row[int(start[b])+t] = int32(min(max(t-np+1, 0), 1))
		}
		kc.Len[s] += int32(Tn)
		kc.Real[s] += int32(Tn - np)
	}
	kv := &kvStep{K: kc.K, V: kc.V, p: backend.KVParams{B: B, Tn: Tn, NH: c.NumAttentionHeads, KVH: c.NumKeyValueHeads,
		HS: c.HeadDim(), S: kc.Slots, MaxT: kc.MaxT, Slots: slots, Start: start, KeyMask: kc.Mask}}
	for l := range m.Blocks {
		m.blockForward(a, l, pos, backend.AttnParams{}, kv)
	}
	C := c.HiddenSize
	h := a.resid[len(m.Blocks)]
	last := h
	if Tn > 1 {
		last = kc.last.View(0, B, C)
		for b := 0; b < B; b++ {
			be.Copy(last.View(b*C, 1, C), h.View(((b+1)*Tn-1)*C, 1, C))
		}
	}
	lnf, mean, rstd := a.lnf.View(0, B, C), a.lnfMean.View(0, B), a.lnfRstd.View(0, B)
	m.NormF.Forward(lnf, mean, rstd, last)
	be.LinearForward(logits, lnf, m.LMHead, nil)
	return nil
}
