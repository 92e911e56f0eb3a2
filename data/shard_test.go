package data

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// rawShard builds shard bytes with any header values.
func rawShard(magic string, version, width uint32, count uint64, vocab, reserved uint32, body []byte) []byte {
	b := make([]byte, ShardHeaderSize, ShardHeaderSize+len(body))
	copy(b, magic)
	le := binary.LittleEndian
	le.PutUint32(b[8:], version)
	le.PutUint32(b[12:], width)
	le.PutUint64(b[16:], count)
	le.PutUint32(b[24:], vocab)
	le.PutUint32(b[28:], reserved)
	return append(b, body...)
}

func readAll(s *Shard) []int32 {
	out := make([]int32, s.Len())
	s.Tokens(0, s.Len(), out)
	return out
}

func TestShardRoundTrip(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		vocab  int
		width  int
		tokens []int32
	}{
		{1, 2, []int32{0, 0, 0}},
		{100, 2, []int32{0, 1, 99, 42}},
		{65536, 2, []int32{0, 65535, 256, 1}},
		{65537, 4, []int32{65536, 0, 70, 65535}},
		{151_646, 4, []int32{151_645, 0, 151_643}},
		{MaxVocabSize, 4, []int32{MaxVocabSize - 1, 0, 1 << 30}},
		{50257, 2, nil}, // a shard may be empty of tokens
	}
	for _, c := range cases {
		p := filepath.Join(dir, "s.bin")
		if err := WriteShard(p, c.tokens, c.vocab); err != nil {
			t.Fatalf("vocab %d: %v", c.vocab, err)
		}
		fi, _ := os.Stat(p)
		if want := int64(ShardHeaderSize + c.width*len(c.tokens)); fi.Size() != want {
			t.Errorf("vocab %d: file size %d, want %d", c.vocab, fi.Size(), want)
		}
		s, err := OpenShard(p)
		if err != nil {
			t.Fatalf("vocab %d: %v", c.vocab, err)
		}
		if s.Len() != len(c.tokens) || s.Width() != c.width || s.VocabSize() != c.vocab || s.Path() != p {
			t.Errorf("vocab %d: Len %d Width %d Vocab %d Path %q", c.vocab, s.Len(), s.Width(), s.VocabSize(), s.Path())
		}
		if err := s.Validate(); err != nil {
			t.Errorf("vocab %d: Validate: %v", c.vocab, err)
		}
		if got := readAll(s); !slices.Equal(got, c.tokens) && len(c.tokens) > 0 {
			t.Errorf("vocab %d: tokens %v, want %v", c.vocab, got, c.tokens)
		}
		if len(c.tokens) >= 3 {
			sub := make([]int32, 2)
			s.Tokens(1, 3, sub)
			if !slices.Equal(sub, c.tokens[1:3]) {
				t.Errorf("vocab %d: Tokens(1,3) = %v", c.vocab, sub)
			}
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal("second Close:", err)
		}
		// The bytes parse the same way from memory.
		b, _ := os.ReadFile(p)
		m, err := ParseShard(b)
		if err != nil {
			t.Fatal(err)
		}
		if m.Len() != len(c.tokens) {
			t.Errorf("ParseShard Len %d", m.Len())
		}
	}
	// No temporary files are left behind.
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("directory holds %d entries, want 1: %v", len(ents), ents)
	}
}

func TestShardHeaderBytes(t *testing.T) {
	p := filepath.Join(t.TempDir(), "h.bin")
	if err := WriteShard(p, []int32{1, 2, 258}, 300); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(p)
	want := rawShard("SHOGTOKS", 1, 2, 3, 300, 0, []byte{1, 0, 2, 0, 2, 1})
	if !bytes.Equal(got, want) {
		t.Errorf("file bytes\n got %x\nwant %x", got, want)
	}
}

func TestWriteShardErrors(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "x.bin")
	for _, c := range []struct {
		tokens []int32
		vocab  int
		want   string
	}{
		{[]int32{1, 5}, 5, "token 1 has id 5"},
		{[]int32{-1}, 5, "token 0 has id -1"},
		{[]int32{1}, 0, "vocabulary size 0"},
		{[]int32{1}, MaxVocabSize + 1, "vocabulary size"},
	} {
		err := WriteShard(p, c.tokens, c.vocab)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), p) {
			t.Errorf("WriteShard(%v, %d) = %v, want error containing %q and the path", c.tokens, c.vocab, err, c.want)
		}
	}
	if err := WriteShard(filepath.Join(dir, "nodir", "x.bin"), []int32{1}, 5); err == nil {
		t.Error("WriteShard into a missing directory succeeded")
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 0 {
		t.Errorf("failed writes left files: %v", ents)
	}
}

func TestWriteShardReplaces(t *testing.T) {
	p := filepath.Join(t.TempDir(), "r.bin")
	if err := WriteShard(p, []int32{1, 2, 3, 4}, 10); err != nil {
		t.Fatal(err)
	}
	if err := WriteShard(p, []int32{7}, 10); err != nil {
		t.Fatal(err)
	}
	s, err := OpenShard(p)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := readAll(s); !slices.Equal(got, []int32{7}) {
		t.Errorf("tokens %v", got)
	}
}

func TestMalformedShards(t *testing.T) {
	good := rawShard(ShardMagic, 1, 2, 2, 10, 0, []byte{1, 0, 2, 0})
	cases := []struct {
		name   string
		data   []byte
		offset int64
		msg    string
	}{
		{"empty file", nil, 0, "empty file"},
		{"short header", good[:20], 20, "truncated header"},
		{"wrong magic", rawShard("GGUF\x00\x00\x00\x00", 1, 2, 2, 10, 0, []byte{1, 0, 2, 0}), 0, "wrong magic"},
		{"text file", []byte("hello, this is a text file, not a shard at all\n"), 0, "wrong magic"},
		{"unknown version", rawShard(ShardMagic, 2, 2, 2, 10, 0, []byte{1, 0, 2, 0}), 8, "unknown shard version 2"},
		{"version zero", rawShard(ShardMagic, 0, 2, 2, 10, 0, []byte{1, 0, 2, 0}), 8, "unknown shard version 0"},
		{"width 3", rawShard(ShardMagic, 1, 3, 2, 10, 0, make([]byte, 6)), 12, "bad token width 3"},
		{"width 0", rawShard(ShardMagic, 1, 0, 0, 10, 0, nil), 12, "bad token width 0"},
		{"width 8", rawShard(ShardMagic, 1, 8, 1, 10, 0, make([]byte, 8)), 12, "bad token width 8"},
		{"width too small for vocab", rawShard(ShardMagic, 1, 2, 1, 70000, 0, make([]byte, 2)), 12, "cannot hold"},
		{"vocab zero", rawShard(ShardMagic, 1, 2, 1, 0, 0, make([]byte, 2)), 24, "bad vocabulary size 0"},
		{"vocab too large", rawShard(ShardMagic, 1, 4, 1, 1<<31+1, 0, make([]byte, 4)), 24, "bad vocabulary size"},
		{"reserved set", rawShard(ShardMagic, 1, 2, 1, 10, 7, make([]byte, 2)), 28, "reserved"},
		{"truncated body", rawShard(ShardMagic, 1, 2, 3, 10, 0, []byte{1, 0, 2, 0}), 36, "truncated body: header says 3 tokens"},
		{"half token", rawShard(ShardMagic, 1, 2, 2, 10, 0, []byte{1, 0, 2}), 35, "truncated body"},
		{"huge count", rawShard(ShardMagic, 1, 4, 1<<62, 10, 0, []byte{1, 0, 0, 0}), 36, "truncated body"},
		{"max count", rawShard(ShardMagic, 1, 4, ^uint64(0), 10, 0, nil), 32, "truncated body"},
		{"trailing garbage", append(bytes.Clone(good), 0xFF, 0xFF, 0xFF), 36, "trailing garbage: 3 bytes"},
		{"trailing odd byte", append(bytes.Clone(good), 0), 36, "trailing garbage: 1 bytes"},
	}
	dir := t.TempDir()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			check := func(err error, file string) {
				t.Helper()
				var de *Error
				if !errors.As(err, &de) {
					t.Fatalf("error %v (%T), want *data.Error", err, err)
				}
				if de.File != file || de.Offset != c.offset || !strings.Contains(de.Msg, c.msg) {
					t.Errorf("error %q: file %q offset %d, want file %q offset %d and message containing %q", err, de.File, de.Offset, file, c.offset, c.msg)
				}
				if file != "" && !strings.HasPrefix(err.Error(), file+": byte offset ") {
					t.Errorf("error %q does not start with the file and offset", err)
				}
			}
			_, err := ParseShard(c.data)
			check(err, "")
			p := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "_")+".bin")
			if err := os.WriteFile(p, c.data, 0o644); err != nil {
				t.Fatal(err)
			}
			_, err = OpenShard(p)
			check(err, p)
		})
	}
}

func TestValidateTokens(t *testing.T) {
	// Token 2 (byte offset 36) is 10 in a vocabulary of 10.
	s, err := ParseShard(rawShard(ShardMagic, 1, 2, 3, 10, 0, []byte{9, 0, 0, 0, 10, 0}))
	if err != nil {
		t.Fatal(err)
	}
	err = s.Validate()
	var de *Error
	if !errors.As(err, &de) || de.Offset != 36 || !strings.Contains(de.Msg, "id 10") {
		t.Errorf("Validate = %v, want offset 36 id 10", err)
	}
	// Width 4: a negative int32 is out of range.
	s, err = ParseShard(rawShard(ShardMagic, 1, 4, 2, 100000, 0, []byte{1, 0, 0, 0, 0, 0, 0, 0x80}))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Validate(); err == nil || !errors.As(err, &de) || de.Offset != 36 {
		t.Errorf("Validate = %v, want offset 36", err)
	}
	// Vocabulary of exactly 65536 in width 2 is always valid.
	s, _ = ParseShard(rawShard(ShardMagic, 1, 2, 1, 65536, 0, []byte{0xFF, 0xFF}))
	if err := s.Validate(); err != nil {
		t.Error(err)
	}
}

func TestOpenShardNotFound(t *testing.T) {
	_, err := OpenShard(filepath.Join(t.TempDir(), "missing.bin"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("err = %v", err)
	}
	if _, err := OpenShard(t.TempDir()); err == nil {
		t.Error("opening a directory succeeded")
	}
}

func TestOpenShards(t *testing.T) {
	dir := t.TempDir()
	a := filepath.Join(dir, "a.bin")
	if err := WriteShard(a, []int32{1}, 5); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.bin")
	os.WriteFile(bad, []byte("junk"), 0o644)
	if _, err := OpenShards([]string{a, bad}); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("err = %v", err)
	}
	ss, err := OpenShards([]string{a, a})
	if err != nil || len(ss) != 2 {
		t.Fatal(err)
	}
	for _, s := range ss {
		s.Close()
	}
}

func FuzzOpenShard(f *testing.F) {
	f.Add([]byte{})
	f.Add(rawShard(ShardMagic, 1, 2, 2, 10, 0, []byte{1, 0, 2, 0}))
	f.Add(rawShard(ShardMagic, 1, 4, 2, 70000, 0, []byte{1, 0, 1, 0, 2, 0, 0, 0}))
	f.Add(rawShard(ShardMagic, 1, 2, 3, 10, 0, []byte{1, 0, 2, 0}))
	f.Add(rawShard(ShardMagic, 1, 2, 0, 1, 0, nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseShard(b)
		if err != nil {
			var de *Error
			if !errors.As(err, &de) || de.Offset < 0 || de.Offset > int64(len(b)) {
				t.Fatalf("error %v: not a *data.Error with an offset inside the data", err)
			}
			return
		}
		if ShardHeaderSize+s.Len()*s.Width() != len(b) {
			t.Fatalf("accepted %d bytes for %d tokens of width %d", len(b), s.Len(), s.Width())
		}
		toks := readAll(s)
		verr := s.Validate()
		for k, v := range toks {
			if v < 0 || int(v) >= s.VocabSize() {
				if verr == nil {
					t.Fatalf("Validate accepted token %d = %d with vocabulary %d", k, v, s.VocabSize())
				}
				return
			}
		}
		if verr != nil {
			t.Fatalf("Validate rejected valid tokens: %v", verr)
		}
	})
}
