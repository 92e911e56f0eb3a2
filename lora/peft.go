package lora

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/shoggo/shoggo/backend"
	"github.com/shoggo/shoggo/internal/atomicfile"
	"github.com/shoggo/shoggo/model"
	"github.com/shoggo/shoggo/safetensors"
	"github.com/shoggo/shoggo/tensor"
)

// File names of a PEFT adapter directory.
const (
	ConfigFile  = "adapter_config.json"
	WeightsFile = "adapter_model.safetensors"
)

// Save writes a PEFT adapter directory: adapter_config.json and
// adapter_model.safetensors (F32, PEFT's key names
// "base_model.model.<module>.lora_A.weight" (r, in) and ".lora_B.weight"
// (out, r)). Each file is written atomically. PEFT (and transformers'
// load_adapter) load it with PeftModel.from_pretrained(base, dir).
func (a *Adapters) Save(dir string) error {
	if a.detached {
		return fmt.Errorf("lora: save: adapters were merged or unloaded")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var ts []*tensor.Tensor
	for _, t := range a.WeightArena.Tensors() {
		c, err := tensor.Convert(backend.ToHost(a.be, t), tensor.F32)
		if err != nil {
			return err
		}
		c.Name = t.Name
		ts = append(ts, c)
	}
	if err := safetensors.Write(filepath.Join(dir, WeightsFile), ts, map[string]string{"format": "pt"}); err != nil {
		return err
	}
	js, err := a.configJSON()
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(dir, ConfigFile), js, 0o644)
}

// configJSON renders adapter_config.json with the fields every PEFT version
// since 0.8 knows (newer versions fill in their other fields' defaults).
func (a *Adapters) configJSON() ([]byte, error) {
	var base any
	if a.BaseModel != "" {
		base = a.BaseModel
	}
	cfg := map[string]any{
		"peft_type":               "LORA",
		"task_type":               "CAUSAL_LM",
		"base_model_name_or_path": base,
		"revision":                nil,
		"inference_mode":          true,
		"r":                       a.Cfg.R,
		"lora_alpha":              jsonNumber(a.Cfg.Alpha),
		"lora_dropout":            a.Cfg.Dropout,
		"target_modules":          a.TargetModules(),
		"bias":                    "none",
		"fan_in_fan_out":          fanInFanOut(a.Family),
		"use_rslora":              a.Cfg.UseRSLoRA,
		"use_dora":                false,
		"init_lora_weights":       true,
		"modules_to_save":         nil,
		"layers_to_transform":     nil,
		"layers_pattern":          nil,
		"rank_pattern":            map[string]any{},
		"alpha_pattern":           map[string]any{},
	}
	js, err := json.MarshalIndent(cfg, "", "  ") // keys sorted, like PEFT's sort_keys=True
	if err != nil {
		return nil, err
	}
	return append(js, '\n'), nil
}

// jsonNumber writes integral alphas as integers, as PEFT configs usually have them.
func jsonNumber(f float64) any {
	if f == float64(int64(f)) && f < 1<<53 && f > -(1<<53) {
		return int64(f)
	}
	return f
}

// peftConfig is the part of adapter_config.json that Load reads.
type peftConfig struct {
	PeftType      *string         `json:"peft_type"`
	TaskType      *string         `json:"task_type"`
	BaseModel     *string         `json:"base_model_name_or_path"`
	R             *int            `json:"r"`
	LoraAlpha     *float64        `json:"lora_alpha"`
	LoraDropout   *float64        `json:"lora_dropout"`
	TargetModules json.RawMessage `json:"target_modules"`
	Bias          *string         `json:"bias"`
	UseRSLoRA     *bool           `json:"use_rslora"`
}

// empty reports whether a raw JSON value is absent, null, false, [], {} or "".
func empty(r json.RawMessage) bool {
	s := string(bytes.TrimSpace(r))
	return s == "" || s == "null" || s == "false" || s == "[]" || s == "{}" || s == `""`
}

// unsupportedFields are adapter_config.json fields that change which
// weights exist or how the adapter computes; Load refuses a config that sets
// any of them. (Fields that only affect initialisation, such as loftq_config
// or eva_config, are ignored: the saved weights are plain LoRA weights.)
var unsupportedFields = []string{
	"use_dora", "lora_bias", "modules_to_save", "layers_to_transform", "exclude_modules",
	"rank_pattern", "alpha_pattern", "target_parameters", "layer_replication",
	"trainable_token_indices", "alora_invocation_tokens", "arrow_config", "kasa_config",
	"monteclora_config", "velora_config", "use_bdlora", "use_qalora",
}

// ReadConfig parses a PEFT adapter_config.json into a Config (and the base
// model name). Features shoggo does not implement (DoRA, trained biases,
// modules_to_save, per-module rank or alpha patterns, layer selection,
// excluded modules, target parameters and the other LoRA variants listed in
// unsupportedFields) are errors naming the file and field.
func ReadConfig(path string) (Config, string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, "", err
	}
	var pc peftConfig
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&pc); err != nil {
		return Config{}, "", fmt.Errorf("%s: %w", path, err)
	}
	bad := func(format string, args ...any) (Config, string, error) {
		return Config{}, "", fmt.Errorf("%s: %s", path, fmt.Sprintf(format, args...))
	}
	if pc.PeftType == nil || *pc.PeftType != "LORA" {
		got := "missing"
		if pc.PeftType != nil {
			got = fmt.Sprintf("%q", *pc.PeftType)
		}
		return bad("peft_type is %s, want \"LORA\"", got)
	}
	if pc.R == nil {
		return bad("missing field r")
	}
	var cfg Config
	cfg.R = *pc.R
	cfg.Alpha = 8 // PEFT's default lora_alpha
	if pc.LoraAlpha != nil {
		cfg.Alpha = *pc.LoraAlpha
	}
	if pc.LoraDropout != nil {
		cfg.Dropout = *pc.LoraDropout
	}
	if pc.UseRSLoRA != nil {
		cfg.UseRSLoRA = *pc.UseRSLoRA
	}
	if pc.Bias != nil && *pc.Bias != "none" {
		return bad("bias is %q: only \"none\" is supported", *pc.Bias)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return bad("%v", err)
	}
	for _, k := range unsupportedFields {
		if v, ok := raw[k]; ok && !empty(v) {
			return bad("%s is %s: not supported", k, strings.TrimSpace(string(v)))
		}
	}
	if pc.TaskType != nil && *pc.TaskType != "CAUSAL_LM" {
		return bad("task_type is %q, want \"CAUSAL_LM\"", *pc.TaskType)
	}
	if empty(pc.TargetModules) {
		return bad("target_modules is missing or empty")
	}
	var one string
	if err := json.Unmarshal(pc.TargetModules, &one); err == nil {
		if strings.EqualFold(one, AllLinear) {
			cfg.Targets = []string{AllLinear}
		} else {
			cfg.TargetRegex = one
		}
	} else if err := json.Unmarshal(pc.TargetModules, &cfg.Targets); err != nil {
		return bad("target_modules: want a string or a list of strings: %v", err)
	}
	if err := cfg.Validate(); err != nil {
		return bad("%v", err)
	}
	base := ""
	if pc.BaseModel != nil {
		base = *pc.BaseModel
	}
	return cfg, base, nil
}

// Load reads a PEFT adapter directory (adapter_config.json and
// adapter_model.safetensors) and applies it to m, in evaluation mode
// (dropout off: call SetTraining(true) to train further). Every adapted
// module's A and B must be present with the right shapes; a tensor the
// config does not explain is an error. Errors name the file and tensor.
func Load(m *model.Transformer, dir string) (*Adapters, error) {
	cfgPath := filepath.Join(dir, ConfigFile)
	cfg, base, err := ReadConfig(cfgPath)
	if err != nil {
		return nil, err
	}
	wPath := filepath.Join(dir, WeightsFile)
	if _, err := os.Stat(wPath); errors.Is(err, os.ErrNotExist) {
		if _, err2 := os.Stat(filepath.Join(dir, "adapter_model.bin")); err2 == nil {
			return nil, fmt.Errorf("%s: adapter_model.bin (pickle) is not supported; re-save with safe_serialization=True", dir)
		}
	}
	f, err := safetensors.Open(wPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	a, err := apply(m, cfg, false)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cfgPath, err)
	}
	fail := func(err error) (*Adapters, error) {
		a.restore()
		return nil, err
	}
	names := f.Names()
	slices.Sort(names)
	for _, n := range names {
		if a.WeightArena.Get(n) == nil {
			return fail(fmt.Errorf("%s: tensor %q is not a LoRA weight of the configured target modules %s", wPath, n, targetsString(&cfg)))
		}
	}
	for _, t := range a.WeightArena.Tensors() {
		info, ok := f.Info(t.Name)
		if !ok {
			return fail(fmt.Errorf("%s: missing tensor %q (shape %v)", wPath, t.Name, t.Shape))
		}
		if !info.Shape.Equal(t.Shape) {
			return fail(fmt.Errorf("%s: tensor %q has shape %v, the model needs %v (r = %d)", wPath, t.Name, info.Shape, t.Shape, cfg.R))
		}
		if !info.DType.IsFloat() {
			return fail(fmt.Errorf("%s: tensor %q has dtype %s, want a float type", wPath, t.Name, info.DType))
		}
		data, err := f.TensorF32(t.Name)
		if err != nil {
			return fail(err)
		}
		backend.FillHost(a.be, t, func(h *tensor.Tensor) {
			if h.DType == tensor.F32 {
				copy(h.F32, data)
				return
			}
			for i, v := range data {
				h.Set(i, float64(v))
			}
		})
	}
	a.BaseModel = base
	a.training = false
	return a, nil
}

// fanInFanOut is PEFT's fan_in_fan_out: the family stores its linear
// weights (in, out) (GPT-2's Conv1D).
func fanInFanOut(f model.Family) bool {
	spec := model.LookupFamily(f)
	return spec != nil && spec.Conv1D
}
