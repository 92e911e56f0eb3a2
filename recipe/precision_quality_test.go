package recipe

import (
	"context"
	"io"
	"math"
	"path/filepath"
	"testing"
)

// Mixed precision's quality marks (issue 13), end to end through the
// recipes the CLI runs. They take a few minutes on 2 cores and run in
// .ci/run; `go test -short -run Quality ./recipe/` runs just them.

// TestQualityPretrainBF16 trains the default pretrain model (shoggo-4m on
// the embedded corpus, the default seed and schedule shape) for 150 steps
// in fp32 and in bf16: the bf16 run's validation loss is within 1% of the
// fp32 run's. (The full 500-step default, measured once, is in
// docs/BENCHMARKS.md.)
func TestQualityPretrainBF16(t *testing.T) {
	val := map[string]float64{}
	for _, prec := range []string{"fp32", "bf16"} {
		c := DefaultPretrain()
		c.Steps, c.EvalEvery, c.SampleEvery, c.SaveEvery = 150, 150, 0, 0
		c.Precision = prec
		c.Out = filepath.Join(t.TempDir(), prec)
		res, err := Pretrain(context.Background(), c, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		val[prec] = res.After["val_loss"]
		t.Logf("%s: val loss %.4f -> %.4f, %.0f tokens/s", prec, res.Before["val_loss"], val[prec], res.TokPerSec)
	}
	if d := math.Abs(val["bf16"]-val["fp32"]) / val["fp32"]; !(d <= 0.01) {
		t.Errorf("bf16 val loss %.4f vs fp32 %.4f: %.2f%% apart, want within 1%%", val["bf16"], val["fp32"], 100*d)
	}
	if !(val["fp32"] < 6) {
		t.Errorf("fp32 val loss %.4f: the run did not learn (unigram entropy ~6)", val["fp32"])
	}
}

// TestQualitySFTHalf runs `shoggo sft`'s embedded task (add2 on a fresh
// shoggo-1m, the task defaults) in bf16 and in fp16 (loss scaling): both
// reach the same held-out exact match, and at least 90%.
func TestQualitySFTHalf(t *testing.T) {
	em := map[string]float64{}
	for _, prec := range []string{"bf16", "fp16"} {
		c := DefaultSFT()
		c.TaskDefaults()
		c.Preset = TaskPreset
		c.Precision = prec
		c.Out = filepath.Join(t.TempDir(), prec)
		res, err := SFT(context.Background(), c, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		em[prec] = res.After["exact_match"]
		skipped := 0
		if res.SkippedSteps != nil {
			skipped = *res.SkippedSteps
		}
		t.Logf("%s: exact match %.3f -> %.3f, loss scale %v, skipped steps %d", prec, res.Before["exact_match"], em[prec], res.LossScale, skipped)
	}
	if em["bf16"] != em["fp16"] || !(em["bf16"] >= 0.9) {
		t.Errorf("exact match bf16 %.3f, fp16 %.3f: want equal and ≥ 0.9", em["bf16"], em["fp16"])
	}
}
