package model

import (
	"strings"
	"testing"

	"github.com/shoggo/shoggo/backend/cpu"
	"github.com/shoggo/shoggo/safetensors"
	"github.com/shoggo/shoggo/tensor"
)

// CountParams agrees with ParamCount (which lists every tensor) on every
// preset small enough to list, and is instant on absurd layer counts.
func TestCountParamsMatchesParamCount(t *testing.T) {
	for name := range Presets {
		cfg, err := LookupPreset(name)
		if err != nil {
			t.Fatal(err)
		}
		got, err := CountParams(cfg)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if want := ParamCount(cfg); got != want {
			t.Errorf("%s: CountParams %d, ParamCount %d", name, got, want)
		}
	}
}

// Absurd sizes are clean errors; sizes that would not fit in memory are
// errors stating the bytes needed.
func TestConfigLimits(t *testing.T) {
	defer func(f func() int64) { memAvailable = f }(memAvailable)
	memAvailable = func() int64 { return 8 << 30 }
	base, _ := LookupPreset("tiny-llama")
	for _, tc := range []struct {
		name  string
		edit  func(c *Config)
		batch int
		want  string // "" : fits
	}{
		{"tiny", func(c *Config) {}, 8, ""},
		{"layers 1e9", func(c *Config) { c.NumHiddenLayers = 1e9 }, 0, "needs about"},
		{"layers 1e5", func(c *Config) {
			c.NumHiddenLayers = 100000
			c.HiddenSize = 2048
			c.IntermediateSize = 8192
			c.NumAttentionHeads = 16
			c.NumKeyValueHeads = 16
		}, 0, "needs about"},
		{"hidden 2560000", func(c *Config) { c.HiddenSize = 2560000 }, 0, "bytes in fp32"},
		{"beyond any machine", func(c *Config) { c.HiddenSize = 1 << 30; c.IntermediateSize = 1 << 30 }, 0, "beyond any machine"},
		{"activations", func(c *Config) {}, 1 << 20, "activations"},
		{"invalid", func(c *Config) { c.NumHiddenLayers = -1 }, 0, "num_hidden_layers"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := *base
			tc.edit(&c)
			err := CheckConfigFits("test", &c, tensor.F32, true, tc.batch, 64)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
}

// Activations alone that exceed the available memory are an error naming
// the batch and the bytes.
func TestCheckActivations(t *testing.T) {
	defer func(f func() int64) { memAvailable = f }(memAvailable)
	memAvailable = func() int64 { return 1 << 30 }
	c, _ := LookupPreset("tiny-llama")
	if err := CheckActivations("x", c, 8, 64); err != nil {
		t.Fatal(err)
	}
	if err := CheckActivations("x", c, 1<<16, 4096); err == nil || !strings.Contains(err.Error(), "batch 65536 x 4096") {
		t.Fatalf("got %v", err)
	}
}

// The config is checked against the checkpoint header: a layer count or
// embedding shape that disagrees is an error naming both.
func TestCheckHeader(t *testing.T) {
	cfg, _ := LookupPreset("tiny-llama")
	dir := t.TempDir()
	m, err := New(cfg, cpu.New(), tensor.F32, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.SaveHF(dir, SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	st, err := safetensors.OpenSharded(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, tc := range []struct {
		name string
		edit func(c *Config)
		want string
	}{
		{"same", func(c *Config) {}, ""},
		{"more layers", func(c *Config) { c.NumHiddenLayers = 100000 }, "num_hidden_layers 100000"},
		{"fewer layers", func(c *Config) { c.NumHiddenLayers = 1 }, "num_hidden_layers 1"},
		{"hidden", func(c *Config) { c.HiddenSize = 2560000 }, "hidden_size 2560000"},
		{"vocab", func(c *Config) { c.VocabSize = 5 }, "vocab_size 5"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := *cfg
			tc.edit(&c)
			err := CheckHeader(&c, st, dir)
			if (err == nil) != (tc.want == "") || (err != nil && !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
}
