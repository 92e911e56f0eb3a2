package data

import (
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"sync/atomic"

	"github.com/shoggo/shoggo/internal/atomicfile"
)

// Shard format constants; see the package documentation for the layout.
const (
	ShardMagic      = "SHOGTOKS"
	ShardVersion    = 1
	ShardHeaderSize = 32

	// MaxVocabSize is the largest vocabulary a shard can describe: token ids
	// are int32, so they lie in [0, 2^31).
	MaxVocabSize = 1 << 31
)

// TokenWidth is the number of bytes a shard uses per token for a vocabulary
// of vocabSize entries: 2 up to 65,536 entries, 4 above.
func TokenWidth(vocabSize int) int {
	if vocabSize <= 1<<16 {
		return 2
	}
	return 4
}

// Shard is a read-only sequence of token ids backed by a memory-mapped file
// (OpenShard) or by a byte slice (ParseShard). Reading is safe from several
// goroutines; Close is not.
type Shard struct {
	path      string
	data      []byte // whole file; tokens start at ShardHeaderSize
	width     int
	n         int
	vocab     int
	mapped    bool
	validated atomic.Bool // Validate has succeeded once
}

// OpenShard memory-maps the shard at path and checks its header and size.
// It does not read the token ids; Validate does. The file must not be
// truncated while it is mapped (reading a page past the new end faults);
// WriteShard's rename-over never does that to an open shard.
func OpenShard(path string) (*Shard, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	size := fi.Size()
	if size == 0 {
		return nil, offsetErr(path, 0, "empty file, expected a token shard")
	}
	if size > math.MaxInt {
		return nil, fmt.Errorf("%s: file of %d bytes is too large to map", path, size)
	}
	b, mapped, err := mapFile(f, int(size))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	s, err := parseShard(path, b)
	if err != nil {
		if mapped {
			unmapFile(b)
		}
		return nil, err
	}
	s.mapped = mapped
	return s, nil
}

// OpenShards opens every path with OpenShard. On failure it closes the shards
// already opened and returns the first error.
func OpenShards(paths []string) ([]*Shard, error) {
	shards := make([]*Shard, 0, len(paths))
	for _, p := range paths {
		s, err := OpenShard(p)
		if err != nil {
			for _, o := range shards {
				o.Close()
			}
			return nil, err
		}
		shards = append(shards, s)
	}
	return shards, nil
}

// ParseShard reads a shard held in memory. The Shard refers to data without
// copying it, so data must not change while the Shard is in use. Like
// OpenShard it checks the header and the size, not the token ids.
func ParseShard(data []byte) (*Shard, error) { return parseShard("", data) }

func parseShard(path string, b []byte) (*Shard, error) {
	if len(b) == 0 {
		return nil, offsetErr(path, 0, "empty file, expected a token shard")
	}
	if len(b) < ShardHeaderSize {
		return nil, offsetErr(path, int64(len(b)), "truncated header: file has %d bytes, header needs %d", len(b), ShardHeaderSize)
	}
	if string(b[:8]) != ShardMagic {
		return nil, offsetErr(path, 0, "wrong magic %q, expected %q (not a shoggo token shard)", b[:8], ShardMagic)
	}
	le := binary.LittleEndian
	if v := le.Uint32(b[8:]); v != ShardVersion {
		return nil, offsetErr(path, 8, "unknown shard version %d, this build reads version %d", v, ShardVersion)
	}
	width := le.Uint32(b[12:])
	if width != 2 && width != 4 {
		return nil, offsetErr(path, 12, "bad token width %d, expected 2 or 4", width)
	}
	count := le.Uint64(b[16:])
	vocab := le.Uint32(b[24:])
	if vocab == 0 || vocab > MaxVocabSize {
		return nil, offsetErr(path, 24, "bad vocabulary size %d, expected 1 to %d", vocab, uint64(MaxVocabSize))
	}
	if width == 2 && vocab > 1<<16 {
		return nil, offsetErr(path, 12, "token width 2 cannot hold ids of a vocabulary of %d", vocab)
	}
	if r := le.Uint32(b[28:]); r != 0 {
		return nil, offsetErr(path, 28, "reserved header bytes are %#x, expected 0", r)
	}
	body := uint64(len(b) - ShardHeaderSize)
	w := uint64(width)
	if count > body/w {
		return nil, offsetErr(path, int64(len(b)), "truncated body: header says %d tokens (%d bytes from offset %d) but the file ends after %d bytes of tokens",
			count, mulSat(count, w), ShardHeaderSize, body)
	}
	if end := ShardHeaderSize + count*w; end != uint64(len(b)) {
		return nil, offsetErr(path, int64(end), "trailing garbage: %d bytes after the %d tokens the header declares", uint64(len(b))-end, count)
	}
	return &Shard{path: path, data: b, width: int(width), n: int(count), vocab: int(vocab)}, nil
}

func mulSat(a, b uint64) uint64 {
	if b != 0 && a > math.MaxUint64/b {
		return math.MaxUint64
	}
	return a * b
}

// Path is the file the shard was opened from ("" for ParseShard).
func (s *Shard) Path() string { return s.path }

// Len is the number of tokens in the shard.
func (s *Shard) Len() int { return s.n }

// VocabSize is the vocabulary size recorded in the header; every id in a
// valid shard is below it.
func (s *Shard) VocabSize() int { return s.vocab }

// Width is the number of bytes per token (2 or 4).
func (s *Shard) Width() int { return s.width }

// Tokens copies tokens [i, j) into dst[:j-i]. It panics if the range is out of
// bounds or dst is too short (programmer errors, like slicing).
func (s *Shard) Tokens(i, j int, dst []int32) {
	if i < 0 || j < i || j > s.n {
		panic(fmt.Sprintf("data: Shard.Tokens(%d, %d) out of range for %d tokens", i, j, s.n))
	}
	dst = dst[:j-i]
	le := binary.LittleEndian
	if s.width == 2 {
		src := s.data[ShardHeaderSize+2*i : ShardHeaderSize+2*j]
		for k := range dst {
			dst[k] = int32(le.Uint16(src[2*k:]))
		}
		return
	}
	src := s.data[ShardHeaderSize+4*i : ShardHeaderSize+4*j]
	for k := range dst {
		dst[k] = int32(le.Uint32(src[4*k:]))
	}
}

// Validate reads every token and checks that it is below the vocabulary size,
// returning an error naming the byte offset of the first bad one. A success
// is remembered, so validating again is free.
func (s *Shard) Validate() error {
	if s.validated.Load() {
		return nil
	}
	body := s.data[ShardHeaderSize : ShardHeaderSize+s.n*s.width]
	if s.width == 2 && s.vocab >= 1<<16 {
		s.validated.Store(true) // every uint16 is a valid id
		return nil
	}
	// Find the largest id quickly; only if it is out of range look for the
	// first bad token.
	var hi uint32
	if s.width == 2 {
		for i := 0; i+1 < len(body); i += 2 {
			hi = max(hi, uint32(body[i])|uint32(body[i+1])<<8)
		}
	} else {
		for i := 0; i+3 < len(body); i += 4 {
			hi = max(hi, binary.LittleEndian.Uint32(body[i:i+4]))
		}
	}
	if s.n > 0 && hi >= uint32(s.vocab) {
		for k := range s.n {
			var v uint32
			if s.width == 2 {
				v = uint32(binary.LittleEndian.Uint16(body[2*k:]))
			} else {
				v = binary.LittleEndian.Uint32(body[4*k:])
			}
			if v >= uint32(s.vocab) {
				return offsetErr(s.path, int64(ShardHeaderSize+s.width*k), "token %d has id %d, outside the vocabulary of %d", k, v, s.vocab)
			}
		}
	}
	s.validated.Store(true)
	return nil
}

// Close releases the mapping. The Shard must not be used afterwards. Closing
// twice is harmless.
func (s *Shard) Close() error {
	b := s.data
	s.data, s.n = nil, 0
	if s.mapped && b != nil {
		s.mapped = false
		return unmapFile(b)
	}
	return nil
}

func checkVocab(vocabSize int) error {
	if vocabSize < 1 || int64(vocabSize) > MaxVocabSize {
		return fmt.Errorf("vocabulary size %d out of range [1, %d]", vocabSize, int64(MaxVocabSize))
	}
	return nil
}

// WriteShard writes tokens to path as a shard for a vocabulary of vocabSize
// entries. Every token must lie in [0, vocabSize). The file appears
// atomically: it is written to a temporary file in the same directory,
// synced, and renamed over path, so a crash never leaves a partial shard.
func WriteShard(path string, tokens []int32, vocabSize int) error {
	if err := checkVocab(vocabSize); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	for k, t := range tokens {
		if t < 0 || int64(t) >= int64(vocabSize) {
			return fmt.Errorf("%s: token %d has id %d, outside the vocabulary of %d", path, k, t, vocabSize)
		}
	}
	w, err := createShard(path, vocabSize)
	if err != nil {
		return err
	}
	if err := w.write(tokens); err != nil {
		w.abort()
		return err
	}
	return w.commit()
}

// shardWriter streams tokens into an atomic file (internal/atomicfile)
// and, on commit, patches the count into the header and commits the file.
// Callers check token ranges before write.
type shardWriter struct {
	path  string
	f     *atomicfile.File
	width int
	vocab int
	n     uint64
	buf   []byte
}

func createShard(path string, vocabSize int) (*shardWriter, error) {
	if err := checkVocab(vocabSize); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	f, err := atomicfile.Create(path, 0o644)
	if err != nil {
		return nil, err
	}
	w := &shardWriter{path: path, f: f, width: TokenWidth(vocabSize), vocab: vocabSize}
	var hdr [ShardHeaderSize]byte
	w.header(hdr[:])
	if _, err := w.f.Write(hdr[:]); err != nil {
		w.abort()
		return nil, err
	}
	return w, nil
}

func (w *shardWriter) header(h []byte) {
	le := binary.LittleEndian
	copy(h, ShardMagic)
	le.PutUint32(h[8:], ShardVersion)
	le.PutUint32(h[12:], uint32(w.width))
	le.PutUint64(h[16:], w.n)
	le.PutUint32(h[24:], uint32(w.vocab))
	le.PutUint32(h[28:], 0)
}

func (w *shardWriter) write(tokens []int32) error {
	const chunk = 1 << 14
	le := binary.LittleEndian
	for len(tokens) > 0 {
		t := tokens[:min(chunk, len(tokens))]
		tokens = tokens[len(t):]
		need := len(t) * w.width
		if cap(w.buf) < need {
			w.buf = make([]byte, chunk*w.width)
		}
		b := w.buf[:need]
		if w.width == 2 {
			for k, v := range t {
				le.PutUint16(b[2*k:], uint16(v))
			}
		} else {
			for k, v := range t {
				le.PutUint32(b[4*k:], uint32(v))
			}
		}
		if _, err := w.f.Write(b); err != nil {
			return err
		}
		w.n += uint64(len(t))
	}
	return nil
}

func (w *shardWriter) commit() error {
	var hdr [ShardHeaderSize]byte
	w.header(hdr[:])
	if _, err := w.f.WriteAt(hdr[:], 0); err != nil {
		w.abort()
		return err
	}
	return w.f.Commit()
}

func (w *shardWriter) abort() { w.f.Abort() }
