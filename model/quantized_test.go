package model

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shoggo/shoggo/backend/cpu"
	"github.com/shoggo/shoggo/quant"
	"github.com/shoggo/shoggo/safetensors"
	"github.com/shoggo/shoggo/tensor"
)

// quantCase is one quantization format with the relative RMS error of the
// logits it may cause on the fixture models: about 1.5 times the largest
// measured. Their weights are random N(0, 0.02²) at hidden 32, a worst case
// (4-bit codes alone are ~10% off per weight, compounding over the layers);
// trained models lose far less (docs/BENCHMARKS.md). Exactness of the file
// round trip is checked separately, against in-memory quantization.
type quantCase struct {
	name   string
	format string
	opts   quant.Options
	tol    float64
}

var quantCases = []quantCase{
	{"int8", quant.Int8, quant.Options{}, 0.04},
	{"int4-g32", quant.Int4, quant.Options{GroupSize: 32}, 0.55},
	{"int4-g16-asym", quant.Int4, quant.Options{GroupSize: 16, Asymmetric: true}, 0.45},
	{"nf4-dq", quant.NF4, quant.Options{BlockSize: 64, DoubleQuant: true}, 0.55},
	{"fp4-b32", quant.FP4, quant.Options{BlockSize: 32}, 0.8},
}

func fixtureBatch(vocab int) *Batch {
	ids := make([]int32, 2*8)
	rng := rand.New(rand.NewPCG(7, 8))
	for i := range ids {
		ids[i] = int32(rng.IntN(vocab))
	}
	return &Batch{B: 2, T: 8, IDs: ids}
}

func logitsOf(t *testing.T, m *Transformer, b *Batch) []float32 {
	t.Helper()
	if err := m.Forward(b); err != nil {
		t.Fatal(err)
	}
	return append([]float32(nil), m.Logits().F32...)
}

// relErr is ||a - b|| / ||b||.
func relErr(a, b []float32) float64 {
	var d, n float64
	for i := range a {
		e := float64(a[i] - b[i])
		d += e * e
		n += float64(b[i]) * float64(b[i])
	}
	return math.Sqrt(d / n)
}

func maxDiff32(a, b []float32) float64 {
	var m float64
	for i := range a {
		m = max(m, math.Abs(float64(a[i]-b[i])))
	}
	return m
}

// QuantizeHF then LoadQuantized, for every family and format: the logits
// equal those of the same base quantized in memory (QuantizingFactory), and
// are within the format's error of the fp32 model; the block linears are
// quant.Linear layers; non-linear tensors survive exactly (fp32) or to bf16
// rounding.
func TestQuantizedRoundTrip(t *testing.T) {
	dirs := []string{"llama", "qwen2", "gpt2", "qwen2_untied", "llama_sharded", "qwen3"}
	for _, d := range dirs {
		src := filepath.Join("../testdata/models", d)
		ref, _, err := LoadHF(src, cpu.New(), tensor.F32, false)
		if err != nil {
			t.Fatal(err)
		}
		b := fixtureBatch(ref.Cfg.VocabSize)
		want := logitsOf(t, ref, b)
		for _, qc := range quantCases {
			t.Run(d+"/"+qc.name, func(t *testing.T) {
				dst := t.TempDir()
				res, err := QuantizeHF(src, dst, QuantizeOptions{Format: qc.format, Quant: qc.opts})
				if err != nil {
					t.Fatal(err)
				}
				if res.Layers == 0 || len(res.Warnings) != 0 {
					t.Fatalf("result %+v", res)
				}
				m, err := LoadQuantized(dst, cpu.New())
				if err != nil {
					t.Fatal(err)
				}
				for _, blk := range m.Blocks {
					for _, l := range []any{blk.Q, blk.K, blk.V, blk.O} {
						if ql, ok := l.(*quant.Linear); !ok || ql.Format() != qc.format {
							t.Fatalf("block linear is %T", l)
						}
					}
				}
				got := logitsOf(t, m, b)
				e := relErr(got, want)
				t.Logf("relative logit error %.4f", e)
				if e > qc.tol || e == 0 {
					t.Errorf("relative logit error %v, want (0, %v]", e, qc.tol)
				}
				// GPT-2's fused c_attn is quantized whole on disk but as three
				// parts in memory; NF4/FP4 blocks then differ.
				if d != "gpt2" || qc.format == quant.Int8 || qc.format == quant.Int4 {
					mem, _, err := LoadHFFrozen(src, cpu.New(), tensor.F32, false, QuantizingFactory(qc.format, qc.opts))
					if err != nil {
						t.Fatal(err)
					}
					if md := maxDiff32(logitsOf(t, mem, b), got); md > 1e-5 {
						t.Errorf("loaded vs in-memory quantization: max difference %v", md)
					}
				}
				// LoadForInference dispatches on quantization_config.
				m2, warns, err := LoadForInference(dst, cpu.New(), tensor.F32)
				if err != nil || len(warns) != 0 {
					t.Fatal(err, warns)
				}
				if md := maxDiff32(logitsOf(t, m2, b), got); md != 0 {
					t.Errorf("LoadForInference differs from LoadQuantized by %v", md)
				}
			})
		}
	}
	// An unquantized directory goes through LoadHF.
	m, _, err := LoadForInference("../testdata/models/llama", cpu.New(), tensor.F32)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := m.Blocks[0].Q.(*quant.Linear); ok {
		t.Error("fp32 directory loaded quantized")
	}
}

// --keep-dtype bf16 stores embeddings and norms in bf16; config.json names
// the dtype and the quantization_config parses back to the same format.
func TestQuantizeKeepBF16(t *testing.T) {
	src := "../testdata/models/qwen2_untied"
	dst := t.TempDir()
	if _, err := QuantizeHF(src, dst, QuantizeOptions{Format: quant.NF4, Quant: quant.Options{DoubleQuant: true}, KeepDType: tensor.BF16}); err != nil {
		t.Fatal(err)
	}
	f, err := safetensors.Open(filepath.Join(dst, "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, n := range []string{"model.embed_tokens.weight", "lm_head.weight", "model.norm.weight"} {
		if info, ok := f.Info(n); !ok || info.DType != tensor.BF16 {
			t.Errorf("%s: %v %v", n, info.DType, ok)
		}
	}
	qc, err := QuantizationConfig(dst)
	if err != nil || qc == nil {
		t.Fatal(qc, err)
	}
	if ft, o, _ := qc.LayerFormat(); ft != quant.NF4 || o.BlockSize != 64 || !o.DoubleQuant {
		t.Errorf("config format %s %+v", ft, o)
	}
	var cm map[string]any
	b, _ := os.ReadFile(filepath.Join(dst, "config.json"))
	json.Unmarshal(b, &cm)
	if cm["torch_dtype"] != "bfloat16" {
		t.Errorf("torch_dtype %v", cm["torch_dtype"])
	}
	if _, err := LoadQuantized(dst, cpu.New()); err != nil {
		t.Fatal(err)
	}
	// Quantizing a quantized directory, or into the source, is refused.
	if _, err := QuantizeHF(dst, t.TempDir(), QuantizeOptions{Format: quant.Int8}); err == nil || !strings.Contains(err.Error(), "already quantized") {
		t.Errorf("re-quantizing: %v", err)
	}
	if _, err := QuantizeHF(src, src+"/", QuantizeOptions{Format: quant.Int8}); err == nil {
		t.Error("quantizing into the source directory accepted")
	}
	if _, err := QuantizeHF(src, t.TempDir(), QuantizeOptions{Format: "int3"}); err == nil {
		t.Error("unknown format accepted")
	}
}

// editConfig rewrites dir/config.json through f.
func editConfig(t *testing.T, dir string, f func(cm map[string]any)) {
	t.Helper()
	p := filepath.Join(dir, "config.json")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var cm map[string]any
	if err := json.Unmarshal(b, &cm); err != nil {
		t.Fatal(err)
	}
	f(cm)
	b, _ = json.Marshal(cm)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// editTensors rewrites dir/model.safetensors through f (name -> tensor;
// delete to drop one).
func editTensors(t *testing.T, dir string, f func(ts map[string]*tensor.Tensor)) {
	t.Helper()
	p := filepath.Join(dir, "model.safetensors")
	sf, err := safetensors.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	ts := map[string]*tensor.Tensor{}
	names := sf.Names()
	for _, n := range names {
		x, err := sf.Tensor(n)
		if err != nil {
			t.Fatal(err)
		}
		x.Name = n
		ts[n] = x
	}
	sf.Close()
	f(ts)
	var out []*tensor.Tensor
	for _, n := range names {
		if x, ok := ts[n]; ok {
			out = append(out, x)
			delete(ts, n)
		}
	}
	for _, x := range ts {
		out = append(out, x)
	}
	if err := safetensors.Write(p, out, map[string]string{"format": "pt"}); err != nil {
		t.Fatal(err)
	}
}

// A quantized directory whose metadata disagrees with its tensors, or with
// the model config, fails to load with an error naming the file and the
// tensor (or config.json and the field).
func TestLoadQuantizedBadInput(t *testing.T) {
	src := "../testdata/models/llama"
	const layer = "model.layers.1.mlp.up_proj"
	nf4 := quant.Options{BlockSize: 64, DoubleQuant: true}
	cases := []struct {
		name   string
		format string
		opts   quant.Options
		edit   func(t *testing.T, dir string)
		want   []string // substrings of the error; "FILE" is the safetensors path
	}{
		{"format", quant.Int8, quant.Options{}, func(t *testing.T, dir string) {
			editConfig(t, dir, func(cm map[string]any) {
				qc, _ := quant.ConfigFor(quant.NF4, nf4, []string{"lm_head"})
				cm["quantization_config"] = qc
			})
		}, []string{"FILE", "model.layers.0.self_attn.q_proj.weight", "quantized as int8, but quantization_config says nf4"}},
		{"blocksize", quant.NF4, quant.Options{BlockSize: 128}, func(t *testing.T, dir string) {
			editConfig(t, dir, func(cm map[string]any) { delete(cm["quantization_config"].(map[string]any), "shoggo_blocksize") })
		}, []string{"FILE", "model.layers.0.self_attn.q_proj.weight", "blocksize 128, but quantization_config says 64"}},
		{"double quant", quant.NF4, nf4, func(t *testing.T, dir string) {
			editConfig(t, dir, func(cm map[string]any) {
				cm["quantization_config"].(map[string]any)["bnb_4bit_use_double_quant"] = false
			})
		}, []string{"FILE", "q_proj.weight", "double quantization true"}},
		{"group size", quant.Int4, quant.Options{GroupSize: 32}, func(t *testing.T, dir string) {
			editConfig(t, dir, func(cm map[string]any) { cm["quantization_config"].(map[string]any)["group_size"] = 64 })
		}, []string{"FILE", "q_proj.weight", "group_size 32, but quantization_config says 64"}},
		{"symmetry", quant.Int4, quant.Options{GroupSize: 32}, func(t *testing.T, dir string) {
			editConfig(t, dir, func(cm map[string]any) { cm["quantization_config"].(map[string]any)["sym"] = false })
		}, []string{"FILE", "q_proj.weight", "symmetric = true"}},
		{"quant_state shape", quant.NF4, nf4, func(t *testing.T, dir string) {
			editTensors(t, dir, func(ts map[string]*tensor.Tensor) {
				n := layer + ".weight.quant_state.bitsandbytes__nf4"
				js := strings.Replace(string(ts[n].Bytes), `"shape": [64, 32]`, `"shape": [64, 34]`, 1)
				ts[n] = &tensor.Tensor{Name: n, DType: tensor.U8, Shape: tensor.Shape{len(js)}, Bytes: []byte(js)}
			})
		}, []string{"FILE", layer + ".weight", "elements"}},
		{"int8 SCB", quant.Int8, quant.Options{}, func(t *testing.T, dir string) {
			editTensors(t, dir, func(ts map[string]*tensor.Tensor) {
				n := layer + ".SCB"
				ts[n] = tensor.FromF32(make([]float32, 63), 63)
				ts[n].Name = n
			})
		}, []string{"FILE", layer + ".SCB", "63 elements"}},
		{"missing layer", quant.Int4, quant.Options{GroupSize: 32}, func(t *testing.T, dir string) {
			editTensors(t, dir, func(ts map[string]*tensor.Tensor) {
				for n := range ts {
					if strings.HasPrefix(n, layer+".") {
						delete(ts, n)
					}
				}
			})
		}, []string{layer + ".weight", "missing"}},
		{"float layer", quant.NF4, nf4, func(t *testing.T, dir string) {
			editTensors(t, dir, func(ts map[string]*tensor.Tensor) {
				for n := range ts {
					if strings.HasPrefix(n, layer+".") {
						delete(ts, n)
					}
				}
				w := tensor.New(tensor.F32, 64, 32)
				w.Name = layer + ".weight"
				ts[w.Name] = w
			})
		}, []string{"FILE", layer + ".weight", "stored as F32 [64, 32], but quantization_config says nf4"}},
		{"config shape", quant.Int8, quant.Options{}, func(t *testing.T, dir string) {
			editConfig(t, dir, func(cm map[string]any) { cm["intermediate_size"] = 48 })
		}, []string{"FILE", "model.layers.0.mlp.gate_proj.weight", "quantized shape [64 32], the config needs [48 32]"}},
		{"config bias", quant.Int8, quant.Options{}, func(t *testing.T, dir string) {
			editConfig(t, dir, func(cm map[string]any) { cm["attention_bias"] = true })
		}, []string{"FILE", "model.layers.0.self_attn.q_proj.bias", "missing"}},
		{"bad quantization_config", quant.Int8, quant.Options{}, func(t *testing.T, dir string) {
			editConfig(t, dir, func(cm map[string]any) { cm["quantization_config"] = map[string]any{"quant_method": "gptq", "bits": 4} })
		}, []string{"config.json", "quant_method \"gptq\""}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			if _, err := QuantizeHF(src, dir, QuantizeOptions{Format: c.format, Quant: c.opts}); err != nil {
				t.Fatal(err)
			}
			c.edit(t, dir)
			_, err := LoadQuantized(dir, cpu.New())
			if err == nil {
				t.Fatal("loaded")
			}
			for _, w := range c.want {
				w = strings.ReplaceAll(w, "FILE", filepath.Join(dir, "model.safetensors"))
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

// The quantization_config of config.json never makes the loader panic.
func FuzzLoadQuantizedConfig(f *testing.F) {
	dir := f.TempDir()
	if _, err := QuantizeHF("../testdata/models/llama", dir, QuantizeOptions{Format: quant.Int4, Quant: quant.Options{GroupSize: 32}}); err != nil {
		f.Fatal(err)
	}
	base, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		f.Fatal(err)
	}
	var cm map[string]any
	json.Unmarshal(base, &cm)
	for _, s := range []string{
		`{"quant_method": "shoggo", "format": "int4", "bits": 4, "group_size": 32, "sym": true}`,
		`{"quant_method": "shoggo", "format": "int4", "bits": 4, "group_size": 32, "sym": true, "modules_to_not_convert": ["up_proj"]}`,
		`{"quant_method": "bitsandbytes", "load_in_4bit": true, "bnb_4bit_quant_type": "nf4"}`,
		`{"quant_method": "bitsandbytes", "load_in_8bit": true}`,
		`{"quant_method": "bitsandbytes", "load_in_4bit": true, "shoggo_blocksize": 3}`,
		`null`, `[]`, `{"quant_method": 7}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, qc string) {
		d := t.TempDir()
		if err := os.Link(filepath.Join(dir, "model.safetensors"), filepath.Join(d, "model.safetensors")); err != nil {
			t.Fatal(err)
		}
		c := map[string]any{}
		for k, v := range cm {
			c[k] = v
		}
		c["quantization_config"] = json.RawMessage(qc)
		b, err := json.Marshal(c)
		if err != nil {
			return // not valid JSON
		}
		os.WriteFile(filepath.Join(d, "config.json"), b, 0o644)
		m, _, err := LoadForInference(d, cpu.New(), tensor.F32)
		if err == nil {
			if err := m.Forward(&Batch{B: 1, T: 2, IDs: []int32{1, 2}}); err != nil {
				t.Fatal(err)
			}
		}
	})
}
