package tokenizer

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/shoggo/shoggo/internal/atomicfile"
)

// fileNames are the tokenizer files a Hugging Face model directory may
// hold: the fast tokenizer (tokenizer.json), its configuration and special
// tokens, the slow tokenizers' vocabularies (GPT-2 style vocab.json +
// merges.txt, OpenAI's encoder.json + vocab.bpe, SentencePiece's
// tokenizer.model) and the chat template files transformers 4.43+ writes.
var fileNames = []string{
	"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
	"vocab.json", "merges.txt", "encoder.json", "vocab.bpe", "tokenizer.model",
	"chat_template.jinja", "chat_template.json",
}

// FileNames returns the names of the tokenizer files a Hugging Face model
// directory may hold (a fresh slice: the caller may modify it). Commands
// that write a model directory derived from another (convert, merge,
// quantize) copy these with CopyFiles.
func FileNames() []string { return append([]string(nil), fileNames...) }

// CopyFiles copies into dstDir the tokenizer files (FileNames) and the
// extra names (e.g. "generation_config.json") that exist in srcDir, and
// returns the names it copied. Missing files are skipped. It never writes
// into its source: a destination that is the source file itself (the same
// directory, a hard link, or a symlink to it) is left alone and not
// counted; every file is read completely before its destination is
// touched, and written atomically (internal/atomicfile, mode 0644), so a
// symlink at the destination is replaced, not written through. dstDir is
// created if missing. A source name that is not a regular file is an error
// naming it.
func CopyFiles(srcDir, dstDir string, extra ...string) ([]string, error) {
	names := append(FileNames(), extra...)
	var todo []string
	for _, name := range names {
		src := filepath.Join(srcDir, name)
		st, err := os.Stat(src)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if !st.Mode().IsRegular() {
			return nil, fmt.Errorf("tokenizer: copy: %s is not a regular file", src)
		}
		todo = append(todo, name)
	}
	if len(todo) == 0 {
		return nil, nil
	}
	if err := os.MkdirAll(dstDir, 0o755); err != nil {
		return nil, err
	}
	var copied []string
	for _, name := range todo {
		src, dst := filepath.Join(srcDir, name), filepath.Join(dstDir, name)
		if sameFile(src, dst) {
			continue
		}
		data, err := os.ReadFile(src)
		if err != nil {
			return copied, err
		}
		if err := atomicfile.WriteFile(dst, data, 0o644); err != nil {
			return copied, err
		}
		copied = append(copied, name)
	}
	return copied, nil
}

// sameFile reports whether a and b (following symlinks) are one file.
func sameFile(a, b string) bool {
	sa, err := os.Stat(a)
	if err != nil {
		return false
	}
	sb, err := os.Stat(b)
	if err != nil {
		return false
	}
	return os.SameFile(sa, sb)
}
