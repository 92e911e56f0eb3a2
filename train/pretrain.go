package train

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"

	"github.com/shoggo/shoggo/data"
	"github.com/shoggo/shoggo/decode"
	"github.com/shoggo/shoggo/internal/plot"
	"github.com/shoggo/shoggo/model"
	"github.com/shoggo/shoggo/optim"
)

// Tokenizer is what recipes need from a tokenizer.
type Tokenizer interface {
	Encode(s string) []int32
	Decode(ids []int32) string
}

// PretrainConfig configures Pretrain. The yaml tags let a recipe file set
// the same fields as the CLI flags.
type PretrainConfig struct {
	Out          string  `yaml:"out"`
	Batch        int     `yaml:"batch"`
	Seq          int     `yaml:"seq"`
	Accum        int     `yaml:"grad_accum"`
	Steps        int     `yaml:"steps"`        // optimisation steps; 0: derived from TokenBudget
	TokenBudget  int64   `yaml:"token_budget"` // tokens to train on when Steps is 0
	LR           float64 `yaml:"lr"`
	MinLR        float64 `yaml:"min_lr"`
	Warmup       int     `yaml:"warmup"`
	Schedule     string  `yaml:"schedule"` // constant | cosine | linear
	WeightDecay  float64 `yaml:"weight_decay"`
	Clip         float64 `yaml:"clip"`
	EvalEvery    int     `yaml:"eval_every"`
	EvalBatches  int     `yaml:"eval_batches"`
	SampleEvery  int     `yaml:"sample_every"`
	SamplePrompt string  `yaml:"sample_prompt"`
	SaveEvery    int     `yaml:"save_every"`
	Seed         uint64  `yaml:"seed"`
	ValFraction  float64 `yaml:"val_fraction"`
	Resume       bool    `yaml:"resume"`
	// TimeLimit stops training (saving a checkpoint) after this long; 0: none.
	TimeLimit time.Duration `yaml:"time_limit"`
	// StopAfter stops after this many steps of this invocation, as Ctrl-C
	// would (checkpoint saved); 0: none. For tests and time-sliced runs.
	StopAfter int `yaml:"stop_after"`
}

// Defaults fills unset fields.
func (c *PretrainConfig) Defaults() {
	def := func(p *int, v int) {
		if *p == 0 {
			*p = v
		}
	}
	def(&c.Batch, 8)
	def(&c.Seq, 128)
	def(&c.Accum, 1)
	def(&c.EvalEvery, 50)
	def(&c.EvalBatches, 8)
	def(&c.SampleEvery, 100)
	def(&c.SaveEvery, 200)
	def(&c.Warmup, 20)
	if c.LR == 0 {
		c.LR = 3e-3
	}
	if c.MinLR == 0 {
		c.MinLR = c.LR / 10
	}
	if c.Schedule == "" {
		c.Schedule = "cosine"
	}
	if c.Clip == 0 {
		c.Clip = 1
	}
	if c.ValFraction == 0 {
		c.ValFraction = 0.02
	}
	if c.Out == "" {
		c.Out = "runs/pretrain"
	}
	if c.SamplePrompt == "" {
		c.SamplePrompt = "And God said"
	}
}

// Metric is one line of metrics.jsonl.
type Metric struct {
	Step      int     `json:"step"`
	Tokens    int64   `json:"tokens"`
	Loss      float64 `json:"loss,omitempty"`
	ValLoss   float64 `json:"val_loss,omitempty"`
	LR        float64 `json:"lr,omitempty"`
	GradNorm  float64 `json:"grad_norm,omitempty"`
	TokPerSec float64 `json:"tok_per_s,omitempty"`
	Elapsed   float64 `json:"elapsed_s"`
	Sample    string  `json:"sample,omitempty"`
}

// PretrainResult summarises a run.
type PretrainResult struct {
	Steps        int
	FirstLoss    float64
	FinalLoss    float64
	FinalValLoss float64
	TokPerSec    float64
	ModelDir     string
	Interrupted  bool
}

// Pretrain trains m on the loader's windows with AdamW, writing metrics,
// samples, checkpoints and the final model under cfg.Out. It stops cleanly
// (saving a checkpoint) when ctx is cancelled. log receives the progress
// bar and messages.
func Pretrain(ctx context.Context, cfg PretrainConfig, m *model.Transformer, tok Tokenizer, eos int32, loader *data.Loader, log io.Writer) (PretrainResult, error) {
	cfg.Defaults()
	var res PretrainResult
	B, T := cfg.Batch, cfg.Seq
	tokensPerStep := int64(B * T * cfg.Accum)
	if cfg.Steps == 0 {
		if cfg.TokenBudget == 0 {
			return res, fmt.Errorf("pretrain: set steps or a token budget")
		}
		cfg.Steps = int((cfg.TokenBudget + tokensPerStep - 1) / tokensPerStep)
	}
	if err := m.Plan(B, T); err != nil {
		return res, err
	}
	oc := optim.DefaultConfig()
	oc.WeightDecay = cfg.WeightDecay
	opt, err := optim.NewAdamW(Params(m), oc)
	if err != nil {
		return res, err
	}
	sched, err := optim.ParseSchedule(cfg.Schedule, cfg.LR, cfg.MinLR, min(cfg.Warmup, cfg.Steps), cfg.Steps)
	if err != nil {
		return res, err
	}
	if err := os.MkdirAll(cfg.Out, 0o755); err != nil {
		return res, err
	}
	ckptDir := filepath.Join(cfg.Out, "checkpoints")
	pcg := rand.NewPCG(cfg.Seed, 0x5406)
	rng := rand.New(pcg)
	start := 0
	if cfg.Resume {
		path, err := LatestCheckpoint(ckptDir)
		if err != nil {
			return res, fmt.Errorf("resume: %w", err)
		}
		st, err := LoadCheckpoint(path, m, opt)
		if err != nil {
			return res, fmt.Errorf("resume: %w", err)
		}
		if err := pcg.UnmarshalBinary(st.RNG); err != nil {
			return res, fmt.Errorf("resume: %s: rng state: %w", path, err)
		}
		var ls data.LoaderState
		if err := json.Unmarshal(st.Data, &ls); err != nil {
			return res, fmt.Errorf("resume: %s: loader state: %w", path, err)
		}
		if err := loader.Restore(ls); err != nil {
			return res, fmt.Errorf("resume: %s: %w", path, err)
		}
		start = st.Step
		fmt.Fprintf(log, "resumed from %s at step %d\n", path, start)
	}
	metricsFile, err := os.OpenFile(filepath.Join(cfg.Out, "metrics.jsonl"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return res, err
	}
	defer metricsFile.Close()
	enc := json.NewEncoder(metricsFile)

	// Buffers for the micro-batches and validation batches.
	micro := make([]*model.Batch, cfg.Accum)
	window := make([]int32, B*(T+1))
	for i := range micro {
		micro[i] = &model.Batch{B: B, T: T, IDs: make([]int32, B*T), Targets: make([]int32, B*T)}
	}
	fill := func(b *model.Batch, w []int32) {
		for r := 0; r < B; r++ {
			copy(b.IDs[r*T:(r+1)*T], w[r*(T+1):r*(T+1)+T])
			copy(b.Targets[r*T:(r+1)*T], w[r*(T+1)+1:(r+1)*(T+1)])
		}
	}
	nVal := min(cfg.EvalBatches, loader.ValBatchCount())
	var val []*model.Batch
	for i := 0; i < nVal; i++ {
		b := &model.Batch{B: B, T: T, IDs: make([]int32, B*T), Targets: make([]int32, B*T)}
		loader.ValBatch(i, window)
		fill(b, window)
		val = append(val, b)
	}
	evaluate := func() float64 {
		if len(val) == 0 {
			return math.NaN()
		}
		v, err := Evaluate(m, val)
		if err != nil {
			return math.NaN()
		}
		return v
	}
	save := func(step int) error {
		ls, _ := json.Marshal(loader.Position())
		rs, _ := pcg.MarshalBinary()
		_, err := SaveCheckpoint(ckptDir, m, opt, State{Step: step, RNG: rs, Data: ls})
		return err
	}
	sample := func() string {
		ids := tok.Encode(cfg.SamplePrompt)
		out, err := GenerateText(m, tok, ids, 48, decode.Sampling{Temperature: 0.8, TopK: 40}, eos, rng)
		if err != nil {
			return "(" + err.Error() + ")"
		}
		return cfg.SamplePrompt + out
	}

	t0 := time.Now()
	bar := NewProgress(log, cfg.Steps)
	var tokens int64
	var lastVal float64 = math.NaN()
	step := start
	for ; step < cfg.Steps; step++ {
		if ctx.Err() != nil || (cfg.TimeLimit > 0 && time.Since(t0) > cfg.TimeLimit) || (cfg.StopAfter > 0 && step-start >= cfg.StopAfter) {
			res.Interrupted = true
			break
		}
		for _, b := range micro {
			loader.Next(window)
			fill(b, window)
		}
		lr := sched.LR(step)
		r, err := Step(m, opt, micro, lr, cfg.Clip)
		if err != nil {
			return res, fmt.Errorf("step %d: %w", step, err)
		}
		if r.Skipped {
			fmt.Fprintf(log, "\nstep %d: non-finite gradient norm %v, update skipped\n", step, r.GradNorm)
		}
		tokens += tokensPerStep
		if step == start {
			res.FirstLoss = r.Loss
		}
		res.FinalLoss = r.Loss
		el := time.Since(t0).Seconds()
		met := Metric{Step: step + 1, Tokens: tokens, Loss: r.Loss, LR: lr, GradNorm: r.GradNorm, TokPerSec: float64(tokens) / el, Elapsed: el}
		if (step+1)%cfg.EvalEvery == 0 || step+1 == cfg.Steps {
			lastVal = evaluate()
			met.ValLoss = lastVal
		}
		if (step+1)%cfg.SampleEvery == 0 {
			met.Sample = sample()
			bar.Message(fmt.Sprintf("step %d sample: %q", step+1, met.Sample))
		}
		enc.Encode(met)
		bar.Update(step+1, r.Loss, lastVal, met.TokPerSec)
		if (step+1)%cfg.SaveEvery == 0 && step+1 < cfg.Steps {
			if err := save(step + 1); err != nil {
				return res, err
			}
		}
	}
	bar.Done()
	res.Steps = step
	res.TokPerSec = float64(tokens) / time.Since(t0).Seconds()
	if err := save(step); err != nil {
		return res, err
	}
	if res.Interrupted {
		fmt.Fprintf(log, "stopped at step %d; checkpoint saved, continue with --resume\n", step)
	}
	res.FinalValLoss = evaluate()
	if err := PlotMetrics(filepath.Join(cfg.Out, "metrics.jsonl"), filepath.Join(cfg.Out, "loss.png")); err != nil {
		fmt.Fprintf(log, "plot: %v\n", err)
	}
	res.ModelDir = filepath.Join(cfg.Out, "model")
	if err := m.SaveHF(res.ModelDir, model.SaveOptions{}); err != nil {
		return res, err
	}
	return res, nil
}

// PlotMetrics draws train and validation loss from a metrics.jsonl file.
func PlotMetrics(metricsPath, pngPath string) error {
	f, err := os.Open(metricsPath)
	if err != nil {
		return err
	}
	defer f.Close()
	dec := json.NewDecoder(f)
	var tr, va plot.Series
	tr.Name, va.Name = "train loss", "validation loss"
	for {
		var m Metric
		if err := dec.Decode(&m); err == io.EOF {
			break
		} else if err != nil {
			return fmt.Errorf("%s: %w", metricsPath, err)
		}
		if m.Loss != 0 {
			tr.X, tr.Y = append(tr.X, float64(m.Step)), append(tr.Y, m.Loss)
		}
		if m.ValLoss != 0 && !math.IsNaN(m.ValLoss) {
			va.X, va.Y = append(va.X, float64(m.Step)), append(va.Y, m.ValLoss)
		}
	}
	return plot.LinePNG(pngPath, "shoggo loss", "step", "loss (nats/token)", []plot.Series{tr, va})
}

// GenerateText continues prompt ids by up to maxNew tokens and returns the
// decoded continuation (stopping at eos or a full context), through the
// batched decoder with one row seeded from rng.
func GenerateText(m *model.Transformer, tok Tokenizer, prompt []int32, maxNew int, opt decode.Sampling, eos int32, rng *rand.Rand) (string, error) {
	if len(prompt) == 0 {
		prompt = []int32{eos}
	}
	if ctx := m.Cfg.MaxPositionEmbeddings; len(prompt) >= ctx {
		prompt = prompt[len(prompt)-ctx+1:]
	}
	res, err := decode.Generate(m, [][]int32{prompt}, decode.Options{MaxNewTokens: maxNew, Sampling: opt,
		Seed: rng.Uint64(), EOS: []int32{eos}})
	if err != nil {
		return "", err
	}
	return tok.Decode(res[0].Tokens), nil
}
