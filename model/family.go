package model

import (
	"sort"
	"strconv"
	"strings"
)

// Family is the architecture family a config belongs to (its model_type).
type Family string

// The supported families. Each has one FamilySpec in the family table.
const (
	GPT2  Family = "gpt2"
	Llama Family = "llama"
	Qwen2 Family = "qwen2"
	Qwen3 Family = "qwen3"
)

// NormKind is the normalisation layer of a family.
type NormKind int

const (
	// LayerNorm subtracts the mean and divides by the standard deviation;
	// it has a weight and a bias (GPT-2).
	LayerNorm NormKind = iota
	// RMSNorm divides by the root mean square; weight only (Llama, Qwen).
	RMSNorm
)

// MLPKind is the feed-forward block of a family.
type MLPKind int

const (
	// GELUMLP is proj(gelu_tanh(fc(x))) (GPT-2).
	GELUMLP MLPKind = iota
	// SwiGLUMLP is down(silu(gate(x)) * up(x)) (Llama, Qwen).
	SwiGLUMLP
)

// BiasRule says whether a group of linear layers carries biases.
type BiasRule int

const (
	// BiasNever: no bias, whatever config.json says.
	BiasNever BiasRule = iota
	// BiasAlways: always a bias.
	BiasAlways
	// BiasFromConfig: config.json's attention_bias decides.
	BiasFromConfig
)

// ConfigLayout names the config.json key set a family uses.
type ConfigLayout int

const (
	// LayoutGPT2 is GPT-2's n_embd, n_layer, n_head, n_positions, n_inner,
	// activation_function, layer_norm_epsilon.
	LayoutGPT2 ConfigLayout = iota
	// LayoutLlama is hidden_size, num_hidden_layers, num_attention_heads,
	// num_key_value_heads, rope_theta/rope_parameters, rms_norm_eps, ...
	LayoutLlama
)

// TensorNames are a family's Hugging Face tensor names without the
// ".weight"/".bias" suffix. The per-layer names are relative to layer l's
// prefix Layers + "." + l + "."; an empty name means the family has no such
// tensor.
type TensorNames struct {
	// OptionalPrefix is a leading part of every name that some checkpoints
	// leave out (GPT-2's original release has "h.0.ln_1.weight" for
	// "transformer.h.0.ln_1.weight").
	OptionalPrefix string

	Embed  string // token embedding (V, C)
	Pos    string // learned position embedding (max_position_embeddings, C)
	Layers string // the list of blocks, e.g. "model.layers"

	Norm1, Norm2 string // before attention, before the MLP
	QKV          string // a fused (Q+2KV, C) q|k|v projection (GPT-2's c_attn); Q, K, V are then empty
	Q, K, V, O   string
	QNorm, KNorm string // per-head norms on q and k (Qwen3)
	Fc, Proj     string // GELU MLP
	Gate, Up     string // SwiGLU MLP
	Down         string

	NormF  string // final norm
	LMHead string // untied LM head (V, C)
}

// FamilySpec describes one architecture family: everything that differs
// between GPT-2, Llama, Qwen2 and Qwen3 is here. Parameter specs, wiring,
// initialisation, Hugging Face load/save, quantization, memory estimates,
// config validation and LoRA targets read it when a model is built; the
// forward and backward passes only see the modules it produced.
type FamilySpec struct {
	Family       Family
	Architecture string // config.json "architectures" entry written on save
	Layout       ConfigLayout
	Names        TensorNames

	Norm NormKind
	MLP  MLPKind
	// Activations are the accepted hidden_act (GPT-2: activation_function)
	// values; the first is the default.
	Activations []string

	QKVBias BiasRule // q, k and v projections (or the fused QKV)
	OBias   BiasRule // attention output projection
	MLPBias BiasRule // every MLP projection

	// LearnedPositions: a learned position table added to the embeddings;
	// otherwise rotary embeddings on q and k (rope_theta).
	LearnedPositions bool
	// QKNorm: q and k are normalised per head (a Norm of size head_dim,
	// eps of the family's norm) after their projections, before RoPE.
	QKNorm bool
	// Conv1D: block linear weights are stored (in, out) in checkpoints
	// (GPT-2's Conv1D); shoggo keeps every linear as (out, in).
	Conv1D bool

	// TiedDefault is tie_word_embeddings when config.json omits it.
	TiedDefault bool
	// TiedOnly: the LM head is always the token embedding.
	TiedOnly bool
	// HeadDim: config.json may set head_dim (differing from
	// hidden_size / num_attention_heads).
	HeadDim bool
	// DefaultHeadDim is head_dim when config.json omits it (0:
	// hidden_size / num_attention_heads).
	DefaultHeadDim int
	// ExtraConfig are constant config.json entries written on save.
	ExtraConfig map[string]any
}

var llamaNames = TensorNames{
	Embed: "model.embed_tokens", Layers: "model.layers",
	Norm1: "input_layernorm", Norm2: "post_attention_layernorm",
	Q: "self_attn.q_proj", K: "self_attn.k_proj", V: "self_attn.v_proj", O: "self_attn.o_proj",
	Gate: "mlp.gate_proj", Up: "mlp.up_proj", Down: "mlp.down_proj",
	NormF: "model.norm", LMHead: "lm_head",
}

// families is the family table.
var families = map[Family]*FamilySpec{
	GPT2: {
		Family: GPT2, Architecture: "GPT2LMHeadModel", Layout: LayoutGPT2,
		Names: TensorNames{
			OptionalPrefix: "transformer.",
			Embed:          "transformer.wte", Pos: "transformer.wpe", Layers: "transformer.h",
			Norm1: "ln_1", Norm2: "ln_2", QKV: "attn.c_attn", O: "attn.c_proj",
			Fc: "mlp.c_fc", Proj: "mlp.c_proj", NormF: "transformer.ln_f", LMHead: "lm_head",
		},
		Norm: LayerNorm, MLP: GELUMLP, Activations: []string{"gelu_new", "gelu_pytorch_tanh"},
		QKVBias: BiasAlways, OBias: BiasAlways, MLPBias: BiasAlways,
		LearnedPositions: true, Conv1D: true, TiedDefault: true, TiedOnly: true,
	},
	Llama: {
		Family: Llama, Architecture: "LlamaForCausalLM", Layout: LayoutLlama, Names: llamaNames,
		Norm: RMSNorm, MLP: SwiGLUMLP, Activations: []string{"silu"},
		QKVBias: BiasFromConfig, OBias: BiasFromConfig, MLPBias: BiasNever,
		HeadDim: true, ExtraConfig: map[string]any{"mlp_bias": false},
	},
	Qwen2: {
		Family: Qwen2, Architecture: "Qwen2ForCausalLM", Layout: LayoutLlama, Names: llamaNames,
		Norm: RMSNorm, MLP: SwiGLUMLP, Activations: []string{"silu"},
		QKVBias: BiasAlways, OBias: BiasNever, MLPBias: BiasNever,
		HeadDim: true, ExtraConfig: map[string]any{"use_sliding_window": false},
	},
	Qwen3: {
		Family: Qwen3, Architecture: "Qwen3ForCausalLM", Layout: LayoutLlama,
		Names: func() TensorNames {
			n := llamaNames
			n.QNorm, n.KNorm = "self_attn.q_norm", "self_attn.k_norm"
			return n
		}(),
		Norm: RMSNorm, MLP: SwiGLUMLP, Activations: []string{"silu"},
		QKVBias: BiasFromConfig, OBias: BiasFromConfig, MLPBias: BiasNever,
		QKNorm: true, HeadDim: true, DefaultHeadDim: 128, // Qwen3Config's default head_dim
		ExtraConfig: map[string]any{"use_sliding_window": false},
	},
}

// familyAliases maps other model_type values onto the family whose maths
// and tensor names they share.
var familyAliases = map[string]Family{"mistral": Llama}

// LookupFamily returns the table entry of f, or nil. The entry is shared:
// read it, do not modify it.
func LookupFamily(f Family) *FamilySpec { return families[f] }

// FamilyNames lists the supported model_type values, sorted.
func FamilyNames() []string {
	var out []string
	for f := range families {
		out = append(out, string(f))
	}
	sort.Strings(out)
	return out
}

// Spec returns the family table entry of c's model_type, or nil when the
// family is unknown (Validate reports it).
func (c *Config) Spec() *FamilySpec { return families[c.Family()] }

// has reports whether the rule gives a bias under config c.
func (r BiasRule) has(c *Config) bool {
	switch r {
	case BiasAlways:
		return true
	case BiasFromConfig:
		return c.AttentionBias
	}
	return false
}

// LayerPrefix is block l's tensor name prefix, e.g. "model.layers.3.".
func (f *FamilySpec) LayerPrefix(l int) string {
	return f.Names.Layers + "." + strconv.Itoa(l) + "."
}

// linearNames are the block's linear layers (relative names), attention
// then MLP, in checkpoint order.
func (f *FamilySpec) linearNames() []string {
	n := &f.Names
	var out []string
	if n.QKV != "" {
		out = append(out, n.QKV)
	} else {
		out = append(out, n.Q, n.K, n.V)
	}
	out = append(out, n.O)
	if f.MLP == GELUMLP {
		out = append(out, n.Fc, n.Proj)
	} else {
		out = append(out, n.Gate, n.Up, n.Down)
	}
	return out
}

// BlockLinears lists the module paths of block l's linear layers (the
// names PEFT targets), attention then MLP.
func (f *FamilySpec) BlockLinears(l int) []string {
	p := f.LayerPrefix(l)
	var out []string
	for _, n := range f.linearNames() {
		out = append(out, p+n)
	}
	return out
}

// splitLayer splits a tensor name into its block's relative name (without
// ".weight"/".bias"): "model.layers.3.mlp.up_proj.weight" -> "mlp.up_proj".
func (f *FamilySpec) splitLayer(name string) (rel string, ok bool) {
	rest, ok := strings.CutPrefix(name, f.Names.Layers+".")
	if !ok {
		return "", false
	}
	i := strings.IndexByte(rest, '.')
	if i <= 0 {
		return "", false
	}
	if _, err := strconv.Atoi(rest[:i]); err != nil {
		return "", false
	}
	rel, ok = strings.CutSuffix(rest[i+1:], ".weight")
	if !ok {
		rel, ok = strings.CutSuffix(rest[i+1:], ".bias")
	}
	return rel, ok
}

// BlockLinear reports whether a parameter belongs to a block's linear layer
// and returns the layer's name prefix.
func (f *FamilySpec) BlockLinear(name string) (string, bool) {
	rel, ok := f.splitLayer(name)
	if !ok {
		return "", false
	}
	for _, n := range f.linearNames() {
		if rel == n {
			return name[:strings.LastIndexByte(name, '.')], true
		}
	}
	return "", false
}

// residualOut reports whether the linear layer named by prefix writes into
// the residual stream (attention output, MLP output): its initialisation
// is scaled down by 1/sqrt(2·layers).
func (f *FamilySpec) residualOut(prefix string) bool {
	out := f.Names.Down
	if f.MLP == GELUMLP {
		out = f.Names.Proj
	}
	return strings.HasSuffix(prefix, "."+f.Names.O) || strings.HasSuffix(prefix, "."+out)
}

// Transposed reports whether a parameter is stored (in, out) in checkpoints
// (a block linear weight of a Conv1D family).
func (f *FamilySpec) Transposed(name string) bool {
	if !f.Conv1D || !strings.HasSuffix(name, ".weight") {
		return false
	}
	_, ok := f.BlockLinear(name)
	return ok
}

// isTable reports whether a parameter is the token embedding or the LM head
// (FrozenOptions.HalfEmbeddings keeps them in BF16).
func (f *FamilySpec) isTable(name string) bool {
	return name == f.Names.Embed+".weight" || (f.Names.LMHead != "" && name == f.Names.LMHead+".weight")
}

// diskNames returns the names a parameter may have in a checkpoint, most
// likely first.
func (f *FamilySpec) diskNames(name string) []string {
	if f.Names.OptionalPrefix != "" {
		if rest, ok := strings.CutPrefix(name, f.Names.OptionalPrefix); ok {
			return []string{name, rest}
		}
	}
	return []string{name}
}

// epsKey is the config.json name of the norm epsilon.
func (f *FamilySpec) epsKey() string {
	if f.Layout == LayoutGPT2 {
		return "layer_norm_epsilon"
	}
	return "rms_norm_eps"
}

// actKey is the config.json name of the MLP activation.
func (f *FamilySpec) actKey() string {
	if f.Layout == LayoutGPT2 {
		return "activation_function"
	}
	return "hidden_act"
}
