package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shoggo/shoggo/optim"
)

// Every numeric flag is checked before anything runs: a bad value is an
// error naming the flag, the value and the allowed range.
func TestNumericFlagsValidated(t *testing.T) {
	m := tinyModel(t)
	out := filepath.Join(t.TempDir(), "out")
	gen := func(extra ...string) []string {
		return append([]string{"--model", m, "--prompt", "a", "--max-new-tokens", "2"}, extra...)
	}
	cmds := map[string]func([]string) error{"generate": runGenerate, "pretrain": runPretrain, "sft": runSFT, "eval": runEval,
		"quantize": runQuantize, "bench": runBench, "info": runInfo, "tokenize": runTokenize, "tokenizer": runTokenizerCmd}
	for _, tc := range []struct {
		cmd  string
		args []string
		want string // the flag and range named
	}{
		{"generate", gen("--temperature", "NaN"), "--temperature NaN: must be in [0, inf)"},
		{"generate", gen("--temperature", "-1"), "--temperature -1"},
		{"generate", gen("--temperature", "+Inf"), "--temperature +Inf"},
		{"generate", gen("--top-p", "1.5"), "--top-p 1.5: must be in (0, 1]"},
		{"generate", gen("--top-p", "0"), "--top-p 0"},
		{"generate", gen("--top-p", "-0.5"), "--top-p -0.5"},
		{"generate", gen("--max-new-tokens", "-5"), "--max-new-tokens -5: must be in [1, inf)"},
		{"generate", gen("--max-new-tokens", "0"), "--max-new-tokens 0"},
		{"generate", gen("--repetition-penalty", "0"), "--repetition-penalty 0: must be in (0, inf)"},
		{"generate", gen("--repetition-penalty", "-2"), "--repetition-penalty -2"},
		{"generate", gen("--top-k", "-1"), "--top-k -1"},
		{"generate", gen("extra"), "unexpected arguments"},
		{"pretrain", []string{"--out", out, "--steps", "-5"}, "--steps -5: must be in [1, inf)"},
		{"pretrain", []string{"--out", out, "--lr", "NaN"}, "--lr NaN"},
		{"pretrain", []string{"--out", out, "--clip", "-1"}, "--clip -1: must be in [0, inf); 0: no clipping"},
		{"pretrain", []string{"--out", out, "--adam-beta2", "0"}, "--adam-beta2 0: must be in (0, 1)"},
		{"pretrain", []string{"--out", out, "--adam-beta2", "1"}, "--adam-beta2 1"},
		{"pretrain", []string{"--out", out, "--warmup", "-1"}, "--warmup -1"},
		{"pretrain", []string{"--out", out, "--batch", "0"}, "--batch 0"},
		{"pretrain", []string{"--out", out, "--grad-accum", "0"}, "--grad-accum 0"},
		{"pretrain", []string{"--out", out, "--seq", "0"}, "--seq 0"},
		{"pretrain", []string{"--out", out, "--eval-every", "-1"}, "--eval-every -1"},
		{"pretrain", []string{"--out", out, "--vocab-size", "10"}, "--vocab-size 10"},
		{"pretrain", []string{"--out", out, "--min-lr", "-1"}, "--min-lr -1"},
		{"pretrain", []string{"--out", out, "--weight-decay", "-0.1"}, "--weight-decay -0.1"},
		{"pretrain", []string{"--out", out, "--tokens", "1000", "--steps", "5"}, "exclude each other"},
		{"pretrain", []string{"--out", out, "--tokens", "-3"}, "--tokens -3"},
		{"sft", []string{"--out", out, "--lora-dropout", "1"}, "--lora-dropout 1: must be in [0, 1)"},
		{"sft", []string{"--out", out, "--lora-alpha", "0"}, "--lora-alpha 0"},
		{"sft", []string{"--out", out, "--eval-examples", "-1"}, "--eval-examples -1"},
		{"sft", []string{"--out", out, "--max-len", "1"}, "--max-len 1"},
		{"sft", []string{"--out", out, "--epochs", "-1"}, "--epochs -1"},
		{"sft", []string{"--out", out, "--epochs", "2", "--steps", "5"}, "exclude each other"},
		{"sft", []string{"--out", out, "--eval-data", "x.jsonl"}, "needs --data"},
		{"sft", []string{"--out", out, "--lora-r", "-4"}, "--lora-r -4"},
		{"eval", []string{"--model", m, "--val-fraction", "0"}, "--val-fraction 0"},
		{"eval", []string{"--model", m, "--batch", "-1"}, "--batch -1"},
		{"quantize", []string{"--model", m, "--format", "nf4", "--group-size", "32"}, "--group-size and --asymmetric apply to --format int4 only"},
		{"quantize", []string{"--model", m, "--format", "int8", "--block-size", "32"}, "--block-size and --double-quant apply"},
		{"quantize", []string{"--model", m, "--format", "int4", "--group-size", "0"}, "--group-size 0"},
		{"quantize", []string{"--model", m, "--max-shard-mb", "-1"}, "--max-shard-mb -1"},
		{"bench", []string{"--gemm-time", "0"}, "--gemm-time 0"},
		{"info", []string{"--batch", "0", "tiny-llama"}, "--batch 0"},
		{"tokenize", []string{"--tokenizer", filepath.Join(m, "tokenizer.json"), "--shard-tokens", "0", "x.txt"}, "--shard-tokens 0"},
		{"tokenizer", []string{"train", "--vocab-size", "100", "x.txt"}, "--vocab-size 100"},
	} {
		t.Run(tc.cmd+" "+strings.Join(tc.args[len(tc.args)-2:], " "), func(t *testing.T) {
			err := cmds[tc.cmd](tc.args)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("%s %v: got %v, want %q", tc.cmd, tc.args, err, tc.want)
			}
			if _, err := os.Stat(out); !os.IsNotExist(err) {
				t.Fatalf("a refused command created %s", out)
			}
		})
	}
}

// A prompt longer than the context is an error before anything is printed.
func TestLongPromptRefusedBeforeEcho(t *testing.T) {
	m := tinyModel(t)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout := os.Stdout
	os.Stdout = w
	err = runGenerate([]string{"--model", m, "--prompt", strings.Repeat("And God said ", 200), "--max-new-tokens", "2"})
	os.Stdout = stdout
	w.Close()
	var buf [4096]byte
	n, _ := r.Read(buf[:])
	if err == nil || !strings.Contains(err.Error(), "does not fit the context") {
		t.Fatalf("got %v", err)
	}
	if n > 0 {
		t.Fatalf("printed %q before the error", buf[:n])
	}
}

// -h prints the flags and exits 0; no help line shows two defaults.
func TestHelpExitsZero(t *testing.T) {
	for _, cmd := range []string{"pretrain", "sft", "generate", "eval", "quantize", "convert", "merge", "bench"} {
		t.Run(cmd, func(t *testing.T) {
			c := cliCommand(cmd, "-h")
			b, err := c.CombinedOutput()
			if err != nil {
				t.Fatalf("%s -h: %v\n%s", cmd, err, b)
			}
			for _, line := range strings.Split(string(b), "\n") {
				if strings.Count(line, "(default") > 1 {
					t.Errorf("%s -h: doubled default: %s", cmd, line)
				}
			}
			if !strings.Contains(string(b), "-") {
				t.Errorf("%s -h printed no flags: %s", cmd, b)
			}
		})
	}
}

// A value the user typed is kept: --warmup 0 and --min-lr 0 reach the
// schedule as 0 (every logged learning rate is the schedule's with those
// literal values), and --clip 0 trains without clipping.
func TestTypedZeroIsKept(t *testing.T) {
	out := filepath.Join(t.TempDir(), "run")
	if err := runPretrain(append(append([]string{}, tinyPretrain...), "--out", out, "--steps", "4", "--warmup", "0", "--min-lr", "0", "--clip", "0",
		"--lr", "0.01", "--schedule", "linear")); err != nil {
		t.Fatal(err)
	}
	sched, err := optim.ParseSchedule("linear", 0.01, 0, 0, 4)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, m := range readMetrics(t, filepath.Join(out, "metrics.jsonl")) {
		if m.Loss == 0 {
			continue
		}
		n++
		if want := sched.LR(m.Step - 1); m.LR != want {
			t.Errorf("step %d: lr %v, want %v (warmup 0, min-lr 0)", m.Step, m.LR, want)
		}
	}
	if n != 4 {
		t.Fatalf("%d steps logged", n)
	}
	// --lr without --min-lr: min-lr follows as lr/10 (the help says so)
	out2 := filepath.Join(t.TempDir(), "run")
	if err := runPretrain(append(append([]string{}, tinyPretrain...), "--out", out2, "--steps", "4", "--warmup", "0", "--lr", "0.01", "--schedule", "linear")); err != nil {
		t.Fatal(err)
	}
	sched, _ = optim.ParseSchedule("linear", 0.01, 0.001, 0, 4)
	for _, m := range readMetrics(t, filepath.Join(out2, "metrics.jsonl")) {
		if m.Loss != 0 && m.LR != sched.LR(m.Step-1) {
			t.Errorf("step %d: lr %v, want %v (min-lr lr/10)", m.Step, m.LR, sched.LR(m.Step-1))
		}
	}
}
