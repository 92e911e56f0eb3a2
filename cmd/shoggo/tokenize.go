package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/shoggo/shoggo/data"
	"github.com/shoggo/shoggo/tokenizer"
)

func init() {
	register("tokenize", "turn text / JSONL files into token shards for pretrain --data", runTokenize)
	register("tokenizer", "tokenizer tools: `shoggo tokenizer train --vocab-size N --out tokenizer.json FILES...`", runTokenizerCmd)
}

func runTokenize(args []string) error {
	fs := flag.NewFlagSet("tokenize", flag.ContinueOnError)
	tokPath := fs.String("tokenizer", "", "tokenizer.json")
	out := fs.String("out", "shards/data", "output prefix: shards are PREFIX-000000.bin, ...")
	per := fs.Int("shard-tokens", 100_000_000, "tokens per shard")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *tokPath == "" || fs.NArg() == 0 {
		return fmt.Errorf("usage: shoggo tokenize --tokenizer tokenizer.json [--out PREFIX] FILES... (.txt: one document per file; .jsonl: a document per line's \"text\")")
	}
	if err := checkBounds(fs, atLeast("shard-tokens", 1)); err != nil {
		return err
	}
	tok, err := tokenizer.Load(*tokPath)
	if err != nil {
		return err
	}
	eos := tok.EOS()
	if id, ok := tok.TokenToID("<|endoftext|>"); ok {
		eos = id
	}
	if eos < 0 {
		return fmt.Errorf("%s: no EOS token to separate documents", *tokPath)
	}
	t0 := time.Now()
	paths, err := data.TokenizeFiles(fs.Args(), tok, eos, tok.VocabSize(), *out, *per)
	if err != nil {
		return err
	}
	var n int
	for _, p := range paths {
		s, err := data.OpenShard(p)
		if err != nil {
			return err
		}
		n += s.Len()
		s.Close()
	}
	fmt.Printf("%d tokens in %d shard(s) in %s: %s\n", n, len(paths), time.Since(t0).Round(time.Millisecond), strings.Join(paths, ","))
	return nil
}

func runTokenizerCmd(args []string) error {
	if len(args) == 0 || args[0] != "train" {
		return fmt.Errorf("usage: shoggo tokenizer train --vocab-size N [--out tokenizer.json] [--special TOKENS] FILES...")
	}
	fs := flag.NewFlagSet("tokenizer train", flag.ContinueOnError)
	vocab := fs.Int("vocab-size", 4096, "vocabulary size, byte tokens and specials included")
	out := fs.String("out", "tokenizer.json", "output tokenizer.json")
	special := fs.String("special", "<|endoftext|>", "comma-separated special tokens")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if err := checkBounds(fs, within("vocab-size", 257, 1<<24, false, false, "256 byte tokens plus at least one merge")); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return fmt.Errorf("no input files")
	}
	var texts []string
	for _, p := range fs.Args() {
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		texts = append(texts, string(b))
	}
	var specials []string
	if *special != "" {
		specials = strings.Split(*special, ",")
	}
	t0 := time.Now()
	tok, err := tokenizer.Train(func(yield func(string) bool) {
		for _, t := range texts {
			for _, line := range strings.SplitAfter(t, "\n") {
				if !yield(line) {
					return
				}
			}
		}
	}, *vocab, specials)
	if err != nil {
		return err
	}
	if err := tok.Save(*out); err != nil {
		return err
	}
	fmt.Printf("trained a %d-token tokenizer in %s: %s\n", tok.VocabSize(), time.Since(t0).Round(time.Millisecond), *out)
	return nil
}
