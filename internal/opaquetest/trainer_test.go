package opaquetest

import (
	"context"
	"encoding/json"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shoggo/shoggo/lora"
	"github.com/shoggo/shoggo/model"
	"github.com/shoggo/shoggo/recipe"
	"github.com/shoggo/shoggo/train"
)

// padSource serves padded batches drawn from the batch number; its
// position is the number of batches served.
type padSource struct{ n, V int }

func (s *padSource) Fill(micro []*model.Batch) error {
	for i := range micro {
		micro[i] = randomBatch(rand.New(rand.NewPCG(uint64(s.n), 77)), 2, 10, s.V, true)
		s.n++
	}
	return nil
}
func (s *padSource) MarshalState() ([]byte, error) { return json.Marshal(s.n) }
func (s *padSource) RestoreState(b []byte) error   { return json.Unmarshal(b, &s.n) }

// metricLines returns the loss, gradient norm and validation loss of every
// line of a metrics.jsonl.
func metricLines(t *testing.T, path string) [][3]float64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out [][3]float64
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var m train.Metric
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatal(err)
		}
		out = append(out, [3]float64{m.Loss, m.GradNorm, m.ValLoss})
	}
	return out
}

// TestOpaqueTrainerLoRA: the trainer harness (train.Trainer) runs QLoRA SFT
// on the opaque backend: an NF4 Llama-style base with bf16 tables, LoRA
// with dropout under gradient checkpointing, accumulation, clipping, a
// cosine schedule and held-out evaluation, stopped after two steps
// (checkpoint: adapters through ToHost, moments, dropout streams) and
// resumed on a fresh model (adapters through FillHost, moments uploaded)
// to the end. Every metrics line (loss, gradient norm, validation loss)
// and the final PEFT adapter files are the same as on the CPU backend.
func TestOpaqueTrainerLoRA(t *testing.T) {
	var metrics [][][3]float64
	var finals []string
	for _, be := range backends() {
		out := t.TempDir()
		for _, resume := range []bool{false, true} {
			m, err := recipe.LoadBase(recipe.BaseConfig{Preset: "tiny-llama", QLoRA: true}, true, 0, 5, be, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if err := m.SetCheckpointing(true); err != nil {
				t.Fatal(err)
			}
			a, err := lora.Apply(m, lora.Config{R: 4, Alpha: 16, Dropout: 0.1, Targets: []string{"q_proj", "v_proj", "down_proj"}, Seed: 8})
			if err != nil {
				t.Fatal(err)
			}
			held := []*model.Batch{randomBatch(rand.New(rand.NewPCG(1, 2)), 3, 10, m.Cfg.VocabSize, true)}
			o := train.Options{Out: out, Steps: 5, Accum: 2, LR: 1e-2, MinLR: 1e-3, Warmup: 1, Schedule: "cosine",
				Clip: 0.05, EvalEvery: 2, Seed: 9, Resume: resume}
			if !resume {
				o.StopAfter = 2
			}
			tr := &train.Trainer{Opts: o, Model: m, Trainable: train.LoRA(m, a), Data: &padSource{V: m.Cfg.VocabSize}, Log: io.Discard,
				Eval: func() (map[string]float64, error) {
					v, err := train.Evaluate(m, held)
					return map[string]float64{"val_loss": v}, err
				}}
			if _, err := tr.Run(context.Background()); err != nil {
				t.Fatal(err)
			}
			if be.Name() == "opaque" {
				opaqueStorage(t, "opaque adapters", a.WeightArena.Tensors())
				opaqueStorage(t, "opaque moments", tr.Opt.State())
			}
		}
		metrics = append(metrics, metricLines(t, filepath.Join(out, "metrics.jsonl")))
		finals = append(finals, filepath.Join(out, "final"))
	}
	a, b := metrics[0], metrics[1]
	if len(a) != len(b) || len(a) < 5 {
		t.Fatalf("%d metrics lines on the CPU, %d on the opaque backend, want at least 5", len(a), len(b))
	}
	for i := range a {
		for j := range a[i] {
			if math.Float64bits(a[i][j]) != math.Float64bits(b[i][j]) {
				t.Fatalf("metrics line %d: %v on the CPU, %v on the opaque backend", i, a[i], b[i])
			}
		}
	}
	sameFiles(t, finals[0], finals[1])
}
