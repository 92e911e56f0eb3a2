package recipe

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/shoggo/shoggo/backend/device"
	"github.com/shoggo/shoggo/data"
	"github.com/shoggo/shoggo/internal/safepath"
	"github.com/shoggo/shoggo/internal/sysinfo"
	"github.com/shoggo/shoggo/lora"
	"github.com/shoggo/shoggo/model"
	"github.com/shoggo/shoggo/sft"
	"github.com/shoggo/shoggo/sft/tasks"
	"github.com/shoggo/shoggo/tokenizer"
	"github.com/shoggo/shoggo/train"
)

// SFTConfig configures SFT (and SFTBench). The yaml keys are `shoggo sft`'s
// flag names with underscores.
type SFTConfig struct {
	train.Options `yaml:",inline"`
	BaseConfig    `yaml:",inline"`
	Epochs        int    `yaml:"epochs"`    // when Steps is 0; 0: enough for MinAutoSteps
	Tokenizer     string `yaml:"tokenizer"` // default: the model directory's
	Data          string `yaml:"data"`      // JSONL; empty: the embedded task
	EvalData      string `yaml:"eval_data"` // JSONL; default: held-out split
	Task          string `yaml:"task"`      // embedded task names, comma-separated
	TrainExamples int    `yaml:"train_examples"`
	EvalExamples  int    `yaml:"eval_examples"`
	Template      string `yaml:"template"` // chatml | alpaca | plain
	MaxLen        int    `yaml:"max_len"`
	Batch         int    `yaml:"batch"`
	Pack          bool   `yaml:"pack"`
	SkipInvalid   bool   `yaml:"skip_invalid"`

	LoraR             int     `yaml:"lora_r"` // 0: full fine-tuning
	LoraAlpha         float64 `yaml:"lora_alpha"`
	LoraDropout       float64 `yaml:"lora_dropout"`
	LoraTargets       string  `yaml:"lora_targets"`
	UseRSLoRA         bool    `yaml:"use_rslora"`
	GradCheckpointing bool    `yaml:"gradient_checkpointing"`
	Threads           int     `yaml:"threads"` // applied by the caller (process-wide)
	MaxNewTokens      int     `yaml:"max_new_tokens"`
	Device            string  `yaml:"device"`
	// BenchSteps: run this many steps on random data at the model's full
	// shape and report speed and memory only (SFTBench).
	BenchSteps int `yaml:"bench_steps"`
}

// DefaultSFT is `shoggo sft` without flags on user data.
func DefaultSFT() SFTConfig {
	c := SFTConfig{Task: "add2", TrainExamples: 6000, EvalExamples: 200, MaxLen: 512, Batch: 16,
		LoraAlpha: 16, LoraTargets: "q_proj,v_proj", MaxNewTokens: 16}
	c.BaseDType = "fp32"
	c.Seed, c.Out, c.LR, c.Warmup, c.Accum, c.Clip, c.Beta2 = 1, "runs/sft", 1e-3, 20, 1, 1, 0.999
	return c
}

// TaskPreset is the base the embedded task trains from when none is named.
const TaskPreset = "shoggo-1m"

// TaskDefaultsHelp says what TaskDefaults changes, for the CLI's help.
const TaskDefaultsHelp = "without --data the embedded task runs with --pack --batch 32 --max-len 48 --lr 3e-3 --adam-beta2 0.95 --weight-decay 0.1 --warmup 100 --steps 800 --eval-every 200 --train-examples 20000 --preset " + TaskPreset

// TaskDefaults sets what learns the embedded task in a minute or two on 2
// cores (measured; see README).
func (c *SFTConfig) TaskDefaults() {
	c.Pack, c.Batch, c.MaxLen = true, 32, 48
	c.LR, c.Beta2, c.WeightDecay, c.Warmup = 3e-3, 0.95, 0.1, 100
	c.Steps, c.EvalEvery, c.TrainExamples = 800, 200, 20000
}

// SFTResult is the run's summary (before/after: val_loss, exact_match).
type SFTResult struct {
	train.Summary
	EvalExamples int // examples scored for exact match
	// Hint, when held-out exact match stayed flat, says what to change.
	Hint string
}

// MinAutoSteps is the number of steps the default epoch count reaches
// (whole epochs, at least one).
const MinAutoSteps = 3000

// DefaultBase is the base model sft uses when neither a model nor a preset
// is named and it exists: pretrain's output.
const DefaultBase = "runs/pretrain/model"

func dirExists(p string) bool {
	info, err := os.Stat(p)
	return err == nil && info.IsDir()
}

// flatHint is advice for a finished run whose held-out exact match rose by
// less than one point.
func flatHint(res SFTResult, cfg SFTConfig) string {
	if res.EvalExamples == 0 || res.Interrupted || res.After == nil {
		return ""
	}
	before, after := res.Before["exact_match"], res.After["exact_match"]
	if after-before >= 0.01 {
		return ""
	}
	return fmt.Sprintf("held-out exact match stayed at %.1f%% (from %.1f%%) after %d steps: train longer (more --epochs, or --steps %d) or raise --lr (now %g)",
		100*after, 100*before, res.Steps, 4*res.Steps, cfg.LR)
}

// sftRun is what SFT assembles before training.
type sftRun struct {
	cfg      *SFTConfig
	tok      *tokenizer.Tokenizer
	tmpl     sft.Template
	m        *model.Transformer
	ds       *sft.Dataset
	evalB    []*model.Batch
	emSet    []data.Example
	adapters *lora.Adapters
}

// SFT fine-tunes a base model (full, or LoRA on an fp32/bf16/fp16/NF4
// base) on instruction data or the embedded checkable tasks: tokenizer,
// base, data, adapters, then the trainer harness with the LM objective;
// evaluation is the held-out loss and greedy exact match, before, every
// EvalEvery steps and after. Checkpoints (weights or adapters, optimizer,
// data position, dropout streams) resume bit for bit. The result (an HF
// directory with its tokenizer, or a PEFT adapter) goes to Out/final.
func SFT(ctx context.Context, cfg SFTConfig, log io.Writer) (SFTResult, error) {
	var res SFTResult
	if _, err := cfg.PrecisionConfig.DType(); err != nil {
		return res, err
	}
	if cfg.Model == "" && cfg.Preset == "" && dirExists(DefaultBase) {
		cfg.Model = DefaultBase
		fmt.Fprintf(log, "base: %s (the default; --model DIR or --preset NAME to choose another)\n", DefaultBase)
	}
	if err := safepath.CheckOutput("--out", cfg.Out, safepath.Input{Flag: "--model", Path: cfg.Model}); err != nil {
		return res, err
	}
	lock, err := claimRun(cfg.Comm, cfg.Out, cfg.Resume, cfg.Overwrite, "final", "train.jsonl", "test.jsonl")
	if err != nil {
		return res, err
	}
	defer lock.Release()
	log = rankLog(cfg.Comm, log)
	r, err := prepareSFT(&cfg, log)
	if err != nil {
		return res, err
	}
	tr, err := r.trainable(log)
	if err != nil {
		return res, err
	}
	if !cfg.GradCheckpointing && len(r.evalB) > 0 {
		if err := model.CheckActivations("sft", &r.m.Cfg, cfg.Batch, r.evalB[0].T); err != nil {
			return res, err
		}
	}
	if cfg.Steps == 0 {
		per := r.ds.NumBatches(1) / max(cfg.Accum, 1)
		epochs := cfg.Epochs
		if epochs <= 0 {
			// Small data sets need many passes (measured in the README: 4,000
			// subtraction examples learn nothing in 1 epoch of 250 steps).
			epochs = max(1, (MinAutoSteps+per-1)/max(per, 1))
			fmt.Fprintf(log, "epochs: %d (enough for %d steps of %d; --epochs or --steps to choose)\n", epochs, MinAutoSteps, per)
		}
		cfg.Steps = max(1, per*epochs)
	}
	t := &train.Trainer{Opts: cfg.Options, Model: r.m, Trainable: tr, Objective: train.LM{}, Data: train.ShardRows(r.ds, cfg.Comm),
		Log: log, Recipe: "sft", Eval: r.eval, Lock: lock}
	res.Summary, err = t.Run(ctx)
	res.EvalExamples = len(r.emSet)
	res.Hint = flatHint(res, cfg)
	return res, err
}

func prepareSFT(cfg *SFTConfig, log io.Writer) (*sftRun, error) {
	prec, err := cfg.PrecisionConfig.DType()
	if err != nil {
		return nil, err
	}
	if cfg.Model == "" && cfg.Preset == "" {
		return nil, fmt.Errorf("no base model: %s does not exist; pass --model DIR (an HF model directory) or --preset NAME (random weights)", DefaultBase)
	}
	if err := safepath.CheckOutput("--out", cfg.Out, safepath.Input{Flag: "--model", Path: cfg.Model}); err != nil {
		return nil, err
	}
	r := &sftRun{cfg: cfg}
	if r.tok, err = sftTokenizer(cfg, log); err != nil {
		return nil, err
	}
	if cfg.Template == "" {
		// User data: the model's chat template if it has one, else Alpaca.
		// The embedded task: the plain format (shortest, so fastest).
		cfg.Template = "alpaca"
		if _, ok := r.tok.TokenToID("<|im_start|>"); ok {
			cfg.Template = "chatml"
		}
		if cfg.Data == "" {
			cfg.Template = "plain"
		}
	}
	if r.tmpl, err = sft.TemplateByName(cfg.Template); err != nil {
		return nil, err
	}
	be, err := device.Open(cfg.Device)
	if err != nil {
		return nil, err
	}
	if r.m, err = LoadBase(cfg.BaseConfig, cfg.LoraR > 0, r.tok.VocabSize(), cfg.Seed, be, log); err != nil {
		return nil, err
	}
	if err := train.SetPrecision(prec, r.m); err != nil {
		return nil, err
	}
	return r, r.data(log)
}

// sftTokenizer loads cfg.Tokenizer, the model directory's, the pretrain
// run's, or trains the default one.
func sftTokenizer(cfg *SFTConfig, log io.Writer) (*tokenizer.Tokenizer, error) {
	p := cfg.Tokenizer
	if p == "" && cfg.Model != "" {
		p = filepath.Join(cfg.Model, "tokenizer.json")
	}
	if p == "" && fileExists("runs/pretrain/tokenizer.json") {
		p = "runs/pretrain/tokenizer.json"
	}
	if p != "" {
		return tokenizer.Load(p)
	}
	// A fresh model and no tokenizer: train the default one on the
	// embedded corpus, as pretrain does.
	tok, err := DefaultTokenizer(4096)
	if err == nil {
		fmt.Fprintln(log, "tokenizer: trained on the embedded corpus (4096 tokens)")
	}
	return tok, err
}

// examples reads the training and held-out examples, or generates the
// embedded task (writing it to Out/train.jsonl and Out/test.jsonl).
func (r *sftRun) examples(log io.Writer) (trainEx, evalEx []data.Example, err error) {
	c := r.cfg
	if c.Data == "" {
		trainEx, evalEx, err = tasks.Generate(tasks.Config{Seed: c.Seed, Tasks: strings.Split(c.Task, ","), Train: c.TrainExamples, Test: c.EvalExamples})
		if err != nil {
			return nil, nil, err
		}
		if !lead(c.Comm) {
			return trainEx, evalEx, nil // rank 0 writes them
		}
		if err := os.MkdirAll(c.Out, 0o755); err != nil {
			return nil, nil, err
		}
		tasks.WriteJSONL(filepath.Join(c.Out, "train.jsonl"), trainEx)
		tasks.WriteJSONL(filepath.Join(c.Out, "test.jsonl"), evalEx)
		return trainEx, evalEx, nil
	}
	if trainEx, err = readInstructions(c.Data, c.SkipInvalid, log); err != nil {
		return nil, nil, err
	}
	if c.EvalData != "" {
		evalEx, err = readInstructions(c.EvalData, c.SkipInvalid, log)
		return trainEx, evalEx, err
	}
	n := max(1, len(trainEx)/20)
	return trainEx[:len(trainEx)-n], trainEx[len(trainEx)-n:], nil
}

// data encodes the examples into the training dataset and eval batches.
func (r *sftRun) data(log io.Writer) error {
	c := r.cfg
	trainEx, evalEx, err := r.examples(log)
	if err != nil {
		return err
	}
	maxLen := min(c.MaxLen, r.m.Cfg.MaxPositionEmbeddings)
	enc, st, err := sft.EncodeAll(trainEx, r.tok, r.tmpl, maxLen)
	if err != nil {
		return err
	}
	evalEnc, _, err := sft.EncodeAll(evalEx, r.tok, r.tmpl, maxLen)
	if err != nil {
		return err
	}
	T := maxLen
	if !c.Pack {
		longest := 0
		for _, e := range append(append([]sft.Encoded(nil), enc...), evalEnc...) {
			longest = max(longest, len(e.IDs))
		}
		T = min(maxLen, (longest+7)/8*8)
	}
	pad := r.tok.PAD()
	if pad < 0 {
		pad = max(r.tok.EOS(), 0)
	}
	// Global batches of Batch rows per rank: every rank builds the same
	// seeded order and trains on its rows (train.ShardRows); held-out
	// batches are split the same way (train.EvaluateOn).
	_, size := ranks(c.Comm)
	if r.ds, err = sft.NewDataset(enc, sft.DatasetConfig{B: c.Batch * size, T: T, PadID: pad, Pack: c.Pack, Seed: int64(c.Seed)}); err != nil {
		return err
	}
	r.evalB = sft.Batches(evalEnc, c.Batch*size, T, pad, false)
	r.emSet = evalEx[:min(len(evalEx), c.EvalExamples)]
	fmt.Fprintf(log, "data: %d training examples (%d dropped with nothing left to train on after truncation, %d prompts and %d completions truncated), %d held out; template %s, batch %dx%d\n",
		st.Examples, st.Skipped, st.PromptTruncated, st.CompletionTruncated, len(evalEx), c.Template, c.Batch, T)
	return nil
}

// trainable applies LoRA (cfg.LoraR > 0) or makes the whole model
// trainable, and turns on gradient checkpointing if asked.
func (r *sftRun) trainable(log io.Writer) (train.Trainable, error) {
	c, m := r.cfg, r.m
	var tr train.Trainable
	if c.LoraR > 0 {
		a, err := ApplyLoRA(m, c)
		if err != nil {
			return tr, err
		}
		if c.Model != "" {
			abs, _ := filepath.Abs(c.Model)
			a.BaseModel = abs
		}
		r.adapters = a
		tr = train.LoRA(m, a)
		fmt.Fprintln(log, a.Report(m))
	} else {
		tr = train.FullTrainable(m)
		tr.Save = func(dir string) error {
			if err := m.SaveHF(dir, model.SaveOptions{}); err != nil {
				return err
			}
			return r.tok.Save(filepath.Join(dir, "tokenizer.json"))
		}
		fmt.Fprintf(log, "full fine-tuning of %s parameters\n", sysinfo.Human(float64(m.NumParams())))
	}
	if c.GradCheckpointing {
		if err := m.SetCheckpointing(true); err != nil {
			return tr, err
		}
	}
	return tr, nil
}

// ApplyLoRA applies adapters with c's LoRA settings to m (in a
// data-parallel run each rank seeds its dropout masks differently; rank
// 0's initial adapters are broadcast).
func ApplyLoRA(m *model.Transformer, c *SFTConfig) (*lora.Adapters, error) {
	return lora.Apply(m, lora.Config{R: c.LoraR, Alpha: c.LoraAlpha, Dropout: c.LoraDropout,
		Targets: strings.Split(c.LoraTargets, ","), UseRSLoRA: c.UseRSLoRA, Seed: rankSeed(c.Comm, c.Seed)})
}

// eval is the held-out loss and exact match (the harness turns dropout off
// around it).
func (r *sftRun) eval() (map[string]float64, error) {
	out := map[string]float64{}
	if model.CountTargets(r.evalB) > 0 {
		v, err := train.EvaluateOn(r.cfg.Comm, r.m, r.evalB)
		if err != nil {
			return nil, err
		}
		out["val_loss"] = v
	}
	if len(r.emSet) == 0 {
		return out, nil // --eval-examples 0: no exact match
	}
	em, err := exactMatchOn(r.cfg.Comm, r.emSet, func(set []data.Example) (float64, error) {
		return sft.ExactMatch(r.m, r.tok, r.tmpl, set, r.cfg.MaxNewTokens)
	})
	if err != nil {
		return nil, err
	}
	out["exact_match"] = em
	return out, nil
}
