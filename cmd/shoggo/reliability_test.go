package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/shoggo/shoggo/backend/device"
	"github.com/shoggo/shoggo/model"
	"github.com/shoggo/shoggo/recipe"
	"github.com/shoggo/shoggo/tensor"
)

var tinyOnce struct {
	sync.Once
	dir string
	err error
}

// tinyModel writes (once per test binary) a random tiny-llama HF
// directory with a small corpus tokenizer and returns a fresh copy of it.
func tinyModel(t *testing.T) string {
	t.Helper()
	tinyOnce.Do(func() {
		dir, err := os.MkdirTemp("", "shoggo-tiny-")
		if err != nil {
			tinyOnce.err = err
			return
		}
		tinyOnce.dir = dir
		tok, err := recipe.DefaultTokenizer(300)
		if err != nil {
			tinyOnce.err = err
			return
		}
		cfg, _ := model.LookupPreset("tiny-llama")
		cfg.VocabSize = tok.VocabSize()
		be, _ := device.Open("cpu")
		m, err := model.New(cfg, be, tensor.F32, true)
		if err != nil {
			tinyOnce.err = err
			return
		}
		m.InitWeights(rand.New(rand.NewPCG(1, 2)))
		if tinyOnce.err = m.SaveHF(dir, model.SaveOptions{}); tinyOnce.err == nil {
			tinyOnce.err = tok.Save(filepath.Join(dir, "tokenizer.json"))
		}
	})
	if tinyOnce.err != nil {
		t.Fatal(tinyOnce.err)
	}
	dst := filepath.Join(t.TempDir(), "model")
	copyDir(t, tinyOnce.dir, dst)
	return dst
}

func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// snapshot reads every file of dir (one level) for before/after comparison.
func snapshot(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if b, err := os.ReadFile(filepath.Join(dir, e.Name())); err == nil {
			out[e.Name()] = b
		}
	}
	return out
}

// No command writes into its input: the output resolving (through "./",
// "..", a trailing slash or a symlink) to the input, inside it, or
// containing it is refused before anything is written, and the input is
// byte for byte unchanged.
func TestNoCommandWritesIntoItsInput(t *testing.T) {
	m := tinyModel(t)
	root := filepath.Dir(m)
	link := filepath.Join(root, "link")
	if err := os.Symlink(m, link); err != nil {
		t.Fatal(err)
	}
	fake := filepath.Join(root, "adapter")
	if err := os.MkdirAll(fake, 0o755); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, m)
	for _, tc := range []struct {
		name string
		run  func([]string) error
		args []string
	}{
		{"convert same", runConvert, []string{"--in", m, "--out", m}},
		{"convert trailing slash", runConvert, []string{"--in", m, "--out", m + "/"}},
		{"convert dot", runConvert, []string{"--in", m, "--out", filepath.Join(m, "..", "model")}},
		{"convert symlink", runConvert, []string{"--in", m, "--out", link}},
		{"convert inside", runConvert, []string{"--in", m, "--out", filepath.Join(m, "sub")}},
		{"quantize symlink", runQuantize, []string{"--model", m, "--out", link}},
		{"quantize same via symlink input", runQuantize, []string{"--model", link, "--out", m}},
		{"merge into base", runMerge, []string{"--base", m, "--adapter", fake, "--out", link}},
		{"merge into adapter", runMerge, []string{"--base", m, "--adapter", fake, "--out", fake}},
		{"sft out contains base", runSFT, []string{"--model", m, "--out", root, "--steps", "1"}},
		{"sft out is base", runSFT, []string{"--model", m, "--out", link, "--steps", "1"}},
		{"pretrain init inside out", runPretrain, []string{"--init", m, "--out", root, "--steps", "1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.run(tc.args)
			if err == nil || !strings.Contains(err.Error(), "input") {
				t.Fatalf("%v: got %v, want a refusal naming the input", tc.args, err)
			}
			after := snapshot(t, m)
			if len(after) != len(before) {
				t.Fatalf("input now has %d files, had %d", len(after), len(before))
			}
			for name, b := range before {
				if !bytes.Equal(after[name], b) {
					t.Fatalf("%s changed", name)
				}
			}
		})
	}
	// a sibling output still works
	if err := runConvert([]string{"--in", link, "--out", filepath.Join(root, "conv"), "--dtype", "fp32"}); err != nil {
		t.Fatal(err)
	}
}

// setConfig rewrites one field of dir/config.json.
func setConfig(t *testing.T, dir, key string, value any) {
	t.Helper()
	p := filepath.Join(dir, "config.json")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	m[key] = value
	if b, err = json.Marshal(m); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// Config values that disagree with the checkpoint or cannot fit are clean
// errors from every command that loads a model, before any allocation
// (the test would crash or run out of memory otherwise).
func TestConfigSizesCheckedBeforeAllocation(t *testing.T) {
	for _, tc := range []struct {
		key   string
		value any
		want  string
	}{
		{"num_hidden_layers", 100000, "num_hidden_layers 100000"},
		{"num_hidden_layers", 1e9, "num_hidden_layers 1000000000"},
		{"hidden_size", 2560000, "hidden_size 2560000"},
		{"vocab_size", 7, "vocab_size 7"},
	} {
		m := tinyModel(t)
		setConfig(t, m, tc.key, tc.value)
		out := filepath.Join(filepath.Dir(m), "out")
		for name, run := range map[string]func() error{
			"generate": func() error { return runGenerate([]string{"--model", m, "--prompt", "a", "--max-new-tokens", "1"}) },
			"convert":  func() error { return runConvert([]string{"--in", m, "--out", out}) },
			"merge":    func() error { return runMerge([]string{"--base", m, "--adapter", out, "--out", out + "2"}) },
			"quantize": func() error { return runQuantize([]string{"--model", m, "--out", out}) },
			"sft":      func() error { return runSFT([]string{"--model", m, "--out", out, "--steps", "1"}) },
			"pretrain": func() error {
				return runPretrain(append([]string{"--init", m, "--out", out, "--steps", "1", "--overwrite"}, tinyPretrain...))
			},
		} {
			t.Run(fmt.Sprint(tc.key, "=", tc.value, "/", name), func(t *testing.T) {
				err := run()
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("got %v, want an error naming %q", err, tc.want)
				}
			})
		}
	}
	// a fresh model from a config file: the bytes it would need
	cfg := filepath.Join(t.TempDir(), "config.json")
	os.WriteFile(cfg, []byte(`{"model_type":"llama","vocab_size":32000,"hidden_size":8192,"intermediate_size":28672,"num_hidden_layers":1000,`+
		`"num_attention_heads":64,"num_key_value_heads":8,"max_position_embeddings":4096,"rms_norm_eps":1e-5,"rope_theta":10000,"hidden_act":"silu"}`), 0o644)
	bad := filepath.Join(t.TempDir(), "bad.json")
	os.WriteFile(bad, []byte(`{"model_type":"llama",`), 0o644)
	if err := runInfo([]string{bad}); err == nil || strings.Count(err.Error(), "config.json") > 0 || !strings.Contains(err.Error(), bad) {
		t.Errorf("info on a truncated config: %v (want the path named once)", err)
	}
	err := runPretrain([]string{"--config", cfg, "--out", t.TempDir(), "--steps", "1", "--vocab-size", "300"})
	if err == nil || !strings.Contains(err.Error(), "needs about") || !strings.Contains(err.Error(), "available") {
		t.Fatalf("pretrain --config with 1000 layers of 8192: %v", err)
	}
}

// poison writes a NaN over the first element of the data section of
// dir/model.safetensors (an F32 tensor in a tiny model).
func poison(t *testing.T, dir string) {
	t.Helper()
	p := filepath.Join(dir, "model.safetensors")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	n := int(binary.LittleEndian.Uint64(b[:8]))
	binary.LittleEndian.PutUint32(b[8+n:], math.Float32bits(float32(math.NaN())))
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// --check-finite refuses NaN weights naming the file and tensor; it is on
// by default for merge.
func TestCheckFinite(t *testing.T) {
	m := tinyModel(t)
	poison(t, m)
	root := filepath.Dir(m)
	adapter := filepath.Join(root, "adapter")
	os.MkdirAll(adapter, 0o755)
	for _, tc := range []struct {
		name string
		run  func([]string) error
		args []string
	}{
		{"merge (default on)", runMerge, []string{"--base", m, "--adapter", adapter, "--out", filepath.Join(root, "merged")}},
		{"convert", runConvert, []string{"--in", m, "--out", filepath.Join(root, "c"), "--check-finite"}},
		{"quantize", runQuantize, []string{"--model", m, "--out", filepath.Join(root, "q"), "--check-finite"}},
		{"generate", runGenerate, []string{"--model", m, "--prompt", "a", "--check-finite"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.run(tc.args)
			if err == nil || !strings.Contains(err.Error(), "NaN") || !strings.Contains(err.Error(), "model.safetensors: tensor ") {
				t.Fatalf("got %v", err)
			}
		})
	}
}

// --skip-invalid lists each skipped line with its number and reason.
func TestSkipInvalidListsLines(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "d.jsonl")
	var lines []string
	for i := 0; i < 8; i++ {
		lines = append(lines, fmt.Sprintf(`{"instruction":"%d+1","output":"%d"}`, i, i+1))
	}
	lines[2], lines[5] = "not json", `{"instruction":"x"}`
	os.WriteFile(p, []byte(strings.Join(lines, "\n")+"\n"), 0o644)
	stderr := os.Stderr
	r, w, _ := os.Pipe()
	os.Stderr = w
	err := runSFT([]string{"--data", p, "--skip-invalid", "--preset", "tiny-llama", "--steps", "1", "--batch", "2", "--out", filepath.Join(dir, "o"), "--threads", "1"})
	os.Stderr = stderr
	w.Close()
	b, _ := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"skipped 2 invalid line(s)", p + ":3: invalid JSON", p + `:6: missing "output"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("log lacks %q:\n%s", want, b)
		}
	}
}
