// Package safetensors reads and writes the safetensors format of Hugging
// Face (https://github.com/huggingface/safetensors), alone or sharded with a
// model.safetensors.index.json.
//
// A file is an 8-byte little-endian header length N, N bytes of JSON
//
//	{"__metadata__": {"k": "v"}, "name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}, ...}
//
// and then the data buffer, to which data_offsets are relative. Tensors are
// stored row-major and little-endian.
//
// Reading memory-maps the file and copies nothing until a tensor is asked
// for. Every malformed file yields an *Error naming the file (and the tensor,
// where one is at fault); no input makes the reader panic. The reader is more
// permissive than the reference implementation in one way: gaps between
// tensors and bytes after the last one are allowed.
package safetensors

import (
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"slices"
	"unsafe"

	"github.com/shoggo/shoggo/tensor"
)

// Reader is what a single File and a sharded Set have in common.
type Reader interface {
	// Names lists the tensors in storage order.
	Names() []string
	// Info describes one tensor without reading it.
	Info(name string) (TensorInfo, bool)
	// Tensor returns a copy of a tensor in its stored dtype.
	Tensor(name string) (*tensor.Tensor, error)
	// TensorF32 returns a float tensor's elements converted to float32.
	TensorF32(name string) ([]float32, error)
	// ReadInto fills dst (shape checked, float dtypes converted).
	ReadInto(name string, dst *tensor.Tensor) error
	// Metadata returns the string metadata.
	Metadata() map[string]string
	// Close releases the underlying files.
	Close() error
}

var (
	_ Reader = (*File)(nil)
	_ Reader = (*Set)(nil)
)

// memoryName is the file name used in errors from Parse.
const memoryName = "<memory>"

// File is one safetensors file, memory-mapped by Open or held in memory by
// Parse. Its methods are safe for concurrent use, except Close, which must
// not run concurrently with the others.
type File struct {
	path   string
	data   []byte // the whole file
	buf    []byte // the data buffer after the header
	unmap  func([]byte) error
	hdr    *header
	closed bool
}

// Open memory-maps and validates the safetensors file at path. Only the
// header is read; tensor bytes are paged in when a tensor is asked for.
// The file must not be truncated while it is open.
func Open(path string) (*File, error) {
	fd, err := os.Open(path)
	if err != nil {
		return nil, fileErr(path, "%w", err)
	}
	defer fd.Close()
	st, err := fd.Stat()
	if err != nil {
		return nil, fileErr(path, "%w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fileErr(path, "not a regular file")
	}
	size := st.Size()
	if size < 8 {
		return nil, fileErr(path, "file is %d bytes, shorter than the 8-byte header length", size)
	}
	if size > math.MaxInt {
		return nil, fileErr(path, "file of %d bytes is too large to map", size)
	}
	data, unmap, err := mapFile(fd, int(size))
	if err != nil {
		return nil, fileErr(path, "mmap: %w", err)
	}
	f, perr := parse(path, data)
	if perr != nil {
		if unmap != nil {
			_ = unmap(data)
		}
		return nil, perr
	}
	f.unmap = unmap
	return f, nil
}

// Parse validates a safetensors file held in memory. The File refers to data
// without copying it; data must not change while the File is in use.
// Errors name the file "<memory>".
func Parse(data []byte) (*File, error) {
	f, err := parse(memoryName, data)
	if err != nil {
		return nil, err
	}
	return f, nil
}

func parse(path string, data []byte) (*File, *Error) {
	size := len(data)
	if size < 8 {
		return nil, fileErr(path, "file is %d bytes, shorter than the 8-byte header length", size)
	}
	n := binary.LittleEndian.Uint64(data)
	if n > MaxHeaderSize {
		return nil, fileErr(path, "header length %d exceeds the limit of %d bytes", n, MaxHeaderSize)
	}
	if n > uint64(size-8) {
		return nil, fileErr(path, "header length %d runs past the end of the %d-byte file", n, size)
	}
	end := 8 + int(n)
	hdr, err := parseHeader(path, data[8:end], int64(size-end))
	if err != nil {
		return nil, err
	}
	return &File{path: path, data: data, buf: data[end:], hdr: hdr}, nil
}

// Path returns the path the file was opened from ("<memory>" for Parse).
func (f *File) Path() string { return f.path }

// Len returns the number of tensors.
func (f *File) Len() int { return len(f.hdr.tensors) }

// Names lists the tensor names in the order of their data offsets.
func (f *File) Names() []string {
	names := make([]string, len(f.hdr.tensors))
	for i, t := range f.hdr.tensors {
		names[i] = t.Name
	}
	return names
}

// Infos describes all tensors, in the order of their data offsets.
func (f *File) Infos() []TensorInfo {
	out := make([]TensorInfo, len(f.hdr.tensors))
	for i, t := range f.hdr.tensors {
		out[i] = t.clone()
	}
	return out
}

// Info describes the named tensor.
func (f *File) Info(name string) (TensorInfo, bool) {
	i, ok := f.hdr.index[name]
	if !ok {
		return TensorInfo{}, false
	}
	return f.hdr.tensors[i].clone(), true
}

// Metadata returns a copy of the header's "__metadata__" (nil if absent).
func (f *File) Metadata() map[string]string {
	if f.hdr.metadata == nil {
		return nil
	}
	m := make(map[string]string, len(f.hdr.metadata))
	for k, v := range f.hdr.metadata {
		m[k] = v
	}
	return m
}

// Close unmaps the file. Slices returned by Raw become invalid; tensors
// returned by Tensor and TensorF32 are copies and stay valid. Closing twice
// is harmless.
func (f *File) Close() error {
	if f.closed {
		return nil
	}
	f.closed = true
	data := f.data
	f.data, f.buf = nil, nil
	if f.unmap != nil {
		if err := f.unmap(data); err != nil {
			return fileErr(f.path, "munmap: %w", err)
		}
	}
	return nil
}

// lookup returns the named tensor's info (not cloned) and bytes.
func (f *File) lookup(name string) (*TensorInfo, []byte, error) {
	if f.closed {
		return nil, nil, tensorErr(f.path, name, "%w", ErrClosed)
	}
	i, ok := f.hdr.index[name]
	if !ok {
		return nil, nil, tensorErr(f.path, name, "%w", ErrNotFound)
	}
	ti := &f.hdr.tensors[i]
	return ti, f.buf[ti.Begin:ti.End:ti.End], nil
}

// Raw returns the named tensor's bytes (little-endian) without copying. The
// slice points into read-only mapped memory: it must not be written, and it
// is valid only until Close.
func (f *File) Raw(name string) ([]byte, error) {
	_, raw, err := f.lookup(name)
	return raw, err
}

// Tensor returns a copy of the named tensor in its stored dtype: F32 in the
// F32 field, F64 in F64, F16 and BF16 bits in U16, and the other dtypes'
// little-endian bytes in Bytes.
func (f *File) Tensor(name string) (*tensor.Tensor, error) {
	ti, raw, err := f.lookup(name)
	if err != nil {
		return nil, err
	}
	t := tensor.New(ti.DType, ti.Shape...)
	t.Name = name
	switch ti.DType {
	case tensor.F32:
		decodeF32(t.F32, tensor.F32, raw)
	case tensor.F64:
		decodeF64(t.F64, raw)
	case tensor.F16, tensor.BF16:
		decodeU16(t.U16, raw)
	default:
		copy(t.Bytes, raw)
	}
	return t, nil
}

// TensorF32 returns the elements of the named F32, F16, BF16 or F64 tensor as
// a new float32 slice (F64 values are rounded to nearest).
func (f *File) TensorF32(name string) ([]float32, error) {
	ti, raw, err := f.lookup(name)
	if err != nil {
		return nil, err
	}
	if !ti.DType.IsFloat() {
		return nil, tensorErr(f.path, name, "dtype %s is not a float type", ti.DType)
	}
	out := make([]float32, ti.Numel())
	decodeF32(out, ti.DType, raw)
	return out, nil
}

// TensorI32 returns an integer tensor (I32, or I64 whose values fit in
// int32, such as token ids saved by PyTorch) as int32.
func (f *File) TensorI32(name string) ([]int32, error) {
	ti, raw, err := f.lookup(name)
	if err != nil {
		return nil, err
	}
	out := make([]int32, ti.Numel())
	switch ti.DType {
	case tensor.I32:
		for i := range out {
			out[i] = int32(binary.LittleEndian.Uint32(raw[4*i:]))
		}
	case tensor.I64:
		for i := range out {
			v := int64(binary.LittleEndian.Uint64(raw[8*i:]))
			if v != int64(int32(v)) {
				return nil, tensorErr(f.path, name, "element %d = %d does not fit in int32", i, v)
			}
			out[i] = int32(v)
		}
	default:
		return nil, tensorErr(f.path, name, "dtype %s is not I32 or I64", ti.DType)
	}
	return out, nil
}

// ReadInto copies the named tensor into dst, which must have the same shape
// (an error names the tensor and both shapes). Float dtypes are converted to
// dst's dtype (narrowing rounds to nearest even; F64 narrows to F16/BF16
// through float32); other dtypes must match exactly. dst may be an arena view.
func (f *File) ReadInto(name string, dst *tensor.Tensor) error {
	ti, raw, err := f.lookup(name)
	if err != nil {
		return err
	}
	return readInto(f.path, ti, raw, dst)
}

func readInto(path string, ti *TensorInfo, raw []byte, dst *tensor.Tensor) error {
	if !ti.Shape.Equal(dst.Shape) {
		return tensorErr(path, ti.Name, "shape %v in the file, but %v wanted", ti.Shape, dst.Shape)
	}
	n := ti.Numel()
	if storageLen(dst) != n {
		return tensorErr(path, ti.Name, "destination tensor of shape %v has %d %s elements of storage", dst.Shape, storageLen(dst), dst.DType)
	}
	if ti.DType == dst.DType {
		switch dst.DType {
		case tensor.F32:
			decodeF32(dst.F32, tensor.F32, raw)
		case tensor.F64:
			decodeF64(dst.F64, raw)
		case tensor.F16, tensor.BF16:
			decodeU16(dst.U16, raw)
		default:
			copy(dst.Bytes, raw)
		}
		return nil
	}
	if !ti.DType.IsFloat() || !dst.DType.IsFloat() {
		return tensorErr(path, ti.Name, "dtype %s in the file, but %s wanted", ti.DType, dst.DType)
	}
	switch dst.DType {
	case tensor.F32:
		decodeF32(dst.F32, ti.DType, raw)
	case tensor.F64:
		var tmp [1024]float32
		for i := 0; i < n; i += len(tmp) {
			c := min(len(tmp), n-i)
			es := ti.DType.Size()
			decodeF32(tmp[:c], ti.DType, raw[i*es:(i+c)*es])
			for j, v := range tmp[:c] {
				dst.F64[i+j] = float64(v)
			}
		}
	case tensor.F16, tensor.BF16:
		var tmp [1024]float32
		round := tensor.F32ToF16
		if dst.DType == tensor.BF16 {
			round = tensor.F32ToBF16
		}
		es := ti.DType.Size()
		for i := 0; i < n; i += len(tmp) {
			c := min(len(tmp), n-i)
			decodeF32(tmp[:c], ti.DType, raw[i*es:(i+c)*es])
			for j, v := range tmp[:c] {
				dst.U16[i+j] = round(v)
			}
		}
	}
	return nil
}

// storageLen is the number of elements in t's storage field for its dtype.
func storageLen(t *tensor.Tensor) int {
	switch t.DType {
	case tensor.F32:
		return len(t.F32)
	case tensor.F64:
		return len(t.F64)
	case tensor.F16, tensor.BF16:
		return len(t.U16)
	}
	if s := t.DType.Size(); s > 0 {
		if len(t.Bytes)%s != 0 {
			return -1
		}
		return len(t.Bytes) / s
	}
	return -1
}

// hostLittleEndian reports whether the machine stores numbers little-endian,
// in which case storage can be copied to and from files byte for byte.
var hostLittleEndian = func() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}()

// asBytes views a numeric slice as its bytes.
func asBytes[T float32 | float64 | uint16](s []T) []byte {
	if len(s) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&s[0])), len(s)*int(unsafe.Sizeof(s[0])))
}

// decodeF32 converts len(dst) little-endian elements of dtype dt to float32.
func decodeF32(dst []float32, dt tensor.DType, raw []byte) {
	le := binary.LittleEndian
	switch dt {
	case tensor.F32:
		if hostLittleEndian {
			copy(asBytes(dst), raw)
			return
		}
		for i := range dst {
			dst[i] = math.Float32frombits(le.Uint32(raw[4*i:]))
		}
	case tensor.F64:
		for i := range dst {
			dst[i] = float32(math.Float64frombits(le.Uint64(raw[8*i:])))
		}
	case tensor.F16:
		for i := range dst {
			dst[i] = tensor.F16ToF32(le.Uint16(raw[2*i:]))
		}
	case tensor.BF16:
		for i := range dst {
			dst[i] = tensor.BF16ToF32(le.Uint16(raw[2*i:]))
		}
	default:
		panic(fmt.Sprintf("safetensors: decodeF32 of %s", dt))
	}
}

func decodeF64(dst []float64, raw []byte) {
	if hostLittleEndian {
		copy(asBytes(dst), raw)
		return
	}
	for i := range dst {
		dst[i] = math.Float64frombits(binary.LittleEndian.Uint64(raw[8*i:]))
	}
}

func decodeU16(dst []uint16, raw []byte) {
	if hostLittleEndian {
		copy(asBytes(dst), raw)
		return
	}
	for i := range dst {
		dst[i] = binary.LittleEndian.Uint16(raw[2*i:])
	}
}

// sortedKeys returns the keys of m in increasing order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
