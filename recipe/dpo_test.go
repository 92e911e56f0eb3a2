package recipe

import (
	"context"
	"io"
	"testing"

	"github.com/shoggo/shoggo/align"
)

// TestDPOImproves runs DPO on the embedded pairs from a tiny random model
// for each loss type (full fine-tuning; LoRA for sigmoid): the held-out
// DPO loss falls and the held-out reward accuracy and margin rise, and
// summary.json has exact_match_before/after and kl.
func TestDPOImproves(t *testing.T) {
	start := alignStart(t)
	for _, tc := range []struct {
		loss  string
		loraR int
		eps   float64
	}{{align.Sigmoid, 0, 0}, {align.Sigmoid, 4, 0.1}, {align.IPO, 0, 0}, {align.Hinge, 0, 0}, {align.Robust, 0, 0.1}} {
		if testing.Short() && tc.loss != align.Sigmoid {
			continue
		}
		cfg := DefaultDPO()
		cfg.Model, cfg.Out, cfg.LoraR, cfg.LossType, cfg.LabelSmoothing = start, t.TempDir(), tc.loraR, tc.loss, tc.eps
		cfg.OnPolicy, cfg.KLSamples, cfg.Beta = false, 8, 0.5
		cfg.TrainPairs, cfg.EvalPairs, cfg.EvalExamples, cfg.Batch = 128, 32, 4, 8
		cfg.Steps, cfg.EvalEvery, cfg.LR, cfg.Warmup, cfg.MaxNewTokens = 20, 10, 3e-3, 2, 4
		if tc.loraR > 0 {
			cfg.LR = 1e-2
		}
		res, err := DPO(context.Background(), cfg, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		b, a := res.Before, res.After
		t.Logf("%s lora %d: eval loss %.4f -> %.4f, accuracy %.3f -> %.3f, margin %.4f -> %.4f, kl %.4f",
			tc.loss, tc.loraR, b["eval_loss"], a["eval_loss"], b["eval_rewards/accuracies"], a["eval_rewards/accuracies"], b["eval_rewards/margins"], a["eval_rewards/margins"], res.KL)
		if !(a["eval_loss"] < b["eval_loss"]) || !(a["eval_rewards/margins"] > b["eval_rewards/margins"]) || !(a["eval_rewards/accuracies"] > 0.5) {
			t.Errorf("%s lora %d: no improvement on held-out pairs", tc.loss, tc.loraR)
		}
		s := readSummary(t, cfg.Out)
		for _, k := range []string{"exact_match_before", "exact_match_after", "kl", "pairs"} {
			if _, ok := s[k]; !ok {
				t.Errorf("summary.json has no %s", k)
			}
		}
	}
}
