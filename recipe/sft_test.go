package recipe

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/shoggo/shoggo/train"
)

func readLosses(t *testing.T, path string) map[int]float64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[int]float64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m train.Metric
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatal(err)
		}
		if m.Loss != 0 {
			if _, dup := out[m.Step]; dup {
				t.Fatalf("%s: step %d logged twice", path, m.Step)
			}
			out[m.Step] = m.Loss
		}
	}
	return out
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// An SFT run stopped after k steps and resumed gives the same losses and
// the same final weights, bit for bit, as an uninterrupted run: full
// fine-tuning, and LoRA with dropout and gradient checkpointing (the
// dropout streams are checkpointed), both with gradient accumulation,
// packing and evaluations in between.
func TestSFTResumeBitIdentical(t *testing.T) {
	tok := filepath.Join(t.TempDir(), "tokenizer.json")
	tk, err := DefaultTokenizer(600)
	if err != nil {
		t.Fatal(err)
	}
	if err := tk.Save(tok); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		lora   bool
		result string
	}{
		{"full", false, "model.safetensors"},
		{"lora", true, "adapter_model.safetensors"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultSFT()
			cfg.TaskDefaults()
			cfg.Preset, cfg.Tokenizer = "tiny-llama", tok
			cfg.Steps, cfg.Accum, cfg.Batch, cfg.EvalEvery, cfg.Warmup = 6, 2, 4, 2, 2
			cfg.TrainExamples, cfg.EvalExamples, cfg.MaxNewTokens = 48, 2, 4
			if tc.lora {
				cfg.LoraR, cfg.LoraDropout, cfg.LoraTargets, cfg.GradCheckpointing = 4, 0.2, "all-linear", true
			}
			straight, resumed := cfg, cfg
			straight.Out, resumed.Out = filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")
			resA, err := SFT(context.Background(), straight, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			part := resumed
			part.StopAfter = 3
			resB, err := SFT(context.Background(), part, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if !resB.Interrupted || resB.Steps != 3 {
				t.Fatalf("stopped run: interrupted %v at step %d, want step 3", resB.Interrupted, resB.Steps)
			}
			resumed.Resume = true
			resC, err := SFT(context.Background(), resumed, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			la, lb := readLosses(t, filepath.Join(straight.Out, "metrics.jsonl")), readLosses(t, filepath.Join(resumed.Out, "metrics.jsonl"))
			if len(la) != 6 || len(lb) != 6 {
				t.Fatalf("losses logged: %d straight, %d resumed", len(la), len(lb))
			}
			for s, v := range la {
				if lb[s] != v {
					t.Errorf("step %d: loss %v straight, %v resumed", s, v, lb[s])
				}
			}
			if resA.FirstLoss != resC.FirstLoss || resA.FinalLoss != resC.FinalLoss || resC.Steps != 6 {
				t.Errorf("summaries differ: %+v vs %+v", resA.Summary, resC.Summary)
			}
			if resA.Before["val_loss"] != resC.Before["val_loss"] || resA.After["val_loss"] != resC.After["val_loss"] {
				t.Errorf("before/after differ: %v %v vs %v %v", resA.Before, resA.After, resC.Before, resC.After)
			}
			wa := readFile(t, filepath.Join(straight.Out, "final", tc.result))
			wb := readFile(t, filepath.Join(resumed.Out, "final", tc.result))
			if !bytes.Equal(wa, wb) {
				t.Errorf("final %s differs between the straight and the resumed run", tc.result)
			}
			var sum train.Summary
			if err := json.Unmarshal(readFile(t, filepath.Join(resumed.Out, "summary.json")), &sum); err != nil {
				t.Fatal(err)
			}
			if sum.Recipe != "sft" || sum.Steps != 6 || sum.Interrupted || sum.Before["exact_match"] != resA.Before["exact_match"] {
				t.Errorf("summary.json %+v", sum)
			}
		})
	}
}
