package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shoggo/shoggo/recipe"
	"github.com/shoggo/shoggo/train"
)

// captureOutput runs fn with os.Stderr and os.Stdout going to pipes and
// returns what was written to each.
func captureOutput(t *testing.T, fn func() error) (stdout, stderr string, err error) {
	t.Helper()
	oldOut, oldErr := os.Stdout, os.Stderr
	ro, wo, _ := os.Pipe()
	re, we, _ := os.Pipe()
	os.Stdout, os.Stderr = wo, we
	outc, errc := make(chan string), make(chan string)
	go func() { b, _ := io.ReadAll(ro); outc <- string(b) }()
	go func() { b, _ := io.ReadAll(re); errc <- string(b) }()
	err = fn()
	os.Stdout, os.Stderr = oldOut, oldErr
	wo.Close()
	we.Close()
	return <-outc, <-errc, err
}

func writeSubtraction(t *testing.T, path string, n, seed int) {
	t.Helper()
	var b strings.Builder
	for i := 0; i < n; i++ {
		a, c := 100+(i*37+seed)%900, 100+(i*91+seed*7)%900
		a, c = max(a, c), min(a, c)
		fmt.Fprintf(&b, `{"instruction":"What is %d-%d?","output":"%d"}`+"\n", a, c, a-c)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// sft --data without --model or --preset trains runs/pretrain/model when
// it exists and says so; a run whose exact match stays flat ends with a
// hint; `shoggo eval --data F.jsonl` scores the result without training
// and agrees with the run's own held-out loss and exact match.
func TestSFTDataDefaultsAndEvalJSONL(t *testing.T) {
	m := tinyModel(t)
	dir := t.TempDir()
	t.Chdir(dir)
	copyDir(t, m, filepath.Join("runs", "pretrain", "model"))
	writeSubtraction(t, "train.jsonl", 64, 1)
	writeSubtraction(t, "eval.jsonl", 8, 2)
	_, log, err := captureOutput(t, func() error {
		return runSFT([]string{"--data", "train.jsonl", "--eval-data", "eval.jsonl", "--steps", "2", "--batch", "4", "--threads", "1", "--out", "out"})
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"base: " + recipe.DefaultBase, "hint: held-out exact match stayed", "--steps 8"} {
		if !strings.Contains(log, want) {
			t.Errorf("sft log lacks %q:\n%s", want, log)
		}
	}
	var sum train.Summary
	b, _ := os.ReadFile(filepath.Join("out", "summary.json"))
	if err := json.Unmarshal(b, &sum); err != nil {
		t.Fatal(err)
	}
	out, _, err := captureOutput(t, func() error {
		return runEval([]string{"--model", filepath.Join("out", "final"), "--data", "eval.jsonl", "--json", "--threads", "1"})
	})
	if err != nil {
		t.Fatal(err)
	}
	var res recipe.InstructionEvalResult
	if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &res); err != nil {
		t.Fatalf("%v: %q", err, out)
	}
	if res.Examples != 8 || math.Abs(res.Loss-sum.After["val_loss"]) > 1e-5*sum.After["val_loss"] || res.ExactMatch != sum.After["exact_match"] {
		t.Errorf("eval --data: %+v; the sft run's held-out figures: %v", res, sum.After)
	}
	// without a default base: the error names both ways to choose one
	os.RemoveAll("runs")
	if err := runSFT([]string{"--data", "train.jsonl", "--out", "out2"}); err == nil || !strings.Contains(err.Error(), "--preset") {
		t.Errorf("no base: %v", err)
	}
}
