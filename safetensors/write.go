package safetensors

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"io/fs"
	"math"
	"strconv"
	"unicode/utf8"

	"github.com/shoggo/shoggo/internal/atomicfile"
	"github.com/shoggo/shoggo/tensor"
)

// checkTensors validates tensors for writing and returns each one's byte size.
// file names the destination in errors.
func checkTensors(file string, tensors []*tensor.Tensor) ([]int64, error) {
	sizes := make([]int64, len(tensors))
	seen := make(map[string]bool, len(tensors))
	for i, t := range tensors {
		if t == nil {
			return nil, fileErr(file, "tensor %d of %d is nil", i, len(tensors))
		}
		if !utf8.ValidString(t.Name) {
			return nil, tensorErr(file, t.Name, "name is not valid UTF-8")
		}
		if t.Name == metadataKey {
			return nil, tensorErr(file, t.Name, "name is reserved for metadata")
		}
		if seen[t.Name] {
			return nil, tensorErr(file, t.Name, "name appears twice")
		}
		seen[t.Name] = true
		if t.DType.Size() == 0 {
			return nil, tensorErr(file, t.Name, "unknown dtype %s", t.DType)
		}
		n := uint64(1)
		for _, d := range t.Shape {
			if d < 0 {
				return nil, tensorErr(file, t.Name, "negative dimension in shape %v", t.Shape)
			}
			if d != 0 && n > uint64(math.MaxInt)/uint64(d) {
				return nil, tensorErr(file, t.Name, "shape %v: element count overflows", t.Shape)
			}
			n *= uint64(d)
		}
		if got := storageLen(t); got < 0 || uint64(got) != n {
			return nil, tensorErr(file, t.Name, "shape %v holds %d elements but the %s storage holds %d", t.Shape, n, t.DType, got)
		}
		sizes[i] = int64(n) * int64(t.DType.Size())
	}
	return sizes, nil
}

// appendJSONString appends s as a JSON string, escaped exactly as serde_json
// (and so Python's safetensors) escapes it: quote, backslash and control
// characters only, with lowercase hex.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '"':
			b = append(b, '\\', '"')
		case '\\':
			b = append(b, '\\', '\\')
		case '\b':
			b = append(b, '\\', 'b')
		case '\f':
			b = append(b, '\\', 'f')
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			if c < 0x20 {
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&15])
			} else {
				b = append(b, c)
			}
		}
	}
	return append(b, '"')
}

// buildHeader returns the header JSON, space-padded to a multiple of 8 bytes,
// in the layout the reference implementation writes: "__metadata__" first
// (keys sorted), then the tensors in order, each with dtype, shape and
// data_offsets, no whitespace.
func buildHeader(file string, tensors []*tensor.Tensor, sizes []int64, metadata map[string]string) ([]byte, error) {
	b := make([]byte, 0, 64+96*len(tensors))
	b = append(b, '{')
	if len(metadata) > 0 {
		b = appendJSONString(b, metadataKey)
		b = append(b, ":{"...)
		for i, k := range sortedKeys(metadata) {
			v := metadata[k]
			if !utf8.ValidString(k) || !utf8.ValidString(v) {
				return nil, fileErr(file, "metadata entry %q is not valid UTF-8", k)
			}
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, k)
			b = append(b, ':')
			b = appendJSONString(b, v)
		}
		b = append(b, '}')
	}
	off := int64(0)
	for i, t := range tensors {
		if i > 0 || len(metadata) > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, t.Name)
		b = append(b, `:{"dtype":`...)
		b = appendJSONString(b, t.DType.String())
		b = append(b, `,"shape":[`...)
		for j, d := range t.Shape {
			if j > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendInt(b, int64(d), 10)
		}
		b = append(b, `],"data_offsets":[`...)
		b = strconv.AppendInt(b, off, 10)
		b = append(b, ',')
		off += sizes[i]
		b = strconv.AppendInt(b, off, 10)
		b = append(b, "]}"...)
	}
	b = append(b, '}')
	for len(b)%8 != 0 {
		b = append(b, ' ')
	}
	if len(b) > MaxHeaderSize {
		return nil, fileErr(file, "header of %d bytes exceeds the limit of %d", len(b), MaxHeaderSize)
	}
	return b, nil
}

// Encode writes a safetensors file to w: the tensors in the given order,
// little-endian, with metadata (nil or empty for none) in "__metadata__".
// The header is byte-identical to what Python's safetensors writes for the
// same tensors in the same order. Names must be unique, valid UTF-8 and not
// "__metadata__"; each tensor's storage must match its shape and dtype.
func Encode(w io.Writer, tensors []*tensor.Tensor, metadata map[string]string) error {
	return encode(w, "<writer>", tensors, metadata)
}

func encode(w io.Writer, file string, tensors []*tensor.Tensor, metadata map[string]string) error {
	sizes, err := checkTensors(file, tensors)
	if err != nil {
		return err
	}
	hdr, err := buildHeader(file, tensors, sizes, metadata)
	if err != nil {
		return err
	}
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(len(hdr)))
	if _, err := w.Write(n[:]); err != nil {
		return fileErr(file, "%w", err)
	}
	if _, err := w.Write(hdr); err != nil {
		return fileErr(file, "%w", err)
	}
	for _, t := range tensors {
		if err := writeData(w, t); err != nil {
			return tensorErr(file, t.Name, "%w", err)
		}
	}
	return nil
}

// writeData writes t's elements little-endian.
func writeData(w io.Writer, t *tensor.Tensor) error {
	if hostLittleEndian {
		var b []byte
		switch t.DType {
		case tensor.F32:
			b = asBytes(t.F32)
		case tensor.F64:
			b = asBytes(t.F64)
		case tensor.F16, tensor.BF16:
			b = asBytes(t.U16)
		default:
			b = t.Bytes
		}
		_, err := w.Write(b)
		return err
	}
	var buf [4096]byte
	le := binary.LittleEndian
	flush := func(n int) error { _, err := w.Write(buf[:n]); return err }
	k := 0
	switch t.DType {
	case tensor.F32:
		for _, v := range t.F32 {
			le.PutUint32(buf[k:], math.Float32bits(v))
			if k += 4; k == len(buf) {
				if err := flush(k); err != nil {
					return err
				}
				k = 0
			}
		}
	case tensor.F64:
		for _, v := range t.F64 {
			le.PutUint64(buf[k:], math.Float64bits(v))
			if k += 8; k == len(buf) {
				if err := flush(k); err != nil {
					return err
				}
				k = 0
			}
		}
	case tensor.F16, tensor.BF16:
		for _, v := range t.U16 {
			le.PutUint16(buf[k:], v)
			if k += 2; k == len(buf) {
				if err := flush(k); err != nil {
					return err
				}
				k = 0
			}
		}
	default:
		_, err := w.Write(t.Bytes)
		return err
	}
	return flush(k)
}

// Write writes a safetensors file at path atomically: it writes a temporary
// file in the same directory, syncs it, renames it over path and syncs the
// directory, so a crash leaves either the old file or the new one. See
// Encode for the layout.
func Write(path string, tensors []*tensor.Tensor, metadata map[string]string) error {
	if _, err := checkTensors(path, tensors); err != nil { // fail before creating anything
		return err
	}
	return writeAtomic(path, func(w io.Writer) error {
		return encode(w, path, tensors, metadata)
	})
}

// writeAtomic writes path through fill with internal/atomicfile (0644).
// Errors from fill come back as they are; the atomic steps' errors are
// *Error values naming path.
func writeAtomic(path string, fill func(w io.Writer) error) error {
	f, err := atomicfile.Create(path, 0o644)
	if err != nil {
		return writeErr(path, err)
	}
	defer f.Abort()
	if err := fill(f); err != nil {
		return err
	}
	if err := f.Commit(); err != nil {
		return writeErr(path, err)
	}
	return nil
}

// writeErr turns an atomicfile error (an *fs.PathError naming path) into an
// *Error naming path once.
func writeErr(path string, err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) && pe.Path == path {
		return fileErr(path, "%s: %w", pe.Op, pe.Err)
	}
	return fileErr(path, "%w", err)
}

// Marshal returns the bytes Encode would write.
func Marshal(tensors []*tensor.Tensor, metadata map[string]string) ([]byte, error) {
	var buf bytes.Buffer
	if err := Encode(&buf, tensors, metadata); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
