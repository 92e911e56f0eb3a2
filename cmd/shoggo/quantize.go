package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/shoggo/shoggo/internal/safepath"
	"github.com/shoggo/shoggo/model"
	"github.com/shoggo/shoggo/quant"
	"github.com/shoggo/shoggo/tensor"
	"github.com/shoggo/shoggo/tokenizer"
)

func init() {
	register("quantize", "write a quantized copy (int8, int4, nf4, fp4) of an HF model directory for generate/eval", runQuantize)
}

func runQuantize(args []string) error {
	fs := flag.NewFlagSet("quantize", flag.ContinueOnError)
	dir := fs.String("model", "runs/pretrain/model", "HF model directory to quantize (fp32, bf16 or fp16)")
	format := fs.String("format", "nf4", "int8 (per-row absmax) | int4 (group-wise) | nf4 | fp4 (blockwise, bitsandbytes)")
	groupSize := fs.Int("group-size", quant.DefaultGroupSize, "int4: elements per scale (16, 32, 64, 128, 256)")
	asym := fs.Bool("asymmetric", false, "int4: a zero point per group")
	blockSize := fs.Int("block-size", quant.DefaultBlockSize, "nf4/fp4: elements per absmax (64 is what transformers loads)")
	doubleQuant := fs.Bool("double-quant", true, "nf4/fp4: quantize the absmax again (8-bit), as QLoRA does")
	keep := fs.String("keep-dtype", "fp32", "dtype of the unquantized tensors (embeddings, norms, LM head): fp32 | bf16 | fp16")
	out := fs.String("out", "", "output directory (default: <model>-<format>)")
	finite := fs.Bool("check-finite", false, "refuse a model holding NaN or infinite weights")
	maxShard := fs.Int64("max-shard-mb", 0, "split model.safetensors into shards of at most this many MB (0: one file)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %v", fs.Args())
	}
	f := strings.ToLower(*format)
	if err := quantizeChecks(fs, f); err != nil {
		return err
	}
	if *finite {
		if err := checkFinite(*dir); err != nil {
			return err
		}
	}
	opts := quant.Options{}
	switch f {
	case quant.Int8:
	case quant.Int4:
		opts.GroupSize, opts.Asymmetric = *groupSize, *asym
	case quant.NF4, quant.FP4:
		opts.BlockSize, opts.DoubleQuant = *blockSize, *doubleQuant
	default:
		return fmt.Errorf("--format %q: want int8, int4, nf4 or fp4", *format)
	}
	var kd tensor.DType
	switch *keep {
	case "fp32", "f32", "float32":
		kd = tensor.F32
	case "bf16", "bfloat16":
		kd = tensor.BF16
	case "fp16", "f16", "float16":
		kd = tensor.F16
	default:
		return fmt.Errorf("--keep-dtype %q: want fp32, bf16 or fp16", *keep)
	}
	if *out == "" {
		suffix := f
		if f == quant.Int4 {
			suffix = fmt.Sprintf("int4-g%d", *groupSize)
		}
		*out = strings.TrimRight(filepath.Clean(*dir), "/") + "-" + suffix
	}
	if err := safepath.CheckOutput("--out", *out, safepath.Input{Flag: "--model", Path: *dir}); err != nil {
		return err
	}
	if err := model.PrecheckHF(*dir, tensor.F32, false, 0, 0); err != nil {
		return err
	}
	res, err := model.QuantizeHF(*dir, *out, model.QuantizeOptions{Format: f, Quant: opts, KeepDType: kd, MaxShardBytes: *maxShard << 20})
	if err != nil {
		return err
	}
	for _, w := range res.Warnings {
		fmt.Fprintln(os.Stderr, "warning:", w)
	}
	if _, err := tokenizer.CopyFiles(*dir, *out, "generation_config.json"); err != nil {
		return err
	}
	in, _ := dirSize(*dir, ".safetensors")
	outSize, _ := dirSize(*out, ".safetensors")
	fmt.Printf("quantized %d linear layers (%s weights) to %s: %.2f bits/weight; other tensors %s in %s\n",
		res.Layers, human(float64(res.LinearParams)), f, 8*float64(res.QuantBytes)/float64(max(res.LinearParams, 1)),
		humanBytes(res.FloatBytes), *keep)
	fmt.Printf("safetensors: %s -> %s (%.1f%%): %s\n", humanBytes(in), humanBytes(outSize), 100*float64(outSize)/float64(max(in, 1)), *out)
	return nil
}

// dirSize sums the sizes of the files in dir whose names end with suffix.
func dirSize(dir, suffix string) (int64, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), suffix) {
			if info, err := e.Info(); err == nil {
				n += info.Size()
			}
		}
	}
	return n, nil
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.2f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// quantizeChecks refuses format options typed for a format that does not
// use them, and out-of-range sizes.
func quantizeChecks(fs *flag.FlagSet, f string) error {
	set := typed(fs)
	if (set["group-size"] || set["asymmetric"]) && f != quant.Int4 {
		return fmt.Errorf("--group-size and --asymmetric apply to --format int4 only, not %s", f)
	}
	if (set["block-size"] || set["double-quant"]) && f != quant.NF4 && f != quant.FP4 {
		return fmt.Errorf("--block-size and --double-quant apply to --format nf4 and fp4 only, not %s", f)
	}
	return checkBounds(fs, atLeast("max-shard-mb", 0, "0: one file"), atLeast("group-size", 1), atLeast("block-size", 1))
}
