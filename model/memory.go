package model

import (
	"strings"

	"github.com/shoggo/shoggo/tensor"
)

// MemoryEstimate is the memory one way of running a model needs, in bytes.
type MemoryEstimate struct {
	Mode                                   string
	Weights, Grads, Optimizer, Activations int64
}

// Total sums the parts.
func (e MemoryEstimate) Total() int64 { return e.Weights + e.Grads + e.Optimizer + e.Activations }

// ActivationBytes estimates the fp32 activations shoggo saves for backward
// at (batch, seq): per layer the residual, two norm outputs, q/k/v,
// attention output, the MLP's intermediate tensors, plus the loss buffer.
func ActivationBytes(c *Config, batch, seq int) int64 {
	N := int64(batch * seq)
	C, I := int64(c.HiddenSize), int64(c.IntermediateSize)
	hs := int64(c.HeadDim())
	Q, KV := int64(c.NumAttentionHeads)*hs, int64(c.NumKeyValueHeads)*hs
	f := c.Spec()
	mlp := 2 * I
	if f != nil && f.MLP == SwiGLUMLP {
		mlp = 3 * I
	}
	perLayer := N * (4*C + Q + 2*KV + Q + mlp + 6)
	if f != nil && f.QKNorm {
		// q and k before their per-head norms, and the norms' rstd
		perLayer += N * (Q + KV + int64(c.NumAttentionHeads+c.NumKeyValueHeads))
	}
	return 4 * (int64(c.NumHiddenLayers)*perLayer + N*(2*C) + DefaultChunkRows*int64(c.VocabSize))
}

// EstimateMemory returns the memory needed for inference in fp32, bf16,
// int8 and int4, and for full fine-tuning (fp32 weights, gradients and
// AdamW's two moments), LoRA (fp32 frozen base) and QLoRA (NF4 base,
// ~0.5 byte per parameter plus scales) with adapters of rank r on every
// linear layer of the attention and MLP.
func EstimateMemory(c *Config, batch, seq, r int) []MemoryEstimate {
	n := ParamCount(c)
	act := ActivationBytes(c, batch, seq)
	// Inference keeps only a KV cache, not training activations.
	kv := 2 * int64(c.NumHiddenLayers) * int64(batch*seq) * int64(c.NumKeyValueHeads*c.HeadDim()) * 4
	// One adapter per linear module of a block (GPT-2's fused c_attn is
	// one module): r·(in + out) parameters each.
	var perLayer int64
	for _, s := range blockLinearSpecs(c) {
		perLayer += int64(r) * int64(s.Shape[0]+s.Shape[1])
	}
	lora := perLayer * int64(c.NumHiddenLayers)
	return []MemoryEstimate{
		{Mode: "inference fp32", Weights: 4 * n, Activations: kv},
		{Mode: "inference bf16/fp16", Weights: 2 * n, Activations: kv / 2},
		{Mode: "inference int8", Weights: n + n/64*4, Activations: kv / 2},
		{Mode: "inference int4", Weights: n/2 + n/64*4, Activations: kv / 2},
		{Mode: "full fine-tune fp32", Weights: 4 * n, Grads: 4 * n, Optimizer: 8 * n, Activations: act},
		{Mode: "LoRA (fp32 base)", Weights: 4*n + 4*lora, Grads: 4 * lora, Optimizer: 8 * lora, Activations: act},
		{Mode: "LoRA (bf16 base)", Weights: 2*n + 4*lora, Grads: 4 * lora, Optimizer: 8 * lora, Activations: act},
		{Mode: "QLoRA (NF4 base)", Weights: n/2 + n/64 + 4*lora, Grads: 4 * lora, Optimizer: 8 * lora, Activations: act},
	}
}

// blockLinearSpecs are the weights (out, in) of the first block's linear
// modules, from the family table.
func blockLinearSpecs(c *Config) []tensor.Spec {
	f := c.Spec()
	if f == nil {
		return nil
	}
	var out []tensor.Spec
	for _, s := range ParamSpecs(c) {
		if _, ok := f.BlockLinear(s.Name); ok && strings.HasPrefix(s.Name, f.LayerPrefix(0)) && strings.HasSuffix(s.Name, ".weight") {
			out = append(out, s)
		}
	}
	return out
}
