package quant

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Error is a problem with a quantized layer's stored tensors or metadata;
// Tensor names the tensor at fault.
type Error struct {
	Tensor string
	Err    error
}

func (e *Error) Error() string { return fmt.Sprintf("quant: tensor %q: %v", e.Tensor, e.Err) }

func (e *Error) Unwrap() error { return e.Err }

func tensorErr(name, format string, args ...any) error {
	return &Error{Tensor: name, Err: fmt.Errorf(format, args...)}
}

// QuantState is the JSON object stored (as UTF-8 bytes in a U8 tensor) in
// "<layer>.weight.quant_state.bitsandbytes__nf4" (or __fp4) by bitsandbytes'
// QuantState.as_dict(packed=True), and by shoggo in
// "<layer>.weight.quant_state.shoggo__int4" for int4 weights.
type QuantState struct {
	QuantType string `json:"quant_type"`          // nf4, fp4 or int4
	BlockSize int    `json:"blocksize,omitempty"` // nf4/fp4
	DType     string `json:"dtype"`               // dtype of the unquantized tensor
	Shape     []int  `json:"shape"`

	// Double quantization (nf4/fp4 only).
	NestedBlockSize int      `json:"nested_blocksize,omitempty"`
	NestedDType     string   `json:"nested_dtype,omitempty"`
	NestedOffset    *float64 `json:"nested_offset,omitempty"`

	// int4 only (shoggo).
	GroupSize int   `json:"group_size,omitempty"`
	Symmetric *bool `json:"symmetric,omitempty"`
}

// Nested reports whether the state describes a double-quantized absmax.
func (q *QuantState) Nested() bool { return q.NestedOffset != nil }

// maxDim bounds every dimension and element count we accept, so sizes
// computed from metadata cannot overflow.
const maxDim = 1 << 40

// ParseQuantState parses and validates a quant_state JSON object. Unknown
// keys are errors (as in bitsandbytes' QuantState.from_dict).
func ParseQuantState(data []byte) (*QuantState, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var q QuantState
	if err := dec.Decode(&q); err != nil {
		return nil, fmt.Errorf("quant_state: %w", err)
	}
	if dec.More() {
		return nil, fmt.Errorf("quant_state: data after the JSON object")
	}
	if _, err := dec.Token(); err == nil {
		return nil, fmt.Errorf("quant_state: data after the JSON object")
	}
	if err := q.validate(); err != nil {
		return nil, fmt.Errorf("quant_state: %w", err)
	}
	return &q, nil
}

func validDType(s string) bool {
	switch s {
	case "float32", "float16", "bfloat16":
		return true
	}
	return false
}

func (q *QuantState) validate() error {
	if q.Shape == nil {
		return fmt.Errorf("no shape")
	}
	n := 1
	for _, d := range q.Shape {
		if d < 0 || int64(d) > maxDim {
			return fmt.Errorf("shape %v has a dimension outside [0, 2^40]", q.Shape)
		}
		if d != 0 && int64(n) > maxDim/int64(d) {
			return fmt.Errorf("shape %v has more than 2^40 elements", q.Shape)
		}
		n *= d
	}
	if !validDType(q.DType) {
		return fmt.Errorf("dtype %q is not float32, float16 or bfloat16", q.DType)
	}
	switch q.QuantType {
	case NF4, FP4:
		if !validBlockSize(q.BlockSize) {
			return fmt.Errorf("blocksize %d is not one of %v", q.BlockSize, validBlockSizes)
		}
		if q.GroupSize != 0 || q.Symmetric != nil {
			return fmt.Errorf("group_size/symmetric given for quant_type %s", q.QuantType)
		}
		if q.Nested() {
			if q.NestedBlockSize <= 0 || q.NestedBlockSize > 1<<20 {
				return fmt.Errorf("nested_blocksize %d is not in [1, 2^20]", q.NestedBlockSize)
			}
			if !validDType(q.NestedDType) {
				return fmt.Errorf("nested_dtype %q is not float32, float16 or bfloat16", q.NestedDType)
			}
			if o := *q.NestedOffset; math.IsNaN(o) || math.Abs(o) > math.MaxFloat32 {
				return fmt.Errorf("nested_offset %v is not a finite float32", o)
			}
		} else if q.NestedBlockSize != 0 || q.NestedDType != "" {
			return fmt.Errorf("nested_blocksize/nested_dtype without nested_offset")
		}
	case Int4:
		if len(q.Shape) != 2 {
			return fmt.Errorf("int4 shape %v is not (out, in)", q.Shape)
		}
		if !validGroupSize(q.GroupSize) {
			return fmt.Errorf("group_size %d is not one of %v", q.GroupSize, validGroupSizes)
		}
		if q.Symmetric == nil {
			return fmt.Errorf("int4 state without \"symmetric\"")
		}
		if q.BlockSize != 0 || q.Nested() || q.NestedBlockSize != 0 || q.NestedDType != "" {
			return fmt.Errorf("blocksize/nested fields given for int4")
		}
	default:
		return fmt.Errorf("unknown quant_type %q (want nf4, fp4 or int4)", q.QuantType)
	}
	return nil
}

// marshal writes the object with the key order and separators of
// bitsandbytes' json.dumps, so files shoggo writes match bitsandbytes'.
func (q *QuantState) marshal() []byte {
	var b strings.Builder
	b.WriteString(`{"quant_type": `)
	b.WriteString(strconv.Quote(q.QuantType))
	if q.BlockSize != 0 {
		fmt.Fprintf(&b, `, "blocksize": %d`, q.BlockSize)
	}
	fmt.Fprintf(&b, `, "dtype": %s, "shape": [`, strconv.Quote(q.DType))
	for i, d := range q.Shape {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.Itoa(d))
	}
	b.WriteString("]")
	if q.Nested() {
		fmt.Fprintf(&b, `, "nested_blocksize": %d, "nested_dtype": %s, "nested_offset": %s`,
			q.NestedBlockSize, strconv.Quote(q.NestedDType), pyFloat(*q.NestedOffset))
	}
	if q.GroupSize != 0 {
		fmt.Fprintf(&b, `, "group_size": %d`, q.GroupSize)
	}
	if q.Symmetric != nil {
		fmt.Fprintf(&b, `, "symmetric": %t`, *q.Symmetric)
	}
	b.WriteString("}")
	return []byte(b.String())
}

// pyFloat formats v like Python's repr of a float (shortest round trip,
// always with a '.' or an exponent, exponent form below 1e-4 or from 1e16).
func pyFloat(v float64) string {
	if v == 0 {
		if math.Signbit(v) {
			return "-0.0"
		}
		return "0.0"
	}
	if a := math.Abs(v); a < 1e-4 || a >= 1e16 {
		s := strconv.FormatFloat(v, 'e', -1, 64)
		return s // e.g. 3.333333116818801e-39, as Python
	}
	s := strconv.FormatFloat(v, 'f', -1, 64)
	if !strings.ContainsRune(s, '.') {
		s += ".0"
	}
	return s
}
