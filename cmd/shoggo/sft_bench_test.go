package main

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/shoggo/shoggo/recipe"
)

// runCaptured runs `shoggo sft args...` and returns what it printed on
// stdout.
func runCaptured(t *testing.T, args []string) (string, error) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stdout
	os.Stdout = w
	done := make(chan string)
	go func() {
		var b bytes.Buffer
		io.Copy(&b, r)
		done <- b.String()
	}()
	runErr := runSFT(args)
	os.Stdout = old
	w.Close()
	return <-done, runErr
}

// lastJSON decodes the bench's one-line JSON summary (its last line).
func lastJSON(t *testing.T, out string) recipe.SFTBenchResult {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var res recipe.SFTBenchResult
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &res); err != nil {
		t.Fatalf("last line is not the JSON summary: %v\n%s", err, out)
	}
	return res
}

// `sft --bench-steps` builds the model through recipe.LoadBase (fp32, bf16 and
// NF4 bases, with and without checkpointing), runs warmup + timed steps and
// ends with a JSON summary whose fields add up.
func TestSFTBench(t *testing.T) {
	common := []string{"--preset", "tiny-qwen2", "--bench-steps", "2", "--batch", "2", "--max-len", "16",
		"--lora-r", "4", "--lora-alpha", "8", "--lora-dropout", "0.1", "--lora-targets", "q_proj,v_proj", "--threads", "1"}
	for _, extra := range [][]string{
		{"--base-dtype", "fp32"},
		{"--base-dtype", "bf16", "--gradient-checkpointing"},
		{"--qlora", "--grad-accum", "2"},
		{"--lora-r", "0"},
	} {
		t.Run(strings.Join(extra, " "), func(t *testing.T) {
			out, err := runCaptured(t, append(append([]string{}, common...), extra...))
			if err != nil {
				if strings.Contains(err.Error(), "not available") {
					t.Skip(err)
				}
				t.Fatal(err)
			}
			res := lastJSON(t, out)
			accum := 1
			if strings.Contains(strings.Join(extra, " "), "grad-accum") {
				accum = 2
			}
			if res.Impl != "shoggo" || res.Steps != 2 || len(res.StepTimesS) != 2 || res.TokensPerStep != 2*16*accum {
				t.Errorf("summary %+v", res)
			}
			if !(res.TokensPerSec > 0) || !(res.StepS > 0) || res.PeakRSSMiB < res.RSSAfterBuildMiB || res.RSSAfterBuildMiB <= 0 {
				t.Errorf("speed/memory fields: %+v", res)
			}
			if res.Mode == "lora" && (res.LoraR != 4 || res.Trainable == 0 || res.Trainable >= res.Params) {
				t.Errorf("LoRA fields: %+v", res)
			}
			if res.Mode == "full" && res.Trainable != res.Params {
				t.Errorf("full fine-tuning trains %d of %d parameters", res.Trainable, res.Params)
			}
		})
	}
}

// The shipped recipes decode (every key is a known field) and drive the
// bench at a tiny shape.
func TestRecipesParse(t *testing.T) {
	for _, p := range []string{"../../recipes/qwen1.5-1.8b-lora.yaml", "../../recipes/tiny-lora.yaml"} {
		t.Run(p, func(t *testing.T) {
			out, err := runCaptured(t, []string{"--recipe", p, "--model", "", "--preset", "tiny-qwen2", "--tokenizer", "",
				"--max-len", "16", "--batch", "2", "--grad-accum", "1", "--bench-steps", "1", "--threads", "1"})
			if err != nil {
				t.Fatal(err)
			}
			res := lastJSON(t, out)
			if res.Mode != "lora" {
				t.Errorf("recipe %s: mode %q, want lora", p, res.Mode)
			}
			// The Qwen1.5-1.8B recipe is QLoRA with fp16 mixed precision.
			if strings.Contains(p, "qwen") && (res.BaseDType != "nf4" || res.Precision != "fp16") {
				t.Errorf("recipe %s: base %q precision %q, want nf4 and fp16", p, res.BaseDType, res.Precision)
			}
		})
	}
}
