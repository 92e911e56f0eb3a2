package data

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Encoder turns text into token ids. The tokenizer package provides one.
type Encoder interface {
	Encode(s string) []int32
}

// ShardName is the name of the i-th shard TokenizeFiles writes for the prefix
// out: out-000000.bin, out-000001.bin, ...
func ShardName(out string, i int) string { return fmt.Sprintf("%s-%06d.bin", out, i) }

// TokenizeFiles encodes the documents in paths with enc, appends eos after
// each document, and writes the token stream as shards of at most shardTokens
// tokens named ShardName(out, 0), ShardName(out, 1), ... (the directory of
// out is created if needed). It returns the shard paths in order.
//
// A file whose name ends in ".jsonl" holds one JSON object per line, whose
// "text" field (a non-empty string) is one document; blank lines are skipped.
// Any other file is plain text and is one document. A UTF-8 byte order mark
// at the start of a file is dropped.
//
// Every input is checked before anything is encoded: an empty file, invalid
// UTF-8 (reported with its byte offset), or a bad JSONL line (reported as
// file:line) is an error and no shard is written. If encoding or writing
// fails later, the shards this call wrote are removed. Shards that a previous
// run left under the same prefix beyond the ones written are not touched.
func TokenizeFiles(paths []string, enc Encoder, eos int32, vocabSize int, out string, shardTokens int) ([]string, error) {
	switch {
	case len(paths) == 0:
		return nil, errors.New("tokenize: no input files")
	case enc == nil:
		return nil, errors.New("tokenize: nil encoder")
	case out == "":
		return nil, errors.New("tokenize: empty output prefix")
	case shardTokens < 1:
		return nil, fmt.Errorf("tokenize: shard size %d tokens, must be at least 1", shardTokens)
	}
	if err := checkVocab(vocabSize); err != nil {
		return nil, fmt.Errorf("tokenize: %w", err)
	}
	if eos < 0 || int64(eos) >= int64(vocabSize) {
		return nil, fmt.Errorf("tokenize: end-of-sequence id %d outside the vocabulary of %d", eos, vocabSize)
	}
	for _, p := range paths {
		if err := eachDocument(p, func(string, int) error { return nil }); err != nil {
			return nil, err
		}
	}
	if dir := filepath.Dir(out); dir != "." {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
	}

	sw := &shardSplitter{out: out, vocab: vocabSize, max: shardTokens}
	eosTok := []int32{eos}
	for _, p := range paths {
		err := eachDocument(p, func(doc string, line int) error {
			ids := enc.Encode(doc)
			for _, id := range ids {
				if id < 0 || int64(id) >= int64(vocabSize) {
					where := p
					if line > 0 {
						where = fmt.Sprintf("%s:%d", p, line)
					}
					return fmt.Errorf("%s: encoder returned id %d, outside the vocabulary of %d", where, id, vocabSize)
				}
			}
			if err := sw.write(ids); err != nil {
				return err
			}
			return sw.write(eosTok)
		})
		if err != nil {
			sw.abort()
			return nil, err
		}
	}
	if err := sw.finish(); err != nil {
		sw.abort()
		return nil, err
	}
	return sw.done, nil
}

// shardSplitter writes a token stream as consecutive shards of at most max
// tokens each.
type shardSplitter struct {
	out   string
	vocab int
	max   int
	cur   *shardWriter
	done  []string
}

func (s *shardSplitter) write(t []int32) error {
	for len(t) > 0 {
		if s.cur == nil {
			w, err := createShard(ShardName(s.out, len(s.done)), s.vocab)
			if err != nil {
				return err
			}
			s.cur = w
		}
		k := min(len(t), s.max-int(s.cur.n))
		if err := s.cur.write(t[:k]); err != nil {
			return err
		}
		t = t[k:]
		if int(s.cur.n) == s.max {
			if err := s.finish(); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *shardSplitter) finish() error {
	if s.cur == nil {
		return nil
	}
	w := s.cur
	s.cur = nil
	if err := w.commit(); err != nil {
		return err
	}
	s.done = append(s.done, w.path)
	return nil
}

func (s *shardSplitter) abort() {
	if s.cur != nil {
		s.cur.abort()
		s.cur = nil
	}
	for _, p := range s.done {
		os.Remove(p)
	}
	s.done = nil
}

// eachDocument validates the file at path and calls fn with each document it
// holds and its line number (0 for a plain-text file).
func eachDocument(path string, fn func(doc string, line int) error) error {
	if strings.EqualFold(filepath.Ext(path), ".jsonl") {
		return eachJSONLDocument(path, fn)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if len(b) == 0 {
		return offsetErr(path, 0, "empty file")
	}
	skip := 0
	if bytes.HasPrefix(b, utf8BOM) {
		skip = len(utf8BOM)
	}
	if len(b) == skip {
		return offsetErr(path, 0, "empty file (only a byte order mark)")
	}
	if i := invalidUTF8(b[skip:]); i >= 0 {
		return offsetErr(path, int64(skip+i), "invalid UTF-8")
	}
	return fn(string(b[skip:]), 0)
}

func eachJSONLDocument(path string, fn func(doc string, line int) error) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	docs, lines := 0, 0
	var fnErr error
	err = eachLine(f, func(line []byte, lineNo int, off int64) error {
		lines++
		if e := checkLineUTF8(path, line, lineNo, off); e != nil {
			return e
		}
		if isBlank(line) {
			return nil
		}
		m, err := jsonObject(line)
		if err != nil {
			return lineErr(path, lineNo, "%v", err)
		}
		text, err := requiredString(m, "text", false)
		if err != nil {
			return lineErr(path, lineNo, "%v", err)
		}
		docs++
		fnErr = fn(text, lineNo)
		return fnErr
	})
	if err != nil {
		var de *Error
		if fnErr != nil || errors.As(err, &de) {
			return err
		}
		return fmt.Errorf("%s: %w", path, err)
	}
	if lines == 0 {
		return offsetErr(path, 0, "empty file")
	}
	if docs == 0 {
		return lineErr(path, 0, "no documents (only blank lines)")
	}
	return nil
}
