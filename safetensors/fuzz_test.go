package safetensors

import (
	"bytes"
	"math/rand"
	"strconv"
	"testing"

	"github.com/shoggo/shoggo/tensor"
)

// FuzzParse feeds arbitrary bytes to the reader. Whatever it accepts must be
// readable tensor by tensor and must survive a write and a second read with
// identical names, infos, metadata and bytes.
func FuzzParse(f *testing.F) {
	r := rand.New(rand.NewSource(3))
	var ts []*tensor.Tensor
	for i, dt := range allDTypes {
		ts = append(ts, randTensor(r, "t"+dt.String(), dt, 2, i%3+1))
	}
	ts = append(ts, randTensor(r, "scalar", tensor.F32), randTensor(r, "empty", tensor.BF16, 0, 3))
	good, err := Marshal(ts, map[string]string{"format": "pt"})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[:len(good)-1])
	f.Add(good[:20])
	one, _ := Marshal(ts[:1], nil)
	f.Add(one)
	f.Add(build(`{}`, nil))
	f.Add(build(`{"a":{"dtype":"U8","shape":[2],"data_offsets":[3,5]},"b":{"dtype":"F16","shape":[],"data_offsets":[0,2]}}`, make([]byte, 9)))
	for _, c := range badCases() {
		f.Add(c.data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Parse(data)
		if err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("error %v is %T, not *Error", err, err)
			}
			return
		}
		names := file.Names()
		if len(names) != file.Len() {
			t.Fatalf("%d names, %d tensors", len(names), file.Len())
		}
		var read []*tensor.Tensor
		for _, n := range names {
			info, ok := file.Info(n)
			if !ok {
				t.Fatalf("no info for listed tensor %q", n)
			}
			x, err := file.Tensor(n)
			if err != nil {
				t.Fatal(err)
			}
			raw, err := file.Raw(n)
			if err != nil || int64(len(raw)) != info.Size() || !bytes.Equal(raw, rawOf(x)) {
				t.Fatalf("%q: Raw and Tensor disagree (%v)", n, err)
			}
			if info.DType.IsFloat() {
				v, err := file.TensorF32(n)
				if err != nil || len(v) != info.Numel() {
					t.Fatalf("%q: TensorF32: %d values, %v", n, len(v), err)
				}
				dst := tensor.New(tensor.BF16, info.Shape...)
				if err := file.ReadInto(n, dst); err != nil {
					t.Fatal(err)
				}
			}
			read = append(read, x)
		}
		again, err := Marshal(read, file.Metadata())
		if err != nil {
			t.Fatalf("re-encoding a file that parsed: %v", err)
		}
		file2, err := Parse(again)
		if err != nil {
			t.Fatalf("re-encoded file does not parse: %v", err)
		}
		if !equalMaps(file.Metadata(), file2.Metadata()) {
			t.Fatalf("metadata %q became %q", file.Metadata(), file2.Metadata())
		}
		if file2.Len() != len(read) {
			t.Fatalf("%d tensors became %d", len(read), file2.Len())
		}
		for _, x := range read {
			y, err := file2.Tensor(x.Name)
			if err != nil {
				t.Fatal(err)
			}
			if y.DType != x.DType || !y.Shape.Equal(x.Shape) || !bytes.Equal(rawOf(x), rawOf(y)) {
				t.Fatalf("%q changed in a round trip", x.Name)
			}
		}
		if err := file.Close(); err != nil {
			t.Fatal(err)
		}
	})
}

// FuzzIndex feeds arbitrary bytes to the model.safetensors.index.json parser.
func FuzzIndex(f *testing.F) {
	f.Add([]byte(`{"metadata": {"total_size": 368}, "weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}`))
	f.Add([]byte(`{"weight_map": {}}`))
	f.Add([]byte(`{"metadata": null, "extra": [1, {"x": [[]]}], "weight_map": {"a\u0000": "x"}}`))
	for _, c := range indexCases() {
		f.Add([]byte(c.index))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		idx, err := parseIndex("index.json", data)
		if err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("error %v is %T, not *Error", err, err)
			}
			return
		}
		if idx.weightMap == nil {
			t.Fatal("accepted an index without a weight_map")
		}
		for name, fn := range idx.weightMap {
			if err := checkShardName(fn); err != nil {
				t.Fatalf("accepted file name %q for %q: %v", fn, name, err)
			}
		}
	})
}

// FuzzHeader builds well-formed JSON headers from fuzzed fields, to reach the
// shape, size and offset checks that random bytes rarely get past the JSON
// syntax to. Whatever parses must obey the invariants the reader promises.
func FuzzHeader(f *testing.F) {
	f.Add("a", "F32", uint64(2), uint64(3), uint64(0), uint64(24), "b", "U8", uint64(24), uint64(25), uint16(25))
	f.Add("a", "BF16", uint64(0), uint64(1<<62), uint64(4), uint64(4), "a", "F16", uint64(0), uint64(2), uint16(4))
	f.Add("x", "I64", uint64(1<<32), uint64(1<<32), uint64(0), uint64(8), "y", "BOOL", uint64(8), uint64(8), uint16(8))
	f.Fuzz(func(t *testing.T, n1, dt1 string, d0, d1, b1, e1 uint64, n2, dt2 string, b2, e2 uint64, bufLen uint16) {
		entry := func(b []byte, name, dt string, shape []uint64, begin, end uint64) []byte {
			b = appendJSONString(b, name)
			b = append(b, `:{"dtype":`...)
			b = appendJSONString(b, dt)
			b = append(b, `,"shape":[`...)
			for i, d := range shape {
				if i > 0 {
					b = append(b, ',')
				}
				b = strconv.AppendUint(b, d, 10)
			}
			b = append(b, `],"data_offsets":[`...)
			b = strconv.AppendUint(b, begin, 10)
			b = append(b, ',')
			b = strconv.AppendUint(b, end, 10)
			return append(b, "]}"...)
		}
		hdr := []byte{'{'}
		hdr = entry(hdr, n1, dt1, []uint64{d0, d1}, b1, e1)
		hdr = append(hdr, ',')
		hdr = entry(hdr, n2, dt2, []uint64{d1 % 7}, b2, e2)
		hdr = append(hdr, '}')
		file, err := Parse(build(string(hdr), make([]byte, bufLen)))
		if err != nil {
			return
		}
		infos := file.Infos()
		for i, info := range infos {
			if info.Begin > info.End || info.End > int64(bufLen) {
				t.Fatalf("accepted offsets [%d, %d] in a %d-byte buffer", info.Begin, info.End, bufLen)
			}
			if int64(info.Numel())*int64(info.DType.Size()) != info.Size() {
				t.Fatalf("accepted %v of %s in %d bytes", info.Shape, info.DType, info.Size())
			}
			if i > 0 && info.Size() > 0 && infos[i-1].Size() > 0 && info.Begin < infos[i-1].End {
				t.Fatalf("accepted overlapping %+v and %+v", infos[i-1], info)
			}
			if _, err := file.Tensor(info.Name); err != nil {
				t.Fatal(err)
			}
		}
	})
}
