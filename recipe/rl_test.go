package recipe

import (
	"context"
	"encoding/json"
	"io"
	"path/filepath"
	"strings"
	"testing"
)

// firstHalfShare rewards the share of a completion's characters that are
// letters a-m: dense enough for a random tiny model to improve on quickly.
func firstHalfShare(_, c, _ string) float64 {
	if c == "" {
		return 0
	}
	n := 0
	for _, r := range c {
		if r >= 'a' && r <= 'm' {
			n++
		}
	}
	return float64(n) / float64(len([]rune(c)))
}

func tinyRL(t *testing.T, cfg *RLConfig) {
	t.Helper()
	tok := filepath.Join(t.TempDir(), "tokenizer.json")
	tk, err := DefaultTokenizer(600)
	if err != nil {
		t.Fatal(err)
	}
	if err := tk.Save(tok); err != nil {
		t.Fatal(err)
	}
	cfg.Preset, cfg.Tokenizer, cfg.Out = "tiny-llama", tok, t.TempDir()
	cfg.TrainExamples, cfg.EvalExamples, cfg.MaxCompletionLength = 64, 4, 4
	cfg.Reward = firstHalfShare
	cfg.Schedule, cfg.Warmup = "constant", 0
}

// rewardGain reads rollouts.jsonl: mean reward of the last k iterations
// minus that of the first k.
func rewardGain(t *testing.T, out string, k int) (first, last float64) {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(string(readFile(t, filepath.Join(out, "rollouts.jsonl")))), "\n")
	if len(lines) < 2*k {
		t.Fatalf("%d iterations logged, want at least %d", len(lines), 2*k)
	}
	rw := make([]float64, len(lines))
	for i, l := range lines {
		var it iterLog
		if err := json.Unmarshal([]byte(l), &it); err != nil {
			t.Fatal(err)
		}
		rw[i] = it.Reward
	}
	return mean(rw[:k]), mean(rw[len(rw)-k:])
}

func checkRLSummary(t *testing.T, out, recipe string) {
	t.Helper()
	var s map[string]any
	if err := json.Unmarshal(readFile(t, filepath.Join(out, "summary.json")), &s); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"exact_match_before", "exact_match_after", "kl", "time_s", "iterations"} {
		if _, ok := s[k]; !ok {
			t.Errorf("summary.json has no %s", k)
		}
	}
	if s["recipe"] != recipe {
		t.Errorf("summary.json recipe %v, want %s", s["recipe"], recipe)
	}
	for _, png := range []string{"reward.png", "kl.png", "exact_match.png"} {
		readFile(t, filepath.Join(out, png))
	}
}

// GRPO on a random tiny model raises a dense programmatic reward.
func TestGRPOImprovesReward(t *testing.T) {
	cfg := DefaultGRPO()
	tinyRL(t, &cfg.RLConfig)
	cfg.Steps, cfg.EvalEvery, cfg.LR, cfg.PromptsPerStep, cfg.NumGenerations = 30, 15, 1e-2, 4, 6
	res, err := GRPO(context.Background(), cfg, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	first, last := rewardGain(t, cfg.Out, 5)
	t.Logf("reward %.3f over the first 5 iterations, %.3f over the last 5", first, last)
	if last < first+0.15 {
		t.Errorf("reward %.3f over the first 5 iterations, %.3f over the last 5: no gain", first, last)
	}
	if res.Iterations != 30 || res.KL <= 0 {
		t.Errorf("iterations %d, KL %v", res.Iterations, res.KL)
	}
	checkRLSummary(t, cfg.Out, "grpo")
}

// PPO on a random tiny model raises a dense programmatic reward.
func TestPPOImprovesReward(t *testing.T) {
	cfg := DefaultPPO()
	tinyRL(t, &cfg.RLConfig)
	cfg.Steps, cfg.EvalEvery, cfg.LR, cfg.PromptsPerStep, cfg.MiniBatches, cfg.PPOEpochs = 30, 15, 1e-2, 32, 2, 4
	cfg.InitKLCoef = 0.01
	res, err := PPO(context.Background(), cfg, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	first, last := rewardGain(t, cfg.Out, 5)
	t.Logf("reward %.3f over the first 5 iterations, %.3f over the last 5", first, last)
	if last < first+0.15 {
		t.Errorf("reward %.3f over the first 5 iterations, %.3f over the last 5: no gain", first, last)
	}
	if res.Iterations != 30 {
		t.Errorf("iterations %d", res.Iterations)
	}
	checkRLSummary(t, cfg.Out, "ppo")
}
