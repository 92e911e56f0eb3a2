package recipe

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"

	"github.com/shoggo/shoggo/model"
	"github.com/shoggo/shoggo/train"
)

// `shoggo bench --precision P` prints the same RESULT line as fp32 plus
// the precision and the activation memory; fp16 runs the loss scaler.
func TestBenchStepPrecision(t *testing.T) {
	cfg, err := model.LookupPreset("tiny-llama")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"fp32", "bf16", "fp16"} {
		var w bytes.Buffer
		o := BenchOptions{Preset: "tiny-llama", Batch: 2, Seq: 8, Steps: 1, Warmup: 1, Seed: 1, PeakPerCore: 1,
			PrecisionConfig: train.PrecisionConfig{Precision: p}}
		if err := BenchStep(&w, cfg, o, 1); err != nil {
			t.Fatal(err)
		}
		var result string
		for _, l := range strings.Split(w.String(), "\n") {
			if strings.HasPrefix(l, "RESULT ") {
				result = l
			}
		}
		for _, key := range []string{"step_ms=", "tokens_per_s=", "rss_mib=", "precision=" + p + " ", "act_saved_mib=", "act_total_mib="} {
			if !strings.Contains(result, key) {
				t.Errorf("%s: RESULT line %q lacks %q", p, result, key)
			}
		}
		if scaled := strings.Contains(w.String(), "fp16 loss scale 65536"); scaled != (p == "fp16") {
			t.Errorf("%s: loss scaler line present %v:\n%s", p, scaled, w.String())
		}
	}
	o := BenchOptions{Preset: "tiny-llama", Batch: 2, Seq: 8, Steps: 1, PrecisionConfig: train.PrecisionConfig{BF16: true, FP16: true}}
	if err := BenchStep(&bytes.Buffer{}, cfg, o, 1); err == nil || !strings.Contains(err.Error(), "--bf16 and --fp16") {
		t.Errorf("conflict: %v", err)
	}
}

// Every alignment recipe runs under mixed precision (policy, reference
// copy, reward model and heads at the run's precision; decoding fp32):
// a few steps each, full fine-tuning (a separate reference) and LoRA, and
// the summary records the precision (and the loss scaler's figures for
// fp16).
func TestAlignRecipesMixedPrecision(t *testing.T) {
	start := alignStart(t)
	check := func(out, prec string) {
		t.Helper()
		s := readSummary(t, out)
		if s["precision"] != prec {
			t.Errorf("%s: summary precision %v, want %s", out, s["precision"], prec)
		}
		_, scaled := s["loss_scale"]
		if _, skipped := s["skipped_steps"]; scaled != (prec == "fp16") || skipped != scaled {
			t.Errorf("%s (%s): loss scaler fields %v", out, prec, s)
		}
	}
	ctx := context.Background()
	for i, prec := range []string{"bf16", "fp16"} {
		rw := DefaultReward()
		rw.Model, rw.Out, rw.LoraR, rw.Precision = start, t.TempDir(), 4*i, prec
		rw.TrainPairs, rw.EvalPairs, rw.EvalExamples, rw.Batch, rw.Steps, rw.MaxNewTokens = 32, 8, 2, 4, 2, 2
		if _, err := Reward(ctx, rw, io.Discard); err != nil {
			t.Fatalf("reward %s: %v", prec, err)
		}
		check(rw.Out, prec)

		d := DefaultDPO()
		d.Model, d.Out, d.LoraR, d.Precision = start, t.TempDir(), 4*(1-i), prec
		d.OnPolicy, d.KLSamples, d.TrainPairs, d.EvalPairs, d.EvalExamples, d.Batch, d.Steps, d.MaxNewTokens = false, 2, 32, 8, 2, 4, 2, 2
		if _, err := DPO(ctx, d, io.Discard); err != nil {
			t.Fatalf("dpo %s: %v", prec, err)
		}
		check(d.Out, prec)

		g := DefaultGRPO()
		tinyRL(t, &g.RLConfig)
		g.LoraR, g.Precision, g.Steps, g.PromptsPerStep, g.NumGenerations = 4*i, prec, 2, 2, 2
		if _, err := GRPO(ctx, g, io.Discard); err != nil {
			t.Fatalf("grpo %s: %v", prec, err)
		}
		check(g.Out, prec)

		p := DefaultPPO()
		tinyRL(t, &p.RLConfig)
		p.LoraR, p.Precision, p.Steps, p.PromptsPerStep, p.MiniBatches, p.PPOEpochs = 4*(1-i), prec, 2, 4, 2, 1
		if _, err := PPO(ctx, p, io.Discard); err != nil {
			t.Fatalf("ppo %s: %v", prec, err)
		}
		check(p.Out, prec)
	}
}
