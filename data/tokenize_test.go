package data

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// byteEncoder maps each byte to its value; with vocabulary 257, 256 is EOS.
type byteEncoder struct{ bad string }

func (e byteEncoder) Encode(s string) []int32 {
	out := make([]int32, len(s))
	for i := range len(s) {
		out[i] = int32(s[i])
	}
	if e.bad != "" && strings.Contains(s, e.bad) {
		out = append(out, 9999)
	}
	return out
}

const testEOS = 256

func ids(s string) []int32 { return byteEncoder{}.Encode(s) }

func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func shardTokens(t *testing.T, paths []string) []int32 {
	t.Helper()
	var all []int32
	for _, p := range paths {
		s, err := OpenShard(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Validate(); err != nil {
			t.Fatal(err)
		}
		all = append(all, readAll(s)...)
		s.Close()
	}
	return all
}

func TestTokenizeFiles(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"a.txt":   "héllo\nworld\n",
		"b.jsonl": "{\"text\": \"one\"}\n\n  \r\n{\"id\": 7, \"text\": \"two\\u00e9\"}\r\n{\"text\":\"three\"}", // blank lines, CRLF, no final newline
		"c.md":    "\xEF\xBB\xBFbom",
	})
	var want []int32
	for _, d := range []string{"héllo\nworld\n", "one", "twoé", "three", "bom"} {
		want = append(append(want, ids(d)...), testEOS)
	}
	in := []string{filepath.Join(dir, "a.txt"), filepath.Join(dir, "b.jsonl"), filepath.Join(dir, "c.md")}
	for _, per := range []int{1, 3, 7, len(want) - 1, len(want), 1000} {
		out := filepath.Join(dir, "out", "sub", "train")
		paths, err := TokenizeFiles(in, byteEncoder{}, testEOS, 257, out, per)
		if err != nil {
			t.Fatal(err)
		}
		wantShards := (len(want) + per - 1) / per
		if len(paths) != wantShards {
			t.Errorf("shardTokens %d: %d shards, want %d", per, len(paths), wantShards)
		}
		for i, p := range paths {
			if p != ShardName(out, i) {
				t.Errorf("shard %d named %q", i, p)
			}
			s, err := OpenShard(p)
			if err != nil {
				t.Fatal(err)
			}
			if s.Len() > per || (i < len(paths)-1 && s.Len() != per) {
				t.Errorf("shardTokens %d: shard %d holds %d tokens", per, i, s.Len())
			}
			s.Close()
		}
		if got := shardTokens(t, paths); !slices.Equal(got, want) {
			t.Errorf("shardTokens %d: tokens\n got %v\nwant %v", per, got, want)
		}
		for _, p := range paths {
			os.Remove(p)
		}
	}
	if !strings.HasSuffix(ShardName("x/y", 12), "x/y-000012.bin") {
		t.Error(ShardName("x/y", 12))
	}
}

func TestTokenizeFilesWidth4(t *testing.T) {
	dir := writeFiles(t, map[string]string{"a.txt": "ab"})
	paths, err := TokenizeFiles([]string{filepath.Join(dir, "a.txt")}, byteEncoder{}, 100000, 100001, filepath.Join(dir, "o"), 10)
	if err != nil {
		t.Fatal(err)
	}
	if got := shardTokens(t, paths); !slices.Equal(got, []int32{'a', 'b', 100000}) {
		t.Errorf("tokens %v", got)
	}
}

func TestTokenizeFilesErrors(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"good.txt":        "fine",
		"empty.txt":       "",
		"bom.txt":         "\xEF\xBB\xBF",
		"badutf8.txt":     "abc\xffdef",
		"badutf8b.txt":    "\xEF\xBB\xBFab\xc3(",
		"empty.jsonl":     "",
		"blank.jsonl":     "\n \n",
		"utf8.jsonl":      "{\"text\":\"a\"}\n{\"text\":\"b\xe2\x82\"}\n",
		"syntax.jsonl":    "{\"text\":\"a\"}\n\n{\"text\": oops}\n",
		"notobj.jsonl":    "[1,2]\n",
		"notext.jsonl":    "{\"text\":\"a\"}\n{\"txt\":\"a\"}\n",
		"nulltext.jsonl":  "{\"text\":null}\n",
		"numtext.jsonl":   "{\"text\":\"a\"}\n{\"text\":\"b\"}\n{\"text\":5}\n",
		"emptytext.jsonl": "{\"text\":\"\"}\n",
		"bad.txt":         "xBADx",
	})
	p := func(name string) string { return filepath.Join(dir, name) }
	cases := []struct {
		file   string
		line   int
		offset int64
		msg    string
	}{
		{"empty.txt", 0, 0, "empty file"},
		{"bom.txt", 0, 0, "empty file"},
		{"badutf8.txt", 0, 3, "invalid UTF-8"},
		{"badutf8b.txt", 0, 5, "invalid UTF-8"},
		{"empty.jsonl", 0, 0, "empty file"},
		{"blank.jsonl", 0, -1, "no documents"},
		{"utf8.jsonl", 2, 23, "invalid UTF-8"},
		{"syntax.jsonl", 3, -1, "invalid JSON"},
		{"notobj.jsonl", 1, -1, "expected a JSON object, found an array"},
		{"notext.jsonl", 2, -1, `missing "text"`},
		{"nulltext.jsonl", 1, -1, `missing "text"`},
		{"numtext.jsonl", 3, -1, `"text" is a number`},
		{"emptytext.jsonl", 1, -1, `empty "text"`},
	}
	out := filepath.Join(dir, "out", "x")
	for _, c := range cases {
		_, err := TokenizeFiles([]string{p("good.txt"), p(c.file)}, byteEncoder{}, testEOS, 257, out, 4)
		var de *Error
		if !errors.As(err, &de) {
			t.Errorf("%s: error %v, want *data.Error", c.file, err)
			continue
		}
		if de.File != p(c.file) || de.Line != c.line || de.Offset != c.offset || !strings.Contains(de.Msg, c.msg) {
			t.Errorf("%s: error %q (line %d offset %d), want line %d offset %d message %q", c.file, err, de.Line, de.Offset, c.line, c.offset, c.msg)
		}
		if c.line > 0 && !strings.Contains(err.Error(), p(c.file)+":"+string(rune('0'+c.line))+": ") {
			t.Errorf("%s: error %q does not name file:line", c.file, err)
		}
	}
	// Nothing was written: inputs are checked first.
	if _, err := os.Stat(filepath.Join(dir, "out")); !os.IsNotExist(err) {
		t.Errorf("output directory exists after failed runs: %v", err)
	}

	// An encoder failure part way through removes the shards already written.
	_, err := TokenizeFiles([]string{p("good.txt"), p("good.txt"), p("bad.txt")}, byteEncoder{bad: "BAD"}, testEOS, 257, out, 3)
	if err == nil || !strings.Contains(err.Error(), "bad.txt") || !strings.Contains(err.Error(), "id 9999") {
		t.Errorf("err = %v", err)
	}
	if ents, _ := os.ReadDir(filepath.Join(dir, "out")); len(ents) != 0 {
		t.Errorf("failed run left %d files", len(ents))
	}

	for _, c := range []struct {
		paths      []string
		enc        Encoder
		eos        int32
		vocab, per int
		out, msg   string
	}{
		{nil, byteEncoder{}, 256, 257, 10, out, "no input files"},
		{[]string{p("good.txt")}, nil, 256, 257, 10, out, "nil encoder"},
		{[]string{p("good.txt")}, byteEncoder{}, 257, 257, 10, out, "end-of-sequence id 257"},
		{[]string{p("good.txt")}, byteEncoder{}, -1, 257, 10, out, "end-of-sequence id -1"},
		{[]string{p("good.txt")}, byteEncoder{}, 0, 0, 10, out, "vocabulary size 0"},
		{[]string{p("good.txt")}, byteEncoder{}, 256, 257, 0, out, "shard size 0"},
		{[]string{p("good.txt")}, byteEncoder{}, 256, 257, 10, "", "empty output prefix"},
		{[]string{p("missing.txt")}, byteEncoder{}, 256, 257, 10, out, "missing.txt"},
	} {
		if _, err := TokenizeFiles(c.paths, c.enc, c.eos, c.vocab, c.out, c.per); err == nil || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("err = %v, want %q", err, c.msg)
		}
	}
}
