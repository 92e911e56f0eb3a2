package model

import (
	"fmt"
	"sort"
)

func intp(v int) *int { return &v }

// Preset is a named configuration with the source of its numbers and the
// parameter total published for it (0 for shoggo's own configs).
type Preset struct {
	Config Config
	// Source says where the numbers come from.
	Source string
	// Published is the published parameter total, where there is one.
	Published int64
}

// Presets is the table of known configurations.
var Presets = map[string]Preset{
	"gpt2": {
		Config: Config{ModelType: "gpt2", VocabSize: 50257, HiddenSize: 768, IntermediateSize: 3072, NumHiddenLayers: 12,
			NumAttentionHeads: 12, NumKeyValueHeads: 12, MaxPositionEmbeddings: 1024, LayerNormEpsilon: 1e-5,
			TieWordEmbeddings: true, HiddenAct: "gelu_new", BOSTokenID: intp(50256), EOSTokenID: intp(50256)},
		Source:    "openai-community/gpt2 config.json (n_embd 768, n_layer 12, n_head 12, n_positions 1024, vocab 50257); 124,439,808 parameters with tied embeddings as counted by transformers and llm.c",
		Published: 124439808,
	},
	"qwen1.5-0.5b": {
		Config: Config{ModelType: "qwen2", VocabSize: 151936, HiddenSize: 1024, IntermediateSize: 2816, NumHiddenLayers: 24,
			NumAttentionHeads: 16, NumKeyValueHeads: 16, MaxPositionEmbeddings: 32768, RMSNormEps: 1e-6, RopeTheta: 1000000,
			TieWordEmbeddings: false, HiddenAct: "silu", BOSTokenID: intp(151643), EOSTokenID: intp(151643)},
		Source:    "Qwen/Qwen1.5-0.5B config.json (Qwen2ForCausalLM; hidden 1024, intermediate 2816, 24 layers, 16 heads, untied); Hugging Face lists 620M parameters",
		Published: 620_000_000,
	},
	"qwen1.5-1.8b": {
		Config: Config{ModelType: "qwen2", VocabSize: 151936, HiddenSize: 2048, IntermediateSize: 5504, NumHiddenLayers: 24,
			NumAttentionHeads: 16, NumKeyValueHeads: 16, MaxPositionEmbeddings: 32768, RMSNormEps: 1e-6, RopeTheta: 1000000,
			TieWordEmbeddings: false, HiddenAct: "silu", BOSTokenID: intp(151643), EOSTokenID: intp(151643)},
		Source:    "Qwen/Qwen1.5-1.8B config.json (hidden 2048, intermediate 5504, 24 layers, 16 heads, untied); Hugging Face lists 1.84B parameters",
		Published: 1_840_000_000,
	},
	"qwen2-0.5b": {
		Config: Config{ModelType: "qwen2", VocabSize: 151936, HiddenSize: 896, IntermediateSize: 4864, NumHiddenLayers: 24,
			NumAttentionHeads: 14, NumKeyValueHeads: 2, MaxPositionEmbeddings: 32768, RMSNormEps: 1e-6, RopeTheta: 1000000,
			TieWordEmbeddings: true, HiddenAct: "silu", BOSTokenID: intp(151643), EOSTokenID: intp(151643)},
		Source:    "Qwen/Qwen2-0.5B config.json (hidden 896, intermediate 4864, 24 layers, 14 heads, 2 KV heads, tied); Qwen2 technical report and Hugging Face list 0.49B (494M) parameters",
		Published: 494_000_000,
	},
	"qwen3-0.6b": {
		Config: Config{ModelType: "qwen3", VocabSize: 151936, HiddenSize: 1024, IntermediateSize: 3072, NumHiddenLayers: 28,
			NumAttentionHeads: 16, NumKeyValueHeads: 8, HeadDimension: 128, MaxPositionEmbeddings: 40960, RMSNormEps: 1e-6,
			RopeTheta: 1000000, TieWordEmbeddings: true, HiddenAct: "silu", BOSTokenID: intp(151643), EOSTokenID: intp(151645)},
		Source: "Qwen/Qwen3-0.6B config.json (Qwen3ForCausalLM; hidden 1024, intermediate 3072, 28 layers, 16 heads of head_dim 128 " +
			"(q_proj 2048 wide), 8 KV heads, q/k RMSNorm, attention_bias false, rope_theta 1e6, rms_norm_eps 1e-6, 40960 positions, tied); " +
			"the model card lists 0.6B parameters (0.44B non-embedding)",
		Published: 600_000_000,
	},
	"smollm-135m": {
		Config: Config{ModelType: "llama", VocabSize: 49152, HiddenSize: 576, IntermediateSize: 1536, NumHiddenLayers: 30,
			NumAttentionHeads: 9, NumKeyValueHeads: 3, MaxPositionEmbeddings: 2048, RMSNormEps: 1e-5, RopeTheta: 10000,
			TieWordEmbeddings: true, HiddenAct: "silu", BOSTokenID: intp(0), EOSTokenID: intp(0)},
		Source:    "HuggingFaceTB/SmolLM-135M config.json (LlamaForCausalLM; hidden 576, intermediate 1536, 30 layers, 9 heads, 3 KV heads, tied); Hugging Face lists 135M parameters",
		Published: 135_000_000,
	},
	"tinyllama-1.1b": {
		Config: Config{ModelType: "llama", VocabSize: 32000, HiddenSize: 2048, IntermediateSize: 5632, NumHiddenLayers: 22,
			NumAttentionHeads: 32, NumKeyValueHeads: 4, MaxPositionEmbeddings: 2048, RMSNormEps: 1e-5, RopeTheta: 10000,
			TieWordEmbeddings: false, HiddenAct: "silu", BOSTokenID: intp(1), EOSTokenID: intp(2)},
		Source:    "TinyLlama/TinyLlama-1.1B-intermediate-step-1431k-3T config.json (hidden 2048, intermediate 5632, 22 layers, 32 heads, 4 KV heads); Hugging Face lists 1.1B parameters",
		Published: 1_100_000_000,
	},
	"shoggo-4m": {
		Config: Config{ModelType: "llama", VocabSize: 4096, HiddenSize: 256, IntermediateSize: 704, NumHiddenLayers: 4,
			NumAttentionHeads: 4, NumKeyValueHeads: 2, MaxPositionEmbeddings: 256, RMSNormEps: 1e-5, RopeTheta: 10000,
			TieWordEmbeddings: true, HiddenAct: "silu", BOSTokenID: intp(0), EOSTokenID: intp(0)},
		Source: "shoggo's default pre-training model: Llama-style, 4 layers, hidden 256, 4 heads / 2 KV heads, tied 4096-token vocabulary (about 4.2M parameters)",
	},
	"shoggo-1m": {
		Config: Config{ModelType: "llama", VocabSize: 4096, HiddenSize: 128, IntermediateSize: 352, NumHiddenLayers: 4,
			NumAttentionHeads: 4, NumKeyValueHeads: 2, MaxPositionEmbeddings: 256, RMSNormEps: 1e-5, RopeTheta: 10000,
			TieWordEmbeddings: true, HiddenAct: "silu", BOSTokenID: intp(0), EOSTokenID: intp(0)},
		Source: "shoggo's small fine-tuning model: shoggo-4m narrowed to hidden 128 (about 1.3M parameters); learns the embedded arithmetic task in a minute or two",
	},
	"tiny-gpt2": {
		Config: Config{ModelType: "gpt2", VocabSize: 101, HiddenSize: 32, IntermediateSize: 128, NumHiddenLayers: 2,
			NumAttentionHeads: 4, NumKeyValueHeads: 4, MaxPositionEmbeddings: 64, LayerNormEpsilon: 1e-5,
			TieWordEmbeddings: true, HiddenAct: "gelu_new"},
		Source: "shoggo test config",
	},
	"tiny-llama": {
		Config: Config{ModelType: "llama", VocabSize: 101, HiddenSize: 32, IntermediateSize: 64, NumHiddenLayers: 2,
			NumAttentionHeads: 4, NumKeyValueHeads: 2, MaxPositionEmbeddings: 64, RMSNormEps: 1e-5, RopeTheta: 50000,
			TieWordEmbeddings: false, HiddenAct: "silu"},
		Source: "shoggo test config",
	},
	"tiny-qwen3": {
		Config: Config{ModelType: "qwen3", VocabSize: 101, HiddenSize: 32, IntermediateSize: 64, NumHiddenLayers: 2,
			NumAttentionHeads: 4, NumKeyValueHeads: 2, HeadDimension: 16, MaxPositionEmbeddings: 64, RMSNormEps: 1e-6, RopeTheta: 1000000,
			TieWordEmbeddings: false, HiddenAct: "silu"},
		Source: "shoggo test config (head_dim 16 differs from hidden/heads = 8)",
	},
	"tiny-qwen2": {
		Config: Config{ModelType: "qwen2", VocabSize: 101, HiddenSize: 32, IntermediateSize: 64, NumHiddenLayers: 2,
			NumAttentionHeads: 4, NumKeyValueHeads: 2, MaxPositionEmbeddings: 64, RMSNormEps: 1e-6, RopeTheta: 1000000,
			TieWordEmbeddings: true, HiddenAct: "silu"},
		Source: "shoggo test config",
	},
}

// LookupPreset returns a copy of the named preset's config.
func LookupPreset(name string) (*Config, error) {
	p, ok := Presets[name]
	if !ok {
		return nil, fmt.Errorf("unknown preset %q (known: %v)", name, PresetNames())
	}
	c := p.Config
	return &c, nil
}

// PresetNames lists the preset names, sorted.
func PresetNames() []string {
	var names []string
	for k := range Presets {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}
