package recipe

import (
	"fmt"
	"io"
	"math"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/shoggo/shoggo/backend/device"
	"github.com/shoggo/shoggo/data"
	"github.com/shoggo/shoggo/decode"
	"github.com/shoggo/shoggo/internal/sysinfo"
	"github.com/shoggo/shoggo/model"
	"github.com/shoggo/shoggo/tensor"
	"github.com/shoggo/shoggo/tokenizer"
	"github.com/shoggo/shoggo/train"
)

// EvalConfig configures Eval; the defaults (DefaultEval) are pretrain's.
type EvalConfig struct {
	Model       string   // HF model directory, plain or quantized
	Tokenizer   string   // default: the model directory's
	Data        []string // token shards; empty: the embedded corpus
	Batch, Seq  int      // windows per batch and tokens per window (the split depends on them)
	ValFraction float64  // share of windows held out
	Batches     int      // validation batches to evaluate (0: all)
	GenTokens   int      // also time greedy generation of this many tokens
	Prompt      string   // prompt for GenTokens
	Device      string
}

// DefaultEval is `shoggo eval` without flags.
func DefaultEval() EvalConfig {
	return EvalConfig{Model: "runs/pretrain/model", Batch: 16, Seq: 128, ValFraction: 0.02, Prompt: "And God said"}
}

// EvalResult is the JSON line `shoggo eval --json` prints.
type EvalResult struct {
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

var cpuTime = sysinfo.CPUTime

// Eval measures a model's mean next-token loss on validation windows.
// By default these are exactly the windows Pretrain holds out: the
// embedded corpus tokenized with the model's own tokenizer.json, followed
// by <|endoftext|>, and data.NewLoader's validation split (the last 2% of
// the windows of Seq+1 tokens, rounded up to whole batches of Batch;
// pretrain's defaults are 16 x 128). With Data the windows come from
// token shards. GenTokens > 0 also times greedy generation of that many
// tokens after Prompt (KV-cached decoding, prompt excluded). Warnings go
// to log.
func Eval(cfg EvalConfig, log io.Writer) (EvalResult, error) {
	res := EvalResult{Model: cfg.Model, Batch: cfg.Batch, Seq: cfg.Seq, LoadAvg1: sysinfo.LoadAvg1(), Threads: runtime.GOMAXPROCS(0)}
	be, err := device.Open(cfg.Device)
	if err != nil {
		return res, err
	}
	t0 := time.Now()
	m, warns, err := model.LoadForInference(cfg.Model, be, tensor.F32)
	if err != nil {
		return res, err
	}
	res.LoadS = time.Since(t0).Seconds()
	for _, w := range warns {
		fmt.Fprintln(log, "warning:", w)
	}
	res.Quantized = quantizationName(cfg.Model)
	if cfg.Tokenizer == "" {
		cfg.Tokenizer = filepath.Join(cfg.Model, "tokenizer.json")
	}
	if cfg.Seq > m.Cfg.MaxPositionEmbeddings {
		return res, fmt.Errorf("--seq %d exceeds the model's max_position_embeddings %d", cfg.Seq, m.Cfg.MaxPositionEmbeddings)
	}
	var tok *tokenizer.Tokenizer
	if len(cfg.Data) == 0 || cfg.GenTokens > 0 {
		// for the embedded corpus and for generation
		if tok, err = tokenizer.Load(cfg.Tokenizer); err != nil {
			return res, err
		}
	}
	batches, err := evalBatches(&cfg, tok, m, &res)
	if err != nil {
		return res, err
	}
	if err := m.Plan(cfg.Batch, cfg.Seq); err != nil {
		return res, err
	}
	t1 := time.Now()
	loss, err := train.Evaluate(m, batches)
	if err != nil {
		return res, err
	}
	el := time.Since(t1).Seconds()
	res.Batches, res.Tokens = len(batches), len(batches)*cfg.Batch*cfg.Seq
	res.ValLoss, res.Perplexity = loss, math.Exp(loss)
	res.EvalTokPerS = float64(res.Tokens) / el
	return res, timeGeneration(m, tok, &cfg.GenTokens, &cfg.Prompt, &res)
}

// quantizationName describes a quantized model directory's format ("" for
// a plain one).
func quantizationName(dir string) string {
	qc, err := model.QuantizationConfig(dir)
	if err != nil || qc == nil {
		return ""
	}
	f, o, _ := qc.LayerFormat()
	switch {
	case f == "int4":
		return fmt.Sprintf("int4 g%d", o.GroupSize)
	case f == "nf4" || f == "fp4":
		return fmt.Sprintf("%s b%d dq=%t", f, o.BlockSize, o.DoubleQuant)
	}
	return f
}

// evalBatches opens the shards (or tokenizes the embedded corpus) and
// returns the validation batches.
func evalBatches(cfg *EvalConfig, tok *tokenizer.Tokenizer, m *model.Transformer, res *EvalResult) ([]*model.Batch, error) {
	var sh []*data.Shard
	var err error
	if len(cfg.Data) > 0 {
		res.Data = strings.Join(cfg.Data, ",")
		sh, err = data.OpenShards(cfg.Data)
	} else {
		res.Data = "embedded KJV (" + cfg.Tokenizer + ")"
		sh, err = CorpusShard(tok)
	}
	if err != nil {
		return nil, err
	}
	// The batches are copies: the shards can be unmapped.
	defer func() {
		for _, s := range sh {
			s.Close()
		}
	}()
	if v := sh[0].VocabSize(); v > m.Cfg.VocabSize {
		return nil, fmt.Errorf("the data's vocabulary (%d) is larger than the model's (%d): wrong tokenizer?", v, m.Cfg.VocabSize)
	}
	loader, err := data.NewLoader(sh, cfg.Batch, cfg.Seq, 0, cfg.ValFraction)
	if err != nil {
		return nil, err
	}
	nb := loader.ValBatchCount()
	if cfg.Batches > 0 {
		nb = min(nb, cfg.Batches)
	}
	if nb == 0 {
		return nil, fmt.Errorf("no validation batches (--val-fraction %v)", cfg.ValFraction)
	}
	return train.ValBatches(loader, nb), nil
}

// timeGeneration times greedy decoding of *genTokens tokens after *prompt
// with the batched decoder (one row; the prompt's prefill is not timed).
func timeGeneration(m *model.Transformer, tok *tokenizer.Tokenizer, genTokens *int, prompt *string, res *EvalResult) error {
	if *genTokens <= 0 {
		return nil
	}
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
	return nil
}
