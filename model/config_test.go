package model

import (
	"strings"
	"testing"
)

// Exact totals computed from the published configs; each must round to the
// figure the model's publisher lists (Preset.Published), and GPT-2's must
// equal it exactly.
func TestPresetParamCounts(t *testing.T) {
	want := map[string]int64{
		"gpt2":           124_439_808,
		"qwen1.5-0.5b":   619_570_176,
		"qwen1.5-1.8b":   1_836_828_672,
		"qwen2-0.5b":     494_032_768,
		"qwen3-0.6b":     596_049_920,
		"smollm-135m":    134_515_008,
		"tinyllama-1.1b": 1_100_048_384,
	}
	for name, n := range want {
		p := Presets[name]
		c := p.Config
		if err := c.Validate(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		got := ParamCount(&c)
		if got != n {
			t.Errorf("%s: %d parameters, want %d", name, got, n)
		}
		// Published figures are rounded (3 significant digits for most,
		// 2 for 1.1B, 1 for Qwen3's 0.6B): the exact total must round to
		// the published one at its own precision.
		if p.Published == 0 {
			t.Errorf("%s: no published total", name)
			continue
		}
		unit := int64(1)
		for p.Published%(unit*10) == 0 {
			unit *= 10
		}
		if r := (got + unit/2) / unit * unit; r != p.Published {
			t.Errorf("%s: %d parameters rounds to %d, not the published %d", name, got, r, p.Published)
		}
	}
	for _, name := range PresetNames() {
		c := Presets[name].Config
		if err := c.Validate(); err != nil {
			t.Errorf("preset %s: %v", name, err)
		}
		if Presets[name].Source == "" {
			t.Errorf("preset %s cites no source", name)
		}
	}
}

func TestValidateNamesFields(t *testing.T) {
	base := Presets["tiny-llama"].Config
	cases := []struct {
		mutate func(c *Config)
		want   []string
	}{
		{func(c *Config) { c.HiddenSize = 30 }, []string{"hidden_size = 30", "num_attention_heads = 4"}},
		{func(c *Config) { c.NumKeyValueHeads = 3 }, []string{"num_attention_heads = 4", "num_key_value_heads = 3"}},
		{func(c *Config) { c.VocabSize = 0 }, []string{"vocab_size = 0"}},
		{func(c *Config) { c.RMSNormEps = 0 }, []string{"rms_norm_eps"}},
		{func(c *Config) { c.RopeTheta = -1 }, []string{"rope_theta"}},
		{func(c *Config) { c.HiddenAct = "relu" }, []string{"hidden_act", "relu"}},
		{func(c *Config) { c.ModelType = "bert" }, []string{"model_type", "bert"}},
		{func(c *Config) { c.HiddenSize = 36; c.NumAttentionHeads = 12; c.NumKeyValueHeads = 12 }, []string{"head dim", "even"}},
	}
	for i, tc := range cases {
		c := base
		tc.mutate(&c)
		err := c.Validate()
		if err == nil {
			t.Errorf("case %d: no error", i)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("case %d: error %q does not mention %q", i, err, w)
			}
		}
	}
}

func TestParseConfigGPT2Names(t *testing.T) {
	js := `{"model_type":"gpt2","vocab_size":50257,"n_embd":768,"n_layer":12,"n_head":12,"n_positions":1024,"n_inner":null,"activation_function":"gelu_new","layer_norm_epsilon":1e-05}`
	c, err := ParseConfig([]byte(js))
	if err != nil {
		t.Fatal(err)
	}
	if c.HiddenSize != 768 || c.IntermediateSize != 3072 || c.NumKeyValueHeads != 12 || !c.TieWordEmbeddings {
		t.Fatalf("bad mapping: %+v", c)
	}
	if ParamCount(c) != 124439808 {
		t.Fatalf("param count %d", ParamCount(c))
	}
	// Round trip through HFJSON.
	data, err := c.HFJSON()
	if err != nil {
		t.Fatal(err)
	}
	c2, err := ParseConfig(data)
	if err != nil {
		t.Fatal(err)
	}
	if *c2 != *c {
		t.Fatalf("round trip: %+v != %+v", c2, c)
	}
}

func TestParseConfigErrors(t *testing.T) {
	for _, js := range []string{
		`{`,
		`{"vocab_size": 10}`,
		`{"model_type":"llama","vocab_size":10,"hidden_size":32,"intermediate_size":64,"num_hidden_layers":1,"num_attention_heads":4,"max_position_embeddings":16,"rope_scaling":{"type":"linear","factor":2}}`,
		`{"model_type":"llama","vocab_size":"many"}`,
		`{"model_type":"qwen2","vocab_size":10,"hidden_size":32,"intermediate_size":64,"num_hidden_layers":1,"num_attention_heads":4,"max_position_embeddings":16,"use_sliding_window":true}`,
	} {
		if _, err := ParseConfig([]byte(js)); err == nil {
			t.Errorf("no error for %s", js)
		}
	}
}

func FuzzParseConfig(f *testing.F) {
	for _, name := range PresetNames() {
		c := Presets[name].Config
		data, _ := c.HFJSON()
		f.Add(data)
	}
	f.Add([]byte(`{"model_type":"gpt2","n_embd":-4}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseConfig(data)
		if err == nil {
			if err := c.Validate(); err != nil {
				t.Fatalf("ParseConfig accepted an invalid config: %v", err)
			}
			ParamSpecs(c)
		}
	})
}
