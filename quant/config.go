package quant

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// Config is the "quantization_config" object of a quantized model's
// config.json. NF4, FP4 and int8 use Hugging Face's BitsAndBytesConfig
// fields, so transformers + bitsandbytes load shoggo's files and shoggo
// loads theirs; int4 uses quant_method "shoggo" with GPTQ-like field names.
type Config struct {
	QuantMethod string `json:"quant_method"` // "bitsandbytes" or "shoggo"

	// bitsandbytes (Hugging Face BitsAndBytesConfig.to_dict()).
	LoadIn4bit                  bool     `json:"load_in_4bit,omitempty"`
	LoadIn8bit                  bool     `json:"load_in_8bit,omitempty"`
	Bnb4bitQuantType            string   `json:"bnb_4bit_quant_type,omitempty"` // nf4 | fp4
	Bnb4bitUseDoubleQuant       bool     `json:"bnb_4bit_use_double_quant,omitempty"`
	Bnb4bitComputeDType         string   `json:"bnb_4bit_compute_dtype,omitempty"`
	Bnb4bitQuantStorage         string   `json:"bnb_4bit_quant_storage,omitempty"`
	LlmInt8Threshold            *float64 `json:"llm_int8_threshold,omitempty"`
	LlmInt8HasFP16Weight        bool     `json:"llm_int8_has_fp16_weight,omitempty"`
	LlmInt8SkipModules          []string `json:"llm_int8_skip_modules,omitempty"`
	LlmInt8EnableFP32CPUOffload bool     `json:"llm_int8_enable_fp32_cpu_offload,omitempty"`
	LoadIn4bitPrivate           *bool    `json:"_load_in_4bit,omitempty"`
	LoadIn8bitPrivate           *bool    `json:"_load_in_8bit,omitempty"`

	// shoggo extensions. ShoggoBlockSize records a NF4/FP4 block size other
	// than bitsandbytes' fixed 64 (transformers cannot load those).
	ShoggoBlockSize int `json:"shoggo_blocksize,omitempty"`

	// shoggo int4 (quant_method "shoggo").
	Format    string `json:"format,omitempty"` // "int4"
	Bits      int    `json:"bits,omitempty"`   // 4
	GroupSize int    `json:"group_size,omitempty"`
	Sym       *bool  `json:"sym,omitempty"`

	// ModulesToNotConvert lists modules kept in full precision (both methods;
	// transformers reads llm_int8_skip_modules for bitsandbytes).
	ModulesToNotConvert []string `json:"modules_to_not_convert,omitempty"`
}

// ConfigFor returns the quantization_config describing layers made by
// QuantizeLinear(format, opts); skip lists modules left unquantized.
func ConfigFor(format string, opts Options, skip []string) (*Config, error) {
	t, f := true, false
	switch format {
	case NF4, FP4:
		bs := opts.BlockSize
		if bs == 0 {
			bs = DefaultBlockSize
		}
		if !validBlockSize(bs) {
			return nil, fmt.Errorf("quant: blocksize %d is not one of %v", bs, validBlockSizes)
		}
		c := &Config{QuantMethod: "bitsandbytes", LoadIn4bit: true, LoadIn4bitPrivate: &t, LoadIn8bitPrivate: &f,
			Bnb4bitQuantType: format, Bnb4bitUseDoubleQuant: opts.DoubleQuant,
			Bnb4bitComputeDType: "float32", Bnb4bitQuantStorage: "uint8", LlmInt8SkipModules: skip}
		if bs != DefaultBlockSize {
			c.ShoggoBlockSize = bs
		}
		return c, nil
	case Int8:
		zero := 0.0
		return &Config{QuantMethod: "bitsandbytes", LoadIn8bit: true, LoadIn4bitPrivate: &f, LoadIn8bitPrivate: &t,
			LlmInt8Threshold: &zero, LlmInt8SkipModules: skip}, nil
	case Int4:
		g := opts.GroupSize
		if g == 0 {
			g = DefaultGroupSize
		}
		if !validGroupSize(g) {
			return nil, fmt.Errorf("quant: group size %d is not one of %v", g, validGroupSizes)
		}
		sym := !opts.Asymmetric
		return &Config{QuantMethod: "shoggo", Format: Int4, Bits: 4, GroupSize: g, Sym: &sym, ModulesToNotConvert: skip}, nil
	}
	return nil, fmt.Errorf("quant: unknown format %q (want nf4, fp4, int8 or int4)", format)
}

// ParseConfig parses and validates a quantization_config object. Fields
// other than those of Config are ignored (transformers adds more over time).
func ParseConfig(data []byte) (*Config, error) {
	var c Config
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("quantization_config: %w", err)
	}
	if _, err := dec.Token(); err == nil {
		return nil, fmt.Errorf("quantization_config: data after the JSON object")
	}
	if _, _, err := c.LayerFormat(); err != nil {
		return nil, err
	}
	return &c, nil
}

// LayerFormat returns the layer format and options the config describes.
func (c *Config) LayerFormat() (string, Options, error) {
	fail := func(format string, args ...any) (string, Options, error) {
		return "", Options{}, fmt.Errorf("quantization_config: "+format, args...)
	}
	switch c.QuantMethod {
	case "bitsandbytes":
		if c.LoadIn4bit == c.LoadIn8bit {
			return fail("exactly one of load_in_4bit and load_in_8bit must be true")
		}
		if c.LoadIn8bit {
			if c.LlmInt8HasFP16Weight {
				return fail("llm_int8_has_fp16_weight is not supported")
			}
			return Int8, Options{}, nil
		}
		qt := c.Bnb4bitQuantType
		if qt == "" {
			qt = FP4 // transformers' default
		}
		if qt != NF4 && qt != FP4 {
			return fail("bnb_4bit_quant_type %q is not nf4 or fp4", c.Bnb4bitQuantType)
		}
		if s := c.Bnb4bitQuantStorage; s != "" && s != "uint8" {
			return fail("bnb_4bit_quant_storage %q is not supported (only uint8)", s)
		}
		bs := DefaultBlockSize
		if c.ShoggoBlockSize != 0 {
			bs = c.ShoggoBlockSize
		}
		if !validBlockSize(bs) {
			return fail("shoggo_blocksize %d is not one of %v", bs, validBlockSizes)
		}
		return qt, Options{BlockSize: bs, DoubleQuant: c.Bnb4bitUseDoubleQuant}, nil
	case "shoggo":
		if c.Format != Int4 {
			return fail("format %q is not int4", c.Format)
		}
		if c.Bits != 4 {
			return fail("bits %d with format int4", c.Bits)
		}
		if !validGroupSize(c.GroupSize) {
			return fail("group_size %d is not one of %v", c.GroupSize, validGroupSizes)
		}
		if c.Sym == nil {
			return fail("int4 without \"sym\"")
		}
		return Int4, Options{GroupSize: c.GroupSize, Asymmetric: !*c.Sym}, nil
	}
	return fail("unknown quant_method %q (want bitsandbytes or shoggo)", c.QuantMethod)
}

// Skipped reports whether module name is listed as not quantized, matching
// as transformers does: the name itself, a component prefix ("key." inside
// the name) or a trailing component.
func (c *Config) Skipped(name string) bool {
	for _, s := range slices.Concat(c.LlmInt8SkipModules, c.ModulesToNotConvert) {
		if s == "" {
			continue
		}
		if name == s || strings.Contains(name, s+".") || strings.HasSuffix(name, "."+s) {
			return true
		}
	}
	return false
}
