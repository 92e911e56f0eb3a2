package tokenizer

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

const fetchHint = "run scripts/fetch-tokenizers.sh to fetch the reference tokenizer files"

var (
	qwenOnce, gpt2Once sync.Once
	qwenTok, gpt2Tok   *Tokenizer
	qwenErr, gpt2Err   error
)

func thirdParty(parts ...string) string {
	return filepath.Join(append([]string{"..", "third_party", "tokenizers"}, parts...)...)
}

func haveFile(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// qwen returns the Qwen3 tokenizer, skipping the test when its files are absent.
func qwen(tb testing.TB) *Tokenizer {
	tb.Helper()
	p := thirdParty("qwen3", "tokenizer.json")
	if !haveFile(p) {
		tb.Skipf("%s missing: %s", p, fetchHint)
	}
	qwenOnce.Do(func() { qwenTok, qwenErr = Load(p) })
	if qwenErr != nil {
		tb.Fatal(qwenErr)
	}
	return qwenTok
}

// gpt2 returns the GPT-2 tokenizer, skipping the test when its files are absent.
func gpt2(tb testing.TB) *Tokenizer {
	tb.Helper()
	enc, bpe := thirdParty("gpt2", "encoder.json"), thirdParty("gpt2", "vocab.bpe")
	if !haveFile(enc) || !haveFile(bpe) {
		tb.Skipf("%s missing: %s", enc, fetchHint)
	}
	gpt2Once.Do(func() { gpt2Tok, gpt2Err = LoadGPT2(enc, bpe) })
	if gpt2Err != nil {
		tb.Fatal(gpt2Err)
	}
	return gpt2Tok
}

type goldenRow struct {
	Text    string   `json:"text"`
	IDs     []int32  `json:"ids"`
	Decoded *string  `json:"decoded"`
	Pieces  []string `json:"pieces"`
}

type goldenChat struct {
	Messages            []Message `json:"messages"`
	AddGenerationPrompt bool      `json:"add_generation_prompt"`
	Text                string    `json:"text"`
}

type goldenFile struct {
	TokenizersVersion string                 `json:"tokenizers_version"`
	Qwen3             []goldenRow            `json:"qwen3"`
	GPT2              []goldenRow            `json:"gpt2"`
	Chat              []goldenChat           `json:"chat"`
	Variants          map[string][]goldenRow `json:"variants"`
}

func readGolden(tb testing.TB, path string) *goldenFile {
	tb.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	var g goldenFile
	if err := json.Unmarshal(data, &g); err != nil {
		tb.Fatalf("%s: %v", path, err)
	}
	return &g
}

var goldenPath = filepath.Join("..", "testdata", "tokenizer", "golden.json")
