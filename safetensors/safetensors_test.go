package safetensors

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"math/rand"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/shoggo/shoggo/tensor"
)

// rawOf returns the little-endian bytes of a tensor's storage.
func rawOf(t *tensor.Tensor) []byte {
	var buf bytes.Buffer
	if err := writeData(&buf, t); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

// randTensor makes a tensor of any dtype filled with random bits (float
// dtypes get random finite values plus a few specials).
func randTensor(r *rand.Rand, name string, dt tensor.DType, shape ...int) *tensor.Tensor {
	t := tensor.New(dt, shape...)
	t.Name = name
	switch dt {
	case tensor.F32:
		for i := range t.F32 {
			t.F32[i] = float32(r.NormFloat64())
		}
	case tensor.F64:
		for i := range t.F64 {
			t.F64[i] = r.NormFloat64()
		}
	case tensor.F16, tensor.BF16:
		for i := range t.U16 {
			t.U16[i] = uint16(r.Uint32())
		}
	case tensor.Bool:
		for i := range t.Bytes {
			t.Bytes[i] = byte(r.Intn(2))
		}
	default:
		r.Read(t.Bytes)
	}
	return t
}

var allDTypes = []tensor.DType{tensor.F32, tensor.F16, tensor.BF16, tensor.F64, tensor.I32, tensor.I64, tensor.U8, tensor.I8, tensor.Bool}

func TestRoundTripAllDTypes(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	var ts []*tensor.Tensor
	for i, dt := range allDTypes {
		ts = append(ts, randTensor(r, "w."+dt.String(), dt, 3, i+1))
		ts = append(ts, randTensor(r, "scalar."+dt.String(), dt))
		ts = append(ts, randTensor(r, "empty."+dt.String(), dt, 0, 5))
	}
	ts = append(ts, randTensor(r, "", tensor.F32, 2)) // the empty name is legal
	ts[0].F32[0] = float32(math.NaN())
	ts[0].F32[1] = float32(math.Inf(-1))
	meta := map[string]string{"format": "pt", "note": "héllo \"quoted\"\n\x01"}
	path := filepath.Join(t.TempDir(), "all.safetensors")
	if err := Write(path, ts, meta); err != nil {
		t.Fatal(err)
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var want []string
	for _, x := range ts {
		want = append(want, x.Name)
	}
	// Names are in offset order; empty tensors sort before a non-empty one at
	// the same offset, so compare as sets and check the offsets instead.
	if got := f.Names(); !slices.Equal(sorted(got), sorted(want)) {
		t.Fatalf("names %q, want %q", got, want)
	}
	if !equalMaps(f.Metadata(), meta) {
		t.Errorf("metadata %q, want %q", f.Metadata(), meta)
	}
	off := int64(0)
	for _, x := range ts {
		info, ok := f.Info(x.Name)
		if !ok {
			t.Fatalf("no info for %q", x.Name)
		}
		n := int64(len(rawOf(x)))
		if info.DType != x.DType || !info.Shape.Equal(x.Shape) || info.Begin != off || info.End != off+n {
			t.Errorf("%q: info %+v, want %s %v [%d,%d]", x.Name, info, x.DType, x.Shape, off, off+n)
		}
		off += n
		got, err := f.Tensor(x.Name)
		if err != nil {
			t.Fatal(err)
		}
		if got.Name != x.Name || got.DType != x.DType || !got.Shape.Equal(x.Shape) || !bytes.Equal(rawOf(got), rawOf(x)) {
			t.Errorf("%q: read back %v, want %v", x.Name, got, x)
		}
		raw, err := f.Raw(x.Name)
		if err != nil || !bytes.Equal(raw, rawOf(x)) {
			t.Errorf("%q: Raw differs (%v)", x.Name, err)
		}
		// Storage lands in the documented field.
		switch x.DType {
		case tensor.F32:
			if len(got.F32) != x.Numel() {
				t.Errorf("%q: F32 field has %d elements", x.Name, len(got.F32))
			}
		case tensor.F64:
			if len(got.F64) != x.Numel() {
				t.Errorf("%q: F64 field has %d elements", x.Name, len(got.F64))
			}
		case tensor.F16, tensor.BF16:
			if len(got.U16) != x.Numel() {
				t.Errorf("%q: U16 field has %d elements", x.Name, len(got.U16))
			}
		default:
			if len(got.Bytes) != x.Numel()*x.DType.Size() {
				t.Errorf("%q: Bytes field has %d bytes", x.Name, len(got.Bytes))
			}
		}
		f32, err := f.TensorF32(x.Name)
		if !x.DType.IsFloat() {
			if err == nil || !strings.Contains(err.Error(), x.Name) {
				t.Errorf("%q: TensorF32 of %s: err %v", x.Name, x.DType, err)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		wantF32, _ := tensor.ToF32(x)
		if !bytes.Equal(rawOf(tensor.FromF32(f32, len(f32))), rawOf(tensor.FromF32(wantF32, len(wantF32)))) {
			t.Errorf("%q: TensorF32 differs", x.Name)
		}
	}
	// The same bytes parse from memory.
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	m, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(m.Names(), f.Names()) {
		t.Errorf("Parse names %q, Open names %q", m.Names(), f.Names())
	}
	enc, err := Marshal(ts, meta)
	if err != nil || !bytes.Equal(enc, data) {
		t.Errorf("Marshal differs from Write (%v)", err)
	}
	if len(data) < 8 || binary.LittleEndian.Uint64(data)%8 != 0 {
		t.Errorf("header length not a multiple of 8")
	}
}

func sorted(s []string) []string { s = slices.Clone(s); slices.Sort(s); return s }

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// TestPythonBytes checks the exact bytes against what Python's safetensors
// (0.8.0, safetensors.numpy.save) writes for
//
//	{"a": float32 [1, -2], "b": float16 [1, 2, -3], "c": bool scalar True}
//	metadata {"format": "pt", "x<&>": "q\"\né\u2028\x01"}
//
// Python orders tensors by dtype (largest first) then name, which here is
// a, b, c. The header is compact JSON escaped as serde_json escapes
// (quote, backslash, controls with lowercase \u00xx; '<', '&', 'é' and
// U+2028 raw), 220 bytes padded with 4 spaces to 224 = 0xe0.
func TestPythonBytes(t *testing.T) {
	b := tensor.New(tensor.F16, 3)
	b.Name = "b"
	b.U16[0], b.U16[1], b.U16[2] = 0x3c00, 0x4000, 0xc200 // 1, 2, -3
	c := tensor.New(tensor.Bool)
	c.Name = "c"
	c.Bytes[0] = 1
	a := tensor.FromF32([]float32{1, -2}, 2)
	a.Name = "a"
	meta := map[string]string{"format": "pt", "x<&>": "q\"\n\u00e9\u2028\x01"}
	got, err := Marshal([]*tensor.Tensor{a, b, c}, meta)
	if err != nil {
		t.Fatal(err)
	}
	hdr := `{"__metadata__":{"format":"pt","x<&>":"q\"\n` + "\xc3\xa9\xe2\x80\xa8" + `\u0001"},` +
		`"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},` +
		`"b":{"dtype":"F16","shape":[3],"data_offsets":[8,14]},` +
		`"c":{"dtype":"BOOL","shape":[],"data_offsets":[14,15]}}`
	if len(hdr) != 220 {
		t.Fatalf("hand-counted header is %d bytes, want 220", len(hdr))
	}
	want := []byte{0xe0, 0, 0, 0, 0, 0, 0, 0}
	want = append(want, hdr+"    "...)
	want = append(want,
		0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0xc0, // 1.0f, -2.0f
		0x00, 0x3c, 0x00, 0x40, 0x00, 0xc2, // 1, 2, -3 in f16
		0x01) // true
	if !bytes.Equal(got, want) {
		t.Fatalf("bytes differ:\n got %q\nwant %q", got, want)
	}
	// And the reader reads Python's bytes back.
	f, err := Parse(want)
	if err != nil {
		t.Fatal(err)
	}
	v, err := f.TensorF32("b")
	if err != nil || !slices.Equal(v, []float32{1, 2, -3}) {
		t.Errorf("b = %v, %v", v, err)
	}
	if !equalMaps(f.Metadata(), meta) {
		t.Errorf("metadata %q", f.Metadata())
	}
	// No metadata, no tensors: "{}" padded to 8.
	got, err = Marshal(nil, nil)
	if err != nil || string(got) != "\x08\x00\x00\x00\x00\x00\x00\x00{}      " {
		t.Errorf("empty file %q, %v", got, err)
	}
}

// build assembles a file from a header string and a data buffer.
func build(hdr string, buf []byte) []byte {
	out := binary.LittleEndian.AppendUint64(nil, uint64(len(hdr)))
	out = append(out, hdr...)
	return append(out, buf...)
}

func withLen(n uint64, rest string) []byte {
	return append(binary.LittleEndian.AppendUint64(nil, n), rest...)
}

type badCase struct {
	name   string
	data   []byte
	tensor string // the tensor the error must name, if any
	want   string // a substring of the error
}

func badCases() []badCase {
	ok := func(name, dtype, shape, offs string) string {
		return `"` + name + `":{"dtype":"` + dtype + `","shape":` + shape + `,"data_offsets":` + offs + `}`
	}
	b16 := make([]byte, 16)
	return []badCase{
		{"empty file", nil, "", "shorter than the 8-byte"},
		{"7 bytes", []byte{1, 2, 3, 4, 5, 6, 7}, "", "shorter than the 8-byte"},
		{"header past end", withLen(100, "{}"), "", "runs past the end"},
		{"header length huge", withLen(math.MaxUint64, "{}"), "", "exceeds the limit"},
		{"header over limit", withLen(MaxHeaderSize+1, "{}"), "", "exceeds the limit"},
		{"header length zero", withLen(0, ""), "", "invalid JSON"},
		{"invalid JSON", build(`{"a":`, nil), "", "invalid JSON"},
		{"invalid JSON 2", build(`{"a" 1}`, nil), "", "invalid JSON"},
		{"trailing garbage", build(`{} x`, nil), "", "invalid JSON"},
		{"two objects", build(`{}{}`, nil), "", "invalid JSON"},
		{"NUL padding", build("{}\x00\x00", nil), "", "invalid JSON"},
		{"not UTF-8", build("{\"\xff\":1}", nil), "", "UTF-8"},
		{"array", build(`[]`, nil), "", "not a JSON object"},
		{"string", build(`"x"`, nil), "", "not a JSON object"},
		{"null", build(`null`, nil), "", "not a JSON object"},
		{"entry not object", build(`{"a":5}`, nil), "a", "not a JSON object"},
		{"entry array", build(`{"a":[1,2]}`, nil), "a", "not a JSON object"},
		{"no dtype", build(`{"a":{"shape":[1],"data_offsets":[0,4]}}`, b16), "a", `no "dtype"`},
		{"no shape", build(`{"a":{"dtype":"F32","data_offsets":[0,4]}}`, b16), "a", `no "shape"`},
		{"no offsets", build(`{"a":{"dtype":"F32","shape":[1]}}`, b16), "a", `no "data_offsets"`},
		{"dtype number", build(`{"a":{"dtype":3,"shape":[1],"data_offsets":[0,4]}}`, b16), "a", "not a string"},
		{"unknown dtype", build(`{`+ok("a", "F99", "[1]", "[0,4]")+`}`, b16), "a", `unknown dtype "F99"`},
		{"lowercase dtype", build(`{`+ok("a", "f32", "[1]", "[0,4]")+`}`, b16), "a", `unknown dtype "f32"`},
		{"unsupported dtype", build(`{`+ok("a", "I16", "[2]", "[0,4]")+`}`, b16), "a", "not supported"},
		{"shape not array", build(`{`+ok("a", "F32", "4", "[0,4]")+`}`, b16), "a", "not an array"},
		{"negative dim", build(`{`+ok("a", "F32", "[-1]", "[0,4]")+`}`, b16), "a", "negative"},
		{"float dim", build(`{`+ok("a", "F32", "[1.0]", "[0,4]")+`}`, b16), "a", "not an integer"},
		{"exp dim", build(`{`+ok("a", "F32", "[1e0]", "[0,4]")+`}`, b16), "a", "not an integer"},
		{"string dim", build(`{`+ok("a", "F32", `["1"]`, "[0,4]")+`}`, b16), "a", "not an integer"},
		{"dim overflows uint64", build(`{`+ok("a", "F32", "[18446744073709551616]", "[0,4]")+`}`, b16), "a", "overflows"},
		{"dim overflows int", build(`{`+ok("a", "F32", "[9223372036854775808]", "[0,4]")+`}`, b16), "a", "overflows"},
		{"shape product overflows", build(`{`+ok("a", "F32", "[4294967296,4294967296,4294967296]", "[0,4]")+`}`, b16), "a", "overflows"},
		{"shape bytes overflow", build(`{`+ok("a", "F64", "[4611686018427387904]", "[0,4]")+`}`, b16), "a", "overflows"},
		{"offsets one", build(`{`+ok("a", "F32", "[1]", "[4]")+`}`, b16), "a", "2 [begin, end]"},
		{"offsets three", build(`{`+ok("a", "F32", "[1]", "[0,4,8]")+`}`, b16), "a", "2 [begin, end]"},
		{"offsets negative", build(`{`+ok("a", "F32", "[1]", "[-4,0]")+`}`, b16), "a", "negative"},
		{"offsets object", build(`{`+ok("a", "F32", "[1]", `{"b":0}`)+`}`, b16), "a", "not an array"},
		{"begin after end", build(`{`+ok("a", "F32", "[0]", "[8,4]")+`}`, b16), "a", "begin is after end"},
		{"end past buffer", build(`{`+ok("a", "F32", "[5]", "[0,20]")+`}`, b16), "a", "past the end"},
		{"end past buffer huge", build(`{`+ok("a", "F32", "[1]", "[18446744073709551615,18446744073709551615]")+`}`, b16), "a", "overflows"},
		{"size mismatch", build(`{`+ok("a", "F32", "[2]", "[0,12]")+`}`, b16), "a", "needs 8 bytes"},
		{"size mismatch dtype", build(`{`+ok("a", "BF16", "[2]", "[0,8]")+`}`, b16), "a", "needs 4 bytes"},
		{"overlap", build(`{`+ok("a", "F32", "[2]", "[0,8]")+`,`+ok("b", "F32", "[2]", "[4,12]")+`}`, b16), "b", `overlap those of tensor "a"`},
		{"same range", build(`{`+ok("a", "F32", "[2]", "[0,8]")+`,`+ok("b", "U8", "[8]", "[0,8]")+`}`, b16), "b", "overlap"},
		{"contained", build(`{`+ok("a", "U8", "[16]", "[0,16]")+`,`+ok("b", "U8", "[2]", "[4,6]")+`}`, b16), "b", "overlap"},
		{"duplicate name", build(`{`+ok("a", "F32", "[2]", "[0,8]")+`,`+ok("a", "F32", "[2]", "[8,16]")+`}`, b16), "a", "name appears twice"},
		{"duplicate field", build(`{"a":{"dtype":"F32","dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, b16), "a", `key "dtype" twice`},
		{"metadata not object", build(`{"__metadata__":[]}`, nil), "", "__metadata__ is an array"},
		{"metadata value number", build(`{"__metadata__":{"k":1}}`, nil), "", "not a string"},
		{"metadata value null", build(`{"__metadata__":{"k":null}}`, nil), "", "not a string"},
		{"metadata duplicate key", build(`{"__metadata__":{"k":"1","k":"2"}}`, nil), "", `key "k": appears twice`},
		{"metadata twice", build(`{"__metadata__":{},"__metadata__":{}}`, nil), "", "twice"},
	}
}

func TestMalformed(t *testing.T) {
	dir := t.TempDir()
	for i, c := range badCases() {
		t.Run(c.name, func(t *testing.T) {
			if _, err := Parse(c.data); err == nil {
				t.Fatalf("Parse accepted %q", c.data)
			} else {
				checkErr(t, err, memoryName, c.tensor, c.want)
			}
			path := filepath.Join(dir, "bad"+string(rune('a'+i%26))+c.name+".safetensors")
			if err := os.WriteFile(path, c.data, 0o644); err != nil {
				t.Fatal(err)
			}
			f, err := Open(path)
			if err == nil {
				f.Close()
				t.Fatalf("Open accepted %q", c.data)
			}
			checkErr(t, err, path, c.tensor, c.want)
		})
	}
}

func checkErr(t *testing.T, err error, file, tensorName, want string) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v is not an *Error", err)
	}
	msg := err.Error()
	if !strings.Contains(msg, file) {
		t.Errorf("error %q does not name file %q", msg, file)
	}
	if tensorName != "" && (!e.HasTensor || e.Tensor != tensorName || !strings.Contains(msg, `tensor "`+tensorName+`"`)) {
		t.Errorf("error %q does not name tensor %q", msg, tensorName)
	}
	if !strings.Contains(msg, want) {
		t.Errorf("error %q does not say %q", msg, want)
	}
}

// TestPermissive checks inputs that are legal (some beyond what the
// reference reader allows).
func TestPermissive(t *testing.T) {
	buf := make([]byte, 32)
	for i := range buf {
		buf[i] = byte(i)
	}
	cases := []struct {
		name  string
		data  []byte
		names []string
	}{
		{"empty header", build(`{}`, nil), nil},
		{"whitespace", build(" \n{ }\t\r\n   ", nil), nil},
		{"gap and trailing bytes", build(`{"b":{"dtype":"U8","shape":[2],"data_offsets":[10,12]},"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}}`, buf), []string{"a", "b"}},
		{"empty tensors share offsets", build(`{"a":{"dtype":"F32","shape":[0],"data_offsets":[4,4]},"b":{"dtype":"F32","shape":[3,0],"data_offsets":[4,4]},"c":{"dtype":"U8","shape":[8],"data_offsets":[0,8]}}`, buf), []string{"c", "a", "b"}},
		{"unknown fields", build(`{"a":{"extra":{"x":[1,{"y":null}]},"dtype":"I32","shape":[],"data_offsets":[0,4],"more":true}}`, buf), []string{"a"}},
		{"metadata null", build(`{"__metadata__":null,"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}`, buf), []string{"a"}},
		{"metadata last", build(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"__metadata__":{"k":"v"}}`, buf), []string{"a"}},
		{"zero dim with huge dim", build(`{"a":{"dtype":"F32","shape":[0,`+strconv.Itoa(math.MaxInt)+`],"data_offsets":[0,0]}}`, nil), []string{"a"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, err := Parse(c.data)
			if err != nil {
				t.Fatal(err)
			}
			if got := f.Names(); !slices.Equal(got, c.names) && !(len(got) == 0 && len(c.names) == 0) {
				t.Errorf("names %q, want %q", got, c.names)
			}
			for _, n := range f.Names() {
				if _, err := f.Tensor(n); err != nil {
					t.Error(err)
				}
			}
		})
	}
	f, err := Parse(cases[2].data)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := f.Tensor("b")
	if !bytes.Equal(b.Bytes, []byte{10, 11}) {
		t.Errorf("b = %v", b.Bytes)
	}
}

func TestLookupErrors(t *testing.T) {
	a := tensor.FromF32([]float32{1, 2, 3, 4, 5, 6}, 2, 3)
	a.Name = "a"
	i := tensor.New(tensor.I32, 2)
	i.Name = "i"
	path := filepath.Join(t.TempDir(), "m.safetensors")
	if err := Write(path, []*tensor.Tensor{a, i}, nil); err != nil {
		t.Fatal(err)
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if f.Metadata() != nil {
		t.Errorf("metadata %v, want nil", f.Metadata())
	}
	if _, err := f.Tensor("nope"); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), `"nope"`) || !strings.Contains(err.Error(), path) {
		t.Errorf("missing tensor: %v", err)
	}
	if _, ok := f.Info("nope"); ok {
		t.Error("Info found a missing tensor")
	}
	// ReadInto: conversion, shape and dtype errors.
	dst := tensor.New(tensor.BF16, 2, 3)
	if err := f.ReadInto("a", dst); err != nil {
		t.Fatal(err)
	}
	if dst.At(5) != 6 {
		t.Errorf("ReadInto BF16 got %v", dst.At(5))
	}
	d64 := tensor.New(tensor.F64, 2, 3)
	if err := f.ReadInto("a", d64); err != nil || d64.F64[4] != 5 {
		t.Errorf("ReadInto F64: %v %v", err, d64.F64)
	}
	if err := f.ReadInto("a", tensor.New(tensor.F32, 3, 2)); err == nil || !strings.Contains(err.Error(), "[2, 3]") || !strings.Contains(err.Error(), "[3, 2]") || !strings.Contains(err.Error(), `"a"`) {
		t.Errorf("shape mismatch: %v", err)
	}
	if err := f.ReadInto("i", tensor.New(tensor.F32, 2)); err == nil || !strings.Contains(err.Error(), "I32") {
		t.Errorf("dtype mismatch: %v", err)
	}
	if err := f.ReadInto("i", tensor.New(tensor.I32, 2)); err != nil {
		t.Error(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Tensor("a"); !errors.Is(err, ErrClosed) {
		t.Errorf("after Close: %v", err)
	}
	if _, err := Open(filepath.Join(t.TempDir(), "missing")); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	if _, err := Open(t.TempDir()); err == nil {
		t.Error("opened a directory")
	}
}

func TestWriteErrors(t *testing.T) {
	a := tensor.FromF32([]float32{1, 2}, 2)
	a.Name = "a"
	bad := tensor.FromF32([]float32{1, 2}, 2)
	bad.Name = "bad"
	bad.Shape = tensor.Shape{3}
	neg := &tensor.Tensor{Name: "neg", DType: tensor.U8, Shape: tensor.Shape{-1}}
	wrongField := &tensor.Tensor{Name: "wf", DType: tensor.F16, Shape: tensor.Shape{2}, F32: []float32{1, 2}}
	cases := []struct {
		name    string
		tensors []*tensor.Tensor
		meta    map[string]string
		want    string
	}{
		{"duplicate", []*tensor.Tensor{a, a}, nil, `tensor "a": name appears twice`},
		{"storage mismatch", []*tensor.Tensor{a, bad}, nil, `tensor "bad": shape [3] holds 3 elements`},
		{"negative", []*tensor.Tensor{neg}, nil, `tensor "neg": negative`},
		{"wrong field", []*tensor.Tensor{wrongField}, nil, `tensor "wf"`},
		{"reserved", []*tensor.Tensor{{Name: metadataKey, DType: tensor.U8, Bytes: []byte{1}}}, nil, "reserved"},
		{"bad utf8", []*tensor.Tensor{{Name: "\xff", DType: tensor.U8, Bytes: []byte{1}}}, nil, "UTF-8"},
		{"bad dtype", []*tensor.Tensor{{Name: "x", DType: 99, Bytes: []byte{1}}}, nil, "dtype"},
		{"nil", []*tensor.Tensor{nil}, nil, "nil"},
		{"bad metadata", []*tensor.Tensor{a}, map[string]string{"k": "\xff"}, "UTF-8"},
	}
	dir := t.TempDir()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(dir, "out.safetensors")
			err := Write(path, c.tensors, c.meta)
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), path) {
				t.Errorf("error %v, want %q and the path", err, c.want)
			}
			if _, err := os.Stat(path); err == nil {
				t.Error("a file was left behind")
			}
		})
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("temporary files left: %v", ents)
	}
}

func TestWriteReplacesAtomically(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "m.safetensors")
	for i := range 3 {
		a := tensor.FromF32(make([]float32, i+1), i+1)
		a.Name = "a"
		if err := Write(path, []*tensor.Tensor{a}, nil); err != nil {
			t.Fatal(err)
		}
		f, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		if info, _ := f.Info("a"); info.Shape[0] != i+1 {
			t.Errorf("shape %v after write %d", info.Shape, i)
		}
		f.Close()
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("directory holds %v", ents)
	}
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, %v", st.Mode(), err)
	}
	// A write into a missing directory fails with the path named.
	if err := Write(filepath.Join(dir, "no", "x.safetensors"), nil, nil); err == nil || !strings.Contains(err.Error(), "x.safetensors") {
		t.Errorf("missing dir: %v", err)
	}
}

// TestViews writes arena views (storage slices into a larger allocation).
func TestViews(t *testing.T) {
	ar, err := tensor.NewArena(tensor.F32, []tensor.Spec{{Name: "x", Shape: tensor.Shape{3}}, {Name: "y", Shape: tensor.Shape{2, 2}}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range ar.Flat().F32 {
		ar.Flat().F32[i] = float32(i)
	}
	data, err := Marshal(ar.Tensors(), nil)
	if err != nil {
		t.Fatal(err)
	}
	f, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	y, _ := f.TensorF32("y")
	if !slices.Equal(y, ar.Get("y").F32) {
		t.Errorf("y = %v, want %v", y, ar.Get("y").F32)
	}
	// Read back into a zeroed arena.
	ar2, _ := tensor.NewArena(tensor.F32, []tensor.Spec{{Name: "x", Shape: tensor.Shape{3}}, {Name: "y", Shape: tensor.Shape{2, 2}}})
	for _, v := range ar2.Tensors() {
		if err := f.ReadInto(v.Name, v); err != nil {
			t.Fatal(err)
		}
	}
	if !slices.Equal(ar2.Get("y").F32, ar.Get("y").F32) || !slices.Equal(ar2.Get("x").F32, ar.Get("x").F32) {
		t.Error("ReadInto arena differs")
	}
}
