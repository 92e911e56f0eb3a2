package lora

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shoggo/shoggo/backend/cpu"
	"github.com/shoggo/shoggo/model"
	"github.com/shoggo/shoggo/safetensors"
	"github.com/shoggo/shoggo/tensor"
)

const (
	modelsDir = "../testdata/models"
	loraDir   = "../testdata/lora"
)

func readInts(t *testing.T, f *safetensors.File, name string) ([]int32, tensor.Shape) {
	t.Helper()
	ids, err := f.TensorI32(name)
	if err != nil {
		t.Fatal(err)
	}
	info, _ := f.Info(name)
	return ids, info.Shape
}

func readFloats(t *testing.T, f *safetensors.File, name string) []float64 {
	t.Helper()
	x, err := f.TensorF32(name)
	if err != nil {
		t.Fatal(err)
	}
	return f32s(x)
}

func loadBase(t *testing.T, name string) *model.Transformer {
	t.Helper()
	m, _, err := model.LoadHF(filepath.Join(modelsDir, name), cpu.New(), tensor.F32, false)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestPEFTParity loads every PEFT-made adapter of testdata/lora/*_peft
// (reference/make_lora_fixtures.py) onto its base model and compares with
// PEFT: logits (max abs diff <= 1e-4), the loss (relative 1e-5), the
// gradient of every adapter tensor (max abs diff <= 1e-4 + 1e-3·max|g|) and
// the print_trainable_parameters line.
func TestPEFTParity(t *testing.T) {
	dirs, _ := filepath.Glob(filepath.Join(loraDir, "*_peft"))
	if len(dirs) == 0 {
		t.Skip("no PEFT fixtures (run reference/.venv/bin/python reference/make_lora_fixtures.py)")
	}
	for _, dir := range dirs {
		base := strings.TrimSuffix(filepath.Base(dir), "_peft")
		t.Run(base, func(t *testing.T) {
			m := loadBase(t, base)
			a, err := Load(m, dir)
			if err != nil {
				t.Fatal(err)
			}
			f, err := safetensors.Open(filepath.Join(dir, "fixtures.safetensors"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if got, want := a.Report(m), f.Metadata()["report"]; got != want {
				t.Errorf("report\n got %s\nwant %s", got, want)
			}
			ids, shape := readInts(t, f, "input_ids")
			labels, _ := readInts(t, f, "labels")
			B, T := shape[0], shape[1]
			b := &model.Batch{B: B, T: T, IDs: ids, Targets: model.ShiftLabels(labels, B, T)}
			got := logits(t, m, b)
			d := maxDiff(got, readFloats(t, f, "logits"))
			t.Logf("logits max abs diff vs PEFT %.3g", d)
			if d > 1e-4 {
				t.Errorf("logits differ from PEFT's by %g", d)
			}
			count := 0
			for _, x := range b.Targets {
				if x >= 0 {
					count++
				}
			}
			a.ZeroGrad()
			sum, n, err := m.ForwardBackward(b, 1/float64(count))
			if err != nil {
				t.Fatal(err)
			}
			loss, want := sum/float64(n), readFloats(t, f, "loss")[0]
			if math.Abs(loss-want) > 1e-5*math.Abs(want) {
				t.Errorf("loss %.7f, PEFT %.7f", loss, want)
			}
			var worst float64
			for _, g := range a.Grads() {
				wantG := readFloats(t, f, "grad."+g.Name)
				d, mx := maxDiff(f32s(g.F32), wantG), 0.0
				for _, v := range wantG {
					mx = math.Max(mx, math.Abs(v))
				}
				worst = math.Max(worst, d/(1e-4+1e-3*mx))
				if d > 1e-4+1e-3*mx {
					t.Errorf("grad %s: max abs diff %.3g (max |g| %.3g)", g.Name, d, mx)
				}
			}
			t.Logf("%d adapter gradients within tolerance (worst diff/tol %.3f)", len(a.Grads()), worst)
		})
	}
}

// shoggoCases are the adapters shoggo writes for PEFT to load
// (reference/check_peft_load.py).
var shoggoCases = []struct {
	base string
	cfg  Config
}{
	{"llama", Config{R: 4, Alpha: 8, Targets: []string{"q_proj", "k_proj", "v_proj", "o_proj"}, UseRSLoRA: true, Seed: 31}},
	{"gpt2", Config{R: 4, Alpha: 16, Targets: []string{AllLinear}, Seed: 32}}, // c_attn, both c_proj, c_fc
	{"qwen2", Config{R: 2, Alpha: 4, Targets: []string{"q_proj", "v_proj", "down_proj"}, Seed: 33}},
	{"qwen3", Config{R: 4, Alpha: 8, Targets: []string{AllLinear}, Seed: 34}}, // q_proj (128, 64): head_dim 32 x 4 heads
}

// TestShoggoFixtures: with SHOGGO_WRITE_FIXTURES=1, writes a shoggo adapter
// (random B) and shoggo's logits for each case to
// testdata/lora/<base>_shoggo/, for reference/check_peft_load.py to compare
// with PEFT. Otherwise it checks that the committed adapters still load and
// reproduce the committed logits.
func TestShoggoFixtures(t *testing.T) {
	write := os.Getenv("SHOGGO_WRITE_FIXTURES") == "1"
	for _, c := range shoggoCases {
		t.Run(c.base, func(t *testing.T) {
			dir := filepath.Join(loraDir, c.base+"_shoggo")
			m := loadBase(t, c.base)
			if !write {
				if _, err := os.Stat(dir); err != nil {
					t.Skipf("%s not written (SHOGGO_WRITE_FIXTURES=1 go test ./lora/ -run TestShoggoFixtures)", dir)
				}
				a, err := Load(m, dir)
				if err != nil {
					t.Fatal(err)
				}
				if a.BaseModel != "testdata/models/"+c.base {
					t.Errorf("base_model_name_or_path %q", a.BaseModel)
				}
				f, err := safetensors.Open(filepath.Join(dir, "fixtures.safetensors"))
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				ids, shape := readInts(t, f, "input_ids")
				b := &model.Batch{B: shape[0], T: shape[1], IDs: ids}
				if d := maxDiff(logits(t, m, b), readFloats(t, f, "logits")); d > 1e-5 {
					t.Errorf("logits differ from the committed ones by %g", d)
				}
				return
			}
			in, err := safetensors.Open(filepath.Join(modelsDir, c.base, "fixtures.safetensors"))
			if err != nil {
				t.Fatal(err)
			}
			defer in.Close()
			ids, shape := readInts(t, in, "input_ids")
			B, T := shape[0], shape[1]
			b := &model.Batch{B: B, T: T, IDs: ids}
			a, err := Apply(m, c.cfg)
			if err != nil {
				t.Fatal(err)
			}
			randomB(a, c.cfg.Seed, 0.2)
			a.SetTraining(false)
			a.BaseModel = "testdata/models/" + c.base
			if err := os.RemoveAll(dir); err != nil {
				t.Fatal(err)
			}
			if err := a.Save(dir); err != nil {
				t.Fatal(err)
			}
			lg := logits(t, m, b)
			ids64 := tensor.New(tensor.I64, B, T)
			for i, v := range ids {
				binary.LittleEndian.PutUint64(ids64.Bytes[8*i:], uint64(int64(v)))
			}
			ids64.Name = "input_ids"
			lt := tensor.New(tensor.F32, B, T, m.Cfg.VocabSize)
			for i, v := range lg {
				lt.F32[i] = float32(v)
			}
			lt.Name = "logits"
			meta := map[string]string{"report": a.Report(m), "config": fmt.Sprintf("%+v", c.cfg)}
			if err := safetensors.Write(filepath.Join(dir, "fixtures.safetensors"), []*tensor.Tensor{ids64, lt}, meta); err != nil {
				t.Fatal(err)
			}
			t.Logf("wrote %s: %s", dir, a.Report(m))
		})
	}
}

// TestSaveLoad: Save then Load reproduces the weights bit for bit, the
// config, and the logits; the JSON has PEFT's fields.
func TestSaveLoad(t *testing.T) {
	for _, c := range []struct {
		preset string
		cfg    Config
	}{
		{"tiny-gpt2", Config{R: 3, Alpha: 6, Dropout: 0.05, Targets: []string{"c_attn", "c_proj"}, Seed: 1}},
		{"tiny-llama", Config{R: 2, Alpha: 7.5, Targets: []string{AllLinear}, UseRSLoRA: true, Seed: 2}},
		{"tiny-qwen2", Config{R: 2, Alpha: 4, TargetRegex: `model\.layers\.\d+\.mlp\..*`, Seed: 3}},
		{"tiny-qwen3", Config{R: 2, Alpha: 4, Targets: []string{"q_proj", "v_proj"}, Seed: 4}},
	} {
		t.Run(c.preset, func(t *testing.T) {
			m := tinyModel(t, c.preset, tensor.F32, false, 1)
			a, err := Apply(m, c.cfg)
			if err != nil {
				t.Fatal(err)
			}
			randomB(a, 4, 0.3)
			a.SetTraining(false)
			a.BaseModel = "some/base"
			b := testBatch(1, 2, 5, m.Cfg.VocabSize)
			want := logits(t, m, b)
			dir := t.TempDir()
			if err := a.Save(dir); err != nil {
				t.Fatal(err)
			}
			var js map[string]any
			data, _ := os.ReadFile(filepath.Join(dir, ConfigFile))
			if err := json.Unmarshal(data, &js); err != nil {
				t.Fatal(err)
			}
			if js["peft_type"] != "LORA" || js["task_type"] != "CAUSAL_LM" || js["bias"] != "none" ||
				js["r"] != float64(c.cfg.R) || js["lora_alpha"] != c.cfg.Alpha || js["use_rslora"] != c.cfg.UseRSLoRA ||
				js["fan_in_fan_out"] != (m.Cfg.Family() == model.GPT2) || js["base_model_name_or_path"] != "some/base" {
				t.Errorf("adapter_config.json: %s", data)
			}
			if c.cfg.Targets != nil && c.cfg.Targets[0] == AllLinear {
				if tm := js["target_modules"].([]any); len(tm) != len(a.Modules) {
					t.Errorf("all-linear saved as %v", tm)
				}
			}
			m2 := tinyModel(t, c.preset, tensor.F32, false, 1)
			a2, err := Load(m2, dir)
			if err != nil {
				t.Fatal(err)
			}
			if a2.Training() {
				t.Error("Load returned adapters in training mode")
			}
			if a2.Cfg.R != c.cfg.R || a2.Cfg.Alpha != c.cfg.Alpha || a2.Cfg.Dropout != c.cfg.Dropout ||
				a2.Cfg.UseRSLoRA != c.cfg.UseRSLoRA || a2.BaseModel != "some/base" || len(a2.Modules) != len(a.Modules) {
				t.Errorf("loaded config %+v, saved %+v", a2.Cfg, c.cfg)
			}
			if d := maxDiff(f32s(a2.WeightArena.Flat().F32), f32s(a.WeightArena.Flat().F32)); d != 0 {
				t.Errorf("weights differ by %g after the round trip", d)
			}
			if d := maxDiff(logits(t, m2, b), want); d != 0 {
				t.Errorf("logits differ by %g after the round trip", d)
			}
		})
	}
}

// TestLoadErrors: a bad adapter directory is an error naming the file and,
// for weights, the tensor; a failed Load leaves the model unchanged.
func TestLoadErrors(t *testing.T) {
	m := tinyModel(t, "tiny-llama", tensor.F32, false, 1)
	a, err := Apply(m, Config{R: 2, Alpha: 4, Targets: []string{"q_proj", "v_proj"}})
	if err != nil {
		t.Fatal(err)
	}
	good := t.TempDir()
	if err := a.Save(good); err != nil {
		t.Fatal(err)
	}
	cfgJSON, _ := os.ReadFile(filepath.Join(good, ConfigFile))
	st, err := safetensors.Open(filepath.Join(good, WeightsFile))
	if err != nil {
		t.Fatal(err)
	}
	var ts []*tensor.Tensor
	for _, n := range st.Names() {
		x, _ := st.Tensor(n)
		x.Name = n
		ts = append(ts, x)
	}
	st.Close()
	qA := "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"
	cases := []struct {
		name    string
		edit    func(cfg map[string]any, ts []*tensor.Tensor) []*tensor.Tensor
		wantMsg []string
	}{
		{"unknown tensor", func(_ map[string]any, ts []*tensor.Tensor) []*tensor.Tensor {
			x := tensor.New(tensor.F32, 2, 16)
			x.Name = "base_model.model.model.layers.0.self_attn.k_proj.lora_A.weight"
			return append(ts, x)
		}, []string{WeightsFile, "k_proj.lora_A.weight", "not a LoRA weight"}},
		{"missing tensor", func(_ map[string]any, ts []*tensor.Tensor) []*tensor.Tensor {
			var out []*tensor.Tensor
			for _, x := range ts {
				if x.Name != qA {
					out = append(out, x)
				}
			}
			return out
		}, []string{WeightsFile, "missing tensor", qA}},
		{"wrong rank", func(cfg map[string]any, ts []*tensor.Tensor) []*tensor.Tensor {
			cfg["r"] = 3
			return ts
		}, []string{WeightsFile, "shape [2, 16]", "[3, 16]"}},
		{"dora", func(cfg map[string]any, ts []*tensor.Tensor) []*tensor.Tensor {
			cfg["use_dora"] = true
			return ts
		}, []string{ConfigFile, "use_dora"}},
		{"not lora", func(cfg map[string]any, ts []*tensor.Tensor) []*tensor.Tensor {
			cfg["peft_type"] = "IA3"
			return ts
		}, []string{ConfigFile, `"IA3"`}},
		{"rank pattern", func(cfg map[string]any, ts []*tensor.Tensor) []*tensor.Tensor {
			cfg["rank_pattern"] = map[string]any{"q_proj": 8}
			return ts
		}, []string{ConfigFile, "rank_pattern"}},
		{"no match", func(cfg map[string]any, ts []*tensor.Tensor) []*tensor.Tensor {
			cfg["target_modules"] = []string{"c_attn"}
			return ts
		}, []string{ConfigFile, "match no module"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			var cfg map[string]any
			json.Unmarshal(cfgJSON, &cfg)
			out := c.edit(cfg, append([]*tensor.Tensor(nil), ts...))
			js, _ := json.Marshal(cfg)
			os.WriteFile(filepath.Join(dir, ConfigFile), js, 0o644)
			if err := safetensors.Write(filepath.Join(dir, WeightsFile), out, nil); err != nil {
				t.Fatal(err)
			}
			m := tinyModel(t, "tiny-llama", tensor.F32, false, 1)
			q := m.Blocks[0].Q
			_, err := Load(m, dir)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range c.wantMsg {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if m.Blocks[0].Q != q {
				t.Error("failed Load left an adapter in the model")
			}
		})
	}
}

// TestMergeDir merges the PEFT-made GPT-2 adapter into its base and checks
// the written model's logits against PEFT's adapter logits.
func TestMergeDir(t *testing.T) {
	for _, base := range []string{"gpt2", "llama"} {
		t.Run(base, func(t *testing.T) {
			adapter := filepath.Join(loraDir, base+"_peft")
			if _, err := os.Stat(adapter); err != nil {
				t.Skip(err)
			}
			out := t.TempDir()
			if err := MergeDir(filepath.Join(modelsDir, base), adapter, out); err != nil {
				t.Fatal(err)
			}
			// generation_config.json is copied with the tokenizer files.
			want, _ := os.ReadFile(filepath.Join(modelsDir, base, "generation_config.json"))
			if got, err := os.ReadFile(filepath.Join(out, "generation_config.json")); err != nil || string(got) != string(want) {
				t.Errorf("generation_config.json not copied: %v", err)
			}
			m, warnings, err := model.LoadHF(out, cpu.New(), tensor.F32, false)
			if err != nil {
				t.Fatal(err)
			}
			if len(warnings) > 0 {
				t.Errorf("merged model: %v", warnings)
			}
			f, err := safetensors.Open(filepath.Join(adapter, "fixtures.safetensors"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			ids, shape := readInts(t, f, "input_ids")
			b := &model.Batch{B: shape[0], T: shape[1], IDs: ids}
			d := maxDiff(logits(t, m, b), readFloats(t, f, "logits"))
			t.Logf("merged model logits vs PEFT adapter logits: max abs diff %.3g", d)
			if d > 1e-4 {
				t.Errorf("merged logits differ from PEFT's by %g", d)
			}
			if err := MergeDir(out, adapter, out); err == nil {
				t.Error("merging into the base directory succeeded")
			}
		})
	}
}
