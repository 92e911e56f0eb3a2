// Package tensor provides shoggo's n-dimensional array: a shape, a dtype and
// row-major storage, plus an Arena that carves many named tensors out of one
// allocation.
//
// Compute dtypes are F32 (the default) and F64 (used by gradient checks, so
// the exact same kernels can be verified in double precision). BF16 and F16
// are storage dtypes: they are converted to F32 for compute. The remaining
// dtypes exist so that any safetensors file can be represented.
package tensor

import (
	"fmt"
	"strings"
)

// DType is the element type of a tensor.
type DType uint8

const (
	F32 DType = iota
	F64
	F16
	BF16
	I32
	I64
	U8
	I8
	Bool
)

var dtypeInfo = [...]struct {
	name string
	size int
}{
	F32:  {"F32", 4},
	F64:  {"F64", 8},
	F16:  {"F16", 2},
	BF16: {"BF16", 2},
	I32:  {"I32", 4},
	I64:  {"I64", 8},
	U8:   {"U8", 1},
	I8:   {"I8", 1},
	Bool: {"BOOL", 1},
}

// Size is the number of bytes one element occupies.
func (d DType) Size() int {
	if int(d) >= len(dtypeInfo) {
		return 0
	}
	return dtypeInfo[d].size
}

// String returns the safetensors name of the dtype ("F32", "BF16", ...).
func (d DType) String() string {
	if int(d) >= len(dtypeInfo) {
		return fmt.Sprintf("DType(%d)", d)
	}
	return dtypeInfo[d].name
}

// ParseDType maps a safetensors dtype name (case-insensitive; "float32",
// "bfloat16" and "float16" are accepted too) to a DType.
func ParseDType(s string) (DType, error) {
	switch strings.ToLower(s) {
	case "f32", "float32", "fp32":
		return F32, nil
	case "f64", "float64", "fp64":
		return F64, nil
	case "f16", "float16", "fp16", "half":
		return F16, nil
	case "bf16", "bfloat16":
		return BF16, nil
	case "i32", "int32":
		return I32, nil
	case "i64", "int64":
		return I64, nil
	case "u8", "uint8":
		return U8, nil
	case "i8", "int8":
		return I8, nil
	case "bool":
		return Bool, nil
	}
	return 0, fmt.Errorf("unknown dtype %q", s)
}

// IsFloat reports whether d is a floating-point dtype.
func (d DType) IsFloat() bool { return d == F32 || d == F64 || d == F16 || d == BF16 }

// Shape is a list of dimension sizes, outermost first.
type Shape []int

// Numel is the number of elements (1 for a scalar shape).
func (s Shape) Numel() int {
	n := 1
	for _, d := range s {
		n *= d
	}
	return n
}

// Equal reports whether two shapes are identical.
func (s Shape) Equal(o Shape) bool {
	if len(s) != len(o) {
		return false
	}
	for i := range s {
		if s[i] != o[i] {
			return false
		}
	}
	return true
}

// Clone returns a copy of s.
func (s Shape) Clone() Shape { return append(Shape(nil), s...) }

func (s Shape) String() string {
	parts := make([]string, len(s))
	for i, d := range s {
		parts[i] = fmt.Sprint(d)
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

// Storage is an opaque handle to memory a backend owns (a device buffer, or
// the private buffers of the opaque test backend). Only the backend that
// made it looks inside; code above the backend moves data in and out with
// the backend's Upload and Download.
type Storage interface {
	// Backend names the backend that owns the storage.
	Backend() string
}

// Tensor is a dense row-major array. A host tensor (Store == nil) uses
// exactly one storage field, chosen by DType: F32 for F32, F64 for F64, U16
// for F16 and BF16, Bytes for everything else (little-endian, as in
// safetensors). A backend tensor (Store != nil) has no host slice at all:
// its elements are Numel() elements of Store starting at element Offset.
// Views (View, Reshape, Slice, Arena tensors) of a backend tensor carry the
// handle with their own offset.
type Tensor struct {
	Name  string
	Shape Shape
	DType DType

	F32   []float32
	F64   []float64
	U16   []uint16
	Bytes []byte

	// Store is the backend storage handle, nil for host storage.
	Store Storage
	// Offset is the element offset of this tensor within Store (0 for host tensors).
	Offset int
}

// IsHost reports whether t's storage is a host slice (Store == nil).
func (t *Tensor) IsHost() bool { return t.Store == nil }

// ident names a storage location: a backend handle and an element offset.
type ident struct {
	store  Storage
	offset int
}

// Identity returns a comparable value naming where t's first element lives
// (its host address, or its backend handle and offset), so a caller can
// notice that an input buffer changed. Empty host tensors give nil.
func (t *Tensor) Identity() any {
	if t.Store != nil {
		return ident{t.Store, t.Offset}
	}
	switch {
	case len(t.F32) > 0:
		return &t.F32[0]
	case len(t.F64) > 0:
		return &t.F64[0]
	case len(t.U16) > 0:
		return &t.U16[0]
	case len(t.Bytes) > 0:
		return &t.Bytes[0]
	}
	return nil
}

// mustHost panics when t is a backend tensor: op needs host storage.
func (t *Tensor) mustHost(op string) {
	if t.Store != nil {
		panic(fmt.Sprintf("tensor.%s: %s lives in %s storage; use the backend", op, t, t.Store.Backend()))
	}
}

// New allocates a zeroed tensor.
func New(dt DType, shape ...int) *Tensor {
	t := &Tensor{Shape: Shape(shape).Clone(), DType: dt}
	n := t.Shape.Numel()
	switch dt {
	case F32:
		t.F32 = make([]float32, n)
	case F64:
		t.F64 = make([]float64, n)
	case F16, BF16:
		t.U16 = make([]uint16, n)
	default:
		t.Bytes = make([]byte, n*dt.Size())
	}
	return t
}

// FromF32 wraps data (not copied) as an F32 tensor of the given shape.
// It panics if the sizes disagree (a programmer error).
func FromF32(data []float32, shape ...int) *Tensor {
	if Shape(shape).Numel() != len(data) {
		panic(fmt.Sprintf("tensor.FromF32: %d elements for shape %v", len(data), shape))
	}
	return &Tensor{Shape: Shape(shape).Clone(), DType: F32, F32: data}
}

// FromF64 wraps data (not copied) as an F64 tensor of the given shape.
func FromF64(data []float64, shape ...int) *Tensor {
	if Shape(shape).Numel() != len(data) {
		panic(fmt.Sprintf("tensor.FromF64: %d elements for shape %v", len(data), shape))
	}
	return &Tensor{Shape: Shape(shape).Clone(), DType: F64, F64: data}
}

// Numel is the number of elements.
func (t *Tensor) Numel() int { return t.Shape.Numel() }

// Dim returns the size of dimension i; negative i counts from the end.
func (t *Tensor) Dim(i int) int {
	if i < 0 {
		i += len(t.Shape)
	}
	return t.Shape[i]
}

// Rows returns the product of all dimensions but the last, and the last.
func (t *Tensor) Rows() (rows, cols int) {
	if len(t.Shape) == 0 {
		return 1, 1
	}
	cols = t.Shape[len(t.Shape)-1]
	if cols == 0 {
		return 0, 0
	}
	return t.Numel() / cols, cols
}

// View returns a tensor sharing t's storage, covering numel(shape) elements
// starting at element offset. It panics if the view does not fit.
func (t *Tensor) View(offset int, shape ...int) *Tensor {
	n := Shape(shape).Numel()
	if offset < 0 || offset+n > t.Numel() {
		panic(fmt.Sprintf("tensor.View: [%d,%d) outside %d elements of %s", offset, offset+n, t.Numel(), t.Name))
	}
	v := &Tensor{Name: t.Name, Shape: Shape(shape).Clone(), DType: t.DType}
	if t.Store != nil {
		v.Store, v.Offset = t.Store, t.Offset+offset
		return v
	}
	switch t.DType {
	case F32:
		v.F32 = t.F32[offset : offset+n : offset+n]
	case F64:
		v.F64 = t.F64[offset : offset+n : offset+n]
	case F16, BF16:
		v.U16 = t.U16[offset : offset+n : offset+n]
	default:
		s := t.DType.Size()
		v.Bytes = t.Bytes[offset*s : (offset+n)*s : (offset+n)*s]
	}
	return v
}

// Reshape returns a view of the whole tensor with a new shape of equal size.
func (t *Tensor) Reshape(shape ...int) *Tensor {
	if Shape(shape).Numel() != t.Numel() {
		panic(fmt.Sprintf("tensor.Reshape: %v to %v", t.Shape, shape))
	}
	return t.View(0, shape...)
}

// Slice returns a view of rows [i, j) along the first dimension.
func (t *Tensor) Slice(i, j int) *Tensor {
	inner := 1
	for _, d := range t.Shape[1:] {
		inner *= d
	}
	shape := append(Shape{j - i}, t.Shape[1:]...)
	return t.View(i*inner, shape...)
}

// Zero sets every element of a host tensor to zero (a backend tensor
// panics: use the backend's Zero).
func (t *Tensor) Zero() {
	t.mustHost("Zero")
	clear(t.F32)
	clear(t.F64)
	clear(t.U16)
	clear(t.Bytes)
}

// Clone returns a deep copy of a host tensor (a backend tensor panics: use
// the backend's Alloc and Copy, or Download).
func (t *Tensor) Clone() *Tensor {
	t.mustHost("Clone")
	c := &Tensor{Name: t.Name, Shape: t.Shape.Clone(), DType: t.DType}
	c.F32 = append([]float32(nil), t.F32...)
	c.F64 = append([]float64(nil), t.F64...)
	c.U16 = append([]uint16(nil), t.U16...)
	c.Bytes = append([]byte(nil), t.Bytes...)
	return c
}

// At returns element i as float64, whatever the float dtype.
func (t *Tensor) At(i int) float64 {
	t.mustHost("At")
	switch t.DType {
	case F32:
		return float64(t.F32[i])
	case F64:
		return t.F64[i]
	case F16:
		return float64(F16ToF32(t.U16[i]))
	case BF16:
		return float64(BF16ToF32(t.U16[i]))
	}
	panic("tensor.At: not a float tensor: " + t.DType.String())
}

// Set sets element i from a float64, rounding to the tensor's dtype.
func (t *Tensor) Set(i int, v float64) {
	t.mustHost("Set")
	switch t.DType {
	case F32:
		t.F32[i] = float32(v)
	case F64:
		t.F64[i] = v
	case F16:
		t.U16[i] = F32ToF16(float32(v))
	case BF16:
		t.U16[i] = F32ToBF16(float32(v))
	default:
		panic("tensor.Set: not a float tensor: " + t.DType.String())
	}
}

func (t *Tensor) String() string {
	return fmt.Sprintf("%s%s %s", t.Name, t.Shape, t.DType)
}
