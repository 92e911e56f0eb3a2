package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shoggo/shoggo/recipe"
	"github.com/shoggo/shoggo/tensor"
	"github.com/shoggo/shoggo/train"
)

// precisionOf parses args (a --recipe file, then flags) as command cmd does
// and returns the resolved precision.
func precisionOf(cmd string, args []string) (tensor.DType, error) {
	var p *train.PrecisionConfig
	var err error
	threads := 0
	switch cmd {
	case "pretrain":
		r := recipe.DefaultPretrain()
		if err = loadRecipe(args, &r); err == nil {
			fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
			pretrainFlags(fs, &r)
			err = fs.Parse(args)
		}
		p = &r.PrecisionConfig
	case "sft":
		var r recipe.SFTConfig
		if r, err = sftConfig(args); err == nil {
			fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
			sftFlags(fs, &r)
			err = fs.Parse(args)
		}
		p = &r.PrecisionConfig
	case "reward":
		r := recipe.DefaultReward()
		_, err = alignFlags(cmd, args, &r, recipe.AlignHelp, &threads, &r.Options)
		p = &r.PrecisionConfig
	case "dpo":
		r := recipe.DefaultDPO()
		_, err = alignFlags(cmd, args, &r, recipe.DPOHelp, &threads, &r.Options)
		p = &r.PrecisionConfig
	case "grpo":
		r := recipe.DefaultGRPO()
		_, err = alignFlags(cmd, args, &r, recipe.RLHelp, &threads, &r.Options)
		p = &r.PrecisionConfig
	case "ppo":
		r := recipe.DefaultPPO()
		_, err = alignFlags(cmd, args, &r, recipe.RLHelp, &threads, &r.Options)
		p = &r.PrecisionConfig
	}
	if err != nil {
		return 0, err
	}
	return p.DType()
}

// Every training command takes --precision, --bf16 and --fp16, and the
// recipe keys precision, bf16 and fp16 (flags override a key of the same
// name); contradicting settings are an error naming the flags and keys, and
// the command refuses them before writing anything.
func TestPrecisionFlagsAndKeys(t *testing.T) {
	dir := t.TempDir()
	n := 0
	yamlFile := func(body string) string {
		n++
		p := filepath.Join(dir, fmt.Sprintf("r%d.yaml", n))
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		yaml string
		args []string
		want tensor.DType
		err  []string // substrings of the error; nil: none
	}{
		{"", nil, tensor.F32, nil},
		{"", []string{"--precision", "bf16"}, tensor.BF16, nil},
		{"", []string{"--precision=fp16"}, tensor.F16, nil},
		{"", []string{"--bf16"}, tensor.BF16, nil},
		{"", []string{"--fp16"}, tensor.F16, nil},
		{"", []string{"--precision", "fp16", "--fp16"}, tensor.F16, nil},
		{"bf16: true\n", nil, tensor.BF16, nil},
		{"fp16: true\n", nil, tensor.F16, nil},
		{"precision: bf16\n", nil, tensor.BF16, nil},
		{"precision: bf16\n", []string{"--precision", "fp32"}, tensor.F32, nil},
		{"fp16: true\n", []string{"--fp16=false", "--bf16"}, tensor.BF16, nil},
		{"", []string{"--bf16", "--fp16"}, 0, []string{"--bf16 and --fp16", "bf16: true, fp16: true"}},
		{"bf16: true\nfp16: true\n", nil, 0, []string{"--bf16 and --fp16"}},
		{"fp16: true\n", []string{"--bf16"}, 0, []string{"--bf16 and --fp16"}},
		{"fp16: true\n", []string{"--precision", "bf16"}, 0, []string{"--precision bf16", "--fp16", "recipe key fp16: true", "--fp16=false"}},
		{"precision: fp32\nbf16: true\n", nil, 0, []string{"--precision fp32", "recipe key precision: fp32", "--bf16"}},
		{"", []string{"--precision", "fp8"}, 0, []string{"--precision", "fp8"}},
	} {
		args := tc.args
		if tc.yaml != "" {
			args = append([]string{"--recipe", yamlFile(tc.yaml)}, args...)
		}
		for _, cmd := range []string{"pretrain", "sft", "reward", "dpo", "grpo", "ppo"} {
			got, err := precisionOf(cmd, args)
			if tc.err == nil {
				if err != nil || got != tc.want {
					t.Errorf("%s %q %v: %v, %v; want %v", cmd, tc.yaml, tc.args, got, err, tc.want)
				}
				continue
			}
			if err == nil {
				t.Errorf("%s %q %v: no error", cmd, tc.yaml, tc.args)
				continue
			}
			for _, s := range tc.err {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("%s %q %v: error %q does not say %q", cmd, tc.yaml, tc.args, err, s)
				}
			}
		}
	}
	// The commands themselves refuse a conflict before writing anything.
	runs := map[string]func([]string) error{"pretrain": runPretrain, "sft": runSFT, "reward": runReward, "dpo": runDPO,
		"grpo": runGRPO, "ppo": runPPO, "bench": runBench}
	for name, run := range runs {
		out := filepath.Join(dir, "out-"+name)
		args := []string{"--out", out, "--bf16", "--precision", "fp16"}
		if name == "bench" {
			args = args[2:]
		}
		err := run(args)
		if err == nil || !strings.Contains(err.Error(), "--precision fp16") || !strings.Contains(err.Error(), "--bf16") {
			t.Errorf("%s: got %v, want the precision conflict", name, err)
		}
		if _, err := os.Stat(out); !os.IsNotExist(err) {
			t.Errorf("%s: a refused run created %s", name, out)
		}
	}
}
