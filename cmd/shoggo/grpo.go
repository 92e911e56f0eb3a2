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
	register("grpo", "GRPO: group-relative policy optimisation with programmatic rewards (default: a weak SFT model on the embedded task)", runGRPO)
}

// rlFlags are the flags GRPO and PPO share.
func rlFlags(fs *flag.FlagSet, r *recipe.RLConfig) {
	fs.String("recipe", "", "YAML recipe file (keys are the flag names with underscores; flags override it)")
	fs.StringVar(&r.Model, "model", r.Model, "the SFT policy: HF model directory (default: a weak SFT model made in --sft-dir)")
	fs.StringVar(&r.Tokenizer, "tokenizer", r.Tokenizer, "tokenizer.json (default: the model directory's)")
	fs.StringVar(&r.Task, "task", r.Task, "embedded tasks for prompts: "+strings.Join(tasks.Names(), ","))
	fs.IntVar(&r.TrainExamples, "train-examples", r.TrainExamples, "training prompts drawn from")
	fs.IntVar(&r.EvalExamples, "eval-examples", r.EvalExamples, "held-out examples for exact match")
	fs.StringVar(&r.Template, "template", r.Template, "chatml | alpaca | plain (default plain)")
	fs.IntVar(&r.LoraR, "lora-r", r.LoraR, "LoRA rank (0: full fine-tuning; reference: frozen copy, else adapters off)")
	fs.Float64Var(&r.LoraAlpha, "lora-alpha", r.LoraAlpha, "LoRA alpha")
	fs.StringVar(&r.LoraTargets, "lora-targets", r.LoraTargets, "LoRA target modules")
	fs.StringVar(&r.RewardFn, "reward-fn", r.RewardFn, "programmatic reward: exact-match[,format:W,length:W]")
	fs.StringVar(&r.RewardModel, "reward-model", r.RewardModel, "reward model directory from `shoggo reward` (instead of --reward-fn)")
	fs.IntVar(&r.PromptsPerStep, "prompts-per-step", r.PromptsPerStep, "prompts rolled out per iteration")
	fs.IntVar(&r.MaxCompletionLength, "max-completion-length", r.MaxCompletionLength, "tokens generated per completion")
	fs.Float64Var(&r.Temperature, "temperature", r.Temperature, "sampling temperature of rollouts")
	fs.IntVar(&r.TopK, "top-k", r.TopK, "rollouts sample from the k most likely tokens (0: all; sampling the whole vocabulary is slow)")
	fs.IntVar(&r.SFTSteps, "sft-steps", r.SFTSteps, "steps of the weak SFT model made when --model is not given")
	fs.StringVar(&r.SFTDir, "sft-dir", r.SFTDir, "where the weak SFT model is made or found")
	fs.IntVar(&r.Steps, "steps", r.Steps, "iterations (each: rollouts, then one update)")
	fs.IntVar(&r.Accum, "grad-accum", r.Accum, "micro-batches the rollout rows are split into")
	fs.Float64Var(&r.LR, "lr", r.LR, "learning rate")
	fs.StringVar(&r.Schedule, "schedule", r.Schedule, "constant|cosine|linear")
	fs.IntVar(&r.Warmup, "warmup", r.Warmup, "warmup steps")
	fs.Float64Var(&r.Clip, "clip", r.Clip, "gradient clipping norm")
	fs.IntVar(&r.EvalEvery, "eval-every", r.EvalEvery, "iterations between evaluations")
	fs.IntVar(&r.SaveEvery, "save-every", r.SaveEvery, "iterations between checkpoints")
	fs.BoolVar(&r.Resume, "resume", r.Resume, "resume from the latest checkpoint in --out")
	fs.IntVar(&r.StopAfter, "stop-after", r.StopAfter, "stop after this many iterations, saving a checkpoint")
	fs.StringVar(&r.Out, "out", r.Out, "output directory")
	fs.Uint64Var(&r.Seed, "seed", r.Seed, "random seed")
	fs.IntVar(&r.Threads, "threads", r.Threads, "CPU threads (default: all)")
	fs.DurationVar(&r.TimeLimit, "time-limit", r.TimeLimit, "stop (saving) after this long")
	fs.StringVar(&r.Device, "device", r.Device, "compute device: "+device.Names)
}

// parseRL loads the recipe file and parses the flags into dst.
func parseRL(name string, args []string, dst any, set func(*flag.FlagSet), threads *int) error {
	if err := loadRecipe(args, dst); err != nil {
		return err
	}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	set(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %v", fs.Args())
	}
	if *threads > 0 {
		runtime.GOMAXPROCS(*threads)
	}
	return nil
}

func printRL(name string, s recipe.RLSummary, out string) {
	fmt.Fprintf(os.Stderr, "\n%s done: %d iterations in %.0fs; held-out exact match %.1f%% -> %.1f%% (%d examples); KL to reference %.3f nats/sequence\n",
		name, s.Iterations, s.ElapsedS, 100*s.ExactMatchBefore, 100*s.ExactMatchAfter, s.EvalExamples, s.KL)
	fmt.Fprintf(os.Stderr, "time: rollout %.1fs, scoring %.1fs, reference %.1fs, update %.1fs, eval %.1fs\n",
		s.TimeS["rollout"], s.TimeS["scoring"], s.TimeS["reference"], s.TimeS["update"], s.TimeS["eval"])
	fmt.Fprintf(os.Stderr, "saved: %s   summary: %s\n", s.Output, filepath.Join(out, "summary.json"))
}

func runGRPO(args []string) error {
	r := recipe.DefaultGRPO()
	err := parseRL("grpo", args, &r, func(fs *flag.FlagSet) {
		rlFlags(fs, &r.RLConfig)
		fs.IntVar(&r.NumGenerations, "num-generations", r.NumGenerations, "completions per prompt (G)")
		fs.Float64Var(&r.Beta, "beta", r.Beta, "KL coefficient (k3 estimator)")
		fs.Float64Var(&r.Epsilon, "epsilon", r.Epsilon, "clip range (lower)")
		fs.Float64Var(&r.EpsilonHigh, "epsilon-high", r.EpsilonHigh, "clip range (upper; default --epsilon)")
		fs.StringVar(&r.LossType, "loss-type", r.LossType, "grpo | bnpo | dr_grpo | dapo (TRL's names)")
		fs.BoolVar(&r.ScaleRewards, "scale-rewards", r.ScaleRewards, "divide advantages by the group's std")
	}, &r.Threads)
	if err != nil {
		return err
	}
	s, err := recipe.GRPO(context.Background(), r, os.Stderr)
	if err != nil {
		return err
	}
	printRL("grpo", s, r.Out)
	return nil
}
