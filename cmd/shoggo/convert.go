package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/shoggo/shoggo/backend/device"
	"github.com/shoggo/shoggo/internal/safepath"
	"github.com/shoggo/shoggo/model"
	"github.com/shoggo/shoggo/tensor"
	"github.com/shoggo/shoggo/tokenizer"
)

func init() {
	register("convert", "change a model directory's dtype (fp32/bf16/fp16) and sharding", runConvert)
}

// parseSize reads sizes like 500MB, 2GB, 1048576.
func parseSize(s string) (int64, error) {
	var n float64
	var unit string
	if _, err := fmt.Sscanf(s, "%g%s", &n, &unit); err != nil {
		if _, err := fmt.Sscanf(s, "%g", &n); err != nil {
			return 0, fmt.Errorf("bad size %q", s)
		}
	}
	mult := map[string]float64{"": 1, "B": 1, "KB": 1e3, "MB": 1e6, "GB": 1e9, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}[unit]
	if mult == 0 {
		return 0, fmt.Errorf("bad size unit in %q", s)
	}
	return int64(n * mult), nil
}

func runConvert(args []string) error {
	fs := flag.NewFlagSet("convert", flag.ContinueOnError)
	in := fs.String("in", "", "input HF model directory")
	out := fs.String("out", "", "output directory")
	dtype := fs.String("dtype", "bf16", "fp32 | bf16 | fp16")
	finite := fs.Bool("check-finite", false, "refuse a model holding NaN or infinite weights")
	shard := fs.String("max-shard-size", "5GB", "largest shard (e.g. 500MB); the index is written when there are several")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *in == "" || *out == "" {
		return fmt.Errorf("usage: shoggo convert --in DIR --out DIR [--dtype bf16] [--max-shard-size 5GB]")
	}
	if err := safepath.CheckOutput("--out", *out, safepath.Input{Flag: "--in", Path: *in}); err != nil {
		return err
	}
	dt, err := tensor.ParseDType(*dtype)
	if err != nil || (dt != tensor.F32 && dt != tensor.BF16 && dt != tensor.F16) {
		return fmt.Errorf("--dtype %q: want fp32, bf16 or fp16", *dtype)
	}
	max, err := parseSize(*shard)
	if err != nil {
		return err
	}
	if *finite {
		if err := checkFinite(*in); err != nil {
			return err
		}
	}
	be, err := device.Open("cpu")
	if err != nil {
		return err
	}
	if err := model.PrecheckHF(*in, tensor.F32, false, 0, 0); err != nil {
		return err
	}
	m, warns, err := model.LoadHF(*in, be, tensor.F32, false)
	if err != nil {
		return err
	}
	for _, w := range warns {
		fmt.Fprintln(os.Stderr, "warning:", w)
	}
	if err := m.SaveHF(*out, model.SaveOptions{DType: dt, MaxShardBytes: max}); err != nil {
		return err
	}
	if _, err := tokenizer.CopyFiles(*in, *out, "generation_config.json"); err != nil {
		return err
	}
	fmt.Printf("wrote %s (%s, %d parameters)\n", *out, dt, m.NumParams())
	return nil
}
