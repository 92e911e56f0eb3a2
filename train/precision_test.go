package train

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/shoggo/shoggo/backend/cpu"
	"github.com/shoggo/shoggo/tensor"
)

// The three precision settings resolve to one dtype; conflicts are errors
// naming both flags and recipe keys.
func TestPrecisionConfig(t *testing.T) {
	for _, tc := range []struct {
		p    PrecisionConfig
		want tensor.DType
		err  []string // substrings of the error; nil: no error
	}{
		{PrecisionConfig{}, tensor.F32, nil},
		{PrecisionConfig{Precision: "fp32"}, tensor.F32, nil},
		{PrecisionConfig{Precision: "bf16"}, tensor.BF16, nil},
		{PrecisionConfig{Precision: "fp16"}, tensor.F16, nil},
		{PrecisionConfig{Precision: "float16"}, tensor.F16, nil},
		{PrecisionConfig{BF16: true}, tensor.BF16, nil},
		{PrecisionConfig{FP16: true}, tensor.F16, nil},
		{PrecisionConfig{Precision: "bf16", BF16: true}, tensor.BF16, nil},
		{PrecisionConfig{Precision: "fp16", FP16: true}, tensor.F16, nil},
		{PrecisionConfig{BF16: true, FP16: true}, 0, []string{"--bf16", "--fp16", "bf16: true", "fp16: true"}},
		{PrecisionConfig{Precision: "fp16", BF16: true}, 0, []string{"--precision fp16", "--bf16", "recipe key bf16: true", "--bf16=false"}},
		{PrecisionConfig{Precision: "fp32", FP16: true}, 0, []string{"--precision fp32", "--fp16", "recipe key precision"}},
		{PrecisionConfig{Precision: "int8"}, 0, []string{"--precision", "int8", "recipe key precision"}},
	} {
		got, err := tc.p.DType()
		if tc.err == nil {
			if err != nil || got != tc.want {
				t.Errorf("%+v: %v, %v; want %v", tc.p, got, err, tc.want)
			}
			continue
		}
		if err == nil {
			t.Errorf("%+v: no error (got %v)", tc.p, got)
			continue
		}
		for _, s := range tc.err {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("%+v: error %q does not name %q", tc.p, err, s)
			}
		}
	}
	if PrecisionName(tensor.F32) != "fp32" || PrecisionName(tensor.BF16) != "bf16" || PrecisionName(tensor.F16) != "fp16" {
		t.Error("PrecisionName")
	}
}

// The overflow check is the backend's float64 SumSquares: finite for the
// largest finite float32 gradients, non-finite for one inf or NaN.
func TestOverflowCheck(t *testing.T) {
	be := cpu.New()
	g := tensor.New(tensor.F32, 1<<12)
	for i := range g.F32 {
		g.F32[i] = -math.MaxFloat32
	}
	h := tensor.New(tensor.F32, 7)
	if ss := be.SumSquares([]*tensor.Tensor{g, h}); math.IsInf(ss, 0) || math.IsNaN(ss) {
		t.Fatalf("finite float32 gradients read as an overflow: %v", ss)
	}
	for _, bad := range []float32{float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN())} {
		h.F32[3] = bad
		if ss := be.SumSquares([]*tensor.Tensor{g, h}); !math.IsInf(ss, 0) && !math.IsNaN(ss) {
			t.Errorf("%v in a gradient: sum of squares %v", bad, ss)
		}
	}
}

// metricLines returns metrics.jsonl's lines as maps.
func metricLines(t *testing.T, out string) []map[string]any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(out, "metrics.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	var ms []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("%s: %v", l, err)
		}
		ms = append(ms, m)
	}
	return ms
}

// hostState copies the trained parameters and the optimizer's moments.
func hostState(tr *Trainer) [][]float32 {
	var out [][]float32
	for _, p := range tr.Trainable.Params {
		out = append(out, slices.Clone(p.W.F32))
	}
	for _, s := range tr.Opt.State() {
		out = append(out, slices.Clone(s.F32))
	}
	return out
}

// An fp16 run with an overflow injected at one step: exactly that step is
// skipped (parameters, moments and the optimizer's step count unchanged,
// the LR schedule not advanced), the scale halves, training continues, and
// the scale grows again after GrowthInterval clean steps. metrics.jsonl and
// summary.json carry loss_scale and skipped_steps.
func TestLossScalerSkipsOverflow(t *testing.T) {
	out := t.TempDir()
	tr := tinyTrainer(t, out, Options{Steps: 7, Accum: 2, Warmup: 3, Schedule: "cosine", MinLR: 1e-5, PrecisionConfig: PrecisionConfig{FP16: true}})
	tr.Scaler = &GradScaler{Scale: 1024, GrowthFactor: 2, BackoffFactor: 0.5, GrowthInterval: 2}
	const k = 3 // 0-based step that overflows (the 4th)
	var before [][]float32
	var stepAtK int
	tr.afterBackward = func(step int) {
		switch step {
		case k:
			before, stepAtK = hostState(tr), tr.Opt.StepCount()
			tr.Trainable.Grads[1].F32[5] = float32(math.Inf(1))
		case k + 1:
			if got := hostState(tr); fmt.Sprint(got) != fmt.Sprint(before) {
				t.Errorf("the skipped step changed parameters or moments")
			}
			if tr.Opt.StepCount() != stepAtK {
				t.Errorf("optimizer step count %d after the skipped step, want %d", tr.Opt.StepCount(), stepAtK)
			}
		}
	}
	res, err := tr.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if tr.Model.Precision() != tensor.F16 {
		t.Errorf("model precision %v, want F16", tr.Model.Precision())
	}
	// scale after each step: clean steps 1-3 (growth at 2), overflow at 4
	// (halved), clean 5-7 (growth at 6).
	wantScale := []float64{1024, 2048, 2048, 1024, 1024, 2048, 2048}
	wantSkipped := []float64{0, 0, 0, 1, 1, 1, 1}
	ms := metricLines(t, out)
	var scales, skipped, lrs []float64
	for _, m := range ms {
		if _, ok := m["loss"]; !ok {
			continue
		}
		scales, skipped, lrs = append(scales, m["loss_scale"].(float64)), append(skipped, m["skipped_steps"].(float64)), append(lrs, m["lr"].(float64))
	}
	if fmt.Sprint(scales) != fmt.Sprint(wantScale) || fmt.Sprint(skipped) != fmt.Sprint(wantSkipped) {
		t.Errorf("loss_scale %v skipped_steps %v; want %v and %v", scales, skipped, wantScale, wantSkipped)
	}
	for s := range lrs {
		upd := s // updates made before step s
		if s > k {
			upd--
		}
		if lrs[s] != tr.Sched.LR(upd) {
			t.Errorf("step %d: lr %v, want the schedule at update %d: %v", s+1, lrs[s], upd, tr.Sched.LR(upd))
		}
	}
	if tr.Opt.StepCount() != 6 || res.Steps != 7 || res.SkippedSteps == nil || *res.SkippedSteps != 1 || res.LossScale != 2048 || res.Precision != "fp16" {
		t.Errorf("optimizer steps %d; summary %+v", tr.Opt.StepCount(), res)
	}
	b, _ := os.ReadFile(filepath.Join(out, "summary.json"))
	var sum map[string]any
	if err := json.Unmarshal(b, &sum); err != nil || sum["loss_scale"] != 2048.0 || sum["skipped_steps"] != 1.0 || sum["precision"] != "fp16" {
		t.Errorf("summary.json %s (%v)", b, err)
	}
}

// Loss scaling by a power of two is exact: an fp32 run with a scaler
// matches the plain run bit for bit (losses and weights), and plain runs
// write no scaler fields.
func TestLossScalingExact(t *testing.T) {
	o := Options{Steps: 4, Accum: 2, Clip: 1}
	plainOut, scaledOut := t.TempDir(), t.TempDir()
	plain := tinyTrainer(t, plainOut, o)
	if _, err := plain.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	scaled := tinyTrainer(t, scaledOut, o)
	scaled.Scaler = &GradScaler{Scale: 1 << 20, GrowthFactor: 2, BackoffFactor: 0.5, GrowthInterval: 2}
	if _, err := scaled.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	a, b := metricsLosses(t, filepath.Join(plainOut, "metrics.jsonl")), metricsLosses(t, filepath.Join(scaledOut, "metrics.jsonl"))
	if fmt.Sprint(a) != fmt.Sprint(b) {
		t.Errorf("losses: plain %v, scaled %v", a, b)
	}
	if fmt.Sprint(hostState(plain)) != fmt.Sprint(hostState(scaled)) {
		t.Error("weights or moments differ")
	}
	for _, m := range metricLines(t, plainOut) {
		if _, ok := m["loss_scale"]; ok {
			t.Errorf("plain run logs a loss scale: %v", m)
		}
	}
	if ms := metricLines(t, scaledOut); ms[3]["loss_scale"] != float64(1<<22) {
		t.Errorf("scale after 4 clean steps with interval 2: %v", ms[3]["loss_scale"])
	}
}

// stripTimes drops the wall-clock fields of metrics lines, and tokens
// (counted per invocation).
func stripTimes(ms []map[string]any) string {
	for _, m := range ms {
		delete(m, "elapsed_s")
		delete(m, "tok_per_s")
		delete(m, "tokens")
	}
	b, _ := json.Marshal(ms)
	return string(b)
}

// An fp16 run stopped and resumed gives the same metrics lines (scale and
// skipped steps included) and weights as the run straight through: the
// scaler's state is in the checkpoint.
func TestLossScalerResume(t *testing.T) {
	o := Options{Steps: 8, Accum: 2, Warmup: 2, PrecisionConfig: PrecisionConfig{Precision: "fp16"}}
	inject := func(tr *Trainer) {
		tr.Scaler = &GradScaler{Scale: 512, GrowthFactor: 2, BackoffFactor: 0.5, GrowthInterval: 3}
		tr.afterBackward = func(step int) {
			if step == 1 || step == 5 {
				tr.Trainable.Grads[0].F32[0] = float32(math.NaN())
			}
		}
	}
	straightOut := t.TempDir()
	straight := tinyTrainer(t, straightOut, o)
	inject(straight)
	if _, err := straight.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	o.StopAfter = 3
	first := tinyTrainer(t, out, o)
	inject(first)
	if _, err := first.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	o.StopAfter, o.Resume = 0, true
	second := tinyTrainer(t, out, o)
	inject(second)
	second.Scaler.Scale = 1 // must come from the checkpoint
	res, err := second.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	a, b := stripTimes(metricLines(t, straightOut)), stripTimes(metricLines(t, out))
	if a != b {
		t.Errorf("metrics differ:\nstraight %s\nresumed  %s", a, b)
	}
	if !strings.Contains(a, `"skipped_steps":2`) {
		t.Errorf("two skipped steps expected: %s", a)
	}
	if fmt.Sprint(hostState(straight)) != fmt.Sprint(hostState(second)) {
		t.Error("weights or moments differ after resuming")
	}
	if res.SkippedSteps == nil || *res.SkippedSteps != 2 {
		t.Errorf("summary %+v", res)
	}
}

// The scale is torch's float32 scale: each update rounds to float32, and
// growth stops where the scale would overflow float32.
func TestGradScalerFloat32(t *testing.T) {
	s := &GradScaler{Scale: 0x1p126, GrowthFactor: 2, BackoffFactor: 0.5, GrowthInterval: 1}
	s.Update(false)
	if s.Scale != 0x1p127 {
		t.Fatalf("scale %v, want 2^127", s.Scale)
	}
	s.Update(false)
	if s.Scale != 0x1p127 || s.GrowthTracker != 0 {
		t.Fatalf("growth past float32: scale %v tracker %d", s.Scale, s.GrowthTracker)
	}
	bo := 0.3
	s = &GradScaler{Scale: 3, GrowthFactor: 3, BackoffFactor: bo, GrowthInterval: 2}
	s.Update(true)
	if exact := 3 * bo; s.Scale != float64(float32(exact)) || s.Scale == exact || s.Skipped != 1 {
		t.Fatalf("backoff: scale %v, want float32(%v)", s.Scale, exact)
	}
}
