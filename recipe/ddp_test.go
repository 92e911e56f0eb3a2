package recipe

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/shoggo/shoggo/dist"
	"github.com/shoggo/shoggo/train"
)

// onRanks runs f on n in-process ranks (n = 1: a nil Comm) and returns the
// first error.
func onRanks(n int, f func(c dist.Comm) error) error {
	if n == 1 {
		return f(nil)
	}
	comms := dist.NewLocal(n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for k := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer comms[k].Close()
			errs[k] = f(comms[k])
		}()
	}
	wg.Wait()
	for k, err := range errs {
		if err != nil {
			return fmt.Errorf("rank %d: %w", k, err)
		}
	}
	return nil
}

// sameLosses compares two runs' metrics.jsonl training losses.
func sameLosses(t *testing.T, a, b string, tol float64) {
	t.Helper()
	la, lb := readLosses(t, filepath.Join(a, "metrics.jsonl")), readLosses(t, filepath.Join(b, "metrics.jsonl"))
	if len(la) == 0 || len(la) != len(lb) {
		t.Fatalf("%d vs %d loss lines", len(la), len(lb))
	}
	worst := 0.0
	for s, v := range la {
		worst = max(worst, math.Abs(v-lb[s])/math.Abs(v))
	}
	t.Logf("training losses, 1 rank × 2b vs 2 ranks × b: max relative difference %.3g over %d steps", worst, len(la))
	if worst > tol {
		t.Errorf("losses differ by %.3g (relative), more than %g", worst, tol)
	}
}

// Every training recipe on 2 in-process ranks × batch b trains like one
// process with batch 2b (the same losses up to float rounding), and only
// rank 0 writes the run's files.
func TestDDPRecipesLocal(t *testing.T) {
	tok := filepath.Join(t.TempDir(), "tokenizer.json")
	tk, err := DefaultTokenizer(600)
	if err != nil {
		t.Fatal(err)
	}
	if err := tk.Save(tok); err != nil {
		t.Fatal(err)
	}
	start := alignStart(t)
	type recipeRun func(c dist.Comm, ranks int, out string) error
	for _, tc := range []struct {
		name string
		run  recipeRun
		tol  float64
	}{
		{"sft", func(c dist.Comm, n int, out string) error {
			cfg := DefaultSFT()
			cfg.TaskDefaults()
			cfg.Preset, cfg.Tokenizer, cfg.Out, cfg.Comm = "tiny-llama", tok, out, c
			cfg.Steps, cfg.Accum, cfg.Batch, cfg.EvalEvery, cfg.Warmup = 4, 2, 4/n, 2, 1
			cfg.TrainExamples, cfg.EvalExamples, cfg.MaxNewTokens = 48, 4, 4
			_, err := SFT(context.Background(), cfg, io.Discard)
			return err
		}, 1e-5},
		{"sft-lora", func(c dist.Comm, n int, out string) error {
			cfg := DefaultSFT()
			cfg.TaskDefaults()
			cfg.Preset, cfg.Tokenizer, cfg.Out, cfg.Comm = "tiny-llama", tok, out, c
			cfg.Steps, cfg.Accum, cfg.Batch, cfg.EvalEvery, cfg.Warmup = 4, 1, 4/n, 2, 1
			cfg.TrainExamples, cfg.EvalExamples, cfg.MaxNewTokens = 48, 4, 4
			cfg.LoraR, cfg.LoraTargets = 4, "all-linear" // no dropout: the same masks are impossible across ranks
			_, err := SFT(context.Background(), cfg, io.Discard)
			return err
		}, 1e-5},
		{"reward", func(c dist.Comm, n int, out string) error {
			cfg := DefaultReward()
			cfg.Model, cfg.Out, cfg.Comm = start, out, c
			cfg.TrainPairs, cfg.EvalPairs, cfg.EvalExamples, cfg.Batch = 64, 16, 4, 8/n
			cfg.Steps, cfg.EvalEvery, cfg.LR, cfg.Warmup, cfg.MaxNewTokens = 4, 2, 1e-3, 1, 4
			_, err := Reward(context.Background(), cfg, io.Discard)
			return err
		}, 1e-5},
		{"dpo", func(c dist.Comm, n int, out string) error {
			cfg := DefaultDPO()
			cfg.Model, cfg.Out, cfg.Comm = start, out, c
			// sft_weight's NLL is a mean per micro-batch (TRL's): per rank
			// under DDP, so it is left out of the comparison.
			cfg.OnPolicy, cfg.KLSamples, cfg.Beta, cfg.SFTWeight = false, 4, 0.5, 0
			cfg.TrainPairs, cfg.EvalPairs, cfg.EvalExamples, cfg.Batch = 64, 16, 4, 8/n
			cfg.Steps, cfg.EvalEvery, cfg.LR, cfg.Warmup, cfg.MaxNewTokens = 4, 2, 1e-3, 1, 4
			_, err := DPO(context.Background(), cfg, io.Discard)
			return err
		}, 1e-5},
		{"grpo", func(c dist.Comm, n int, out string) error {
			cfg := DefaultGRPO()
			tinyRL(t, &cfg.RLConfig)
			cfg.Tokenizer, cfg.Out, cfg.Comm = tok, out, c
			cfg.Steps, cfg.EvalEvery, cfg.LR, cfg.PromptsPerStep, cfg.NumGenerations = 3, 3, 1e-2, 4, 4
			_, err := GRPO(context.Background(), cfg, io.Discard)
			return err
		}, 1e-4},
		{"ppo", func(c dist.Comm, n int, out string) error {
			cfg := DefaultPPO()
			tinyRL(t, &cfg.RLConfig)
			cfg.Tokenizer, cfg.Out, cfg.Comm = tok, out, c
			cfg.Steps, cfg.EvalEvery, cfg.LR, cfg.PromptsPerStep, cfg.MiniBatches, cfg.PPOEpochs = 2, 2, 1e-2, 8, 2, 2
			_, err := PPO(context.Background(), cfg, io.Discard)
			return err
		}, 1e-4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			one, two := t.TempDir(), t.TempDir()
			if err := onRanks(1, func(c dist.Comm) error { return tc.run(c, 1, one) }); err != nil {
				t.Fatal(err)
			}
			if err := onRanks(2, func(c dist.Comm) error { return tc.run(c, 2, two) }); err != nil {
				t.Fatal(err)
			}
			sameLosses(t, one, two, tc.tol)
			a, b := readSummary(t, one), readSummary(t, two)
			if b["world_size"] != 2.0 || a["tokens"] != b["tokens"] {
				t.Errorf("summary: world size %v, tokens %v vs %v", b["world_size"], a["tokens"], b["tokens"])
			}
			for _, k := range []string{"exact_match_before", "pairwise_accuracy_before"} {
				if a[k] != b[k] {
					t.Errorf("%s: %v (1 rank) vs %v (2 ranks)", k, a[k], b[k])
				}
			}
			if _, err := os.Stat(filepath.Join(two, train.LockFile)); err == nil {
				t.Errorf("run lock left behind")
			}
		})
	}
}
