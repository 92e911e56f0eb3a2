package safetensors

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/shoggo/shoggo/internal/atomicfile"
	"github.com/shoggo/shoggo/tensor"
)

// IndexSuffix is appended to a prefix to name the index of a sharded
// checkpoint ("model" -> "model.safetensors.index.json").
const IndexSuffix = ".safetensors.index.json"

// shardIndex is a parsed model.safetensors.index.json.
type shardIndex struct {
	metadata  map[string]string // values: strings as they are, other JSON values as compact JSON text
	weightMap map[string]string // tensor name -> shard file name
}

// checkShardName rejects weight_map file names that could leave the
// checkpoint's directory.
func checkShardName(name string) error {
	switch {
	case name == "":
		return errors.New("empty file name")
	case strings.ContainsAny(name, `/\`):
		return fmt.Errorf("file name %q contains a path separator", name)
	case name == "." || name == "..":
		return fmt.Errorf("file name %q is not a file", name)
	case strings.ContainsRune(name, 0):
		return fmt.Errorf("file name %q contains a NUL byte", name)
	case !filepath.IsLocal(name) || filepath.VolumeName(name) != "" || strings.Contains(name, ":"):
		return fmt.Errorf("file name %q is not a plain local name", name)
	}
	return nil
}

// parseIndex parses and validates the JSON of an index file; path names it
// in errors. Duplicate keys are errors.
func parseIndex(path string, data []byte) (*shardIndex, error) {
	p, perr := newJSONParser(path, "index", data)
	if perr != nil {
		return nil, perr
	}
	idx := &shardIndex{}
	var hasMap bool
	mkErr := func(format string, args ...any) *Error { return fileErr(path, format, args...) }
	err := p.object("index", mkErr, nil, func(key string) *Error {
		switch key {
		case "metadata":
			m, err := indexMetadata(p, mkErr)
			idx.metadata = m
			return err
		case "weight_map":
			hasMap = true
			m, err := p.stringMap("weight_map", mkErr, func(name, msg string) *Error {
				return tensorErr(path, name, "weight_map: %s", msg)
			})
			if err != nil {
				return err
			}
			if m == nil {
				return mkErr("weight_map is null")
			}
			for _, name := range sortedKeys(m) {
				if err := checkShardName(m[name]); err != nil {
					return tensorErr(path, name, "weight_map: %v", err)
				}
			}
			idx.weightMap = m
			return nil
		default:
			return p.skip()
		}
	})
	if err != nil {
		return nil, err
	}
	if err := p.end(); err != nil {
		return nil, err
	}
	if !hasMap {
		return nil, fileErr(path, "index has no \"weight_map\"")
	}
	return idx, nil
}

// indexMetadata reads the index's "metadata" object, whose values may be any
// JSON (transformers writes "total_size" as a number).
func indexMetadata(p *jsonParser, mkErr func(string, ...any) *Error) (map[string]string, *Error) {
	tok, err := p.token()
	if err != nil {
		return nil, err
	}
	if tok == nil {
		return nil, nil
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		_ = skipValue(p.dec, tok)
		return nil, mkErr("metadata is %s, not a JSON object", describe(tok))
	}
	m := map[string]string{}
	for p.dec.More() {
		tok, err := p.token()
		if err != nil {
			return nil, err
		}
		key, _ := tok.(string)
		if _, dup := m[key]; dup {
			return nil, mkErr("metadata has key %q twice", key)
		}
		var raw json.RawMessage
		if err := p.dec.Decode(&raw); err != nil {
			return nil, p.syntaxErr(err)
		}
		var s string
		if len(raw) > 0 && raw[0] == '"' && json.Unmarshal(raw, &s) == nil {
			m[key] = s
		} else {
			var buf bytes.Buffer
			if json.Compact(&buf, raw) != nil {
				return nil, mkErr("metadata: invalid value for %q", key)
			}
			m[key] = buf.String()
		}
	}
	if _, err := p.token(); err != nil {
		return nil, err
	}
	return m, nil
}

// Set is a checkpoint that may be split over several safetensors files: one
// lookup over all of them. It is safe for concurrent use, except Close.
type Set struct {
	name     string  // the index path, or the single file's path
	files    []*File // sorted by path
	where    map[string]*File
	names    []string
	metadata map[string]string
}

// OpenSharded opens the checkpoint in dir: model.safetensors.index.json and
// the shards it names if the index exists, otherwise model.safetensors.
func OpenSharded(dir string) (*Set, error) { return OpenShardedPrefix(dir, "model") }

// OpenShardedPrefix is OpenSharded for files named prefix+".safetensors" and
// prefix+".safetensors.index.json" (for example "adapter_model").
func OpenShardedPrefix(dir, prefix string) (*Set, error) {
	idxPath := filepath.Join(dir, prefix+IndexSuffix)
	if _, err := os.Stat(idxPath); err == nil {
		return OpenIndex(idxPath)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fileErr(idxPath, "%w", err)
	}
	single := filepath.Join(dir, prefix+".safetensors")
	if _, err := os.Stat(single); errors.Is(err, fs.ErrNotExist) {
		return nil, fileErr(dir, "no checkpoint: neither %s nor %s exists", prefix+IndexSuffix, prefix+".safetensors")
	}
	f, err := Open(single)
	if err != nil {
		return nil, err
	}
	return newSet(single, []*File{f}, nil, f.Metadata()), nil
}

// shardError wraps the error of one shard named by an index.
type shardError struct {
	file string
	err  error
}

func (e *shardError) Error() string {
	return fmt.Sprintf("weight_map file %q: %s", e.file, strings.TrimPrefix(e.err.Error(), "safetensors: "))
}

func (e *shardError) Unwrap() error { return e.err }

// OpenIndex opens a sharded checkpoint from its index file: every shard the
// weight_map names is opened (memory-mapped) and must hold the tensors the
// index assigns to it. Errors name the index file and the tensor.
func OpenIndex(indexPath string) (*Set, error) {
	data, err := os.ReadFile(indexPath)
	if err != nil {
		return nil, fileErr(indexPath, "%w", err)
	}
	idx, err := parseIndex(indexPath, data)
	if err != nil {
		return nil, err
	}
	dir := filepath.Dir(indexPath)
	byFile := map[string][]string{}
	for _, name := range sortedKeys(idx.weightMap) {
		fn := idx.weightMap[name]
		byFile[fn] = append(byFile[fn], name)
	}
	var files []*File
	closeAll := func() {
		for _, f := range files {
			_ = f.Close()
		}
	}
	where := make(map[string]*File, len(idx.weightMap))
	meta := map[string]string{}
	for _, fn := range sortedKeys(byFile) {
		f, err := Open(filepath.Join(dir, fn))
		if err != nil {
			closeAll()
			return nil, &Error{File: indexPath, Tensor: byFile[fn][0], HasTensor: true, Err: &shardError{fn, err}}
		}
		files = append(files, f)
		for _, name := range byFile[fn] {
			if _, ok := f.Info(name); !ok {
				closeAll()
				return nil, tensorErr(indexPath, name, "weight_map file %q does not contain the tensor", fn)
			}
			where[name] = f
		}
		for k, v := range f.hdr.metadata {
			if _, ok := meta[k]; !ok {
				meta[k] = v
			}
		}
	}
	for k, v := range idx.metadata {
		meta[k] = v
	}
	s := newSet(indexPath, files, where, meta)
	return s, nil
}

// newSet builds a Set; where nil means every tensor of every file.
func newSet(name string, files []*File, where map[string]*File, meta map[string]string) *Set {
	if where == nil {
		where = map[string]*File{}
		for _, f := range files {
			for _, t := range f.hdr.tensors {
				where[t.Name] = f
			}
		}
	}
	s := &Set{name: name, files: files, where: where, metadata: meta}
	for _, f := range files {
		for _, t := range f.hdr.tensors {
			if where[t.Name] == f {
				s.names = append(s.names, t.Name)
			}
		}
	}
	return s
}

// Path returns the index file's path, or the single file's.
func (s *Set) Path() string { return s.name }

// Files returns the paths of the files in the set, sorted.
func (s *Set) Files() []string {
	out := make([]string, len(s.files))
	for i, f := range s.files {
		out[i] = f.path
	}
	return out
}

// Len returns the number of tensors.
func (s *Set) Len() int { return len(s.names) }

// Names lists the tensors by file (in file name order), then by offset.
func (s *Set) Names() []string { return slices.Clone(s.names) }

// Info describes the named tensor.
func (s *Set) Info(name string) (TensorInfo, bool) {
	f, ok := s.where[name]
	if !ok {
		return TensorInfo{}, false
	}
	return f.Info(name)
}

// File returns the file holding the named tensor.
func (s *Set) File(name string) (*File, bool) {
	f, ok := s.where[name]
	return f, ok
}

func (s *Set) lookup(name string) (*File, error) {
	f, ok := s.where[name]
	if !ok {
		return nil, tensorErr(s.name, name, "%w", ErrNotFound)
	}
	return f, nil
}

// Tensor returns a copy of the named tensor (see File.Tensor).
func (s *Set) Tensor(name string) (*tensor.Tensor, error) {
	f, err := s.lookup(name)
	if err != nil {
		return nil, err
	}
	return f.Tensor(name)
}

// TensorF32 returns the named float tensor as float32 (see File.TensorF32).
func (s *Set) TensorF32(name string) ([]float32, error) {
	f, err := s.lookup(name)
	if err != nil {
		return nil, err
	}
	return f.TensorF32(name)
}

// ReadInto copies the named tensor into dst (see File.ReadInto).
func (s *Set) ReadInto(name string, dst *tensor.Tensor) error {
	f, err := s.lookup(name)
	if err != nil {
		return err
	}
	return f.ReadInto(name, dst)
}

// Metadata returns, for a single file, its "__metadata__"; for a sharded
// checkpoint, the index's "metadata" (numbers such as total_size as their
// JSON text) over the union of the shards' "__metadata__".
func (s *Set) Metadata() map[string]string {
	if s.metadata == nil {
		return nil
	}
	m := make(map[string]string, len(s.metadata))
	for k, v := range s.metadata {
		m[k] = v
	}
	return m
}

// Close unmaps every file of the set and returns the first error.
func (s *Set) Close() error {
	var first error
	for _, f := range s.files {
		if err := f.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// ShardName returns the file name of shard i (0-based) of n, in the
// Hugging Face pattern: prefix-00001-of-00003.safetensors.
func ShardName(prefix string, i, n int) string {
	return fmt.Sprintf("%s-%05d-of-%05d.safetensors", prefix, i+1, n)
}

// WriteSharded writes tensors as a checkpoint in dir (created if needed).
// Tensors are packed in order into shards of at most maxShardBytes bytes of
// tensor data (a bigger tensor gets a shard to itself; maxShardBytes <= 0
// means no limit). If everything fits in one shard it writes
// prefix.safetensors; otherwise prefix-0000i-of-0000n.safetensors files and
// prefix.safetensors.index.json, whose metadata holds total_size (the sum of
// the tensors' byte sizes) as transformers writes it. metadata goes into
// every file's "__metadata__" (transformers expects {"format": "pt"}).
//
// Each file is written atomically; files of an earlier checkpoint with the
// same prefix that the new one does not use (an old index, single file or
// shards) are then removed. The checkpoint as a whole is not replaced
// atomically: for that, write into a fresh directory and rename it.
func WriteSharded(dir, prefix string, tensors []*tensor.Tensor, maxShardBytes int64, metadata map[string]string) error {
	if prefix == "" || strings.ContainsAny(prefix, `/\`) || prefix == "." || prefix == ".." {
		return fileErr(dir, "invalid checkpoint prefix %q", prefix)
	}
	sizes, err := checkTensors(dir, tensors)
	if err != nil {
		return err
	}
	var shards [][]*tensor.Tensor
	var cur []*tensor.Tensor
	var curSize, total int64
	for i, t := range tensors {
		if len(cur) > 0 && maxShardBytes > 0 && curSize+sizes[i] > maxShardBytes {
			shards = append(shards, cur)
			cur, curSize = nil, 0
		}
		cur = append(cur, t)
		curSize += sizes[i]
		total += sizes[i]
	}
	shards = append(shards, cur)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fileErr(dir, "%w", err)
	}
	keep := map[string]bool{}
	if len(shards) == 1 {
		name := prefix + ".safetensors"
		if err := Write(filepath.Join(dir, name), tensors, metadata); err != nil {
			return err
		}
		keep[name] = true
		return removeStale(dir, prefix, keep)
	}
	weightMap := map[string]string{}
	for i, shard := range shards {
		name := ShardName(prefix, i, len(shards))
		if err := Write(filepath.Join(dir, name), shard, metadata); err != nil {
			return err
		}
		keep[name] = true
		for _, t := range shard {
			weightMap[t.Name] = name
		}
	}
	idxName := prefix + IndexSuffix
	idx := struct {
		Metadata  map[string]any    `json:"metadata"`
		WeightMap map[string]string `json:"weight_map"`
	}{map[string]any{"total_size": total}, weightMap}
	idxPath := filepath.Join(dir, idxName)
	if err := writeAtomic(idxPath, func(w io.Writer) error {
		enc := json.NewEncoder(w)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "  ")
		if err := enc.Encode(idx); err != nil {
			return fileErr(idxPath, "%w", err)
		}
		return nil
	}); err != nil {
		return err
	}
	keep[idxName] = true
	return removeStale(dir, prefix, keep)
}

// removeStale deletes the checkpoint files for prefix in dir not in keep.
func removeStale(dir, prefix string, keep map[string]bool) error {
	shardRE := regexp.MustCompile(`^` + regexp.QuoteMeta(prefix) + `-[0-9]{5,}-of-[0-9]{5,}\.safetensors$`)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fileErr(dir, "%w", err)
	}
	removed := false
	for _, e := range entries {
		n := e.Name()
		if keep[n] || e.IsDir() {
			continue
		}
		if n == prefix+".safetensors" || n == prefix+IndexSuffix || shardRE.MatchString(n) {
			if err := os.Remove(filepath.Join(dir, n)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fileErr(filepath.Join(dir, n), "removing a stale checkpoint file: %w", err)
			}
			removed = true
		}
	}
	if removed {
		if err := atomicfile.SyncDir(dir); err != nil {
			return fileErr(dir, "fsync: %w", err)
		}
	}
	return nil
}
