package safetensors

import (
	"bytes"
	"math/rand"
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
