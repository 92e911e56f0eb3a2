package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"runtime"
	"strings"

	"github.com/shoggo/shoggo/backend/device"
	"github.com/shoggo/shoggo/recipe"
)

func init() {
	register("eval", "validation loss and perplexity of a model directory (fp32 or quantized) on the embedded corpus or shards", runEval)
}

// runEval measures a model's mean next-token loss on validation windows
// (recipe.Eval): by default exactly the windows `shoggo pretrain` holds out.
func runEval(args []string) error {
	c := recipe.DefaultEval()
	fs := flag.NewFlagSet("eval", flag.ContinueOnError)
	fs.StringVar(&c.Model, "model", c.Model, "HF model directory, plain or quantized (`shoggo quantize`)")
	fs.StringVar(&c.Tokenizer, "tokenizer", "", "tokenizer.json (default: the model directory's)")
	shards := fs.String("data", "", "comma-separated token shards (default: the embedded corpus, tokenized with the model's tokenizer)")
	fs.IntVar(&c.Batch, "batch", c.Batch, "windows per batch (the split depends on it: keep pretrain's --batch)")
	fs.IntVar(&c.Seq, "seq", c.Seq, "tokens per window (keep pretrain's --seq)")
	fs.Float64Var(&c.ValFraction, "val-fraction", c.ValFraction, "share of windows held out (pretrain's val_fraction)")
	fs.IntVar(&c.Batches, "batches", 0, "validation batches to evaluate (0: all)")
	fs.IntVar(&c.GenTokens, "gen-tokens", 0, "also time greedy generation of this many tokens")
	fs.StringVar(&c.Prompt, "prompt", c.Prompt, "prompt for --gen-tokens")
	fs.StringVar(&c.Device, "device", "", "compute device: "+device.Names)
	asJSON := fs.Bool("json", false, "print one JSON line instead of text")
	threads := fs.Int("threads", 0, "CPU threads (default: all)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %v", fs.Args())
	}
	if err := checkBounds(fs, atLeast("batch", 1), atLeast("seq", 2), within("val-fraction", 0, 1, true, true), atLeast("batches", 0, "0: all"),
		atLeast("gen-tokens", 0), atLeast("threads", 0, "0: all cores")); err != nil {
		return err
	}
	if *threads > 0 {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(*threads))
	}
	if *shards != "" {
		c.Data = strings.Split(*shards, ",")
	}
	res, err := recipe.Eval(c, os.Stderr)
	if err != nil {
		return err
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
		c.Model, q, res.ValLoss, res.Perplexity, res.Tokens, res.Batches, c.Batch, c.Seq, res.Data, res.EvalTokPerS)
	if res.GenTokens > 0 {
		fmt.Printf("greedy generation: %d tokens at %.1f tokens/s (%.2f CPU ms/token, %d threads): %q\n",
			res.GenTokens, res.GenTokPerS, res.GenCPUMsPerTok, res.Threads, c.Prompt+res.GenText)
	}
	return nil
}
