// Package model holds the decoder-only Transformer: its configuration (with
// Hugging Face config.json field names), a table of presets, the model with
// explicit forward and backward passes, and Hugging Face checkpoint loading
// and saving.
package model

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
)

// Config describes a model. Field names and JSON tags follow Hugging Face
// config.json (Llama/Qwen names; GPT-2's n_embd/n_layer/... are mapped on
// load and written back under GPT-2's own names on save).
type Config struct {
	ModelType             string  `json:"model_type"`
	VocabSize             int     `json:"vocab_size"`
	HiddenSize            int     `json:"hidden_size"`
	IntermediateSize      int     `json:"intermediate_size"`
	NumHiddenLayers       int     `json:"num_hidden_layers"`
	NumAttentionHeads     int     `json:"num_attention_heads"`
	NumKeyValueHeads      int     `json:"num_key_value_heads"`
	MaxPositionEmbeddings int     `json:"max_position_embeddings"`
	RMSNormEps            float64 `json:"rms_norm_eps,omitempty"`
	LayerNormEpsilon      float64 `json:"layer_norm_epsilon,omitempty"`
	RopeTheta             float64 `json:"rope_theta,omitempty"`
	TieWordEmbeddings     bool    `json:"tie_word_embeddings"`
	HiddenAct             string  `json:"hidden_act"`
	// AttentionBias is Llama's and Qwen3's attention_bias (bias on q, k, v
	// and o). For Qwen2 it is always true for q, k, v and false for o
	// (Qwen2's fixed layout), whatever the file says: see the family table.
	AttentionBias bool `json:"attention_bias"`
	// HeadDimension is config.json's head_dim: the size of one attention
	// head when it is not hidden_size / num_attention_heads (Qwen3); 0 means
	// hidden_size / num_attention_heads. Use HeadDim() to read it.
	HeadDimension int  `json:"head_dim,omitempty"`
	MLPBias       bool `json:"mlp_bias,omitempty"`
	BOSTokenID    *int `json:"bos_token_id,omitempty"`
	EOSTokenID    *int `json:"eos_token_id,omitempty"`
}

// Family returns the architecture family named by ModelType.
func (c *Config) Family() Family { return Family(c.ModelType) }

// HeadDim is head_dim when the config sets it, else hidden_size /
// num_attention_heads.
func (c *Config) HeadDim() int {
	if c.HeadDimension > 0 {
		return c.HeadDimension
	}
	return c.HiddenSize / c.NumAttentionHeads
}

// NormEps returns the epsilon of the family's normalisation layers.
func (c *Config) NormEps() float64 {
	if f := c.Spec(); f != nil && f.Norm == LayerNorm {
		return c.LayerNormEpsilon
	}
	return c.RMSNormEps
}

// QKVBias reports whether q/k/v projections carry a bias.
func (c *Config) QKVBias() bool {
	f := c.Spec()
	return f != nil && f.QKVBias.has(c)
}

// OBias reports whether the attention output projection carries a bias.
func (c *Config) OBias() bool {
	f := c.Spec()
	return f != nil && f.OBias.has(c)
}

// MLPBiases reports whether the MLP projections carry biases.
func (c *Config) MLPBiases() bool {
	f := c.Spec()
	return f != nil && f.MLPBias.has(c)
}

// Validate checks that the dimensions are possible and that the family
// supports the config; errors name the fields and their values.
func (c *Config) Validate() error {
	var errs []string
	bad := func(format string, a ...any) { errs = append(errs, fmt.Sprintf(format, a...)) }
	f := c.Spec()
	if f == nil {
		bad("model_type %q is not supported (want one of %s)", c.ModelType, strings.Join(FamilyNames(), ", "))
	}
	pos := func(name string, v int) {
		if v <= 0 {
			bad("%s = %d must be positive", name, v)
		}
	}
	pos("vocab_size", c.VocabSize)
	pos("hidden_size", c.HiddenSize)
	pos("intermediate_size", c.IntermediateSize)
	pos("num_hidden_layers", c.NumHiddenLayers)
	pos("num_attention_heads", c.NumAttentionHeads)
	pos("num_key_value_heads", c.NumKeyValueHeads)
	pos("max_position_embeddings", c.MaxPositionEmbeddings)
	if c.HeadDimension < 0 {
		bad("head_dim = %d must be positive", c.HeadDimension)
	}
	explicit := c.HeadDimension > 0
	if explicit && f != nil && !f.HeadDim && c.NumAttentionHeads > 0 && c.HeadDimension*c.NumAttentionHeads != c.HiddenSize {
		bad("head_dim = %d is not supported for %s (it must be hidden_size/num_attention_heads)", c.HeadDimension, c.ModelType)
		explicit = false
	}
	if !explicit && c.NumAttentionHeads > 0 && c.HiddenSize > 0 && c.HiddenSize%c.NumAttentionHeads != 0 {
		bad("hidden_size = %d is not divisible by num_attention_heads = %d", c.HiddenSize, c.NumAttentionHeads)
	}
	if c.NumKeyValueHeads > 0 && c.NumAttentionHeads > 0 && c.NumAttentionHeads%c.NumKeyValueHeads != 0 {
		bad("num_attention_heads = %d is not a multiple of num_key_value_heads = %d", c.NumAttentionHeads, c.NumKeyValueHeads)
	}
	if f != nil && !f.LearnedPositions {
		if explicit && c.HeadDimension%2 != 0 {
			bad("head dim head_dim = %d must be even for rotary embeddings", c.HeadDimension)
		} else if !explicit && c.NumAttentionHeads > 0 && c.HiddenSize > 0 && c.HiddenSize%c.NumAttentionHeads == 0 && c.HeadDim()%2 != 0 {
			bad("head dim hidden_size/num_attention_heads = %d/%d = %d must be even for rotary embeddings", c.HiddenSize, c.NumAttentionHeads, c.HeadDim())
		}
		if !(c.RopeTheta > 0) || math.IsInf(c.RopeTheta, 0) {
			bad("rope_theta = %g must be positive", c.RopeTheta)
		}
	}
	if f == nil {
		return fmt.Errorf("invalid config: %s", strings.Join(errs, "; "))
	}
	if eps := c.NormEps(); !(eps > 0) || math.IsInf(eps, 0) {
		bad("%s = %g must be positive", f.epsKey(), eps)
	}
	if f.Layout == LayoutGPT2 && c.NumKeyValueHeads != c.NumAttentionHeads {
		bad("%s needs num_key_value_heads = %d equal to num_attention_heads = %d", c.ModelType, c.NumKeyValueHeads, c.NumAttentionHeads)
	}
	if f.TiedOnly && !c.TieWordEmbeddings {
		bad("%s requires tie_word_embeddings = true", c.ModelType)
	}
	if !slices.Contains(f.Activations, c.HiddenAct) {
		bad("%s = %q is not supported for %s (want %s)", f.actKey(), c.HiddenAct, c.ModelType, f.Activations[0])
	}
	if c.MLPBias && f.MLPBias != BiasAlways {
		bad("mlp_bias = true is not supported")
	}
	if len(errs) > 0 {
		return fmt.Errorf("invalid config: %s", strings.Join(errs, "; "))
	}
	return nil
}

// ParseConfig reads a Hugging Face config.json. GPT-2 field names (n_embd,
// n_layer, n_head, n_positions, n_inner, activation_function) are mapped to
// the common names. Unsupported features that would change the maths
// (rope_scaling, sliding windows) are errors.
func ParseConfig(data []byte) (*Config, error) {
	var raw map[string]any
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("config.json: %w", err)
	}
	var c Config
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("config.json: %w", err)
	}
	num := func(key string) (float64, bool) {
		v, ok := raw[key]
		if !ok || v == nil {
			return 0, false
		}
		f, ok := v.(float64)
		return f, ok
	}
	if c.ModelType == "" {
		return nil, fmt.Errorf("config.json: missing model_type")
	}
	if f, ok := familyAliases[c.ModelType]; ok {
		c.ModelType = string(f)
	}
	spec := c.Spec()
	layout := ConfigLayout(-1) // unknown family: Validate reports it
	if spec != nil {
		layout = spec.Layout
	}
	switch layout {
	case LayoutGPT2:
		ints := map[string]*int{"n_embd": &c.HiddenSize, "n_layer": &c.NumHiddenLayers, "n_head": &c.NumAttentionHeads, "n_positions": &c.MaxPositionEmbeddings}
		for k, p := range ints {
			if v, ok := num(k); ok {
				*p = int(v)
			}
		}
		c.IntermediateSize = 4 * c.HiddenSize
		if v, ok := num("n_inner"); ok {
			c.IntermediateSize = int(v)
		}
		c.NumKeyValueHeads = c.NumAttentionHeads
		c.HiddenAct = spec.Activations[0]
		if s, ok := raw["activation_function"].(string); ok {
			c.HiddenAct = s
		}
		if _, ok := raw["layer_norm_epsilon"]; !ok {
			c.LayerNormEpsilon = 1e-5
		}
		if _, ok := raw["tie_word_embeddings"]; !ok {
			c.TieWordEmbeddings = spec.TiedDefault
		}
	case LayoutLlama:
		if _, ok := raw["num_key_value_heads"]; !ok || raw["num_key_value_heads"] == nil {
			c.NumKeyValueHeads = c.NumAttentionHeads
		}
		if _, ok := raw["rope_theta"]; !ok {
			c.RopeTheta = 10000
		}
		// transformers >= 5 nests rotary settings in rope_parameters.
		if rp, ok := raw["rope_parameters"].(map[string]any); ok {
			if th, ok := rp["rope_theta"].(float64); ok {
				c.RopeTheta = th
			}
			if rt, ok := rp["rope_type"].(string); ok && rt != "default" {
				return nil, fmt.Errorf("config.json: rope_parameters.rope_type = %q is not supported", rt)
			}
		}
		if _, ok := raw["rms_norm_eps"]; !ok {
			c.RMSNormEps = 1e-6
		}
		if _, ok := raw["hidden_act"]; !ok {
			c.HiddenAct = spec.Activations[0]
		}
		if _, ok := raw["tie_word_embeddings"]; !ok {
			c.TieWordEmbeddings = spec.TiedDefault // false: transformers' default for Llama, Qwen2 and Qwen3
		}
		if _, ok := num("head_dim"); !ok {
			c.HeadDimension = spec.DefaultHeadDim
		}
		if v, ok := raw["rope_scaling"]; ok && v != nil {
			vm, _ := v.(map[string]any)
			rt, _ := vm["rope_type"].(string)
			if rt == "" {
				rt, _ = vm["type"].(string)
			}
			if rt != "default" {
				return nil, fmt.Errorf("config.json: rope_scaling = %v is not supported", v)
			}
		}
		if v, ok := raw["use_sliding_window"].(bool); ok && v {
			return nil, fmt.Errorf("config.json: use_sliding_window = true is not supported")
		}
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("config.json: %w", err)
	}
	return &c, nil
}

// LoadConfig reads and validates path (a config.json).
func LoadConfig(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	c, err := ParseConfig(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// HFJSON renders the config as a Hugging Face config.json, with the
// family's own field names, model_type and architectures.
func (c *Config) HFJSON() ([]byte, error) {
	m := map[string]any{
		"model_type":          c.ModelType,
		"vocab_size":          c.VocabSize,
		"tie_word_embeddings": c.TieWordEmbeddings,
		"torch_dtype":         "float32",
	}
	if c.BOSTokenID != nil {
		m["bos_token_id"] = *c.BOSTokenID
	}
	if c.EOSTokenID != nil {
		m["eos_token_id"] = *c.EOSTokenID
	}
	spec := c.Spec()
	if spec == nil {
		return nil, fmt.Errorf("config: model_type %q is not supported", c.ModelType)
	}
	m["architectures"] = []string{spec.Architecture}
	for k, v := range spec.ExtraConfig {
		m[k] = v
	}
	switch spec.Layout {
	case LayoutGPT2:
		m["n_embd"] = c.HiddenSize
		m["n_layer"] = c.NumHiddenLayers
		m["n_head"] = c.NumAttentionHeads
		m["n_positions"] = c.MaxPositionEmbeddings
		m["n_ctx"] = c.MaxPositionEmbeddings
		m["n_inner"] = c.IntermediateSize
		m["activation_function"] = c.HiddenAct
		m["layer_norm_epsilon"] = c.LayerNormEpsilon
		m["resid_pdrop"] = 0.0
		m["embd_pdrop"] = 0.0
		m["attn_pdrop"] = 0.0
	case LayoutLlama:
		if spec.QKVBias == BiasFromConfig || spec.OBias == BiasFromConfig {
			m["attention_bias"] = c.AttentionBias
		}
		if c.HeadDimension > 0 || spec.DefaultHeadDim > 0 {
			m["head_dim"] = c.HeadDim()
		}
		m["hidden_size"] = c.HiddenSize
		m["intermediate_size"] = c.IntermediateSize
		m["num_hidden_layers"] = c.NumHiddenLayers
		m["num_attention_heads"] = c.NumAttentionHeads
		m["num_key_value_heads"] = c.NumKeyValueHeads
		m["max_position_embeddings"] = c.MaxPositionEmbeddings
		m["rms_norm_eps"] = c.RMSNormEps
		m["rope_theta"] = c.RopeTheta
		m["hidden_act"] = c.HiddenAct
		m["attention_dropout"] = 0.0
	}
	return json.MarshalIndent(m, "", "  ")
}
