package align

import (
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/shoggo/shoggo/backend/cpu"
	"github.com/shoggo/shoggo/model"
	"github.com/shoggo/shoggo/safetensors"
	"github.com/shoggo/shoggo/tensor"
)

// fixtureBatch reads input_ids and attention_mask of a reward fixture.
func fixtureBatch(t *testing.T, f *safetensors.File) *model.Batch {
	t.Helper()
	ids, err := f.TensorI32("input_ids")
	if err != nil {
		t.Fatal(err)
	}
	mask, err := f.TensorI32("attention_mask")
	if err != nil {
		t.Fatal(err)
	}
	info, _ := f.Info("input_ids")
	B, T := info.Shape[0], info.Shape[1]
	return &model.Batch{B: B, T: T, IDs: ids, KeyMask: mask}
}

// TestRewardModelParity loads sequence-classification models saved by
// transformers (reference/make_reward_fixture.py: Llama untied with GQA,
// GPT-2 tied with learned positions, Qwen2 with biases) and scores the
// fixture's right- and left-padded rows and a row with a pad id inside:
// the scores equal transformers' within 1e-4 (TestHFParity's logits
// tolerance; the observed gap is ~1e-6).
func TestRewardModelParity(t *testing.T) {
	for _, name := range []string{"llama", "gpt2", "qwen2"} {
		t.Run(name, func(t *testing.T) {
			m, h, err := LoadRewardModel(filepath.Join("../testdata/align", "reward_"+name), cpu.New(), false)
			if err != nil {
				t.Fatalf("%v (run reference/make_reward_fixture.py)", err)
			}
			if h.Pad != 0 {
				t.Fatalf("pad %d, want 0 from config.json", h.Pad)
			}
			f, err := safetensors.Open(filepath.Join("../testdata/align", "reward_"+name+".safetensors"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			want, _ := f.TensorF32("scores")
			got, err := h.Score(m, fixtureBatch(t, f))
			if err != nil {
				t.Fatal(err)
			}
			var d float64
			for i := range want {
				d = max(d, math.Abs(got[i]-float64(want[i])))
			}
			if d > 1e-4 {
				t.Errorf("scores %v, transformers %v (max diff %.3g)", got, want, d)
			}
			t.Logf("max |score diff| %.3g", d)
		})
	}
}

// TestRewardModelRoundTrip saves a reward model and loads it back: same
// scores; a causal LM directory is refused.
func TestRewardModelRoundTrip(t *testing.T) {
	for _, fam := range []string{"llama", "gpt2"} {
		m := tinyModel(t, fam, tensor.F32, 5)
		h := NewRewardHead(m.Cfg.HiddenSize, 0, 0.5, rand.New(rand.NewPCG(3, 4)))
		rows, start := pairRows()
		b := rowsBatch(rows, start, 8, 0)
		want, err := h.Score(m, b)
		if err != nil {
			t.Fatal(err)
		}
		dir := filepath.Join(t.TempDir(), fam)
		if err := SaveRewardModel(dir, m, h); err != nil {
			t.Fatal(err)
		}
		m2, h2, err := LoadRewardModel(dir, cpu.New(), true)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := h2.Score(m2, b)
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("%s: row %d score %v after reload, %v before", fam, i, got[i], want[i])
			}
		}
		if h2.G == nil || h2.Pad != 0 {
			t.Errorf("%s: reloaded head %+v", fam, h2)
		}
	}
	if _, _, err := LoadRewardModel("../testdata/models/llama", cpu.New(), false); err == nil {
		t.Error("a causal LM loaded as a reward model")
	}
}

// TestExportRewardModel writes reward models saved by shoggo, with the
// scores shoggo computes, for reference/check_reward_saves.sh (which loads
// them with transformers and compares). It only runs with
// SHOGGO_EXPORT_DIR set.
func TestExportRewardModel(t *testing.T) {
	out := os.Getenv("SHOGGO_EXPORT_DIR")
	if out == "" {
		t.Skip("SHOGGO_EXPORT_DIR not set")
	}
	for _, fam := range []string{"llama", "gpt2", "qwen2"} {
		m := tinyModel(t, fam, tensor.F32, 9)
		h := NewRewardHead(m.Cfg.HiddenSize, 0, 0.5, rand.New(rand.NewPCG(3, 4)))
		rows, start := pairRows()
		b := rowsBatch(rows, start, 8, 0)
		scores, err := h.Score(m, b)
		if err != nil {
			t.Fatal(err)
		}
		dir := filepath.Join(out, fam)
		if err := SaveRewardModel(dir, m, h); err != nil {
			t.Fatal(err)
		}
		ids := tensor.New(tensor.F32, b.B, b.T)
		sc := tensor.New(tensor.F32, b.B)
		for i, v := range b.IDs {
			ids.F32[i] = float32(v)
		}
		for i, v := range scores {
			sc.F32[i] = float32(v)
		}
		ids.Name, sc.Name = "input_ids", "scores"
		if err := safetensors.Write(filepath.Join(dir, "shoggo_scores.safetensors"), []*tensor.Tensor{ids, sc}, nil); err != nil {
			t.Fatal(err)
		}
	}
}
