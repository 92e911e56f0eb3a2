package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// grpo without --model makes the weak SFT model, ppo finds it; both (ppo
// with LoRA) write summary.json with the alignment figures; a reward
// model directory that does not exist is a clear error.
func TestGRPOAndPPOCLI(t *testing.T) {
	tmp := t.TempDir()
	sftDir := filepath.Join(tmp, "sft")
	small := []string{"--sft-dir", sftDir, "--sft-steps", "4", "--steps", "2", "--eval-every", "1", "--train-examples", "32",
		"--eval-examples", "4", "--prompts-per-step", "2", "--max-completion-length", "3", "--threads", "2"}
	g := filepath.Join(tmp, "grpo")
	if err := runGRPO(append([]string{"--out", g, "--num-generations", "2"}, small...)); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(tmp, "ppo")
	if err := runPPO(append([]string{"--out", p, "--lora-r", "4", "--num-mini-batches", "2", "--ppo-epochs", "1"}, small...)); err != nil {
		t.Fatal(err)
	}
	for dir, res := range map[string]string{g: "model.safetensors", p: "adapter_model.safetensors"} {
		var s map[string]any
		b, err := os.ReadFile(filepath.Join(dir, "summary.json"))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, &s); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"exact_match_before", "exact_match_after", "kl"} {
			if _, ok := s[k]; !ok {
				t.Errorf("%s: summary.json has no %s", dir, k)
			}
		}
		if _, err := os.Stat(filepath.Join(dir, "final", res)); err != nil {
			t.Error(err)
		}
	}
	if _, err := os.Stat(filepath.Join(p, "final", "value_head.safetensors")); err != nil {
		t.Error(err)
	}
	err := runGRPO(append([]string{"--out", filepath.Join(tmp, "x"), "--reward-model", filepath.Join(tmp, "nope")}, small...))
	if err == nil || !strings.Contains(err.Error(), "--reward-model") {
		t.Errorf("missing reward model: %v", err)
	}
	if err := runGRPO(append([]string{"--out", filepath.Join(tmp, "y"), "--reward-fn", "bogus"}, small...)); err == nil {
		t.Error("--reward-fn bogus accepted")
	}
}
