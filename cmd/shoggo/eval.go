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
	shards := fs.String("data", "", "comma-separated token shards (default: the embedded corpus, tokenized with the model's tokenizer), or one instruction .jsonl file: loss and exact match as sft reports them")
	fs.IntVar(&c.Batch, "batch", c.Batch, "windows per batch (the split depends on it: keep pretrain's --batch)")
	fs.IntVar(&c.Seq, "seq", c.Seq, "tokens per window (keep pretrain's --seq)")
	fs.Float64Var(&c.ValFraction, "val-fraction", c.ValFraction, "share of windows held out (pretrain's val_fraction)")
	fs.IntVar(&c.Batches, "batches", 0, "validation batches to evaluate (0: all)")
	fs.IntVar(&c.GenTokens, "gen-tokens", 0, "also time greedy generation of this many tokens")
	fs.StringVar(&c.Prompt, "prompt", c.Prompt, "prompt for --gen-tokens")
	fs.StringVar(&c.Device, "device", "", "compute device: "+device.Names)
	asJSON := fs.Bool("json", false, "print one JSON line instead of text")
	threads := fs.Int("threads", 0, "CPU threads (default: all)")
	ic := instructionEvalFlags(fs)
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
	if strings.HasSuffix(*shards, ".jsonl") {
		ic.Model, ic.Tokenizer, ic.Data, ic.Batch, ic.Device = c.Model, c.Tokenizer, *shards, c.Batch, c.Device
		return evalInstructions(fs, ic, *asJSON)
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

// instructionEvalFlags are eval's flags for --data F.jsonl.
func instructionEvalFlags(fs *flag.FlagSet) *recipe.InstructionEvalConfig {
	ic := &recipe.InstructionEvalConfig{MaxLen: 512, MaxNewTokens: 16}
	fs.StringVar(&ic.Template, "template", "", ".jsonl: chatml | alpaca | plain (default: as sft picks it for --data)")
	fs.IntVar(&ic.MaxLen, "max-len", ic.MaxLen, ".jsonl: maximum tokens per example")
	fs.IntVar(&ic.MaxNewTokens, "max-new-tokens", ic.MaxNewTokens, ".jsonl: tokens generated per exact-match question")
	fs.IntVar(&ic.Examples, "examples", 0, ".jsonl: examples scored (0: all)")
	fs.BoolVar(&ic.SkipInvalid, "skip-invalid", false, ".jsonl: skip and list invalid lines instead of failing")
	return ic
}

// evalInstructions runs `shoggo eval --data F.jsonl`.
func evalInstructions(fs *flag.FlagSet, ic *recipe.InstructionEvalConfig, asJSON bool) error {
	if err := checkBounds(fs, atLeast("max-len", 2), atLeast("max-new-tokens", 1), atLeast("examples", 0, "0: all")); err != nil {
		return err
	}
	res, err := recipe.EvalInstructions(*ic, os.Stderr)
	if err != nil {
		return err
	}
	if asJSON {
		b, _ := json.Marshal(res)
		fmt.Println(string(b))
		return nil
	}
	fmt.Printf("%s on %s (%d examples, template %s): exact match %.1f%%, loss %.4f nats/token over %d completion tokens (%.1fs)\n",
		res.Model, res.Data, res.Examples, res.Template, 100*res.ExactMatch, res.Loss, res.Tokens, res.ElapsedS)
	return nil
}
