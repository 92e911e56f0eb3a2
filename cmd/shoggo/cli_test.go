package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The CLI end to end on a tiny pre-trained model: quantize to each format,
// generate and eval from the quantized directories; eval on the embedded
// corpus; sft --qlora trains and saves an adapter that merges into the
// fp32 base (and not into a quantized directory).
func TestQuantizeGenerateEvalQLoRACLI(t *testing.T) {
	tmp := t.TempDir()
	pre := filepath.Join(tmp, "pre")
	if err := runPretrain([]string{"--out", pre, "--steps", "2", "--batch", "2", "--seq", "32", "--eval-every", "2", "--eval-batches", "1",
		"--sample-every", "100", "--save-every", "100", "--warmup", "1", "--vocab-size", "600", "--threads", "2"}); err != nil {
		t.Fatal(err)
	}
	base := filepath.Join(pre, "model")
	shard := filepath.Join(pre, "data", "kjv-000000.bin")
	for _, f := range [][]string{{"int8"}, {"int4", "--group-size", "32"}, {"nf4"}} {
		out := filepath.Join(tmp, f[0])
		if err := runQuantize(append([]string{"--model", base, "--out", out, "--format"}, f...)); err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"config.json", "model.safetensors", "tokenizer.json", "generation_config.json"} {
			if _, err := os.Stat(filepath.Join(out, name)); err != nil {
				t.Error(err)
			}
		}
		if err := runGenerate([]string{"--model", out, "--prompt", "And", "--max-new-tokens", "4", "--temperature", "0"}); err != nil {
			t.Fatal(err)
		}
		if err := runEval([]string{"--model", out, "--data", shard, "--batch", "2", "--seq", "32", "--batches", "2", "--gen-tokens", "3"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := runEval([]string{"--model", base, "--batch", "2", "--seq", "32", "--batches", "1", "--json"}); err != nil {
		t.Fatal(err)
	}
	if err := runQuantize([]string{"--model", base, "--format", "int3"}); err == nil {
		t.Error("--format int3 accepted")
	}

	sftOut := filepath.Join(tmp, "sft")
	if err := runSFT([]string{"--model", base, "--qlora", "--lora-r", "4", "--lora-targets", "all-linear", "--steps", "2",
		"--train-examples", "32", "--eval-examples", "2", "--batch", "4", "--eval-every", "100",
		"--out", sftOut, "--threads", "2"}); err != nil {
		t.Fatal(err)
	}
	adapter := filepath.Join(sftOut, "final")
	if err := runMerge([]string{"--base", base, "--adapter", adapter, "--out", filepath.Join(tmp, "merged")}); err != nil {
		t.Fatal(err)
	}
	if err := runMerge([]string{"--base", filepath.Join(tmp, "nf4"), "--adapter", adapter, "--out", filepath.Join(tmp, "merged2")}); err == nil {
		t.Error("merging into a quantized directory accepted")
	} else if !strings.Contains(err.Error(), "dtype") {
		t.Logf("merge into a quantized base: %v", err)
	}
}
