package safetensors

import (
	"bytes"
	"encoding/json"
	"errors"
	"math/rand"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/shoggo/shoggo/tensor"
)

func shardTensors() []*tensor.Tensor {
	r := rand.New(rand.NewSource(2))
	return []*tensor.Tensor{
		randTensor(r, "model.embed_tokens.weight", tensor.BF16, 8, 4),         // 64 bytes
		randTensor(r, "model.layers.0.mlp.up_proj.weight", tensor.F32, 4, 4),  // 64
		randTensor(r, "model.layers.0.input_layernorm.weight", tensor.F32, 4), // 16
		randTensor(r, "model.layers.1.mlp.up_proj.weight", tensor.F16, 4, 4),  // 32
		randTensor(r, "big", tensor.F64, 20),                                  // 160: over the limit, alone
		randTensor(r, "model.norm.weight", tensor.F32, 4),                     // 16
		randTensor(r, "ids", tensor.I64, 2),                                   // 16
	}
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

func checkSet(t *testing.T, s *Set, ts []*tensor.Tensor) {
	t.Helper()
	if s.Len() != len(ts) {
		t.Fatalf("set has %d tensors, want %d", s.Len(), len(ts))
	}
	for _, x := range ts {
		got, err := s.Tensor(x.Name)
		if err != nil {
			t.Fatal(err)
		}
		if !got.Shape.Equal(x.Shape) || got.DType != x.DType || !bytes.Equal(rawOf(got), rawOf(x)) {
			t.Errorf("%q differs", x.Name)
		}
		info, ok := s.Info(x.Name)
		if !ok || info.DType != x.DType {
			t.Errorf("%q: info %+v", x.Name, info)
		}
		if x.DType.IsFloat() {
			v, err := s.TensorF32(x.Name)
			want, _ := tensor.ToF32(x)
			if err != nil || !bytes.Equal(rawOf(tensor.FromF32(v, len(v))), rawOf(tensor.FromF32(want, len(want)))) {
				t.Errorf("%q: TensorF32 differs (%v)", x.Name, err)
			}
			dst := tensor.New(tensor.F32, x.Shape...)
			if err := s.ReadInto(x.Name, dst); err != nil {
				t.Error(err)
			}
		}
	}
	if _, err := s.Tensor("nope"); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), s.Path()) {
		t.Errorf("missing tensor: %v", err)
	}
}

func TestShardedRoundTrip(t *testing.T) {
	ts := shardTensors()
	dir := t.TempDir()
	meta := map[string]string{"format": "pt"}
	if err := WriteSharded(dir, "model", ts, 100, meta); err != nil {
		t.Fatal(err)
	}
	// Packing in order with 100 bytes: [emb 64] [up0 64, ln 16] [up1 32] [big 160] [norm 16, ids 16].
	want := []string{
		"model-00001-of-00005.safetensors", "model-00002-of-00005.safetensors", "model-00003-of-00005.safetensors",
		"model-00004-of-00005.safetensors", "model-00005-of-00005.safetensors", "model.safetensors.index.json",
	}
	if got := dirNames(t, dir); !slices.Equal(got, want) {
		t.Fatalf("files %q, want %q", got, want)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "model.safetensors.index.json"))
	if err != nil {
		t.Fatal(err)
	}
	var idx struct {
		Metadata  map[string]any    `json:"metadata"`
		WeightMap map[string]string `json:"weight_map"`
	}
	if err := json.Unmarshal(raw, &idx); err != nil {
		t.Fatal(err)
	}
	if idx.Metadata["total_size"] != float64(64+64+16+32+160+16+16) {
		t.Errorf("total_size %v", idx.Metadata["total_size"])
	}
	if idx.WeightMap["model.layers.0.input_layernorm.weight"] != "model-00002-of-00005.safetensors" || idx.WeightMap["ids"] != "model-00005-of-00005.safetensors" {
		t.Errorf("weight_map %v", idx.WeightMap)
	}
	s, err := OpenSharded(dir)
	if err != nil {
		t.Fatal(err)
	}
	checkSet(t, s, ts)
	var names []string
	for _, x := range ts {
		names = append(names, x.Name)
	}
	if !slices.Equal(s.Names(), names) {
		t.Errorf("names %q, want %q", s.Names(), names)
	}
	if m := s.Metadata(); m["format"] != "pt" || m["total_size"] != "368" {
		t.Errorf("metadata %v", m)
	}
	if len(s.Files()) != 5 {
		t.Errorf("files %v", s.Files())
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// Rewriting with room for everything leaves one file and no stale shards.
	os.WriteFile(filepath.Join(dir, "other.txt"), []byte("keep me"), 0o644)
	if err := WriteSharded(dir, "model", ts, 0, meta); err != nil {
		t.Fatal(err)
	}
	if got := dirNames(t, dir); !slices.Equal(got, []string{"model.safetensors", "other.txt"}) {
		t.Fatalf("files after single write %q", got)
	}
	s, err = OpenSharded(dir)
	if err != nil {
		t.Fatal(err)
	}
	checkSet(t, s, ts)
	if m := s.Metadata(); !equalMaps(m, meta) {
		t.Errorf("metadata %v", m)
	}
	s.Close()

	// And back to two shards: the single file goes.
	if err := WriteSharded(dir, "model", ts, 250, nil); err != nil {
		t.Fatal(err)
	}
	want = []string{"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors", "model.safetensors.index.json", "other.txt"}
	if got := dirNames(t, dir); !slices.Equal(got, want) {
		t.Fatalf("files %q, want %q", got, want)
	}
	s, err = OpenShardedPrefix(dir, "model")
	if err != nil {
		t.Fatal(err)
	}
	checkSet(t, s, ts)
	s.Close()

	// Another prefix lives beside it untouched.
	if err := WriteSharded(dir, "adapter_model", ts[:2], 0, nil); err != nil {
		t.Fatal(err)
	}
	s, err = OpenShardedPrefix(dir, "adapter_model")
	if err != nil {
		t.Fatal(err)
	}
	checkSet(t, s, ts[:2])
	s.Close()
	if s, err := OpenSharded(dir); err != nil {
		t.Fatal(err)
	} else {
		checkSet(t, s, ts)
		s.Close()
	}
}

func TestWriteShardedErrors(t *testing.T) {
	ts := shardTensors()
	dir := t.TempDir()
	if err := WriteSharded(dir, "../x", ts, 0, nil); err == nil {
		t.Error("accepted a prefix with a separator")
	}
	dup := append(slices.Clone(ts), ts[0])
	if err := WriteSharded(dir, "model", dup, 100, nil); err == nil || !strings.Contains(err.Error(), ts[0].Name) {
		t.Errorf("duplicate: %v", err)
	}
	if got := dirNames(t, dir); len(got) != 0 {
		t.Errorf("files written despite the error: %v", got)
	}
	if _, err := OpenSharded(dir); err == nil || !strings.Contains(err.Error(), "model.safetensors") {
		t.Errorf("empty dir: %v", err)
	}
}

// writeShards writes two shards for the index tests.
func writeShards(t *testing.T, dir string) {
	t.Helper()
	a := tensor.FromF32([]float32{1, 2}, 2)
	a.Name = "a"
	b := tensor.FromF32([]float32{3}, 1)
	b.Name = "b"
	if err := Write(filepath.Join(dir, "s1.safetensors"), []*tensor.Tensor{a}, nil); err != nil {
		t.Fatal(err)
	}
	if err := Write(filepath.Join(dir, "s2.safetensors"), []*tensor.Tensor{b}, nil); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bad.safetensors"), []byte("garbage!garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
}

type indexCase struct {
	name   string
	index  string
	tensor string
	want   string
}

func indexCases() []indexCase {
	return []indexCase{
		{"invalid JSON", `{"weight_map": {"a": "s1.safetensors",}}`, "", "invalid JSON"},
		{"truncated", `{"weight_map": {"a": "s1.safetensors"`, "", "invalid JSON"},
		{"trailing", `{"weight_map": {}} {}`, "", "invalid JSON"},
		{"not object", `["a"]`, "", "not a JSON object"},
		{"no weight_map", `{"metadata": {"total_size": 12}}`, "", `no "weight_map"`},
		{"weight_map null", `{"weight_map": null}`, "", "weight_map is null"},
		{"weight_map array", `{"weight_map": ["s1.safetensors"]}`, "", "weight_map is an array"},
		{"value not string", `{"weight_map": {"a": 1}}`, "a", "not a string"},
		{"duplicate tensor", `{"weight_map": {"a": "s1.safetensors", "a": "s2.safetensors"}}`, "a", "appears twice"},
		{"duplicate weight_map", `{"weight_map": {}, "weight_map": {}}`, "", "twice"},
		{"metadata not object", `{"metadata": 5, "weight_map": {}}`, "", "metadata is a number"},
		{"metadata duplicate", `{"metadata": {"k": 1, "k": 2}, "weight_map": {}}`, "", "twice"},
		{"slash", `{"weight_map": {"a": "../s1.safetensors"}}`, "a", "path separator"},
		{"absolute", `{"weight_map": {"a": "/etc/passwd"}}`, "a", "path separator"},
		{"backslash", `{"weight_map": {"a": "..\\s1.safetensors"}}`, "a", "path separator"},
		{"dotdot", `{"weight_map": {"a": ".."}}`, "a", `".." is not a file`},
		{"dot", `{"weight_map": {"a": "."}}`, "a", "not a file"},
		{"empty name", `{"weight_map": {"a": ""}}`, "a", "empty file name"},
		{"NUL", `{"weight_map": {"a": "s1\u0000.safetensors"}}`, "a", "NUL"},
		{"drive", `{"weight_map": {"a": "C:s1.safetensors"}}`, "a", "not a plain local name"},
		{"missing file", `{"weight_map": {"a": "s1.safetensors", "b": "s3.safetensors"}}`, "b", `weight_map file "s3.safetensors"`},
		{"file lacks tensor", `{"weight_map": {"a": "s1.safetensors", "b": "s1.safetensors"}}`, "b", `"s1.safetensors" does not contain the tensor`},
		{"malformed shard", `{"weight_map": {"a": "s1.safetensors", "c": "bad.safetensors"}}`, "c", "header length"},
		{"directory shard", `{"weight_map": {"a": "sub"}}`, "a", "not a regular file"},
	}
}

func TestIndexErrors(t *testing.T) {
	dir := t.TempDir()
	writeShards(t, dir)
	os.Mkdir(filepath.Join(dir, "sub"), 0o755)
	idxPath := filepath.Join(dir, "model.safetensors.index.json")
	for _, c := range indexCases() {
		t.Run(c.name, func(t *testing.T) {
			if err := os.WriteFile(idxPath, []byte(c.index), 0o644); err != nil {
				t.Fatal(err)
			}
			s, err := OpenSharded(dir)
			if err == nil {
				s.Close()
				t.Fatalf("accepted %s", c.index)
			}
			checkErr(t, err, idxPath, c.tensor, c.want)
		})
	}
	// A missing shard is still recognisable.
	os.WriteFile(idxPath, []byte(`{"weight_map": {"b": "s3.safetensors"}}`), 0o644)
	if _, err := OpenSharded(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing shard error %v does not wrap ErrNotExist", err)
	}
	// A good index with extra keys and metadata of any JSON type.
	os.WriteFile(idxPath, []byte(`{"metadata": {"total_size": 12, "s": "x", "o": {"a": [1, 2]}}, "other": [1, {}],
		"weight_map": {"b": "s2.safetensors", "a": "s1.safetensors"}}`), 0o644)
	s, err := OpenSharded(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := s.Names(); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("names %q", got)
	}
	if m := s.Metadata(); m["total_size"] != "12" || m["s"] != "x" || m["o"] != `{"a":[1,2]}` {
		t.Errorf("metadata %q", m)
	}
	v, err := s.TensorF32("b")
	if err != nil || !slices.Equal(v, []float32{3}) {
		t.Errorf("b = %v, %v", v, err)
	}
	if f, ok := s.File("a"); !ok || filepath.Base(f.Path()) != "s1.safetensors" {
		t.Errorf("File(a) = %v", f)
	}
}
