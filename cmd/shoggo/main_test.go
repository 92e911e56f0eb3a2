package main

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/shoggo/shoggo/train"
)

func readMetrics(t *testing.T, path string) []train.Metric {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []train.Metric
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m train.Metric
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

// The pretrain command runs end to end on the embedded corpus, writes its
// outputs, and a run interrupted after 3 of 6 steps and resumed logs the
// same losses as a straight run, bit for bit.
func TestPretrainEndToEndAndResume(t *testing.T) {
	common := []string{"--steps", "6", "--batch", "2", "--seq", "32", "--eval-every", "3", "--eval-batches", "2",
		"--sample-every", "3", "--save-every", "100", "--warmup", "2", "--vocab-size", "600", "--threads", "1"}
	a := t.TempDir()
	if err := runPretrain(append([]string{"--out", a}, common...)); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"metrics.jsonl", "loss.png", "tokenizer.json", "model/config.json", "model/model.safetensors",
		"model/tokenizer.json", "model/generation_config.json", "checkpoints/latest", "summary.json"} {
		if _, err := os.Stat(filepath.Join(a, f)); err != nil {
			t.Errorf("missing output: %v", err)
		}
	}
	b := t.TempDir()
	if err := runPretrain(append([]string{"--out", b, "--stop-after", "3"}, common...)); err != nil {
		t.Fatal(err)
	}
	if err := runPretrain(append([]string{"--out", b, "--resume"}, common...)); err != nil {
		t.Fatal(err)
	}
	var sa, sb train.Summary
	for dir, s := range map[string]*train.Summary{a: &sa, b: &sb} {
		data, err := os.ReadFile(filepath.Join(dir, "summary.json"))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(data, s); err != nil {
			t.Fatal(err)
		}
	}
	if sa.Recipe != "pretrain" || sa.Steps != 6 || sa.Interrupted || !(sa.Before["val_loss"] > sa.After["val_loss"]) ||
		sa.FirstLoss != sb.FirstLoss || sa.FinalLoss != sb.FinalLoss || sa.After["val_loss"] != sb.After["val_loss"] {
		t.Errorf("summaries: straight %+v, resumed %+v", sa, sb)
	}
	ma, mb := readMetrics(t, filepath.Join(a, "metrics.jsonl")), readMetrics(t, filepath.Join(b, "metrics.jsonl"))
	if len(ma) != 6 || len(mb) != 6 {
		t.Fatalf("metrics lines: %d straight, %d resumed", len(ma), len(mb))
	}
	for i := range ma {
		if ma[i].Step != mb[i].Step || ma[i].Loss != mb[i].Loss {
			t.Errorf("step %d: straight loss %v, resumed step %d loss %v", ma[i].Step, ma[i].Loss, mb[i].Step, mb[i].Loss)
		}
	}
	if err := runGenerate([]string{"--model", filepath.Join(a, "model"), "--prompt", "And", "--max-new-tokens", "5"}); err != nil {
		t.Fatal(err)
	}
}

// The sft command runs end to end on the embedded task: full fine-tuning
// of a fresh model, then LoRA (bf16 base) on the result, then a merge.
func TestSFTEndToEnd(t *testing.T) {
	full := t.TempDir()
	small := []string{"--steps", "4", "--train-examples", "64", "--eval-examples", "4", "--eval-every", "2", "--threads", "1", "--batch", "8"}
	if err := runSFT(append([]string{"--out", full}, small...)); err != nil {
		t.Fatal(err)
	}
	base := filepath.Join(full, "final")
	for _, f := range []string{"config.json", "model.safetensors", "tokenizer.json"} {
		if _, err := os.Stat(filepath.Join(base, f)); err != nil {
			t.Fatal(err)
		}
	}
	ad := t.TempDir()
	if err := runSFT(append([]string{"--out", ad, "--model", base, "--lora-r", "4", "--lora-targets", "all-linear", "--base-dtype", "bf16", "--gradient-checkpointing"}, small...)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(ad, "final", "adapter_model.safetensors")); err != nil {
		t.Fatal(err)
	}
	merged := t.TempDir()
	if err := runMerge([]string{"--base", base, "--adapter", filepath.Join(ad, "final"), "--out", merged}); err != nil {
		t.Fatal(err)
	}
	if err := runGenerate([]string{"--model", merged, "--prompt", "What is 1+2?\n", "--max-new-tokens", "3", "--temperature", "0"}); err != nil {
		t.Fatal(err)
	}
}

// A recipe's values win over the embedded task's defaults (flags win over both).
func TestSFTRecipeOverridesTaskDefaults(t *testing.T) {
	dir := t.TempDir()
	rec := filepath.Join(dir, "r.yaml")
	if err := os.WriteFile(rec, []byte("steps: 3\neval_every: 3\nbatch: 4\ntrain_examples: 32\neval_examples: 2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	if err := runSFT([]string{"--recipe", rec, "--out", out, "--threads", "1"}); err != nil {
		t.Fatal(err)
	}
	steps := 0
	for _, m := range readMetrics(t, filepath.Join(out, "metrics.jsonl")) {
		if m.Loss != 0 {
			steps++
		}
	}
	if steps != 3 {
		t.Fatalf("%d training steps logged, the recipe says 3", steps)
	}
}
