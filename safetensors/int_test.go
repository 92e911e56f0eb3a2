package safetensors

import (
	"encoding/binary"
	"strings"
	"testing"

	"github.com/shoggo/shoggo/tensor"
)

func TestTensorI32(t *testing.T) {
	i32 := tensor.New(tensor.I32, 3)
	i32.Name = "a"
	for i, v := range []int32{-100, 0, 7} {
		binary.LittleEndian.PutUint32(i32.Bytes[4*i:], uint32(v))
	}
	i64 := tensor.New(tensor.I64, 2)
	i64.Name = "b"
	neg := int64(-5)
	binary.LittleEndian.PutUint64(i64.Bytes[0:], uint64(neg))
	binary.LittleEndian.PutUint64(i64.Bytes[8:], uint64(int64(151935)))
	big := tensor.New(tensor.I64, 1)
	big.Name = "big"
	binary.LittleEndian.PutUint64(big.Bytes, uint64(int64(1)<<40))
	f32 := tensor.New(tensor.F32, 1)
	f32.Name = "f"
	data, err := Marshal([]*tensor.Tensor{i32, i64, big, f32}, nil)
	if err != nil {
		t.Fatal(err)
	}
	f, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := f.TensorI32("a"); err != nil || got[0] != -100 || got[2] != 7 {
		t.Errorf("I32: %v %v", got, err)
	}
	if got, err := f.TensorI32("b"); err != nil || got[0] != -5 || got[1] != 151935 {
		t.Errorf("I64: %v %v", got, err)
	}
	if _, err := f.TensorI32("big"); err == nil || !strings.Contains(err.Error(), "big") {
		t.Errorf("out-of-range I64: %v", err)
	}
	if _, err := f.TensorI32("f"); err == nil {
		t.Error("F32 accepted")
	}
}
