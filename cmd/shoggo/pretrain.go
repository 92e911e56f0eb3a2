package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/shoggo/shoggo/backend/cpu"
	"github.com/shoggo/shoggo/data"
	"github.com/shoggo/shoggo/internal/corpus"
	"github.com/shoggo/shoggo/model"
	"github.com/shoggo/shoggo/tensor"
	"github.com/shoggo/shoggo/tokenizer"
	"github.com/shoggo/shoggo/train"
)

func init() {
	register("pretrain", "pre-train a model (default: a 4M-parameter model on the embedded KJV corpus)", runPretrain)
}

// recipeArg finds --recipe FILE before flag parsing, so the recipe's values
// become defaults that explicit flags override.
func recipeArg(args []string) string {
	for i, a := range args {
		for _, p := range []string{"-recipe", "--recipe"} {
			if a == p && i+1 < len(args) {
				return args[i+1]
			}
			if v, ok := strings.CutPrefix(a, p+"="); ok {
				return v
			}
		}
	}
	return ""
}

// loadRecipe decodes the --recipe YAML file named in args, if any, into dst
// (unknown keys are errors), before flags are parsed so flags override it.
func loadRecipe(args []string, dst any) error {
	p := recipeArg(args)
	if p == "" {
		return nil
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(dst); err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	return nil
}

// pretrainRecipe is the YAML form: the run config plus model and data.
type pretrainRecipe struct {
	train.PretrainConfig `yaml:",inline"`
	Preset               string   `yaml:"preset"`
	ModelConfig          string   `yaml:"model_config"`
	Init                 string   `yaml:"init"`
	Data                 []string `yaml:"data"`
	Tokenizer            string   `yaml:"tokenizer"`
	VocabSize            int      `yaml:"vocab_size"`
	Threads              int      `yaml:"threads"`
}

func runPretrain(args []string) error {
	r := pretrainRecipe{Preset: "shoggo-4m", VocabSize: 4096}
	r.Steps = 500
	r.Batch, r.Seq = 16, 128
	r.LR, r.Warmup = 2e-3, 30
	r.EvalEvery, r.SampleEvery, r.SaveEvery = 50, 200, 200
	r.WeightDecay = 0.1
	r.Seed = 1337
	r.Out = "runs/pretrain"
	if err := loadRecipe(args, &r); err != nil {
		return err
	}
	fs := flag.NewFlagSet("pretrain", flag.ContinueOnError)
	fs.String("recipe", "", "YAML recipe file whose fields are the flags' names with underscores (flags override it)")
	fs.StringVar(&r.Preset, "preset", r.Preset, "model preset (see `shoggo presets`)")
	fs.StringVar(&r.ModelConfig, "config", r.ModelConfig, "model config.json (instead of a preset)")
	fs.StringVar(&r.Init, "init", r.Init, "start from this HF model directory instead of random weights")
	data := fs.String("data", strings.Join(r.Data, ","), "comma-separated token shards (from `shoggo tokenize`); default: the embedded corpus")
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
	fs.Float64Var(&r.Clip, "clip", r.Clip, "gradient clipping norm (default 1)")
	fs.IntVar(&r.EvalEvery, "eval-every", r.EvalEvery, "steps between validation losses")
	fs.IntVar(&r.EvalBatches, "eval-batches", r.EvalBatches, "validation batches per evaluation")
	fs.IntVar(&r.SampleEvery, "sample-every", r.SampleEvery, "steps between samples")
	fs.IntVar(&r.SaveEvery, "save-every", r.SaveEvery, "steps between checkpoints")
	fs.Uint64Var(&r.Seed, "seed", r.Seed, "random seed")
	fs.BoolVar(&r.Resume, "resume", r.Resume, "resume from the latest checkpoint in --out")
	fs.DurationVar(&r.TimeLimit, "time-limit", r.TimeLimit, "stop (with a checkpoint) after this long")
	fs.IntVar(&r.Threads, "threads", r.Threads, "CPU threads (default: all)")
	fs.IntVar(&r.StopAfter, "stop-after", r.StopAfter, "stop after this many steps, saving a checkpoint (as Ctrl-C does)")
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
	if err := os.MkdirAll(r.Out, 0o755); err != nil {
		return err
	}
	log := os.Stderr

	// Tokenizer.
	var tok *tokenizer.Tokenizer
	var err error
	tokPath := filepath.Join(r.Out, "tokenizer.json")
	switch {
	case r.Tokenizer != "":
		if tok, err = tokenizer.Load(r.Tokenizer); err != nil {
			return err
		}
	case fileExists(tokPath) && (r.Resume || len(r.Data) == 0):
		if tok, err = tokenizer.Load(tokPath); err != nil {
			return err
		}
	default:
		if len(r.Data) > 0 {
			return fmt.Errorf("--data needs --tokenizer (the one the shards were made with)")
		}
		t0 := time.Now()
		fmt.Fprintf(log, "training a %d-token BPE tokenizer on the embedded corpus...\n", r.VocabSize)
		if tok, err = defaultTokenizer(r.VocabSize); err != nil {
			return err
		}
		fmt.Fprintf(log, "  done in %s\n", time.Since(t0).Round(time.Millisecond))
	}
	eos, ok := tok.TokenToID("<|endoftext|>")
	if !ok {
		if eos = tok.EOS(); eos < 0 {
			return fmt.Errorf("tokenizer has no <|endoftext|> or EOS token")
		}
	}
	if err := tok.Save(tokPath); err != nil {
		return err
	}

	// Data.
	shardPaths := r.Data
	if len(shardPaths) == 0 {
		shardPaths = []string{filepath.Join(r.Out, "data", "kjv-000000.bin")}
		if !fileExists(shardPaths[0]) {
			text, err := corpus.KJV()
			if err != nil {
				return err
			}
			ids := encodeParallel(tok, text)
			ids = append(ids, eos)
			if err := os.MkdirAll(filepath.Dir(shardPaths[0]), 0o755); err != nil {
				return err
			}
			if err := dataWriteShard(shardPaths[0], ids, tok.VocabSize()); err != nil {
				return err
			}
			fmt.Fprintf(log, "tokenized the corpus: %d tokens (%.2f bytes/token)\n", len(ids), float64(len(text))/float64(len(ids)))
		}
	}
	shards, err := openShards(shardPaths)
	if err != nil {
		return err
	}
	loader, err := newLoader(shards, r.Batch, r.Seq, int64(r.Seed), r.ValFraction)
	if err != nil {
		return err
	}

	// Model.
	var m *model.Transformer
	if r.Init != "" {
		var warns []string
		if m, warns, err = model.LoadHF(r.Init, cpu.New(), tensor.F32, true); err != nil {
			return err
		}
		for _, w := range warns {
			fmt.Fprintln(log, "warning:", w)
		}
	} else {
		var cfg *model.Config
		if r.ModelConfig != "" {
			cfg, err = model.LoadConfig(r.ModelConfig)
		} else {
			cfg, err = model.LookupPreset(r.Preset)
			if err == nil && len(r.Data) == 0 {
				cfg.VocabSize = tok.VocabSize()
				e := int(eos)
				cfg.BOSTokenID, cfg.EOSTokenID = &e, &e
			}
		}
		if err != nil {
			return err
		}
		if cfg.MaxPositionEmbeddings < r.Seq {
			cfg.MaxPositionEmbeddings = r.Seq
		}
		if m, err = model.New(cfg, cpu.New(), tensor.F32, true); err != nil {
			return err
		}
		m.InitWeights(rand.New(rand.NewPCG(r.Seed, 7)))
	}
	if m.Cfg.VocabSize < tok.VocabSize() {
		return fmt.Errorf("model vocab_size %d is smaller than the tokenizer's %d", m.Cfg.VocabSize, tok.VocabSize())
	}
	fmt.Fprintf(log, "model: %s, %s parameters; data: %d tokens (%d train / %d validation windows of %d); %d steps of %d×%d×%d tokens\n",
		m.Cfg.ModelType, human(float64(m.NumParams())), loader.Tokens(), loader.TrainWindows(), loader.ValWindows(), r.Seq,
		r.Steps, r.Batch, r.Seq, max(r.Accum, 1))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	res, err := train.Pretrain(ctx, r.PretrainConfig, m, tok, eos, loader, log)
	if err != nil {
		return err
	}
	if err := tok.Save(filepath.Join(res.ModelDir, "tokenizer.json")); err != nil {
		return err
	}
	uni := unigramEntropy(shards, tok.VocabSize())
	fmt.Fprintf(log, "\ndone: %d steps, %.0f tokens/s; train loss %.3f -> %.3f; validation loss %.3f nats/token (corpus unigram entropy %.3f nats/token)\n",
		res.Steps, res.TokPerSec, res.FirstLoss, res.FinalLoss, res.FinalValLoss, uni)
	fmt.Fprintf(log, "model: %s   metrics: %s   plot: %s\n", res.ModelDir, filepath.Join(r.Out, "metrics.jsonl"), filepath.Join(r.Out, "loss.png"))
	fmt.Fprintf(log, "talk to it: shoggo generate --model %s --prompt \"And God said\"\n", res.ModelDir)
	return nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// encodeParallel encodes text in line-aligned chunks on all cores. Chunks end
// after a newline, where the byte-level pre-tokenizer always splits, so the
// result equals encoding the whole text at once.
func encodeParallel(tok *tokenizer.Tokenizer, text string) []int32 {
	lines := strings.SplitAfter(text, "\n")
	var chunks []string
	const per = 2000
	for i := 0; i < len(lines); i += per {
		chunks = append(chunks, strings.Join(lines[i:min(i+per, len(lines))], ""))
	}
	parts := tok.EncodeBatch(chunks, runtime.GOMAXPROCS(0))
	var out []int32
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// unigramEntropy is the entropy in nats of the token frequency distribution.
func unigramEntropy(shards []*data.Shard, vocab int) float64 {
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

func dataWriteShard(path string, ids []int32, vocab int) error {
	return data.WriteShard(path, ids, vocab)
}
func openShards(paths []string) ([]*data.Shard, error) { return data.OpenShards(paths) }
func newLoader(s []*data.Shard, B, T int, seed int64, val float64) (*data.Loader, error) {
	if val == 0 {
		val = 0.02
	}
	return data.NewLoader(s, B, T, seed, val)
}

// defaultTokenizer trains the byte-level BPE tokenizer shoggo uses by
// default on the embedded corpus, with <|endoftext|> and the ChatML specials.
func defaultTokenizer(vocab int) (*tokenizer.Tokenizer, error) {
	text, err := corpus.KJV()
	if err != nil {
		return nil, err
	}
	return tokenizer.Train(func(yield func(string) bool) {
		for _, line := range strings.SplitAfter(text, "\n") {
			if !yield(line) {
				return
			}
		}
	}, vocab, []string{"<|endoftext|>", "<|im_start|>", "<|im_end|>"})
}
