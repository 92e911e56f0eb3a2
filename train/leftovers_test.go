package train

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shoggo/shoggo/model"
)

// nanAt is the LM objective whose loss turns NaN from call n on.
type nanAt struct {
	n, calls int
}

func (o *nanAt) Count(micro []*model.Batch) int { return model.CountTargets(micro) }
func (o *nanAt) ForwardBackward(m *model.Transformer, b *model.Batch, s float64) (float64, error) {
	o.calls++
	l, err := LM{}.ForwardBackward(m, b, s)
	if o.calls >= o.n {
		return math.NaN(), err
	}
	return l, err
}

func tinyTrainer(t *testing.T, out string, o Options) *Trainer {
	m, _ := newTiny(t, "tiny-llama", 5)
	o.Out, o.LR, o.Clip = out, 1e-3, 1
	if o.Steps == 0 {
		o.Steps = 6
	}
	return &Trainer{Opts: o, Model: m, Trainable: FullTrainable(m), Data: &stepSource{V: m.Cfg.VocabSize}}
}

// Leftovers of a killed save are removed on the next start; the metrics
// of an interrupted and resumed run hold every step once; resuming with
// --steps at or below the checkpoint's step is an error naming both.
func TestCrashLeftovers(t *testing.T) {
	out := t.TempDir()
	if _, err := tinyTrainer(t, out, Options{StopAfter: 3, EvalEvery: 2}).Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	// what kill -9 in the middle of a save leaves
	stale := filepath.Join(out, "checkpoints", ".step-00000004.tmp123456")
	if err := os.MkdirAll(stale, 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(stale, "model.safetensors"), make([]byte, 1000), 0o644)
	tr := tinyTrainer(t, out, Options{Resume: true, EvalEvery: 2})
	tr.Eval = func() (map[string]float64, error) { return map[string]float64{"val_loss": 1}, nil }
	if _, err := tr.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("stale save not removed: %v", err)
	}
	b, _ := os.ReadFile(filepath.Join(out, "metrics.jsonl"))
	seen := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		step := line[:strings.Index(line, ",")]
		if seen[step] {
			t.Errorf("metrics.jsonl repeats %s:\n%s", step, b)
		}
		seen[step] = true
	}
	if len(seen) != 6 {
		t.Errorf("metrics.jsonl has %d steps, want 6:\n%s", len(seen), b)
	}
	for _, tc := range []struct {
		steps int
		want  string
	}{{4, "checkpoint is at step 6, beyond --steps 4"}, {5, "beyond --steps 5"}} {
		_, err := tinyTrainer(t, out, Options{Resume: true, Steps: tc.steps}).Run(context.Background())
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("--resume --steps %d: got %v, want %q", tc.steps, err, tc.want)
		}
	}
	// a run killed after its last checkpoint: --resume writes the outputs
	os.RemoveAll(filepath.Join(out, "final"))
	before, _ := os.ReadFile(filepath.Join(out, "metrics.jsonl"))
	tr = tinyTrainer(t, out, Options{Resume: true, Steps: 6})
	tr.Eval = func() (map[string]float64, error) { return map[string]float64{"val_loss": 1}, nil }
	res, err := tr.Run(context.Background())
	if err != nil || res.Steps != 6 || res.FinalLoss == 0 || res.After["val_loss"] != 1 {
		t.Fatalf("resume of a complete run: %+v %v", res, err)
	}
	if after, _ := os.ReadFile(filepath.Join(out, "metrics.jsonl")); string(after) != string(before) {
		t.Errorf("resuming a complete run changed metrics.jsonl:\n%s\nwas\n%s", after, before)
	}
	if _, err := os.Stat(filepath.Join(out, "final", "model.safetensors")); err != nil {
		t.Fatal(err)
	}
}

// A non-finite loss stops training with an error naming the step and the
// last good checkpoint, which stays the latest.
func TestNonFiniteLossStops(t *testing.T) {
	out := t.TempDir()
	tr := tinyTrainer(t, out, Options{Steps: 8, SaveEvery: 2, Accum: 2})
	tr.Objective = &nanAt{n: 2*4 + 1} // two micro-batches a step: the 5th step's first
	_, err := tr.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "step 5") || !strings.Contains(err.Error(), "NaN") || !strings.Contains(err.Error(), "step-00000004") {
		t.Fatalf("got %v", err)
	}
	last, err := LatestCheckpoint(filepath.Join(out, "checkpoints"))
	if err != nil || filepath.Base(last) != CheckpointName(4) {
		t.Fatalf("latest checkpoint %s, %v", last, err)
	}
	if _, err := os.Stat(filepath.Join(out, "final")); !os.IsNotExist(err) {
		t.Errorf("a diverged run saved its model: %v", err)
	}
}
