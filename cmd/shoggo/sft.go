package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/shoggo/shoggo/backend/cpu"
	"github.com/shoggo/shoggo/data"
	"github.com/shoggo/shoggo/lora"
	"github.com/shoggo/shoggo/model"
	"github.com/shoggo/shoggo/sft"
	"github.com/shoggo/shoggo/sft/tasks"
	"github.com/shoggo/shoggo/tensor"
	"github.com/shoggo/shoggo/tokenizer"
	"github.com/shoggo/shoggo/train"
)

func init() {
	register("sft", "supervised fine-tuning, full or LoRA (default: the embedded arithmetic task on the pretrain model)", runSFT)
}

// sftRecipe holds every sft setting; YAML recipe files use these names.
type sftRecipe struct {
	train.FinetuneConfig `yaml:",inline"`
	Model                string  `yaml:"model"`     // HF model directory
	Preset               string  `yaml:"preset"`    // or a preset with random weights
	Tokenizer            string  `yaml:"tokenizer"` // default: the model directory's
	Data                 string  `yaml:"data"`      // JSONL; empty: the embedded task
	EvalData             string  `yaml:"eval_data"` // JSONL; default: held-out split
	Task                 string  `yaml:"task"`      // embedded task names, comma-separated
	TrainExamples        int     `yaml:"train_examples"`
	EvalExamples         int     `yaml:"eval_examples"`
	Template             string  `yaml:"template"` // chatml | alpaca
	MaxLen               int     `yaml:"max_len"`
	Batch                int     `yaml:"batch"`
	Pack                 bool    `yaml:"pack"`
	SkipInvalid          bool    `yaml:"skip_invalid"`
	LoraR                int     `yaml:"lora_r"` // 0: full fine-tuning
	LoraAlpha            float64 `yaml:"lora_alpha"`
	LoraDropout          float64 `yaml:"lora_dropout"`
	LoraTargets          string  `yaml:"lora_targets"`
	UseRSLoRA            bool    `yaml:"use_rslora"`
	BaseDType            string  `yaml:"base_dtype"` // fp32 | bf16 | fp16 (LoRA only)
	QLoRA                bool    `yaml:"qlora"`
	GradCheckpointing    bool    `yaml:"gradient_checkpointing"`
	Seed                 uint64  `yaml:"seed"`
	Threads              int     `yaml:"threads"`
	MaxNewTokens         int     `yaml:"max_new_tokens"`
	// Benchmark: run this many steps on random data at the model's full
	// shape and report speed and memory only (no evaluation, no save).
	BenchSteps int `yaml:"bench_steps"`
}

func runSFT(args []string) error {
	r := sftRecipe{Task: "add2", TrainExamples: 6000, EvalExamples: 200, MaxLen: 512, Batch: 16, Seed: 1,
		LoraAlpha: 16, LoraTargets: "q_proj,v_proj", BaseDType: "fp32", MaxNewTokens: 16}
	r.Out, r.Epochs, r.LR, r.Warmup, r.Accum = "runs/sft", 1, 1e-3, 20, 1
	if err := loadRecipe(args, &r); err != nil {
		return err
	}
	if r.Data == "" && !hasFlag(args, "data") {
		// The embedded task: settings that learn it in a minute or two on
		// 2 cores (measured; see README). Flags still override them.
		r.Pack, r.Batch, r.MaxLen = true, 32, 48
		r.LR, r.Beta2, r.WeightDecay, r.Warmup = 3e-3, 0.95, 0.1, 100
		r.Steps, r.EvalEvery, r.TrainExamples = 800, 200, 20000
		if r.Model == "" && r.Preset == "" && !hasFlag(args, "model") && !hasFlag(args, "preset") {
			r.Preset = "shoggo-1m"
		}
		// A recipe's own values win over these defaults.
		if err := loadRecipe(args, &r); err != nil {
			return err
		}
	}
	fs := flag.NewFlagSet("sft", flag.ContinueOnError)
	fs.String("recipe", "", "YAML recipe file (keys are the flag names with underscores; flags override it)")
	fs.StringVar(&r.Model, "model", r.Model, "base HF model directory (default: runs/pretrain/model if present)")
	fs.StringVar(&r.Preset, "preset", r.Preset, "use a preset with random weights instead of --model")
	fs.StringVar(&r.Tokenizer, "tokenizer", r.Tokenizer, "tokenizer.json (default: the model directory's)")
	fs.StringVar(&r.Data, "data", r.Data, "training JSONL (instruction/input/output or messages); default: the embedded task")
	fs.StringVar(&r.EvalData, "eval-data", r.EvalData, "held-out JSONL for eval loss and exact match")
	fs.StringVar(&r.Task, "task", r.Task, "embedded tasks: "+strings.Join(tasks.Names(), ","))
	fs.IntVar(&r.TrainExamples, "train-examples", r.TrainExamples, "embedded task: training examples")
	fs.IntVar(&r.EvalExamples, "eval-examples", r.EvalExamples, "held-out examples for exact match")
	fs.StringVar(&r.Template, "template", r.Template, "chatml | alpaca | plain (default: plain for the embedded task; for --data chatml if the tokenizer has <|im_start|>, else alpaca)")
	fs.IntVar(&r.MaxLen, "max-len", r.MaxLen, "maximum tokens per example (truncation rule: see package sft)")
	fs.IntVar(&r.Batch, "batch", r.Batch, "micro-batch size")
	fs.IntVar(&r.Accum, "grad-accum", r.Accum, "micro-batches per step")
	fs.IntVar(&r.Epochs, "epochs", r.Epochs, "epochs")
	fs.IntVar(&r.Steps, "steps", r.Steps, "optimisation steps (overrides epochs)")
	fs.Float64Var(&r.LR, "lr", r.LR, "peak learning rate")
	fs.Float64Var(&r.MinLR, "min-lr", r.MinLR, "final learning rate")
	fs.IntVar(&r.Warmup, "warmup", r.Warmup, "warmup steps")
	fs.StringVar(&r.Schedule, "schedule", r.Schedule, "constant|cosine|linear")
	fs.Float64Var(&r.WeightDecay, "weight-decay", r.WeightDecay, "AdamW weight decay")
	fs.Float64Var(&r.Beta2, "adam-beta2", r.Beta2, "AdamW beta2 (default 0.999)")
	fs.Float64Var(&r.Clip, "clip", r.Clip, "gradient clipping norm (default 1)")
	fs.IntVar(&r.EvalEvery, "eval-every", r.EvalEvery, "steps between evaluations")
	fs.BoolVar(&r.Pack, "pack", r.Pack, "pack several examples per row (block-diagonal attention)")
	fs.BoolVar(&r.SkipInvalid, "skip-invalid", r.SkipInvalid, "skip and count invalid JSONL lines instead of failing")
	fs.IntVar(&r.LoraR, "lora-r", r.LoraR, "LoRA rank (0: full fine-tuning)")
	fs.Float64Var(&r.LoraAlpha, "lora-alpha", r.LoraAlpha, "LoRA alpha")
	fs.Float64Var(&r.LoraDropout, "lora-dropout", r.LoraDropout, "LoRA dropout")
	fs.StringVar(&r.LoraTargets, "lora-targets", r.LoraTargets, "comma-separated module names, or all-linear")
	fs.BoolVar(&r.UseRSLoRA, "use-rslora", r.UseRSLoRA, "rank-stabilised scaling alpha/sqrt(r)")
	fs.StringVar(&r.BaseDType, "base-dtype", r.BaseDType, "LoRA: hold the frozen base in fp32, bf16 or fp16")
	fs.BoolVar(&r.QLoRA, "qlora", r.QLoRA, "quantize the frozen base to NF4 (QLoRA)")
	fs.BoolVar(&r.GradCheckpointing, "gradient-checkpointing", r.GradCheckpointing, "recompute each block's forward during backward")
	fs.StringVar(&r.Out, "out", r.Out, "output directory")
	fs.Uint64Var(&r.Seed, "seed", r.Seed, "random seed")
	fs.IntVar(&r.Threads, "threads", r.Threads, "CPU threads (default: all)")
	fs.DurationVar(&r.TimeLimit, "time-limit", r.TimeLimit, "stop (saving) after this long")
	fs.IntVar(&r.BenchSteps, "bench-steps", r.BenchSteps, "benchmark only: run N steps on random tokens at full shape")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %v", fs.Args())
	}
	if r.Threads > 0 {
		runtime.GOMAXPROCS(r.Threads)
	}
	log := os.Stderr
	if r.BenchSteps > 0 {
		return sftBench(r)
	}

	// Base model and tokenizer.
	if r.Model == "" && r.Preset == "" {
		return fmt.Errorf("no base model: pass --model DIR (an HF model directory, e.g. runs/pretrain/model) or --preset NAME")
	}
	tokPath := r.Tokenizer
	if tokPath == "" && r.Model != "" {
		tokPath = filepath.Join(r.Model, "tokenizer.json")
	}
	if tokPath == "" && fileExists("runs/pretrain/tokenizer.json") {
		tokPath = "runs/pretrain/tokenizer.json"
	}
	var tok *tokenizer.Tokenizer
	var err error
	if tokPath == "" {
		// A fresh model and no tokenizer: train the default one on the
		// embedded corpus, as pretrain does.
		if tok, err = defaultTokenizer(4096); err != nil {
			return err
		}
		fmt.Fprintln(log, "tokenizer: trained on the embedded corpus (4096 tokens)")
	} else if tok, err = tokenizer.Load(tokPath); err != nil {
		return err
	}
	if r.Template == "" {
		// User data: the model's chat template if it has one, else Alpaca.
		// The embedded task: the plain format (shortest, so fastest).
		r.Template = "alpaca"
		if _, ok := tok.TokenToID("<|im_start|>"); ok {
			r.Template = "chatml"
		}
		if r.Data == "" {
			r.Template = "plain"
		}
	}
	tmpl, err := sft.TemplateByName(r.Template)
	if err != nil {
		return err
	}
	m, err := loadBase(r, tok)
	if err != nil {
		return err
	}

	// Data.
	var trainEx, evalEx []data.Example
	if r.Data != "" {
		var skipped int
		trainEx, skipped, err = data.ReadInstructions(r.Data, r.SkipInvalid)
		if err != nil {
			return err
		}
		if skipped > 0 {
			fmt.Fprintf(log, "skipped %d invalid lines in %s\n", skipped, r.Data)
		}
		if r.EvalData != "" {
			if evalEx, _, err = data.ReadInstructions(r.EvalData, r.SkipInvalid); err != nil {
				return err
			}
		} else {
			n := max(1, len(trainEx)/20)
			evalEx, trainEx = trainEx[len(trainEx)-n:], trainEx[:len(trainEx)-n]
		}
	} else {
		trainEx, evalEx, err = tasks.Generate(tasks.Config{Seed: r.Seed, Tasks: strings.Split(r.Task, ","), Train: r.TrainExamples, Test: r.EvalExamples})
		if err != nil {
			return err
		}
		if err := os.MkdirAll(r.Out, 0o755); err != nil {
			return err
		}
		tasks.WriteJSONL(filepath.Join(r.Out, "train.jsonl"), trainEx)
		tasks.WriteJSONL(filepath.Join(r.Out, "test.jsonl"), evalEx)
	}
	maxLen := min(r.MaxLen, m.Cfg.MaxPositionEmbeddings)
	enc, st, err := sft.EncodeAll(trainEx, tok, tmpl, maxLen)
	if err != nil {
		return err
	}
	evalEnc, _, err := sft.EncodeAll(evalEx, tok, tmpl, maxLen)
	if err != nil {
		return err
	}
	T := maxLen
	if !r.Pack {
		longest := 0
		for _, e := range enc {
			longest = max(longest, len(e.IDs))
		}
		for _, e := range evalEnc {
			longest = max(longest, len(e.IDs))
		}
		T = min(maxLen, (longest+7)/8*8)
	}
	pad := tok.PAD()
	if pad < 0 {
		pad = max(tok.EOS(), 0)
	}
	ds, err := sft.NewDataset(enc, sft.DatasetConfig{B: r.Batch, T: T, PadID: pad, Pack: r.Pack, Seed: int64(r.Seed)})
	if err != nil {
		return err
	}
	evalBatches := sft.Batches(evalEnc, r.Batch, T, pad, false)
	fmt.Fprintf(log, "data: %d training examples (%d skipped, %d prompts and %d completions truncated), %d held out; template %s, batch %dx%d\n",
		st.Examples, st.Skipped, st.PromptTruncated, st.CompletionTruncated, len(evalEx), r.Template, r.Batch, T)

	// What trains.
	var tr train.Trainable
	var adapters *lora.Adapters
	if r.LoraR > 0 {
		adapters, err = lora.Apply(m, lora.Config{R: r.LoraR, Alpha: r.LoraAlpha, Dropout: r.LoraDropout,
			Targets: strings.Split(r.LoraTargets, ","), UseRSLoRA: r.UseRSLoRA, Seed: r.Seed})
		if err != nil {
			return err
		}
		m.RecomputeHook = adapters.ReplayMasks
		if r.Model != "" {
			abs, _ := filepath.Abs(r.Model)
			adapters.BaseModel = abs
		}
		tr = train.Trainable{Params: adapters.Params(), Grads: adapters.Grads(), ZeroGrad: adapters.ZeroGrad, Save: adapters.Save}
		fmt.Fprintln(log, adapters.Report(m))
	} else {
		tr = train.FullTrainable(m)
		tr.Save = func(dir string) error {
			if err := m.SaveHF(dir, model.SaveOptions{}); err != nil {
				return err
			}
			return tok.Save(filepath.Join(dir, "tokenizer.json"))
		}
		fmt.Fprintf(log, "full fine-tuning of %s parameters\n", human(float64(m.NumParams())))
	}
	if r.GradCheckpointing {
		if err := m.SetCheckpointing(true); err != nil {
			return err
		}
	}
	setTraining := func(on bool) {
		if adapters != nil {
			adapters.SetTraining(on)
		}
	}
	emSet := evalEx
	if len(emSet) > r.EvalExamples {
		emSet = emSet[:r.EvalExamples]
	}
	eval := func() (map[string]float64, error) {
		setTraining(false)
		defer setTraining(true)
		out := map[string]float64{}
		if len(evalBatches) > 0 {
			var sum float64
			var n int
			for _, b := range evalBatches {
				if m.Planned() != [2]int{b.B, b.T} {
					if err := m.Plan(b.B, b.T); err != nil {
						return nil, err
					}
				}
				if err := m.Forward(b); err != nil {
					return nil, err
				}
				s, c, err := m.Loss(b, 0, false)
				if err != nil {
					return nil, err
				}
				sum, n = sum+s, n+c
			}
			if n > 0 {
				out["val_loss"] = sum / float64(n)
			}
		}
		em, err := sft.ExactMatch(m, tok, tmpl, emSet, r.MaxNewTokens)
		if err != nil {
			return nil, err
		}
		out["exact_match"] = em
		return out, nil
	}
	before, err := eval()
	if err != nil {
		return err
	}
	fmt.Fprintf(log, "before: exact match %.1f%% on %d held-out examples, val loss %.3f\n", 100*before["exact_match"], len(emSet), before["val_loss"])
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	res, err := train.Finetune(ctx, r.FinetuneConfig, m, tr, ds, eval, log)
	if err != nil {
		return err
	}
	fmt.Fprintf(log, "\ndone: %d steps in %s (%.0f tokens/s); train loss %.3f -> %.3f\n", res.Steps, res.Elapsed.Round(1e9), res.TokPerSec, res.FirstLoss, res.FinalLoss)
	fmt.Fprintf(log, "exact match on %d held-out examples: %.1f%% before, %.1f%% after (val loss %.3f -> %.3f)\n",
		len(emSet), 100*before["exact_match"], 100*res.Eval["exact_match"], before["val_loss"], res.Eval["val_loss"])
	fmt.Fprintf(log, "saved: %s\n", filepath.Join(r.Out, "final"))
	return nil
}

// loadBase loads or creates the base model: trainable (full fine-tuning) or
// frozen (LoRA), with the base held in the requested dtype.
func loadBase(r sftRecipe, tok *tokenizer.Tokenizer) (*model.Transformer, error) {
	full := r.LoraR == 0
	if !full && r.BaseDType != "" && r.BaseDType != "fp32" && r.QLoRA {
		return nil, fmt.Errorf("--qlora and --base-dtype %s are exclusive", r.BaseDType)
	}
	if full && (r.QLoRA || (r.BaseDType != "" && r.BaseDType != "fp32")) {
		return nil, fmt.Errorf("--qlora and --base-dtype need LoRA (--lora-r > 0)")
	}
	var m *model.Transformer
	be := cpu.New()
	factory, err := baseFactory(r, be)
	if err != nil {
		return nil, err
	}
	// A QLoRA or half-precision LoRA base also holds its frozen token
	// embedding and LM head in bf16 (as PEFT/bitsandbytes QLoRA does).
	opt := model.FrozenOptions{Factory: factory, HalfEmbeddings: !full && factory != nil}
	if r.Model != "" {
		var warns []string
		m, warns, err = model.LoadHFFrozenOpts(r.Model, be, tensor.F32, full, opt)
		if err != nil {
			return nil, err
		}
		for _, w := range warns {
			fmt.Fprintln(os.Stderr, "warning:", w)
		}
	} else {
		cfg, err := model.LookupPreset(r.Preset)
		if err != nil {
			return nil, err
		}
		if cfg.VocabSize < tok.VocabSize() {
			cfg.VocabSize = tok.VocabSize()
		}
		if m, err = model.NewFrozenOpts(cfg, be, tensor.F32, full, opt); err != nil {
			return nil, err
		}
		m.InitWeights(rand.New(rand.NewPCG(r.Seed, 3)))
	}
	return m, nil
}

// hasFlag reports whether args set the flag called name.
func hasFlag(args []string, name string) bool {
	for _, a := range args {
		a = strings.TrimLeft(a, "-")
		if a == name || strings.HasPrefix(a, name+"=") {
			return true
		}
	}
	return false
}
