package model

import (
	"github.com/shoggo/shoggo/tensor"
)

// ParamSpecs lists every trainable tensor of a config, in a fixed order,
// under the Hugging Face name it has in the family's checkpoints (from the
// family table). Shapes are shoggo's internal layout: every linear weight is
// (out, in). GPT-2 stores its Conv1D weights as (in, out) on disk; the
// checkpoint loader and writer transpose them. A tied LM head is not listed.
// Per block the order is: norm 1, q/k/v (or the fused QKV), the per-head
// q/k norms, o, norm 2, the MLP; each linear's weight before its bias.
func ParamSpecs(c *Config) []tensor.Spec {
	f := c.Spec()
	if f == nil {
		return nil
	}
	C, I, V := c.HiddenSize, c.IntermediateSize, c.VocabSize
	hs := c.HeadDim()
	Q, KV := c.NumAttentionHeads*hs, c.NumKeyValueHeads*hs
	n := &f.Names
	var s []tensor.Spec
	add := func(name string, shape ...int) { s = append(s, tensor.Spec{Name: name, Shape: shape}) }
	linear := func(name string, out, in int, bias bool) {
		add(name+".weight", out, in)
		if bias {
			add(name+".bias", out)
		}
	}
	norm := func(name string, size int) {
		add(name+".weight", size)
		if f.Norm == LayerNorm {
			add(name+".bias", size)
		}
	}
	add(n.Embed+".weight", V, C)
	if f.LearnedPositions {
		add(n.Pos+".weight", c.MaxPositionEmbeddings, C)
	}
	qkvBias, oBias, mlpBias := c.QKVBias(), c.OBias(), c.MLPBiases()
	for l := 0; l < c.NumHiddenLayers; l++ {
		p := f.LayerPrefix(l)
		norm(p+n.Norm1, C)
		if n.QKV != "" {
			linear(p+n.QKV, Q+2*KV, C, qkvBias)
		} else {
			linear(p+n.Q, Q, C, qkvBias)
			linear(p+n.K, KV, C, qkvBias)
			linear(p+n.V, KV, C, qkvBias)
		}
		if f.QKNorm {
			norm(p+n.QNorm, hs)
			norm(p+n.KNorm, hs)
		}
		linear(p+n.O, C, Q, oBias)
		norm(p+n.Norm2, C)
		if f.MLP == GELUMLP {
			linear(p+n.Fc, I, C, mlpBias)
			linear(p+n.Proj, C, I, mlpBias)
		} else {
			linear(p+n.Gate, I, C, mlpBias)
			linear(p+n.Up, I, C, mlpBias)
			linear(p+n.Down, C, I, mlpBias)
		}
	}
	norm(n.NormF, C)
	if !c.TieWordEmbeddings && !f.TiedOnly {
		add(n.LMHead+".weight", V, C)
	}
	return s
}

// ParamCount is the number of parameters (a tied LM head counted once).
func ParamCount(c *Config) int64 {
	var n int64
	for _, s := range ParamSpecs(c) {
		n += int64(s.Shape.Numel())
	}
	return n
}

// IsConv1D reports whether a GPT-2 tensor is stored as Conv1D (in, out) in
// Hugging Face checkpoints. It is the GPT-2 entry's FamilySpec.Transposed;
// code that has a config should ask its own family.
func IsConv1D(name string) bool { return families[GPT2].Transposed(name) }
