package recipe

import (
	"context"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"

	"github.com/shoggo/shoggo/backend/device"
	"github.com/shoggo/shoggo/data"
	"github.com/shoggo/shoggo/decode"
	"github.com/shoggo/shoggo/internal/safepath"
	"github.com/shoggo/shoggo/internal/sysinfo"
	"github.com/shoggo/shoggo/model"
	"github.com/shoggo/shoggo/tensor"
	"github.com/shoggo/shoggo/tokenizer"
	"github.com/shoggo/shoggo/train"
)

// PretrainConfig configures Pretrain. The yaml keys are `shoggo pretrain`'s
// flag names with underscores.
type PretrainConfig struct {
	train.Options `yaml:",inline"`
	Batch         int     `yaml:"batch"`
	Seq           int     `yaml:"seq"`
	TokenBudget   int64   `yaml:"token_budget"` // tokens to train on when Steps is 0
	EvalBatches   int     `yaml:"eval_batches"`
	SamplePrompt  string  `yaml:"sample_prompt"`
	ValFraction   float64 `yaml:"val_fraction"`

	Preset      string   `yaml:"preset"`
	ModelConfig string   `yaml:"model_config"` // config.json instead of a preset
	Init        string   `yaml:"init"`         // start from this HF model directory
	Data        []string `yaml:"data"`         // token shards; empty: the embedded corpus
	Tokenizer   string   `yaml:"tokenizer"`
	VocabSize   int      `yaml:"vocab_size"` // of the tokenizer trained on the embedded corpus
	Threads     int      `yaml:"threads"`    // applied by the caller (process-wide)
	Device      string   `yaml:"device"`     // backend/device.Open
}

// DefaultPretrain is `shoggo pretrain` without flags: a 4M-parameter model
// on the embedded corpus for 500 steps.
func DefaultPretrain() PretrainConfig {
	c := PretrainConfig{Preset: "shoggo-4m", VocabSize: 4096, Batch: 16, Seq: 128, EvalBatches: 8, ValFraction: 0.02}
	c.Accum = 1
	o := &c.Options
	o.Steps, o.LR, o.MinLR, o.Warmup, o.Clip, o.Beta2 = 500, 2e-3, 2e-4, 30, 1, 0.999
	o.EvalEvery, o.SampleEvery, o.SaveEvery = 50, 200, 200
	o.WeightDecay, o.Seed, o.Out = 0.1, 1337, "runs/pretrain"
	return c
}

// fill sets unset sizes to their defaults. Values where zero has a
// meaning (min_lr, warmup, clip, save_every, sample_every) are kept.
func (c *PretrainConfig) fill() {
	def := func(p *int, v int) {
		if *p == 0 {
			*p = v
		}
	}
	def(&c.Batch, 8)
	def(&c.Seq, 128)
	def(&c.Accum, 1)
	def(&c.EvalBatches, 8)
	def(&c.VocabSize, 4096)
	if c.LR == 0 {
		c.LR = 3e-3
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

// PretrainResult is the run's summary and where its outputs are.
type PretrainResult struct {
	train.Summary
	ModelDir string
	// UnigramEntropy is the training data's token-frequency entropy in
	// nats: the loss of a model that ignores context.
	UnigramEntropy float64
}

// Pretrain trains a model from scratch (or from cfg.Init) on token shards
// or the embedded corpus: tokenizer, data, model, then the trainer harness
// with the LM objective, validation loss and samples. Outputs go under
// cfg.Out (tokenizer.json, data/, metrics.jsonl, loss.png, checkpoints/,
// model/ with its tokenizer, summary.json); log gets the progress.
func Pretrain(ctx context.Context, cfg PretrainConfig, log io.Writer) (PretrainResult, error) {
	var res PretrainResult
	cfg.fill()
	if _, err := cfg.PrecisionConfig.DType(); err != nil {
		return res, err
	}
	if err := safepath.CheckOutput("--out", cfg.Out, safepath.Input{Flag: "--init", Path: cfg.Init}, safepath.Input{Flag: "--config", Path: cfg.ModelConfig}); err != nil {
		return res, err
	}
	lock, err := claimRun(cfg.Comm, cfg.Out, cfg.Resume, cfg.Overwrite, "model", "tokenizer.json", "data")
	if err != nil {
		return res, err
	}
	defer lock.Release()
	_, size := ranks(cfg.Comm)
	log = rankLog(cfg.Comm, log)
	// Rank 0 trains the tokenizer and tokenizes the corpus into Out; the
	// other ranks wait, then read them.
	var tok *tokenizer.Tokenizer
	var eos int32
	var shards []*data.Shard
	err = rank0First(cfg.Comm, func() error {
		var err error
		if tok, eos, err = pretrainTokenizer(&cfg, log, lead(cfg.Comm)); err != nil {
			return err
		}
		shards, err = pretrainShards(&cfg, tok, eos, log, lead(cfg.Comm))
		return err
	})
	if err != nil {
		return res, err
	}
	// The loader serves global batches (every rank the same seeded order);
	// ShardRows gives each rank its cfg.Batch rows.
	loader, err := data.NewLoader(shards, cfg.Batch*size, cfg.Seq, int64(cfg.Seed), cfg.ValFraction)
	if err != nil {
		return res, err
	}
	m, err := pretrainModel(&cfg, tok, eos, log)
	if err != nil {
		return res, err
	}
	if cfg.Steps == 0 {
		if cfg.TokenBudget == 0 {
			return res, fmt.Errorf("pretrain: set steps or a token budget")
		}
		per := int64(cfg.Batch * cfg.Seq * cfg.Accum * size)
		cfg.Steps = int((cfg.TokenBudget + per - 1) / per)
	}
	ranksNote := ""
	if size > 1 {
		ranksNote = fmt.Sprintf(" on each of %d ranks", size)
	}
	fmt.Fprintf(log, "model: %s, %s parameters; data: %d tokens (%d train / %d validation windows of %d); %d steps of %d×%d×%d tokens%s\n",
		m.Cfg.ModelType, sysinfo.Human(float64(m.NumParams())), loader.Tokens(), loader.TrainWindows(), loader.ValWindows(), cfg.Seq,
		cfg.Steps, cfg.Batch, cfg.Seq, cfg.Accum, ranksNote)
	tr := train.FullTrainable(m)
	tr.Save = func(dir string) error {
		if err := m.SaveHF(dir, model.SaveOptions{}); err != nil {
			return err
		}
		return tok.Save(filepath.Join(dir, "tokenizer.json"))
	}
	val := train.ValBatches(loader, cfg.EvalBatches)
	t := &train.Trainer{Opts: cfg.Options, Model: m, Trainable: tr, Objective: train.LM{},
		Data: train.ShardRows(&train.LoaderSource{Loader: loader}, cfg.Comm),
		Log:  log, Recipe: "pretrain", FinalDir: filepath.Join(cfg.Out, "model"), Lock: lock,
		Eval: func() (map[string]float64, error) {
			if len(val) == 0 {
				return map[string]float64{}, nil
			}
			v, err := train.EvaluateOn(cfg.Comm, m, val)
			if err != nil {
				return nil, err
			}
			return map[string]float64{"val_loss": v}, nil
		},
		Sample: func(rng *rand.Rand) string {
			out, err := train.GenerateText(m, tok, tok.Encode(cfg.SamplePrompt), 48, decode.Sampling{Temperature: 0.8, TopK: 40}, eos, rng)
			if err != nil {
				return "(" + err.Error() + ")"
			}
			return cfg.SamplePrompt + out
		}}
	sum, err := t.Run(ctx)
	res.Summary, res.ModelDir = sum, sum.Output
	if err != nil {
		return res, err
	}
	if lead(cfg.Comm) {
		res.UnigramEntropy = UnigramEntropy(shards, tok.VocabSize())
	}
	return res, nil
}

// pretrainTokenizer loads cfg.Tokenizer, or the run's own tokenizer.json
// (resuming, or training on the embedded corpus again), or trains the
// default one on the embedded corpus; with save it saves it as
// Out/tokenizer.json.
func pretrainTokenizer(cfg *PretrainConfig, log io.Writer, save bool) (*tokenizer.Tokenizer, int32, error) {
	var tok *tokenizer.Tokenizer
	var err error
	tokPath := filepath.Join(cfg.Out, "tokenizer.json")
	switch {
	case cfg.Tokenizer != "":
		tok, err = tokenizer.Load(cfg.Tokenizer)
	case fileExists(tokPath) && (cfg.Resume || len(cfg.Data) == 0):
		tok, err = tokenizer.Load(tokPath)
	default:
		if len(cfg.Data) > 0 {
			return nil, 0, fmt.Errorf("--data needs --tokenizer (the one the shards were made with)")
		}
		t0 := time.Now()
		fmt.Fprintf(log, "training a %d-token BPE tokenizer on the embedded corpus...\n", cfg.VocabSize)
		if tok, err = DefaultTokenizer(cfg.VocabSize); err == nil {
			fmt.Fprintf(log, "  done in %s\n", time.Since(t0).Round(time.Millisecond))
		}
	}
	if err != nil {
		return nil, 0, err
	}
	eos, err := DocumentEnd(tok)
	if err != nil || !save {
		return tok, eos, err
	}
	return tok, eos, tok.Save(tokPath)
}

// pretrainShards opens cfg.Data, or the embedded corpus tokenized into
// Out/data (once; only when write is set: the other ranks of a
// data-parallel run read rank 0's).
func pretrainShards(cfg *PretrainConfig, tok *tokenizer.Tokenizer, eos int32, log io.Writer, write bool) ([]*data.Shard, error) {
	paths := cfg.Data
	if len(paths) == 0 {
		paths = []string{filepath.Join(cfg.Out, "data", "kjv-000000.bin")}
		if !fileExists(paths[0]) && !write {
			return nil, fmt.Errorf("%s does not exist: rank 0 writes it; ranks on several machines need --out on a shared file system (or --data shards present on every machine)", paths[0])
		}
		if !fileExists(paths[0]) {
			ids, n, err := CorpusIDs(tok)
			if err != nil {
				return nil, err
			}
			if err := os.MkdirAll(filepath.Dir(paths[0]), 0o755); err != nil {
				return nil, err
			}
			if err := data.WriteShard(paths[0], ids, tok.VocabSize()); err != nil {
				return nil, err
			}
			fmt.Fprintf(log, "tokenized the corpus: %d tokens (%.2f bytes/token)\n", len(ids), float64(n)/float64(len(ids)))
		}
	}
	return data.OpenShards(paths)
}

// pretrainModel loads cfg.Init or builds a fresh model from the preset or
// config file (a preset on the embedded corpus takes the tokenizer's
// vocabulary and document end).
func pretrainModel(cfg *PretrainConfig, tok *tokenizer.Tokenizer, eos int32, log io.Writer) (*model.Transformer, error) {
	be, err := device.Open(cfg.Device)
	if err != nil {
		return nil, err
	}
	var m *model.Transformer
	if cfg.Init != "" {
		var warns []string
		if err := model.PrecheckHF(cfg.Init, tensor.F32, true, cfg.Batch, cfg.Seq); err != nil {
			return nil, err
		}
		if m, warns, err = model.LoadHF(cfg.Init, be, tensor.F32, true); err != nil {
			return nil, err
		}
		for _, w := range warns {
			fmt.Fprintln(log, "warning:", w)
		}
	} else {
		var mc *model.Config
		if cfg.ModelConfig != "" {
			mc, err = model.ReadConfig(cfg.ModelConfig)
		} else {
			mc, err = model.LookupPreset(cfg.Preset)
			if err == nil && len(cfg.Data) == 0 {
				mc.VocabSize = tok.VocabSize()
				e := int(eos)
				mc.BOSTokenID, mc.EOSTokenID = &e, &e
			}
		}
		if err != nil {
			return nil, err
		}
		if mc.MaxPositionEmbeddings < cfg.Seq {
			mc.MaxPositionEmbeddings = cfg.Seq
		}
		what := "preset " + cfg.Preset
		if cfg.ModelConfig != "" {
			what = cfg.ModelConfig
		}
		if err := model.CheckConfigFits(what, mc, tensor.F32, true, cfg.Batch, cfg.Seq); err != nil {
			return nil, err
		}
		if m, err = model.New(mc, be, tensor.F32, true); err != nil {
			return nil, err
		}
		m.InitWeights(rand.New(rand.NewPCG(cfg.Seed, 7)))
	}
	if m.Cfg.VocabSize < tok.VocabSize() {
		return nil, fmt.Errorf("model vocab_size %d is smaller than the tokenizer's %d", m.Cfg.VocabSize, tok.VocabSize())
	}
	return m, nil
}

// UnigramEntropy is the entropy in nats of the token frequency distribution.
func UnigramEntropy(shards []*data.Shard, vocab int) float64 {
	counts := make([]float64, vocab)
	var total float64
	buf := make([]int32, 1<<16)
	for _, s := range shards {
		for i := 0; i < s.Len(); i += len(buf) {
			j := min(i+len(buf), s.Len())
			s.Tokens(i, j, buf[:j-i])
			for _, t := range buf[:j-i] {
				if int(t) < vocab {
					counts[t]++
					total++
				}
			}
		}
	}
	var h float64
	for _, c := range counts {
		if c > 0 {
			p := c / total
			h -= p * math.Log(p)
		}
	}
	return h
}
