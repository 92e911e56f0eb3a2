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
	"github.com/shoggo/shoggo/sft/tasks"
)

func init() {
	register("sft", "supervised fine-tuning, full or LoRA (default: the embedded arithmetic task on the pretrain model)", runSFT)
}

// sftConfig builds the run's config: the defaults, the recipe file, the
// embedded task's settings when no data file is given (a recipe's own
// values win over those), then the flags.
func sftConfig(args []string) (recipe.SFTConfig, error) {
	r := recipe.DefaultSFT()
	if err := loadRecipe(args, &r); err != nil {
		return r, err
	}
	if r.Data == "" && !hasFlag(args, "data") && !hasFlag(args, "h") && !hasFlag(args, "help") {
		r.TaskDefaults()
		if r.Model == "" && r.Preset == "" && !hasFlag(args, "model") && !hasFlag(args, "preset") {
			r.Preset = recipe.TaskPreset
		}
		if err := loadRecipe(args, &r); err != nil {
			return r, err
		}
	}
	return r, nil
}

func sftFlags(fs *flag.FlagSet, r *recipe.SFTConfig) {
	fs.String("recipe", "", "YAML recipe file (keys are the flag names with underscores; flags override it)")
	fs.StringVar(&r.Model, "model", r.Model, "base HF model directory (without --model and --preset: "+recipe.DefaultBase+" if it exists)")
	fs.StringVar(&r.Preset, "preset", r.Preset, "use a preset with random weights instead of --model")
	fs.StringVar(&r.Tokenizer, "tokenizer", r.Tokenizer, "tokenizer.json (default: the model directory's)")
	fs.StringVar(&r.Data, "data", r.Data, "training JSONL (instruction/input/output or messages); the values shown are for --data: "+recipe.TaskDefaultsHelp)
	fs.StringVar(&r.EvalData, "eval-data", r.EvalData, "held-out JSONL for eval loss and exact match")
	fs.StringVar(&r.Task, "task", r.Task, "embedded tasks: "+strings.Join(tasks.Names(), ","))
	fs.IntVar(&r.TrainExamples, "train-examples", r.TrainExamples, "embedded task: training examples")
	fs.IntVar(&r.EvalExamples, "eval-examples", r.EvalExamples, "held-out examples scored for exact match (0: no exact match)")
	fs.StringVar(&r.Template, "template", r.Template, "chatml | alpaca | plain (default: plain for the embedded task; for --data chatml if the tokenizer has <|im_start|>, else alpaca)")
	fs.IntVar(&r.MaxLen, "max-len", r.MaxLen, "maximum tokens per example (truncation rule: see package sft)")
	fs.IntVar(&r.Batch, "batch", r.Batch, "micro-batch size")
	fs.IntVar(&r.Accum, "grad-accum", r.Accum, "micro-batches per step")
	fs.IntVar(&r.Epochs, "epochs", r.Epochs, fmt.Sprintf("epochs (0: as many as make at least %d steps)", recipe.MinAutoSteps))
	fs.IntVar(&r.Steps, "steps", r.Steps, "optimisation steps (0: from --epochs)")
	fs.Float64Var(&r.LR, "lr", r.LR, "peak learning rate")
	fs.Float64Var(&r.MinLR, "min-lr", r.MinLR, "final learning rate")
	fs.IntVar(&r.Warmup, "warmup", r.Warmup, "warmup steps")
	fs.StringVar(&r.Schedule, "schedule", r.Schedule, "constant|cosine|linear")
	fs.Float64Var(&r.WeightDecay, "weight-decay", r.WeightDecay, "AdamW weight decay")
	fs.Float64Var(&r.Beta2, "adam-beta2", r.Beta2, "AdamW beta2")
	fs.Float64Var(&r.Clip, "clip", r.Clip, "gradient clipping norm (0: no clipping)")
	fs.IntVar(&r.EvalEvery, "eval-every", r.EvalEvery, "steps between evaluations")
	fs.IntVar(&r.SaveEvery, "save-every", r.SaveEvery, "steps between checkpoints (0: only at the end or when stopped)")
	fs.BoolVar(&r.Resume, "resume", r.Resume, "resume from the latest checkpoint in --out")
	fs.BoolVar(&r.Overwrite, "overwrite", r.Overwrite, "replace the run already in --out (its checkpoints, metrics and model)")
	fs.IntVar(&r.StopAfter, "stop-after", r.StopAfter, "stop after this many steps, saving a checkpoint (as Ctrl-C does)")
	fs.BoolVar(&r.Pack, "pack", r.Pack, "pack several examples per row (block-diagonal attention)")
	fs.BoolVar(&r.SkipInvalid, "skip-invalid", r.SkipInvalid, "skip and count invalid JSONL lines instead of failing")
	loraFlags(fs, r)
	fs.StringVar(&r.Out, "out", r.Out, "output directory")
	fs.Uint64Var(&r.Seed, "seed", r.Seed, "random seed")
	fs.IntVar(&r.Threads, "threads", r.Threads, "CPU threads (default: all)")
	fs.DurationVar(&r.TimeLimit, "time-limit", r.TimeLimit, "stop (saving) after this long")
	fs.IntVar(&r.BenchSteps, "bench-steps", r.BenchSteps, "benchmark only: run N steps on random tokens at full shape")
	fs.IntVar(&r.MaxNewTokens, "max-new-tokens", r.MaxNewTokens, "tokens generated per exact-match question")
	fs.StringVar(&r.Device, "device", r.Device, "compute device: "+device.Names)
	recipe.PrecisionFlags(fs, &r.PrecisionConfig)
	recipe.DistFlags(fs, &r.Options)
}

func loraFlags(fs *flag.FlagSet, r *recipe.SFTConfig) {
	fs.IntVar(&r.LoraR, "lora-r", r.LoraR, "LoRA rank (0: full fine-tuning)")
	fs.Float64Var(&r.LoraAlpha, "lora-alpha", r.LoraAlpha, "LoRA alpha")
	fs.Float64Var(&r.LoraDropout, "lora-dropout", r.LoraDropout, "LoRA dropout")
	fs.StringVar(&r.LoraTargets, "lora-targets", r.LoraTargets, "comma-separated module names, or all-linear")
	fs.BoolVar(&r.UseRSLoRA, "use-rslora", r.UseRSLoRA, "rank-stabilised scaling alpha/sqrt(r)")
	fs.StringVar(&r.BaseDType, "base-dtype", r.BaseDType, "LoRA: hold the frozen base in fp32, bf16 or fp16")
	fs.BoolVar(&r.QLoRA, "qlora", r.QLoRA, "quantize the frozen base to NF4 (QLoRA)")
	fs.BoolVar(&r.GradCheckpointing, "gradient-checkpointing", r.GradCheckpointing, "recompute each block's forward during backward")
}

func runSFT(args []string) error {
	r, err := sftConfig(args)
	if err != nil {
		return err
	}
	fs := flag.NewFlagSet("sft", flag.ContinueOnError)
	sftFlags(fs, &r)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %v", fs.Args())
	}
	if err := sftChecks(fs, args, &r); err != nil {
		return err
	}
	if r.BenchSteps > 0 {
		if r.Threads > 0 {
			runtime.GOMAXPROCS(r.Threads)
		}
		_, err := recipe.SFTBench(r, os.Stdout)
		return err
	}
	log, err := recipe.Join(&r.Options, r.Threads)
	if err != nil {
		return err
	}
	res, err := recipe.SFT(context.Background(), r, log)
	if err != nil {
		return err
	}
	fmt.Fprintf(log, "\ndone: %d steps in %.0fs (%.0f tokens/s); train loss %.3f -> %.3f\n", res.Steps, res.ElapsedS, res.TokPerSec, res.FirstLoss, res.FinalLoss)
	if res.EvalExamples > 0 {
		fmt.Fprintf(log, "exact match on %d held-out examples: %.1f%% before, %.1f%% after", res.EvalExamples, 100*res.Before["exact_match"], 100*res.After["exact_match"])
	}
	fmt.Fprintf(log, " (val loss %.3f -> %.3f)\n", res.Before["val_loss"], res.After["val_loss"])
	fmt.Fprintf(log, "saved: %s   summary: %s\n", res.Output, filepath.Join(r.Out, "summary.json"))
	if res.Hint != "" {
		fmt.Fprintln(log, "hint:", res.Hint)
	}
	return recipe.LeaveRanks(r.Comm, nil)
}

// sftChecks validates the numeric flags and resolves the ones that depend
// on each other (typed values are never replaced).
func sftChecks(fs *flag.FlagSet, args []string, r *recipe.SFTConfig) error {
	set, inRecipe := typed(fs), recipeKeys(args)
	if set["epochs"] || inRecipe["epochs"] {
		if set["steps"] || inRecipe["steps"] {
			return fmt.Errorf("--epochs and --steps exclude each other: give one")
		}
		r.Steps = 0 // the epochs decide (the embedded task's default steps too)
	}
	if r.EvalData != "" && r.Data == "" {
		return fmt.Errorf("--eval-data %s needs --data (the embedded task makes its own held-out set)", r.EvalData)
	}
	b := trainBounds()
	if r.Steps == 0 {
		b = b[1:]
	}
	b = append(b, atLeast("max-len", 2), atLeast("epochs", 0, "0: enough for "+fmt.Sprint(recipe.MinAutoSteps)+" steps"), atLeast("train-examples", 1),
		atLeast("eval-examples", 0, "0: no exact match"), atLeast("lora-r", 0, "0: full fine-tuning"), above("lora-alpha", 0),
		within("lora-dropout", 0, 1, false, true), atLeast("max-new-tokens", 1), atLeast("bench-steps", 0))
	return checkBounds(fs, b...)
}
