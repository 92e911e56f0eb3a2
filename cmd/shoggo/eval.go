package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/shoggo/shoggo/backend/cpu"
	"github.com/shoggo/shoggo/data"
	"github.com/shoggo/shoggo/decode"
	"github.com/shoggo/shoggo/internal/corpus"
	"github.com/shoggo/shoggo/model"
	"github.com/shoggo/shoggo/tensor"
	"github.com/shoggo/shoggo/tokenizer"
	"github.com/shoggo/shoggo/train"
)

func init() {
	register("eval", "validation loss and perplexity of a model directory (fp32 or quantized) on the embedded corpus or shards", runEval)
}

// evalResult is the JSON line `shoggo eval --json` prints.
type evalResult struct {
	Model          string  `json:"model"`
	Quantized      string  `json:"quantization,omitempty"`
	Data           string  `json:"data"`
	Batches        int     `json:"batches"`
	Batch          int     `json:"batch"`
	Seq            int     `json:"seq"`
	Tokens         int     `json:"tokens"`
	ValLoss        float64 `json:"val_loss"`
	Perplexity     float64 `json:"perplexity"`
	EvalTokPerS    float64 `json:"eval_tokens_per_s"`
	LoadS          float64 `json:"load_s"`
	GenTokens      int     `json:"gen_tokens,omitempty"`
	GenTokPerS     float64 `json:"gen_tokens_per_s,omitempty"`
	GenCPUMsPerTok float64 `json:"gen_cpu_ms_per_token,omitempty"` // process CPU time (all threads) per generated token
	Threads        int     `json:"threads"`
	GenText        string  `json:"gen_text,omitempty"`
	LoadAvg1       float64 `json:"loadavg_1m"`
}

// runEval measures a model's mean next-token loss on validation windows.
// By default these are exactly the windows `shoggo pretrain` holds out: the
// embedded corpus tokenized with the model's own tokenizer.json, followed
// by <|endoftext|>, and data.NewLoader's validation split (the last 2% of
// the windows of --seq+1 tokens, rounded up to whole batches of --batch;
// pretrain's defaults are 16 x 128). With --data the windows come from
// token shards. --gen-tokens N also times greedy generation of N tokens
// after --prompt (KV-cached decoding, prompt excluded).
func runEval(args []string) error {
	fs := flag.NewFlagSet("eval", flag.ContinueOnError)
	dir := fs.String("model", "runs/pretrain/model", "HF model directory, plain or quantized (`shoggo quantize`)")
	tokPath := fs.String("tokenizer", "", "tokenizer.json (default: the model directory's)")
	shards := fs.String("data", "", "comma-separated token shards (default: the embedded corpus, tokenized with the model's tokenizer)")
	batch := fs.Int("batch", 16, "windows per batch (the split depends on it: keep pretrain's --batch)")
	seq := fs.Int("seq", 128, "tokens per window (keep pretrain's --seq)")
	valFrac := fs.Float64("val-fraction", 0.02, "share of windows held out (pretrain's val_fraction)")
	nBatches := fs.Int("batches", 0, "validation batches to evaluate (0: all)")
	genTokens := fs.Int("gen-tokens", 0, "also time greedy generation of this many tokens")
	prompt := fs.String("prompt", "And God said", "prompt for --gen-tokens")
	asJSON := fs.Bool("json", false, "print one JSON line instead of text")
	threads := fs.Int("threads", 0, "CPU threads (default: all)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %v", fs.Args())
	}
	if *threads > 0 {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(*threads))
	}
	res := evalResult{Model: *dir, Batch: *batch, Seq: *seq, LoadAvg1: loadAvg1(), Threads: runtime.GOMAXPROCS(0)}
	t0 := time.Now()
	m, warns, err := model.LoadForInference(*dir, cpu.New(), tensor.F32)
	if err != nil {
		return err
	}
	res.LoadS = time.Since(t0).Seconds()
	for _, w := range warns {
		fmt.Fprintln(os.Stderr, "warning:", w)
	}
	if qc, err := model.QuantizationConfig(*dir); err == nil && qc != nil {
		f, o, _ := qc.LayerFormat()
		res.Quantized = f
		switch {
		case f == "int4":
			res.Quantized = fmt.Sprintf("int4 g%d", o.GroupSize)
		case f == "nf4" || f == "fp4":
			res.Quantized = fmt.Sprintf("%s b%d dq=%t", f, o.BlockSize, o.DoubleQuant)
		}
	}
	if *tokPath == "" {
		*tokPath = filepath.Join(*dir, "tokenizer.json")
	}
	if *seq > m.Cfg.MaxPositionEmbeddings {
		return fmt.Errorf("--seq %d exceeds the model's max_position_embeddings %d", *seq, m.Cfg.MaxPositionEmbeddings)
	}

	var sh []*data.Shard
	var tok *tokenizer.Tokenizer
	if *shards == "" || *genTokens > 0 {
		// for the embedded corpus and for generation
		if tok, err = tokenizer.Load(*tokPath); err != nil {
			return err
		}
	}
	if *shards != "" {
		if sh, err = data.OpenShards(strings.Split(*shards, ",")); err != nil {
			return err
		}
		res.Data = *shards
	} else {
		res.Data = "embedded KJV (" + *tokPath + ")"
		if sh, err = corpusShard(tok); err != nil {
			return err
		}
	}
	defer func() {
		for _, s := range sh {
			s.Close()
		}
	}()
	if v := sh[0].VocabSize(); v > m.Cfg.VocabSize {
		return fmt.Errorf("the data's vocabulary (%d) is larger than the model's (%d): wrong tokenizer?", v, m.Cfg.VocabSize)
	}
	loader, err := data.NewLoader(sh, *batch, *seq, 0, *valFrac)
	if err != nil {
		return err
	}
	nb := loader.ValBatchCount()
	if *nBatches > 0 {
		nb = min(nb, *nBatches)
	}
	if nb == 0 {
		return fmt.Errorf("no validation batches (--val-fraction %v)", *valFrac)
	}
	B, T := *batch, *seq
	window := make([]int32, B*(T+1))
	var batches []*model.Batch
	for i := 0; i < nb; i++ {
		loader.ValBatch(i, window)
		b := &model.Batch{B: B, T: T, IDs: make([]int32, B*T), Targets: make([]int32, B*T)}
		for r := 0; r < B; r++ {
			copy(b.IDs[r*T:(r+1)*T], window[r*(T+1):r*(T+1)+T])
			copy(b.Targets[r*T:(r+1)*T], window[r*(T+1)+1:(r+1)*(T+1)])
		}
		batches = append(batches, b)
	}
	if err := m.Plan(B, T); err != nil {
		return err
	}
	t1 := time.Now()
	loss, err := train.Evaluate(m, batches)
	if err != nil {
		return err
	}
	el := time.Since(t1).Seconds()
	res.Batches, res.Tokens = nb, nb*B*T
	res.ValLoss, res.Perplexity = loss, math.Exp(loss)
	res.EvalTokPerS = float64(res.Tokens) / el

	if *genTokens > 0 {
		ids := tok.Encode(*prompt)
		if ctx := m.Cfg.MaxPositionEmbeddings; len(ids) == 0 || len(ids)+*genTokens > ctx {
			return fmt.Errorf("--prompt of %d tokens + --gen-tokens %d must fit the context of %d", len(ids), *genTokens, ctx)
		}
		d, err := decode.New(m, 1, len(ids)+*genTokens, nil)
		if err != nil {
			return err
		}
		if _, err := d.Add(decode.Request{Prompt: ids, MaxNewTokens: *genTokens}); err != nil {
			return err
		}
		c2, t2 := cpuTime(), time.Now()
		for len(d.Active()) > 0 {
			if _, err := d.Step(); err != nil {
				return err
			}
		}
		out := d.Result(0).Tokens
		res.GenTokens = len(out)
		res.GenTokPerS = float64(len(out)) / time.Since(t2).Seconds()
		res.GenCPUMsPerTok = float64((cpuTime() - c2).Microseconds()) / 1e3 / float64(len(out))
		res.GenText = tok.Decode(out)
	}

	if *asJSON {
		b, _ := json.Marshal(res)
		fmt.Println(string(b))
		return nil
	}
	q := "fp32"
	if res.Quantized != "" {
		q = res.Quantized
	}
	fmt.Printf("%s (%s): validation loss %.4f nats/token, perplexity %.3f over %d tokens (%d batches of %dx%d; %s); %.0f tokens/s\n",
		*dir, q, res.ValLoss, res.Perplexity, res.Tokens, nb, B, T, res.Data, res.EvalTokPerS)
	if res.GenTokens > 0 {
		fmt.Printf("greedy generation: %d tokens at %.1f tokens/s (%.2f CPU ms/token, %d threads): %q\n",
			res.GenTokens, res.GenTokPerS, res.GenCPUMsPerTok, res.Threads, *prompt+res.GenText)
	}
	return nil
}

// corpusShard tokenizes the embedded corpus as `shoggo pretrain` does (the
// whole text, then <|endoftext|>) into a temporary shard.
func corpusShard(tok *tokenizer.Tokenizer) ([]*data.Shard, error) {
	eos, ok := tok.TokenToID("<|endoftext|>")
	if !ok {
		if eos = tok.EOS(); eos < 0 {
			return nil, fmt.Errorf("tokenizer has no <|endoftext|> or EOS token")
		}
	}
	text, err := corpus.KJV()
	if err != nil {
		return nil, err
	}
	ids := append(encodeParallel(tok, text), eos)
	tmp, err := os.MkdirTemp("", "shoggo-eval-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp) // the shard stays mapped after its file is removed
	path := filepath.Join(tmp, "kjv.bin")
	if err := data.WriteShard(path, ids, tok.VocabSize()); err != nil {
		return nil, err
	}
	return data.OpenShards([]string{path})
}
