package recipe

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/shoggo/shoggo/data"
	"github.com/shoggo/shoggo/internal/corpus"
	"github.com/shoggo/shoggo/tokenizer"
)

// DefaultTokenizer trains the byte-level BPE tokenizer shoggo uses by
// default on the embedded corpus, with <|endoftext|> and the ChatML specials.
func DefaultTokenizer(vocab int) (*tokenizer.Tokenizer, error) {
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

// DocumentEnd is the id that separates documents: <|endoftext|>, else the
// tokenizer's EOS.
func DocumentEnd(tok *tokenizer.Tokenizer) (int32, error) {
	eos, ok := tok.TokenToID("<|endoftext|>")
	if !ok {
		if eos = tok.EOS(); eos < 0 {
			return 0, fmt.Errorf("tokenizer has no <|endoftext|> or EOS token")
		}
	}
	return eos, nil
}

// EncodeParallel encodes text in line-aligned chunks on all cores. Chunks
// end after a newline, where the byte-level pre-tokenizer always splits, so
// the result equals encoding the whole text at once.
func EncodeParallel(tok *tokenizer.Tokenizer, text string) []int32 {
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

// CorpusIDs tokenizes the embedded corpus as pre-training does: the whole
// text, then the document end.
func CorpusIDs(tok *tokenizer.Tokenizer) (ids []int32, textBytes int, err error) {
	eos, err := DocumentEnd(tok)
	if err != nil {
		return nil, 0, err
	}
	text, err := corpus.KJV()
	if err != nil {
		return nil, 0, err
	}
	return append(EncodeParallel(tok, text), eos), len(text), nil
}

// CorpusShard tokenizes the embedded corpus (CorpusIDs) into a temporary
// shard, mapped and already unlinked.
func CorpusShard(tok *tokenizer.Tokenizer) ([]*data.Shard, error) {
	ids, _, err := CorpusIDs(tok)
	if err != nil {
		return nil, err
	}
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

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
