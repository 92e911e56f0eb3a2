package main

import (
	"context"
	"flag"
	"fmt"
	"path/filepath"
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
	fs.IntVar(&r.Steps, "steps", r.Steps, "optimisation steps (or give --tokens instead)")
	fs.Int64Var(&r.TokenBudget, "tokens", r.TokenBudget, "train on this many tokens instead of --steps")
	fs.Float64Var(&r.LR, "lr", r.LR, "peak learning rate")
	fs.Float64Var(&r.MinLR, "min-lr", r.MinLR, "final learning rate (lr/10 when --lr is given and this is not)")
	fs.IntVar(&r.Warmup, "warmup", r.Warmup, "warmup steps")
	fs.StringVar(&r.Schedule, "schedule", r.Schedule, "constant|cosine|linear")
	fs.Float64Var(&r.WeightDecay, "weight-decay", r.WeightDecay, "AdamW weight decay")
	fs.Float64Var(&r.Beta2, "adam-beta2", r.Beta2, "AdamW beta2")
	fs.Float64Var(&r.Clip, "clip", r.Clip, "gradient clipping norm (0: no clipping)")
	fs.IntVar(&r.EvalEvery, "eval-every", r.EvalEvery, "steps between validation losses")
	fs.IntVar(&r.EvalBatches, "eval-batches", r.EvalBatches, "validation batches per evaluation")
	fs.IntVar(&r.SampleEvery, "sample-every", r.SampleEvery, "steps between samples (0: none)")
	fs.IntVar(&r.SaveEvery, "save-every", r.SaveEvery, "steps between checkpoints (0: only when the run ends or stops)")
	fs.Uint64Var(&r.Seed, "seed", r.Seed, "random seed")
	fs.BoolVar(&r.Resume, "resume", r.Resume, "resume from the latest checkpoint in --out")
	fs.BoolVar(&r.Overwrite, "overwrite", r.Overwrite, "replace the run already in --out (its checkpoints, metrics and model)")
	fs.DurationVar(&r.TimeLimit, "time-limit", r.TimeLimit, "stop (with a checkpoint) after this long")
	fs.IntVar(&r.Threads, "threads", r.Threads, "CPU threads (default: all; under mpirun the cores per rank)")
	fs.IntVar(&r.StopAfter, "stop-after", r.StopAfter, "stop after this many steps, saving a checkpoint (as Ctrl-C does)")
	fs.StringVar(&r.Device, "device", r.Device, "compute device: "+device.Names)
	recipe.PrecisionFlags(fs, &r.PrecisionConfig)
	recipe.DistFlags(fs, &r.Options)
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
	if err := pretrainChecks(fs, args, &r); err != nil {
		return err
	}
	if *data != "" {
		r.Data = strings.Split(*data, ",")
	}
	log, err := recipe.Join(&r.Options, r.Threads)
	if err != nil {
		return err
	}
	res, err := recipe.Pretrain(context.Background(), r, log)
	if err != nil {
		return err
	}
	fmt.Fprintf(log, "\ndone: %d steps, %.0f tokens/s; train loss %.3f -> %.3f; validation loss %.3f nats/token (corpus unigram entropy %.3f nats/token)\n",
		res.Steps, res.TokPerSec, res.FirstLoss, res.FinalLoss, res.After["val_loss"], res.UnigramEntropy)
	fmt.Fprintf(log, "model: %s   metrics: %s   plot: %s   summary: %s\n", res.ModelDir, filepath.Join(r.Out, "metrics.jsonl"),
		filepath.Join(r.Out, "loss.png"), filepath.Join(r.Out, "summary.json"))
	fmt.Fprintf(log, "talk to it: shoggo generate --model %s --prompt \"And God said\"\n", res.ModelDir)
	return recipe.LeaveRanks(r.Comm, nil)
}

// pretrainChecks validates the numeric flags and resolves the ones that
// depend on each other (typed values are never replaced).
func pretrainChecks(fs *flag.FlagSet, args []string, r *recipe.PretrainConfig) error {
	set, inRecipe := typed(fs), recipeKeys(args)
	if set["tokens"] || inRecipe["token_budget"] {
		if set["steps"] || inRecipe["steps"] {
			return fmt.Errorf("--tokens and --steps exclude each other: give one")
		}
		if r.TokenBudget <= 0 {
			return fmt.Errorf("--tokens %d: must be positive", r.TokenBudget)
		}
		r.Steps = 0
	} else if err := checkBounds(fs, atLeast("steps", 1)); err != nil {
		return err
	}
	if set["lr"] && !set["min-lr"] && !inRecipe["min_lr"] {
		r.MinLR = r.LR / 10
	}
	b := trainBounds()[1:]
	b = append(b, atLeast("seq", 1), atLeast("eval-batches", 1), atLeast("sample-every", 0, "0: no samples"), within("vocab-size", 257, 1<<24, false, false))
	return checkBounds(fs, b...)
}
