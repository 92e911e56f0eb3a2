package model

import (
	"fmt"

	"github.com/shoggo/shoggo/tensor"
)

// ParamSpecs lists every trainable tensor of a config, in a fixed order,
// under the Hugging Face name it has in the family's checkpoints. Shapes are
// shoggo's internal layout: every linear weight is (out, in). GPT-2 stores
// its Conv1D weights as (in, out) on disk; the checkpoint loader and writer
// transpose them. A tied LM head is not listed.
func ParamSpecs(c *Config) []tensor.Spec {
	C, I, V := c.HiddenSize, c.IntermediateSize, c.VocabSize
	hs := c.HeadDim()
	Q, KV := c.NumAttentionHeads*hs, c.NumKeyValueHeads*hs
	var s []tensor.Spec
	add := func(name string, shape ...int) { s = append(s, tensor.Spec{Name: name, Shape: shape}) }
	if c.Family() == GPT2 {
		add("transformer.wte.weight", V, C)
		add("transformer.wpe.weight", c.MaxPositionEmbeddings, C)
		for l := 0; l < c.NumHiddenLayers; l++ {
			p := fmt.Sprintf("transformer.h.%d.", l)
			add(p+"ln_1.weight", C)
			add(p+"ln_1.bias", C)
			add(p+"attn.c_attn.weight", 3*C, C)
			add(p+"attn.c_attn.bias", 3*C)
			add(p+"attn.c_proj.weight", C, C)
			add(p+"attn.c_proj.bias", C)
			add(p+"ln_2.weight", C)
			add(p+"ln_2.bias", C)
			add(p+"mlp.c_fc.weight", I, C)
			add(p+"mlp.c_fc.bias", I)
			add(p+"mlp.c_proj.weight", C, I)
			add(p+"mlp.c_proj.bias", C)
		}
		add("transformer.ln_f.weight", C)
		add("transformer.ln_f.bias", C)
		return s
	}
	add("model.embed_tokens.weight", V, C)
	for l := 0; l < c.NumHiddenLayers; l++ {
		p := fmt.Sprintf("model.layers.%d.", l)
		add(p+"input_layernorm.weight", C)
		add(p+"self_attn.q_proj.weight", Q, C)
		if c.QKVBias() {
			add(p+"self_attn.q_proj.bias", Q)
		}
		add(p+"self_attn.k_proj.weight", KV, C)
		if c.QKVBias() {
			add(p+"self_attn.k_proj.bias", KV)
		}
		add(p+"self_attn.v_proj.weight", KV, C)
		if c.QKVBias() {
			add(p+"self_attn.v_proj.bias", KV)
		}
		add(p+"self_attn.o_proj.weight", C, Q)
		if c.OBias() {
			add(p+"self_attn.o_proj.bias", C)
		}
		add(p+"post_attention_layernorm.weight", C)
		add(p+"mlp.gate_proj.weight", I, C)
		add(p+"mlp.up_proj.weight", I, C)
		add(p+"mlp.down_proj.weight", C, I)
	}
	add("model.norm.weight", C)
	if !c.TieWordEmbeddings {
		add("lm_head.weight", V, C)
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
// Hugging Face checkpoints.
func IsConv1D(name string) bool {
	for _, suf := range []string{"attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight"} {
		if len(name) >= len(suf) && name[len(name)-len(suf):] == suf {
			return true
		}
	}
	return false
}
