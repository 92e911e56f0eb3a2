package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/shoggo/shoggo/backend/device"
	"github.com/shoggo/shoggo/recipe"
)

func init() {
	register("pretrain", "pre-train a model (default: a 4M-parameter model on the embedded KJV corpus)", runPretrain)
}

func pretrainFlags(fs *flag.FlagSet, r *recipe.PretrainConfig) {
	fs.String("recipe", "", "YAML recipe file whose fields are the flags' names with underscores (flags override it)")
	fs.StringVar(&r.Preset, "preset", r.Preset, "model preset (see `shoggo presets`)")
	fs.StringVar(&r.ModelConfig, "config", r.ModelConfig, "model config.json (instead of a preset)")
	fs.StringVar(&r.Init, "init", r.Init, "start from this HF model directory instead of random weights")
	fs.StringVar(&r.Tokenizer, "tokenizer", r.Tokenizer, "tokenizer.json (default: trained on the embedded corpus)")
	fs.IntVar(&r.VocabSize, "vocab-size", r.VocabSize, "vocabulary of the tokenizer trained on the embedded corpus")
	fs.StringVar(&r.Out, "out", r.Out, "output directory")
	fs.IntVar(&r.Batch, "batch", r.Batch, "micro-batch size (sequences)")
	fs.IntVar(&r.Seq, "seq", r.Seq, "sequence length")
	fs.IntVar(&r.Accum, "grad-accum", r.Accum, "micro-batches per optimisation step")
	fs.IntVar(&r.Steps, "steps", r.Steps, "optimisation steps (0: from --tokens)")
	fs.Int64Var(&r.TokenBudget, "tokens", r.TokenBudget, "token budget when --steps is 0")
	fs.Float64Var(&r.LR, "lr", r.LR, "peak learning rate")
	fs.Float64Var(&r.MinLR, "min-lr", r.MinLR, "final learning rate (default lr/10)")
	fs.IntVar(&r.Warmup, "warmup", r.Warmup, "warmup steps")
	fs.StringVar(&r.Schedule, "schedule", r.Schedule, "constant|cosine|linear")
	fs.Float64Var(&r.WeightDecay, "weight-decay", r.WeightDecay, "AdamW weight decay")
	fs.Float64Var(&r.Beta2, "adam-beta2", r.Beta2, "AdamW beta2 (default 0.999)")
	fs.Float64Var(&r.Clip, "clip", r.Clip, "gradient clipping norm (default 1)")
	fs.IntVar(&r.EvalEvery, "eval-every", r.EvalEvery, "steps between validation losses")
	fs.IntVar(&r.EvalBatches, "eval-batches", r.EvalBatches, "validation batches per evaluation")
	fs.IntVar(&r.SampleEvery, "sample-every", r.SampleEvery, "steps between samples")
	fs.IntVar(&r.SaveEvery, "save-every", r.SaveEvery, "steps between checkpoints")
	fs.Uint64Var(&r.Seed, "seed", r.Seed, "random seed")
	fs.BoolVar(&r.Resume, "resume", r.Resume, "resume from the latest checkpoint in --out")
	fs.BoolVar(&r.Overwrite, "overwrite", r.Overwrite, "replace the run already in --out (its checkpoints, metrics and model)")
	fs.DurationVar(&r.TimeLimit, "time-limit", r.TimeLimit, "stop (with a checkpoint) after this long")
	fs.IntVar(&r.Threads, "threads", r.Threads, "CPU threads (default: all)")
	fs.IntVar(&r.StopAfter, "stop-after", r.StopAfter, "stop after this many steps, saving a checkpoint (as Ctrl-C does)")
	fs.StringVar(&r.Device, "device", r.Device, "compute device: "+device.Names)
}

func runPretrain(args []string) error {
	r := recipe.DefaultPretrain()
	if err := loadRecipe(args, &r); err != nil {
		return err
	}
	fs := flag.NewFlagSet("pretrain", flag.ContinueOnError)
	pretrainFlags(fs, &r)
	data := fs.String("data", strings.Join(r.Data, ","), "comma-separated token shards (from `shoggo tokenize`); default: the embedded corpus")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %v", fs.Args())
	}
	if *data != "" {
		r.Data = strings.Split(*data, ",")
	}
	if r.Threads > 0 {
		runtime.GOMAXPROCS(r.Threads)
	}
	log := os.Stderr
	res, err := recipe.Pretrain(context.Background(), r, log)
	if err != nil {
		return err
	}
	fmt.Fprintf(log, "\ndone: %d steps, %.0f tokens/s; train loss %.3f -> %.3f; validation loss %.3f nats/token (corpus unigram entropy %.3f nats/token)\n",
		res.Steps, res.TokPerSec, res.FirstLoss, res.FinalLoss, res.After["val_loss"], res.UnigramEntropy)
	fmt.Fprintf(log, "model: %s   metrics: %s   plot: %s   summary: %s\n", res.ModelDir, filepath.Join(r.Out, "metrics.jsonl"),
		filepath.Join(r.Out, "loss.png"), filepath.Join(r.Out, "summary.json"))
	fmt.Fprintf(log, "talk to it: shoggo generate --model %s --prompt \"And God said\"\n", res.ModelDir)
	return nil
}
