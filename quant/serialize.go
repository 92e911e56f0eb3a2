package quant

import (
	"errors"
	"fmt"
	"math"
	"unsafe"

	"github.com/shoggo/shoggo/safetensors"
	"github.com/shoggo/shoggo/tensor"
)

// Tensor name suffixes of the on-disk layout (see the package doc).
const (
	sfxWeight         = ".weight"
	sfxBias           = ".bias"
	sfxAbsmax         = ".weight.absmax"
	sfxQuantMap       = ".weight.quant_map"
	sfxNestedAbsmax   = ".weight.nested_absmax"
	sfxNestedQuantMap = ".weight.nested_quant_map"
	sfxStateBnb       = ".weight.quant_state.bitsandbytes__" // + nf4 | fp4
	sfxStateInt4      = ".weight.quant_state.shoggo__int4"
	sfxSCB            = ".SCB"
	sfxWeightFormat   = ".weight_format"
	sfxScales         = ".weight.scales"
	sfxZeros          = ".weight.zeros"
)

func u8Tensor(name string, b []byte, shape ...int) *tensor.Tensor {
	return &tensor.Tensor{Name: name, Shape: tensor.Shape(shape).Clone(), DType: tensor.U8, Bytes: b}
}

func f32Tensor(name string, v []float32, shape ...int) *tensor.Tensor {
	t := tensor.FromF32(v, shape...)
	t.Name = name
	return t
}

func int8Bytes(q []int8) []byte {
	if len(q) == 0 {
		return []byte{}
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&q[0])), len(q))
}

func bytesInt8(b []byte) []int8 {
	if len(b) == 0 {
		return []int8{}
	}
	return unsafe.Slice((*int8)(unsafe.Pointer(&b[0])), len(b))
}

// Tensors returns the layer's tensors for a safetensors file, named after
// name (l.Name when name is ""), in the layout of the package doc. They
// share storage with the layer.
func (l *Linear) Tensors(name string) []*tensor.Tensor {
	if name == "" {
		name = l.Name
	}
	var ts []*tensor.Tensor
	switch w := l.W.(type) {
	case *Weight4:
		s := w.st
		ts = append(ts, u8Tensor(name+sfxWeight, w.packed, len(w.packed), 1))
		qs := &QuantState{QuantType: s.QuantType, BlockSize: s.BlockSize, DType: "float32", Shape: s.Shape}
		if s.Nested() {
			off := float64(s.Offset)
			qs.NestedBlockSize, qs.NestedDType, qs.NestedOffset = s.NestedBlockSize, "float32", &off
			ts = append(ts,
				u8Tensor(name+sfxAbsmax, s.QAbsmax, len(s.QAbsmax)),
				f32Tensor(name+sfxNestedAbsmax, s.Absmax2, len(s.Absmax2)),
				f32Tensor(name+sfxNestedQuantMap, s.NestedCode, len(s.NestedCode)))
		} else {
			ts = append(ts, f32Tensor(name+sfxAbsmax, s.Absmax, len(s.Absmax)))
		}
		code := w.c.code
		ts = append(ts, f32Tensor(name+sfxQuantMap, code[:], 16))
		js := qs.marshal()
		ts = append(ts, u8Tensor(name+sfxStateBnb+s.QuantType, js, len(js)))
	case *Int8Weight:
		ts = append(ts,
			&tensor.Tensor{Name: name + sfxWeight, Shape: tensor.Shape{w.out, w.in}, DType: tensor.I8, Bytes: int8Bytes(w.Q)},
			f32Tensor(name+sfxSCB, w.SCB, w.out),
			u8Tensor(name+sfxWeightFormat, []byte{0}))
	case *Int4Weight:
		sym := w.Symmetric()
		qs := &QuantState{QuantType: Int4, DType: "float32", Shape: []int{w.out, w.in}, GroupSize: w.GroupSize, Symmetric: &sym}
		js := qs.marshal()
		ts = append(ts,
			u8Tensor(name+sfxWeight, w.Packed, w.out, w.RowBytes()),
			f32Tensor(name+sfxScales, w.Scales, w.out, w.Groups()))
		if !sym {
			ts = append(ts, u8Tensor(name+sfxZeros, w.Zeros, w.out, w.Groups()))
		}
		ts = append(ts, u8Tensor(name+sfxStateInt4, js, len(js)))
	default:
		panic(fmt.Sprintf("quant: Tensors of unknown weight type %T", l.W))
	}
	if l.B != nil {
		ts = append(ts, f32Tensor(name+sfxBias, l.B.F32, len(l.B.F32)))
	}
	return ts
}

// IsQuantized reports whether r holds a quantized layer under name (by the
// presence of its bitsandbytes or shoggo state tensors).
func IsQuantized(r safetensors.Reader, name string) bool {
	for _, s := range []string{sfxStateBnb + NF4, sfxStateBnb + FP4, sfxStateInt4, sfxSCB} {
		if _, ok := r.Info(name + s); ok {
			return true
		}
	}
	return false
}

// LoadLinear reads the quantized layer name from r: NF4/FP4 in bitsandbytes'
// layout (as transformers saves Linear4bit), int8 in bitsandbytes' layout
// (Linear8bitLt), or shoggo's int4. Every size is checked against the
// metadata; a disagreement is an *Error naming the tensor.
func LoadLinear(r safetensors.Reader, name string) (*Linear, error) {
	var (
		w   Weight
		err error
	)
	_, hasNF4 := r.Info(name + sfxStateBnb + NF4)
	_, hasFP4 := r.Info(name + sfxStateBnb + FP4)
	_, hasInt4 := r.Info(name + sfxStateInt4)
	_, hasSCB := r.Info(name + sfxSCB)
	count := 0
	for _, b := range []bool{hasNF4, hasFP4, hasInt4, hasSCB} {
		if b {
			count++
		}
	}
	switch {
	case count > 1:
		return nil, tensorErr(name+sfxWeight, "more than one quantization state (nf4, fp4, int4, int8 SCB) is stored for this weight")
	case hasNF4:
		w, err = load4(r, name, NF4)
	case hasFP4:
		w, err = load4(r, name, FP4)
	case hasInt4:
		w, err = loadInt4(r, name)
	case hasSCB:
		w, err = loadInt8(r, name)
	default:
		if _, ok := r.Info(name + sfxWeight); ok {
			return nil, tensorErr(name+sfxWeight, "no quantization state: expected %s, %s or %s", name+sfxStateBnb+"nf4", name+sfxStateInt4, name+sfxSCB)
		}
		return nil, tensorErr(name+sfxWeight, "not found")
	}
	if err != nil {
		return nil, err
	}
	out, _ := w.Dims()
	l := &Linear{Name: name, W: w}
	if _, ok := r.Info(name + sfxBias); ok {
		b, err := readF32(r, name+sfxBias, out)
		if err != nil {
			return nil, err
		}
		l.B = f32Tensor(name+sfxBias, b, out)
	}
	return l, nil
}

// read returns the named tensor, checking its dtype and element count
// (count < 0: any).
func read(r safetensors.Reader, name string, dt tensor.DType, count int) (*tensor.Tensor, error) {
	info, ok := r.Info(name)
	if !ok {
		return nil, tensorErr(name, "missing")
	}
	if info.DType != dt {
		return nil, tensorErr(name, "dtype %s, want %s", info.DType, dt)
	}
	if count >= 0 && info.Numel() != count {
		return nil, tensorErr(name, "%d elements (shape %v), want %d", info.Numel(), info.Shape, count)
	}
	t, err := r.Tensor(name)
	if err != nil {
		return nil, &Error{Tensor: name, Err: err}
	}
	return t, nil
}

func readF32(r safetensors.Reader, name string, count int) ([]float32, error) {
	t, err := read(r, name, tensor.F32, count)
	if err != nil {
		return nil, err
	}
	return t.F32, nil
}

func readState(r safetensors.Reader, name string) (*QuantState, error) {
	t, err := read(r, name, tensor.U8, -1)
	if err != nil {
		return nil, err
	}
	qs, err := ParseQuantState(t.Bytes)
	if err != nil {
		return nil, &Error{Tensor: name, Err: err}
	}
	return qs, nil
}

func load4(r safetensors.Reader, name, qt string) (Weight, error) {
	stName := name + sfxStateBnb + qt
	qs, err := readState(r, stName)
	if err != nil {
		return nil, err
	}
	if qs.QuantType != qt {
		return nil, tensorErr(stName, "quant_type %q in a %s state", qs.QuantType, qt)
	}
	if len(qs.Shape) != 2 {
		return nil, tensorErr(stName, "shape %v is not (out, in)", qs.Shape)
	}
	st := &State4{QuantType: qt, Shape: qs.Shape, BlockSize: qs.BlockSize}
	n := numel(qs.Shape)
	nb := ceilDiv(n, qs.BlockSize)
	wt, err := read(r, name+sfxWeight, tensor.U8, (n+1)/2)
	if err != nil {
		if e := (*Error)(nil); errors.As(err, &e) {
			e.Err = fmt.Errorf("%w (packed codes of shape %v)", e.Err, qs.Shape)
		}
		return nil, err
	}
	qm, err := readF32(r, name+sfxQuantMap, 16)
	if err != nil {
		return nil, err
	}
	ref := code4For(qt).code
	for i, v := range qm {
		if !(math.Abs(float64(v-ref[i])) <= 1e-6) {
			return nil, tensorErr(name+sfxQuantMap, "value %d is %v, but the %s code has %v", i, v, qt, ref[i])
		}
	}
	if qs.Nested() {
		q, err := read(r, name+sfxAbsmax, tensor.U8, nb)
		if err != nil {
			return nil, err
		}
		st.QAbsmax = q.Bytes
		st.NestedBlockSize = qs.NestedBlockSize
		st.Offset = float32(*qs.NestedOffset)
		if st.Absmax2, err = readF32(r, name+sfxNestedAbsmax, ceilDiv(nb, qs.NestedBlockSize)); err != nil {
			return nil, err
		}
		if st.NestedCode, err = readF32(r, name+sfxNestedQuantMap, 256); err != nil {
			return nil, err
		}
	} else {
		if _, ok := r.Info(name + sfxNestedAbsmax); ok {
			return nil, tensorErr(name+sfxNestedAbsmax, "present, but %s has no nested_offset", stName)
		}
		if st.Absmax, err = readF32(r, name+sfxAbsmax, nb); err != nil {
			return nil, err
		}
	}
	w, err := NewWeight4(wt.Bytes, st)
	if err != nil {
		return nil, &Error{Tensor: stName, Err: err}
	}
	return w, nil
}

func loadInt8(r safetensors.Reader, name string) (Weight, error) {
	info, ok := r.Info(name + sfxWeight)
	if !ok {
		return nil, tensorErr(name+sfxWeight, "missing")
	}
	if len(info.Shape) != 2 {
		return nil, tensorErr(name+sfxWeight, "shape %v is not (out, in)", info.Shape)
	}
	out, in := info.Shape[0], info.Shape[1]
	wt, err := read(r, name+sfxWeight, tensor.I8, out*in)
	if err != nil {
		return nil, err
	}
	scb, err := readF32(r, name+sfxSCB, out)
	if err != nil {
		return nil, err
	}
	if _, ok := r.Info(name + sfxWeightFormat); ok {
		f, err := read(r, name+sfxWeightFormat, tensor.U8, 1)
		if err != nil {
			return nil, err
		}
		if f.Bytes[0] != 0 {
			return nil, tensorErr(name+sfxWeightFormat, "weight format %d; only 0 (row-major) is supported", f.Bytes[0])
		}
	}
	w, err := NewInt8Weight(bytesInt8(wt.Bytes), scb, out, in)
	if err != nil {
		return nil, &Error{Tensor: name + sfxWeight, Err: err}
	}
	return w, nil
}

func loadInt4(r safetensors.Reader, name string) (Weight, error) {
	stName := name + sfxStateInt4
	qs, err := readState(r, stName)
	if err != nil {
		return nil, err
	}
	if qs.QuantType != Int4 {
		return nil, tensorErr(stName, "quant_type %q in an int4 state", qs.QuantType)
	}
	out, in := qs.Shape[0], qs.Shape[1]
	groups := ceilDiv(in, qs.GroupSize)
	wt, err := read(r, name+sfxWeight, tensor.U8, out*((in+1)/2))
	if err != nil {
		return nil, err
	}
	scales, err := readF32(r, name+sfxScales, out*groups)
	if err != nil {
		return nil, err
	}
	var zeros []uint8
	if !*qs.Symmetric {
		z, err := read(r, name+sfxZeros, tensor.U8, out*groups)
		if err != nil {
			return nil, err
		}
		zeros = z.Bytes
	} else if _, ok := r.Info(name + sfxZeros); ok {
		return nil, tensorErr(name+sfxZeros, "present, but %s says symmetric", stName)
	}
	w, err := NewInt4Weight(wt.Bytes, scales, zeros, qs.GroupSize, out, in)
	if err != nil {
		return nil, &Error{Tensor: name + sfxZeros, Err: err}
	}
	return w, nil
}
