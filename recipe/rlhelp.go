package recipe

import (
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/shoggo/shoggo/backend/device"
	"github.com/shoggo/shoggo/sft/tasks"
)

// RLHelp is the flag help of `shoggo grpo` and `shoggo ppo`, by yaml key
// (BindFlags turns each key into its flag).
var RLHelp = map[string]string{
	"model":                 "the SFT policy: HF model directory (default: a weak SFT model made in --sft-dir)",
	"tokenizer":             "tokenizer.json (default: the model directory's)",
	"task":                  "embedded tasks for prompts: " + strings.Join(tasks.Names(), ","),
	"train_examples":        "training prompts drawn from",
	"eval_examples":         "held-out examples for exact match",
	"template":              "chatml | alpaca | plain (default plain)",
	"lora_r":                "LoRA rank (0: full fine-tuning; reference: frozen copy, else adapters off)",
	"lora_alpha":            "LoRA alpha",
	"lora_targets":          "LoRA target modules",
	"reward_fn":             "programmatic reward: exact-match[,format:W,length:W]",
	"reward_model":          "reward model directory from `shoggo reward` (instead of --reward-fn)",
	"prompts_per_step":      "prompts rolled out per iteration",
	"max_completion_length": "tokens generated per completion",
	"temperature":           "sampling temperature of rollouts",
	"top_k":                 "rollouts sample from the k most likely tokens (0: all; sampling the whole vocabulary is slow)",
	"sft_steps":             "steps of the weak SFT model made when --model is not given",
	"sft_dir":               "where the weak SFT model is made or found",
	"steps":                 "iterations (each: rollouts, then one update)",
	"grad_accum":            "micro-batches the rollout rows are split into",
	"lr":                    "learning rate",
	"schedule":              "constant|cosine|linear",
	"warmup":                "warmup steps",
	"clip":                  "gradient clipping norm",
	"eval_every":            "iterations between evaluations",
	"save_every":            "iterations between checkpoints",
	"resume":                "resume from the latest checkpoint in --out",
	"overwrite":             "replace a previous run in --out",
	"stop_after":            "stop after this many iterations, saving a checkpoint",
	"out":                   "output directory",
	"seed":                  "random seed",
	"threads":               "CPU threads (default: all)",
	"time_limit":            "stop (saving) after this long",
	"device":                "compute device: " + device.Names,
	"num_generations":       "completions per prompt (G)",
	"beta":                  "KL coefficient (k3 estimator)",
	"epsilon":               "clip range (lower)",
	"epsilon_high":          "clip range (upper; default --epsilon)",
	"loss_type":             "grpo | bnpo | dr_grpo | dapo (TRL's names)",
	"scale_rewards":         "divide advantages by the group's std",
	"ppo_epochs":            "passes over each rollout batch",
	"num_mini_batches":      "minibatches per rollout batch",
	"gamma":                 "discount",
	"lam":                   "GAE lambda",
	"cliprange":             "policy ratio clip range",
	"cliprange_value":       "value clip range",
	"vf_coef":               "value loss weight",
	"init_kl_coef":          "initial KL penalty coefficient",
	"target":                "adaptive KL controller: target KL (nats per sequence)",
	"horizon":               "adaptive KL controller: horizon",
	"adap_kl_ctrl":          "adapt the KL coefficient (false: fixed)",
	"value_trunk_grad":      "the value loss also trains the policy's trunk (default: the value head only)",
	"whiten_advantages":     "whiten advantages over each rollout batch",
}

// Report prints the run's headline figures, time split and outputs.
func (s RLSummary) Report(w io.Writer, name, out string) {
	fmt.Fprintf(w, "\n%s done: %d iterations in %.0fs; held-out exact match %.1f%% -> %.1f%% (%d examples); KL to reference %.3f nats/sequence\n",
		name, s.Iterations, s.ElapsedS, 100*s.ExactMatchBefore, 100*s.ExactMatchAfter, s.EvalExamples, s.KL)
	fmt.Fprintf(w, "time: rollout %.1fs, scoring %.1fs, reference %.1fs, update %.1fs, eval %.1fs\n",
		s.TimeS["rollout"], s.TimeS["scoring"], s.TimeS["reference"], s.TimeS["update"], s.TimeS["eval"])
	fmt.Fprintf(w, "saved: %s   summary: %s\n", s.Output, filepath.Join(out, "summary.json"))
}
