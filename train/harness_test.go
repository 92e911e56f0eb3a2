package train

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shoggo/shoggo/model"
	"github.com/shoggo/shoggo/optim"
)

// stepSource serves batchFor(2s), batchFor(2s+1), ... (two micro-batches
// per step); its position is the number of batches served.
type stepSource struct {
	n, V int
}

func (s *stepSource) Fill(micro []*model.Batch) error {
	for i := range micro {
		micro[i] = batchFor(s.n, 2, 8, s.V)
		s.n++
	}
	return nil
}
func (s *stepSource) MarshalState() ([]byte, error) { return json.Marshal(s.n) }
func (s *stepSource) RestoreState(b []byte) error   { return json.Unmarshal(b, &s.n) }

// countingLM is the LM objective with a normaliser of twice the tokens,
// recording what the harness asks of it.
type countingLM struct {
	counts, calls int
	scales        []float64
}

func (c *countingLM) Count(micro []*model.Batch) int {
	c.counts++
	return 2 * model.CountTargets(micro)
}

func (c *countingLM) ForwardBackward(m *model.Transformer, b *model.Batch, gradScale float64) (float64, error) {
	c.calls++
	c.scales = append(c.scales, gradScale)
	return LM{}.ForwardBackward(m, b, gradScale)
}

func metricsLosses(t *testing.T, path string) []float64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []float64
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var m Metric
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatal(err)
		}
		if m.Loss != 0 {
			out = append(out, m.Loss)
		}
	}
	return out
}

// The harness's step is exactly the plain loop's (run with Step): same
// schedule, optimizer and batches give the same losses and weights, bit
// for bit; a custom objective is asked for its count once per step and
// runs every micro-batch with gradScale = 1/count.
func TestTrainerMatchesPlainLoop(t *testing.T) {
	const N = 6
	o := Options{Steps: N, Accum: 2, LR: 3e-3, MinLR: 3e-4, Warmup: 3, Schedule: "cosine", WeightDecay: 0.1, EvalEvery: 3, Clip: 1}
	m1, opt := newTiny(t, "tiny-llama", 5)
	sched, err := optim.ParseSchedule(o.Schedule, o.LR, o.MinLR, o.Warmup, N)
	if err != nil {
		t.Fatal(err)
	}
	want := run(t, m1, opt, 0, N, sched)

	m2, _ := newTiny(t, "tiny-llama", 5)
	o.Out = t.TempDir()
	evals := 0
	tr := &Trainer{Opts: o, Model: m2, Trainable: FullTrainable(m2), Data: &stepSource{V: m2.Cfg.VocabSize},
		Eval: func() (map[string]float64, error) { evals++; return map[string]float64{"val_loss": 1, "score": 2}, nil }}
	res, err := tr.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got := metricsLosses(t, filepath.Join(o.Out, "metrics.jsonl"))
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("losses: harness %v, plain loop %v", got, want)
	}
	a, b := m1.Params.Flat().F32, m2.Params.Flat().F32
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("weight %d: %v vs %v", i, a[i], b[i])
		}
	}
	if evals != 3 || res.Before["score"] != 2 || res.After["val_loss"] != 1 || res.FirstLoss != want[0] || res.FinalLoss != want[N-1] {
		t.Errorf("%d evaluations (want before, at 3 and at 6); summary %+v", evals, res)
	}
	for _, f := range []string{"summary.json", "loss.png", "final/model.safetensors", "checkpoints/latest"} {
		if _, err := os.Stat(filepath.Join(o.Out, f)); err != nil {
			t.Error(err)
		}
	}

	m3, _ := newTiny(t, "tiny-llama", 5)
	obj := &countingLM{}
	o.Out = t.TempDir()
	tr = &Trainer{Opts: o, Model: m3, Trainable: FullTrainable(m3), Objective: obj, Data: &stepSource{V: m3.Cfg.VocabSize}}
	if _, err := tr.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if obj.counts != N || obj.calls != 2*N {
		t.Errorf("objective: %d counts and %d micro-batch calls, want %d and %d", obj.counts, obj.calls, N, 2*N)
	}
	half := metricsLosses(t, filepath.Join(o.Out, "metrics.jsonl"))
	if len(half) != N || half[0] != want[0]/2 {
		t.Errorf("first loss with a doubled count %v, want %v", half, want[0]/2)
	}
	first := 1 / float64(2*CountTargets([]*model.Batch{batchFor(0, 2, 8, m3.Cfg.VocabSize), batchFor(1, 2, 8, m3.Cfg.VocabSize)}))
	if obj.scales[0] != first || obj.scales[1] != first {
		t.Errorf("gradScale %v, want 1/count = %v", obj.scales[:2], first)
	}
}

// Resuming cuts metrics.jsonl back to the checkpoint's step.
func TestMetricsUpTo(t *testing.T) {
	in := "{\"step\":1,\"loss\":2}\n{\"step\":2,\"loss\":1}\n{\"step\":3,\"loss\":1}\nnot json\n{\"step\":2,\"val_loss\":1}\n"
	got := string(metricsUpTo([]byte(in), 2))
	want := "{\"step\":1,\"loss\":2}\n{\"step\":2,\"loss\":1}\n" // the eval-only line of the step resumed at is dropped
	if got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// Evaluation metrics share the step's metrics line.
func TestMetricJSON(t *testing.T) {
	b, err := json.Marshal(Metric{Step: 3, Loss: 1.5, ValLoss: 2, Eval: map[string]float64{"val_loss": 2, "exact_match": 0.25}})
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]float64
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	if m["step"] != 3 || m["loss"] != 1.5 || m["val_loss"] != 2 || m["exact_match"] != 0.25 {
		t.Errorf("%s", b)
	}
}
