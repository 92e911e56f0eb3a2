package recipe

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/shoggo/shoggo/align"
	"github.com/shoggo/shoggo/backend/device"
	"github.com/shoggo/shoggo/data"
	"github.com/shoggo/shoggo/internal/atomicfile"
	"github.com/shoggo/shoggo/internal/plot"
	"github.com/shoggo/shoggo/lora"
	"github.com/shoggo/shoggo/model"
	"github.com/shoggo/shoggo/optim"
	"github.com/shoggo/shoggo/safetensors"
	"github.com/shoggo/shoggo/sft"
	"github.com/shoggo/shoggo/sft/tasks"
	"github.com/shoggo/shoggo/tensor"
	"github.com/shoggo/shoggo/tokenizer"
	"github.com/shoggo/shoggo/train"
)

// AlignConfig is what the preference recipes (reward, DPO) share. The yaml
// keys are the flag names with underscores.
type AlignConfig struct {
	train.Options `yaml:",inline"`
	// Model is the SFT model to start from (an HF directory with its
	// tokenizer.json). Empty: runs/sft/final if it exists, else a short
	// SFT run on the embedded task (SFTSteps steps) into Out/sft.
	Model        string `yaml:"model"`
	SFTSteps     int    `yaml:"sft_steps"`
	Data         string `yaml:"data"`      // preference JSONL; empty: the embedded pairs
	EvalData     string `yaml:"eval_data"` // default: the held-out split (by a hash of the prompt)
	Task         string `yaml:"task"`      // embedded task names, comma-separated
	TrainPairs   int    `yaml:"train_pairs"`
	EvalPairs    int    `yaml:"eval_pairs"`
	EvalExamples int    `yaml:"eval_examples"` // held-out questions for exact match
	Template     string `yaml:"template"`
	MaxLen       int    `yaml:"max_len"`
	Batch        int    `yaml:"batch"` // pairs per micro-batch
	MaxNewTokens int    `yaml:"max_new_tokens"`
	SkipInvalid  bool   `yaml:"skip_invalid"`
	Device       string `yaml:"device"`
	Threads      int    `yaml:"threads"` // applied by the caller

	LoraR       int     `yaml:"lora_r"` // 0: full fine-tuning
	LoraAlpha   float64 `yaml:"lora_alpha"`
	LoraDropout float64 `yaml:"lora_dropout"`
	LoraTargets string  `yaml:"lora_targets"`
}

func defaultAlign(out string) AlignConfig {
	c := AlignConfig{Task: "add2", SFTSteps: 250, TrainPairs: 4000, EvalPairs: 200, EvalExamples: 200, MaxLen: 128,
		Batch: 16, MaxNewTokens: 8, LoraAlpha: 16, LoraTargets: "q_proj,v_proj"}
	c.Out, c.Seed, c.Schedule, c.Warmup, c.Accum, c.Clip = out, 1, "cosine", 10, 1, 1
	return c
}

// RewardConfig configures Reward.
type RewardConfig struct {
	AlignConfig `yaml:",inline"`
	Margin      float64 `yaml:"margin"`                     // Bradley–Terry margin for every pair
	CenterCoef  float64 `yaml:"center_rewards_coefficient"` // TRL's: coef·(rc+rr)²
}

// DefaultReward is `shoggo reward` without flags: the embedded pairs on
// the SFT model (made or found), full fine-tuning, 1000 steps of 16 pairs
// at lr 3e-4 (cosine), judged on 500 held-out pairs. Telling a right sum
// from a wrong one needs the arithmetic itself: at lr 1e-3 the model's
// features are disturbed faster than the comparison is learnt (300 steps:
// 0.895; 1000 steps: 0.885), while 3e-4 reaches 0.97-0.98 in 1000 steps.
func DefaultReward() RewardConfig {
	c := RewardConfig{AlignConfig: defaultAlign("runs/reward")}
	c.Steps, c.LR, c.EvalEvery, c.WeightDecay, c.EvalPairs = 1000, 3e-4, 100, 0, 500
	return c
}

// alignRun is what a preference recipe assembles before training.
type alignRun struct {
	cfg      *AlignConfig
	start    string // the starting model's directory
	tok      *tokenizer.Tokenizer
	tmpl     sft.Template
	m        *model.Transformer
	adapters *lora.Adapters
	pad      int32
	T        int
	train    []align.Pair
	evalB    []*model.Batch
	emSet    []data.Example
}

// startModel returns the directory of the SFT model to start from, making
// a short SFT run when none is given or found.
func startModel(c *AlignConfig, log io.Writer) (string, error) {
	if c.Model != "" {
		return c.Model, nil
	}
	if fileExists("runs/sft/final/config.json") && fileExists("runs/sft/final/tokenizer.json") {
		fmt.Fprintln(log, "start model: runs/sft/final")
		return "runs/sft/final", nil
	}
	dir := filepath.Join(c.Out, "sft")
	final := filepath.Join(dir, "final")
	if fileExists(filepath.Join(final, "config.json")) {
		fmt.Fprintf(log, "start model: %s (made by an earlier run)\n", final)
		return final, nil
	}
	s := DefaultSFT()
	s.TaskDefaults()
	s.Preset, s.Task, s.Seed, s.Out = TaskPreset, c.Task, c.Seed, dir
	s.Steps, s.EvalEvery, s.Warmup = c.SFTSteps, c.SFTSteps, min(s.Warmup, c.SFTSteps/4)
	s.Comm = c.Comm // data-parallel too, when this run is
	fmt.Fprintf(log, "start model: none given or found; a short SFT run (%d steps) into %s\n", s.Steps, dir)
	res, err := SFT(context.Background(), s, log)
	if err != nil {
		return "", fmt.Errorf("making the start model: %w", err)
	}
	fmt.Fprintf(log, "start model: exact match %.1f%% after %d SFT steps\n", 100*res.After["exact_match"], res.Steps)
	return final, nil
}

// prepareAlign loads the start model (trainable for full fine-tuning,
// frozen for LoRA; adapters are applied by the caller), its tokenizer, the
// template and the held-out exact-match questions.
func prepareAlign(c *AlignConfig, log io.Writer) (*alignRun, error) {
	r := &alignRun{cfg: c}
	prec, err := c.PrecisionConfig.DType()
	if err != nil {
		return nil, err
	}
	if r.start, err = startModel(c, log); err != nil {
		return nil, err
	}
	if r.tok, err = tokenizer.Load(filepath.Join(r.start, "tokenizer.json")); err != nil {
		return nil, err
	}
	if c.Template == "" {
		c.Template = "plain"
		if c.Data != "" {
			c.Template = "alpaca"
			if _, ok := r.tok.TokenToID("<|im_start|>"); ok {
				c.Template = "chatml"
			}
		}
	}
	if r.tmpl, err = sft.TemplateByName(c.Template); err != nil {
		return nil, err
	}
	be, err := device.Open(c.Device)
	if err != nil {
		return nil, err
	}
	if r.m, err = LoadBase(BaseConfig{Model: r.start}, c.LoraR > 0, r.tok.VocabSize(), c.Seed, be, log); err != nil {
		return nil, err
	}
	// The model trains and scores (reference log-probs, reward scores) at
	// the run's precision; decoding (exact match, sampling) runs in fp32.
	if err := train.SetPrecision(prec, r.m); err != nil {
		return nil, err
	}
	if r.pad = r.tok.PAD(); r.pad < 0 {
		r.pad = max(r.tok.EOS(), 0)
	}
	if c.Data == "" {
		_, r.emSet, err = tasks.Generate(tasks.Config{Seed: c.Seed, Tasks: strings.Split(c.Task, ","), Test: c.EvalExamples})
		if err != nil {
			return nil, err
		}
	}
	return r, nil
}

// preferences returns the training and held-out pairs: the JSONL files, or
// the embedded generator.
func (r *alignRun) preferences(log io.Writer) (trainP, evalP []data.Preference, err error) {
	c := r.cfg
	if c.Data == "" {
		trainP, evalP, err = align.GeneratePreferences(align.PrefConfig{Seed: c.Seed, Tasks: strings.Split(c.Task, ","), Train: c.TrainPairs, Test: c.EvalPairs})
		if err == nil && lead(c.Comm) {
			os.MkdirAll(c.Out, 0o755)
			align.WritePreferences(filepath.Join(c.Out, "train_pairs.jsonl"), trainP)
			align.WritePreferences(filepath.Join(c.Out, "test_pairs.jsonl"), evalP)
		}
		return trainP, evalP, err
	}
	all, skipped, err := data.ReadPreferences(c.Data, c.SkipInvalid)
	if err != nil {
		return nil, nil, err
	}
	if skipped > 0 {
		fmt.Fprintf(log, "skipped %d invalid lines in %s\n", skipped, c.Data)
	}
	if c.EvalData != "" {
		evalP, _, err = data.ReadPreferences(c.EvalData, c.SkipInvalid)
		return all, evalP, err
	}
	for _, p := range all {
		if tasks.HeldOut(promptKey(p)) {
			evalP = append(evalP, p)
		} else {
			trainP = append(trainP, p)
		}
	}
	if len(trainP) == 0 || len(evalP) == 0 {
		return nil, nil, fmt.Errorf("%s: the held-out split (1 prompt in %d, by a hash of the prompt) left %d training and %d held-out pairs; pass --eval-data", c.Data, tasks.HeldOutDenominator, len(trainP), len(evalP))
	}
	return trainP, evalP, nil
}

// promptKey is the text the held-out split hashes.
func promptKey(p data.Preference) string {
	if !p.IsChat() {
		return p.Prompt
	}
	var b strings.Builder
	for _, m := range p.PromptMessages {
		b.WriteString(m.Role + "\x00" + m.Content + "\x00")
	}
	return b.String()
}

// encode encodes the pairs and sets the training row length T and the
// held-out batches (rows as long as the longest held-out sequence).
func (r *alignRun) encode(trainP, evalP []data.Preference, log io.Writer) error {
	c := r.cfg
	maxLen := min(c.MaxLen, r.m.Cfg.MaxPositionEmbeddings)
	var skipped, skippedEval int
	var err error
	if r.train, skipped, err = align.EncodePairs(trainP, r.tok, r.tmpl, maxLen); err != nil {
		return err
	}
	ev, skippedEval, err := align.EncodePairs(evalP, r.tok, r.tmpl, maxLen)
	if err != nil {
		return fmt.Errorf("held-out pairs: %w", err)
	}
	r.T = min(maxLen, (align.MaxLen(r.train)+7)/8*8)
	_, size := ranks(c.Comm) // global batches, split over the ranks by evaluation
	r.evalB = align.PairBatches(ev, c.Batch*size, min(maxLen, (align.MaxLen(ev)+7)/8*8), r.pad)
	fmt.Fprintf(log, "data: %d training pairs, %d held out (%d skipped: nothing to train on); template %s, %d pairs x %d tokens per batch\n",
		len(r.train), len(ev), skipped+skippedEval, c.Template, c.Batch, r.T)
	return nil
}

// trainable applies LoRA or makes the model trainable, adding extra
// parameters (a head) to the set.
func (r *alignRun) trainable(log io.Writer, extra ...optim.Param) (train.Trainable, error) {
	c, m := r.cfg, r.m
	var tr train.Trainable
	if c.LoraR > 0 {
		a, err := lora.Apply(m, lora.Config{R: c.LoraR, Alpha: c.LoraAlpha, Dropout: c.LoraDropout,
			Targets: strings.Split(c.LoraTargets, ","), Seed: c.Seed})
		if err != nil {
			return tr, err
		}
		abs, _ := filepath.Abs(r.start)
		a.BaseModel = abs
		r.adapters = a
		tr = train.LoRA(m, a)
		fmt.Fprintln(log, a.Report(m))
	} else {
		tr = train.FullTrainable(m)
	}
	if len(extra) == 0 {
		return tr, nil
	}
	zero := tr.ZeroGrad
	tr.Params = append(tr.Params, extra...)
	for _, p := range extra {
		tr.Grads = append(tr.Grads, p.G)
	}
	tr.ZeroGrad = func() {
		zero()
		for _, p := range extra {
			p.G.Zero()
		}
	}
	if sw, lw := tr.SaveWeights, tr.LoadWeights; sw != nil {
		// Full fine-tuning checkpoints the model as an HF directory; the
		// extra tensors go next to it.
		file := func(dir string) string { return filepath.Join(dir, "extra.safetensors") }
		tr.SaveWeights = func(dir string) error {
			if err := sw(dir); err != nil {
				return err
			}
			ts := make([]*tensor.Tensor, len(extra))
			for i, p := range extra {
				ts[i] = p.W
			}
			return safetensors.Write(file(dir), ts, nil)
		}
		tr.LoadWeights = func(dir string) error {
			if err := lw(dir); err != nil {
				return err
			}
			f, err := safetensors.Open(file(dir))
			if err != nil {
				return err
			}
			defer f.Close()
			for _, p := range extra {
				if err := f.ReadInto(p.W.Name, p.W); err != nil {
					return err
				}
			}
			return nil
		}
	}
	return tr, nil
}

// exactMatch is the held-out exact match of m (0 questions: NaN-free 0,
// reported as absent by the caller), the questions split over the ranks.
func (r *alignRun) exactMatch() (float64, error) {
	if len(r.emSet) == 0 {
		return 0, nil
	}
	return exactMatchOn(r.cfg.Comm, r.emSet, func(set []data.Example) (float64, error) {
		return sft.ExactMatch(r.m, r.tok, r.tmpl, set, r.cfg.MaxNewTokens)
	})
}

// RewardResult is Reward's summary.
type RewardResult struct {
	train.Summary
	PairwiseAccuracyBefore, PairwiseAccuracy float64
}

// Reward trains a reward model: the start model plus a scalar head on the
// last non-pad token, trained with the Bradley–Terry loss (optional
// margin) on preference pairs, full or LoRA, on the trainer harness.
// Evaluation is the pairwise accuracy and loss on held-out pairs. The
// result is an HF sequence-classification model (LoRA adapters merged)
// with its tokenizer in Out/final; Out/summary.json adds
// pairwise_accuracy, exact_match_before/after (of the start model, which
// a reward model does not change) and kl (0).
func Reward(ctx context.Context, cfg RewardConfig, log io.Writer) (RewardResult, error) {
	var res RewardResult
	c := &cfg.AlignConfig
	log = rankLog(c.Comm, log)
	r, err := prepareAlign(c, log)
	if err != nil {
		return res, err
	}
	trainP, evalP, err := r.preferences(log)
	if err != nil {
		return res, err
	}
	if err := r.encode(trainP, evalP, log); err != nil {
		return res, err
	}
	// transformers initialises the score layer N(0, initializer_range²),
	// 0.02 in every family's default config.
	head := align.NewRewardHead(r.m.Cfg.HiddenSize, r.pad, 0.02, rand.New(rand.NewPCG(c.Seed, 0x5c0e)))
	tr, err := r.trainable(log, optim.Param{Name: align.ScoreName, W: head.W, G: head.G})
	if err != nil {
		return res, err
	}
	tr.Save = func(dir string) error {
		if r.adapters != nil {
			if err := lora.Merge(r.m, r.adapters); err != nil {
				return err
			}
		}
		if err := align.SaveRewardModel(dir, r.m, head); err != nil {
			return err
		}
		return r.tok.Save(filepath.Join(dir, "tokenizer.json"))
	}
	em, err := r.exactMatch()
	if err != nil {
		return res, err
	}
	obj := &align.RewardObjective{Head: head, Margin: cfg.Margin, CenterCoef: cfg.CenterCoef}
	evalB, err := localRows(c.Comm, r.evalB)
	if err != nil {
		return res, err
	}
	eval := func() (map[string]float64, error) {
		// Each rank scores its rows of the held-out batches.
		var acc, loss float64
		n := float64(align.CountPairs(evalB))
		if n > 0 {
			var err error
			if acc, loss, err = head.PairwiseAccuracy(r.m, evalB, cfg.Margin); err != nil {
				return nil, err
			}
		}
		v, err := sumOn(c.Comm, acc*n, loss*n, n)
		if err != nil {
			return nil, err
		}
		if v[2] == 0 {
			return nil, fmt.Errorf("reward: no pairs to evaluate")
		}
		acc, loss = v[0]/v[2], v[1]/v[2]
		out := map[string]float64{"pairwise_accuracy": acc, "val_loss": loss}
		if tv, err := sumOn(c.Comm, float64(obj.Correct), float64(obj.Seen)); err != nil {
			return nil, err
		} else if tv[1] > 0 { // over every rank's rows
			out["train_pairwise_accuracy"] = tv[0] / tv[1]
		}
		obj.Correct, obj.Seen = 0, 0
		return out, err
	}
	// Global batches of Batch pairs per rank, each rank training on its own.
	_, size := ranks(c.Comm)
	src := &align.PairSource{Pairs: r.train, P: c.Batch * size, T: r.T, Pad: r.pad, Seed: int64(c.Seed)}
	t := &train.Trainer{Opts: c.Options, Model: r.m, Trainable: tr, Objective: obj, Data: train.ShardRows(src, c.Comm), Log: log, Recipe: "reward", Eval: eval}
	if res.Summary, err = t.Run(ctx); err != nil || !lead(c.Comm) {
		return res, err
	}
	res.PairwiseAccuracyBefore, res.PairwiseAccuracy = res.Before["pairwise_accuracy"], res.After["pairwise_accuracy"]
	extra := map[string]float64{"pairwise_accuracy": res.PairwiseAccuracy, "pairwise_accuracy_before": res.PairwiseAccuracyBefore, "kl": 0}
	if len(r.emSet) > 0 {
		extra["exact_match_before"], extra["exact_match_after"] = em, em
	}
	return res, finishAlign(c.Out, res.Summary, extra, r.start, []string{"pairwise_accuracy", "train_pairwise_accuracy"})
}

// finishAlign adds the headline figures to Out/summary.json (top-level
// fields next to the harness's) and plots the evaluation curves to
// Out/eval.png.
func finishAlign(out string, s train.Summary, extra map[string]float64, start string, curves []string) error {
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	for k, v := range extra {
		m[k] = v
	}
	m["start_model"] = start
	b, _ = json.MarshalIndent(m, "", "  ")
	if err := atomicfile.WriteFile(filepath.Join(out, "summary.json"), append(b, '\n'), 0o644); err != nil {
		return err
	}
	return PlotEval(filepath.Join(out, "metrics.jsonl"), filepath.Join(out, "eval.png"), curves)
}

// PlotEval draws the named metrics of a metrics.jsonl file against the
// step (lines without a metric are skipped).
func PlotEval(metricsPath, pngPath string, names []string) error {
	raw, err := os.ReadFile(metricsPath)
	if err != nil {
		return err
	}
	series := make([]plot.Series, len(names))
	for i, n := range names {
		series[i].Name = n
	}
	for _, line := range strings.Split(string(raw), "\n") {
		var m map[string]float64
		if json.Unmarshal([]byte(line), &m) != nil {
			var loose map[string]any
			if json.Unmarshal([]byte(line), &loose) != nil {
				continue
			}
			m = map[string]float64{}
			for k, v := range loose {
				if f, ok := v.(float64); ok {
					m[k] = f
				}
			}
		}
		for i, n := range names {
			if v, ok := m[n]; ok {
				series[i].X, series[i].Y = append(series[i].X, m["step"]), append(series[i].Y, v)
			}
		}
	}
	var keep []plot.Series
	for _, s := range series {
		if len(s.X) > 0 {
			keep = append(keep, s)
		}
	}
	if len(keep) == 0 {
		return nil
	}
	return plot.LinePNG(pngPath, "shoggo "+strings.Join(names, ", "), "step", "value", keep)
}

// BindFlags defines a flag for every field of the struct cfg points to
// (embedded structs included) that has a yaml key: the flag's name is the
// key with dashes for underscores, its default the field's value, its
// usage help[key] (fields without help get a generic line). Supported
// kinds: string, bool, int, uint64, float64, time.Duration.
func BindFlags(fs *flag.FlagSet, cfg any, help map[string]string) {
	bindFields(fs, reflect.ValueOf(cfg).Elem(), help)
}

func bindFields(fs *flag.FlagSet, v reflect.Value, help map[string]string) {
	t := v.Type()
	for i := range t.NumField() {
		f, fv := t.Field(i), v.Field(i)
		key, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if f.Anonymous && fv.Kind() == reflect.Struct {
			bindFields(fs, fv, help)
			continue
		}
		if key == "" || key == "-" || !f.IsExported() {
			continue
		}
		name := strings.ReplaceAll(key, "_", "-")
		if fs.Lookup(name) != nil {
			continue
		}
		usage := help[key]
		if usage == "" {
			usage = "see the recipe's " + key
		}
		switch p := fv.Addr().Interface().(type) {
		case *string:
			fs.StringVar(p, name, *p, usage)
		case *bool:
			fs.BoolVar(p, name, *p, usage)
		case *int:
			fs.IntVar(p, name, *p, usage)
		case *uint64:
			fs.Uint64Var(p, name, *p, usage)
		case *float64:
			fs.Float64Var(p, name, *p, usage)
		case *time.Duration:
			fs.DurationVar(p, name, *p, usage)
		}
	}
}

// AlignHelp is the flag help shared by the preference recipes.
var AlignHelp = map[string]string{
	"model":          "SFT model directory with tokenizer.json (default: runs/sft/final, else a short SFT run into OUT/sft)",
	"sft_steps":      "steps of the SFT run made when no start model is given or found",
	"data":           "preference JSONL (prompt/chosen/rejected strings or TRL message lists); default: the embedded pairs",
	"eval_data":      "held-out preference JSONL (default: 1 prompt in 10 by a hash of the prompt)",
	"task":           "embedded tasks: " + strings.Join(tasks.Names(), ","),
	"train_pairs":    "embedded: training pairs (DPO on-policy: training questions)",
	"eval_pairs":     "embedded: held-out pairs",
	"eval_examples":  "held-out questions for exact match",
	"template":       "chatml | alpaca | plain (default: plain for the embedded task, else chatml if the tokenizer has <|im_start|>, else alpaca)",
	"batch":          "pairs per micro-batch",
	"grad_accum":     "micro-batches per step",
	"steps":          "optimisation steps",
	"lr":             "peak learning rate",
	"out":            "output directory",
	"seed":           "random seed",
	"resume":         "resume from the latest checkpoint in --out",
	"lora_r":         "LoRA rank (0: full fine-tuning)",
	"threads":        "CPU threads (default: all)",
	"device":         "compute device: " + device.Names,
	"max_new_tokens": "tokens generated per exact-match question",
}

// SortedKeys returns m's keys in order (for printing).
func SortedKeys(m map[string]float64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
