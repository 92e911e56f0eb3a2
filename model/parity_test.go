package model

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shoggo/shoggo/backend"
	"github.com/shoggo/shoggo/backend/cpu"
	"github.com/shoggo/shoggo/safetensors"
	"github.com/shoggo/shoggo/tensor"
)

// fixtureModels lists the model directories made by reference/make_fixtures.py.
func fixtureModels(t *testing.T) []string {
	dirs, _ := filepath.Glob("../testdata/models/*/fixtures.safetensors")
	if len(dirs) == 0 {
		t.Skip("no fixtures in testdata/models (run reference/setup.sh && reference/.venv/bin/python reference/make_fixtures.py)")
	}
	var out []string
	for _, d := range dirs {
		out = append(out, filepath.Dir(d))
	}
	return out
}

func ints(t *testing.T, f *safetensors.File, name string) ([]int32, tensor.Shape) {
	t.Helper()
	ids, err := f.TensorI32(name)
	if err != nil {
		t.Fatal(err)
	}
	info, _ := f.Info(name)
	return ids, info.Shape
}

func floats(t *testing.T, f *safetensors.File, name string) []float32 {
	t.Helper()
	x, err := f.TensorF32(name)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

func maxAbsDiff(a []float32, b []float64) (float64, float64) {
	var d, m float64
	for i := range a {
		d = math.Max(d, math.Abs(float64(a[i])-b[i]))
		m = math.Max(m, math.Abs(float64(a[i])))
	}
	return d, m
}

// TestHFParity loads every fixture model and compares with transformers:
// logits (max abs diff <= 1e-4), the loss on labels with -100s (relative
// 1e-5), every parameter's gradient (max abs diff <= 1e-4 + 1e-3·max|g|),
// and logits under a right-padding attention mask at unpadded positions.
// Weights stored in bf16/fp16 are upcast; their fixtures were computed from
// the upcast weights.
func TestHFParity(t *testing.T) {
	for _, dir := range fixtureModels(t) {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			m, warnings, err := LoadHF(dir, cpu.New(), tensor.F32, true)
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range warnings {
				t.Log(w)
			}
			f, err := safetensors.Open(filepath.Join(dir, "fixtures.safetensors"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			ids, shape := ints(t, f, "input_ids")
			B, T := shape[0], shape[1]
			labels, _ := ints(t, f, "labels")
			if err := m.Plan(B, T); err != nil {
				t.Fatal(err)
			}
			b := &Batch{B: B, T: T, IDs: ids, Targets: ShiftLabels(labels, B, T)}
			m.ZeroGrad()
			if err := m.Forward(b); err != nil {
				t.Fatal(err)
			}
			want := floats(t, f, "logits")
			got := m.Logits()
			var d, mx float64
			for i := range want {
				d = math.Max(d, math.Abs(float64(want[i]-got.F32[i])))
				mx = math.Max(mx, math.Abs(float64(want[i])))
			}
			t.Logf("logits max abs diff %.3g (max |logit| %.3g)", d, mx)
			if d > 1e-4 {
				t.Errorf("logits differ by %.3g", d)
			}
			count := 0
			for _, x := range b.Targets {
				if x != backend.IgnoreIndex {
					count++
				}
			}
			sum, n, err := m.Loss(b, 1/float64(count), true)
			if err != nil {
				t.Fatal(err)
			}
			m.Backward(b)
			loss := sum / float64(n)
			wantLoss := float64(floats(t, f, "loss")[0])
			if math.Abs(loss-wantLoss) > 1e-5*math.Abs(wantLoss) {
				t.Errorf("loss %.7f, transformers %.7f", loss, wantLoss)
			}
			checked := 0
			for _, name := range f.Names() {
				pname, ok := strings.CutPrefix(name, "grad.")
				if !ok {
					continue
				}
				if pname == "lm_head.weight" && m.Cfg.TieWordEmbeddings {
					continue
				}
				g := m.Grads.Get(pname)
				if g == nil {
					t.Errorf("fixture gradient %q has no parameter", pname)
					continue
				}
				wantG := floats(t, f, name)
				gotG := g.F32
				if m.Cfg.Spec().Transposed(pname) {
					gotG = transpose(gotG, g.Shape[0], g.Shape[1])
				}
				var d, mx float64
				for i := range wantG {
					d = math.Max(d, math.Abs(float64(wantG[i]-gotG[i])))
					mx = math.Max(mx, math.Abs(float64(wantG[i])))
				}
				if d > 1e-4+1e-3*mx {
					t.Errorf("grad %s: max abs diff %.3g (max |g| %.3g)", pname, d, mx)
				}
				checked++
			}
			if checked < len(m.Params.Tensors()) {
				t.Errorf("only %d of %d parameter gradients in the fixture", checked, len(m.Params.Tensors()))
			}
			// Masked cases: right padding (mask_), left padding with
			// generate-style position ids (lpad_), packed sequences with
			// restarting positions and segment ids (pack_). Logits are compared
			// where the mask is 1; losses where transformers recorded one.
			for _, pre := range []string{"mask_", "lpad_", "pack_"} {
				if _, ok := f.Info(pre + "input_ids"); !ok {
					continue
				}
				mids, _ := ints(t, f, pre+"input_ids")
				mb := &Batch{B: B, T: T, IDs: mids}
				var mask []int32
				if _, ok := f.Info(pre + "attention_mask"); ok {
					mask, _ = ints(t, f, pre+"attention_mask")
					mb.KeyMask = mask
				}
				if _, ok := f.Info(pre + "position_ids"); ok {
					mb.Pos, _ = ints(t, f, pre+"position_ids")
					for i := range mb.Pos {
						if mb.Pos[i] < 0 { // HF fills padding positions with 1 or -1; they are masked anyway
							mb.Pos[i] = 0
						}
					}
				}
				if _, ok := f.Info(pre + "seq_ids"); ok {
					mb.Segments, _ = ints(t, f, pre+"seq_ids")
				}
				if _, ok := f.Info(pre + "labels"); ok {
					lab, _ := ints(t, f, pre+"labels")
					mb.Targets = ShiftLabels(lab, B, T)
				}
				if err := m.Forward(mb); err != nil {
					t.Fatalf("%s: %v", pre, err)
				}
				want := floats(t, f, pre+"logits")
				got := m.Logits()
				V := m.Cfg.VocabSize
				var d float64
				for p := 0; p < B*T; p++ {
					if mask != nil && mask[p] == 0 {
						continue
					}
					for j := 0; j < V; j++ {
						d = math.Max(d, math.Abs(float64(want[p*V+j]-got.F32[p*V+j])))
					}
				}
				if d > 1e-4 {
					t.Errorf("%s logits differ by %.3g", pre, d)
				}
				if mb.Targets != nil {
					if _, ok := f.Info(pre + "loss"); ok {
						s, n, err := m.Loss(mb, 0, false)
						if err != nil {
							t.Fatal(err)
						}
						w := float64(floats(t, f, pre+"loss")[0])
						if l := s / float64(n); math.Abs(l-w) > 1e-5*math.Abs(w) {
							t.Errorf("%s loss %.7f, transformers %.7f", pre, l, w)
						}
					}
				}
			}
		})
	}
}

// Saving and reloading in each dtype round-trips the weights (exactly for
// F32, to the dtype's rounding otherwise), sharded or not.
func TestSaveLoadHF(t *testing.T) {
	for _, preset := range []string{"tiny-gpt2", "tiny-llama", "tiny-qwen2", "tiny-qwen3"} {
		for _, dt := range []tensor.DType{tensor.F32, tensor.BF16, tensor.F16} {
			cfg, _ := LookupPreset(preset)
			m, _ := New(cfg, cpu.New(), tensor.F32, false)
			randomize(m, nil2rng(), 0.1)
			dir := t.TempDir()
			if err := m.SaveHF(dir, SaveOptions{DType: dt, MaxShardBytes: 20000}); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(filepath.Join(dir, "model.safetensors.index.json")); err != nil {
				t.Errorf("%s %s: expected a sharded checkpoint: %v", preset, dt, err)
			}
			m2, warn, err := LoadHF(dir, cpu.New(), tensor.F32, false)
			if err != nil {
				t.Fatal(err)
			}
			if len(warn) > 0 {
				t.Errorf("warnings: %v", warn)
			}
			a, b := m.Params.Flat().F32, m2.Params.Flat().F32
			for i := range a {
				want := a[i]
				switch dt {
				case tensor.BF16:
					want = tensor.BF16ToF32(tensor.F32ToBF16(want))
				case tensor.F16:
					want = tensor.F16ToF32(tensor.F32ToF16(want))
				}
				if b[i] != want {
					t.Fatalf("%s %s: element %d: %v, want %v", preset, dt, i, b[i], want)
				}
			}
		}
	}
}

// Bad checkpoints: a missing tensor and a wrong shape are errors naming the
// tensor (and both shapes); an unknown tensor is a warning naming it.
func TestLoadHFErrors(t *testing.T) {
	cfg, _ := LookupPreset("tiny-llama")
	m, _ := New(cfg, cpu.New(), tensor.F32, false)
	ts, _ := m.HFTensors(tensor.F32)
	write := func(ts []*tensor.Tensor) string {
		dir := t.TempDir()
		data, _ := cfg.HFJSON()
		os.WriteFile(filepath.Join(dir, "config.json"), data, 0o644)
		if err := safetensors.Write(filepath.Join(dir, "model.safetensors"), ts, nil); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	_, _, err := LoadHF(write(ts[1:]), cpu.New(), tensor.F32, false)
	if err == nil || !strings.Contains(err.Error(), ts[0].Name) {
		t.Errorf("missing tensor: %v", err)
	}
	bad := append([]*tensor.Tensor(nil), ts...)
	bad[1] = tensor.New(tensor.F32, 3, 5)
	bad[1].Name = ts[1].Name
	_, _, err = LoadHF(write(bad), cpu.New(), tensor.F32, false)
	if err == nil || !strings.Contains(err.Error(), ts[1].Name) || !strings.Contains(err.Error(), "[3, 5]") {
		t.Errorf("wrong shape: %v", err)
	}
	extra := tensor.New(tensor.F32, 2)
	extra.Name = "model.layers.0.mystery"
	_, warn, err := LoadHF(write(append(ts, extra)), cpu.New(), tensor.F32, false)
	if err != nil || len(warn) != 1 || !strings.Contains(warn[0], "mystery") {
		t.Errorf("extra tensor: %v %v", warn, err)
	}
}
