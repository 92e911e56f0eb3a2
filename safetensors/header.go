package safetensors

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/shoggo/shoggo/tensor"
)

// MaxHeaderSize is the largest JSON header accepted, in bytes (the limit of
// the reference Rust implementation).
const MaxHeaderSize = 100_000_000

// metadataKey is the reserved header key holding the string-to-string metadata.
const metadataKey = "__metadata__"

// TensorInfo describes one tensor of a file, as its header states it.
type TensorInfo struct {
	Name  string
	DType tensor.DType
	Shape tensor.Shape
	// Begin and End delimit the tensor's bytes, relative to the start of the
	// data buffer that follows the header (the header's data_offsets).
	Begin, End int64
}

// Size is the number of bytes the tensor occupies.
func (ti TensorInfo) Size() int64 { return ti.End - ti.Begin }

// Numel is the number of elements.
func (ti TensorInfo) Numel() int { return ti.Shape.Numel() }

func (ti TensorInfo) clone() TensorInfo {
	ti.Shape = ti.Shape.Clone()
	return ti
}

// dtypes maps safetensors dtype names (exact, as written by the reference
// implementation) to shoggo dtypes.
var dtypes = func() map[string]tensor.DType {
	m := map[string]tensor.DType{}
	for _, d := range []tensor.DType{tensor.F32, tensor.F64, tensor.F16, tensor.BF16, tensor.I32, tensor.I64, tensor.U8, tensor.I8, tensor.Bool} {
		m[d.String()] = d
	}
	return m
}()

// otherDTypes are valid safetensors dtypes that shoggo cannot represent.
var otherDTypes = map[string]bool{
	"I16": true, "U16": true, "U32": true, "U64": true,
	"F8_E4M3": true, "F8_E5M2": true, "F8_E8M0": true,
	"F4": true, "F6_E2M3": true, "F6_E3M2": true, "C64": true,
}

// header is a parsed and validated safetensors header.
type header struct {
	tensors  []TensorInfo // sorted by data offsets
	index    map[string]int
	metadata map[string]string
}

// syntaxErr wraps an error from the JSON tokenizer.
func (p *jsonParser) syntaxErr(err error) *Error {
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fileErr(p.file, "invalid JSON in %s at byte %d: %v", p.what, se.Offset, err)
	}
	return fileErr(p.file, "invalid JSON in %s: %v", p.what, err)
}

// describe names the kind of JSON value a token starts.
func describe(tok json.Token) string {
	switch v := tok.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case json.Number, float64:
		return "a number"
	case string:
		return "a string"
	case json.Delim:
		if v == '[' {
			return "an array"
		}
		if v == '{' {
			return "an object"
		}
		return fmt.Sprintf("%q", rune(v))
	}
	return fmt.Sprintf("%T", tok)
}

// skipValue consumes one JSON value whose first token is tok.
func skipValue(dec *json.Decoder, tok json.Token) error {
	d, ok := tok.(json.Delim)
	if !ok || (d != '{' && d != '[') {
		return nil
	}
	for depth := 1; depth > 0; {
		t, err := dec.Token()
		if err != nil {
			return err
		}
		if d, ok := t.(json.Delim); ok {
			if d == '{' || d == '[' {
				depth++
			} else {
				depth--
			}
		}
	}
	return nil
}

// onlyWhitespace reports whether b holds nothing but JSON whitespace.
func onlyWhitespace(b []byte) bool {
	for _, c := range b {
		if c != ' ' && c != '\t' && c != '\n' && c != '\r' {
			return false
		}
	}
	return true
}

// jsonParser walks a JSON document token by token, so that duplicate keys,
// which encoding/json would silently merge, can be caught.
type jsonParser struct {
	file string // named in errors
	what string // "header" or "index", named in errors
	dec  *json.Decoder
	data []byte
}

// newJSONParser checks that data is one valid JSON value (so that syntax
// errors are reported before any structural error) and returns a parser.
func newJSONParser(file, what string, data []byte) (*jsonParser, *Error) {
	p := &jsonParser{file: file, what: what, data: data}
	if !json.Valid(data) {
		var v any
		err := json.Unmarshal(data, &v)
		if err == nil { // cannot happen
			err = errors.New("invalid JSON")
		}
		return nil, p.syntaxErr(err)
	}
	p.dec = json.NewDecoder(bytes.NewReader(data))
	p.dec.UseNumber()
	return p, nil
}

func (p *jsonParser) token() (json.Token, *Error) {
	tok, err := p.dec.Token()
	if err != nil {
		return nil, p.syntaxErr(err)
	}
	return tok, nil
}

// skip consumes the next JSON value, whatever it is.
func (p *jsonParser) skip() *Error {
	tok, err := p.token()
	if err != nil {
		return err
	}
	if err := skipValue(p.dec, tok); err != nil {
		return p.syntaxErr(err)
	}
	return nil
}

// object calls field for each key of the object whose '{' is the next token,
// after checking the key is not repeated. what names the object in errors.
// field must consume the value. mkErr builds errors about the object.
// dup, if not nil, builds the error for a repeated key.
func (p *jsonParser) object(what string, mkErr func(format string, args ...any) *Error, dup func(key string) *Error, field func(key string) *Error) *Error {
	tok, err := p.token()
	if err != nil {
		return err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		_ = skipValue(p.dec, tok)
		return mkErr("%s is %s, not a JSON object", what, describe(tok))
	}
	seen := map[string]bool{}
	for p.dec.More() {
		tok, err := p.token()
		if err != nil {
			return err
		}
		key, ok := tok.(string)
		if !ok { // cannot happen: the tokenizer only yields strings as keys
			return mkErr("%s has a non-string key", what)
		}
		if seen[key] {
			if dup != nil {
				return dup(key)
			}
			return mkErr("%s has key %q twice", what, key)
		}
		seen[key] = true
		if err := field(key); err != nil {
			return err
		}
	}
	_, err = p.token() // '}' (or a syntax error)
	return err
}

// end checks that nothing but whitespace follows the top-level value.
func (p *jsonParser) end() *Error {
	off := p.dec.InputOffset()
	if off < 0 || off > int64(len(p.data)) || !onlyWhitespace(p.data[off:]) {
		return fileErr(p.file, "invalid JSON in %s: data after the top-level object at byte %d", p.what, off)
	}
	return nil
}

// stringMap reads an object of string values (or null, giving nil).
// keyErr, if not nil, builds the errors about one key (a repeat, a value that
// is not a string).
func (p *jsonParser) stringMap(what string, mkErr func(format string, args ...any) *Error, keyErr func(key, msg string) *Error) (map[string]string, *Error) {
	if keyErr == nil {
		keyErr = func(key, msg string) *Error { return mkErr("%s: key %q: %s", what, key, msg) }
	}
	tok, err := p.token()
	if err != nil {
		return nil, err
	}
	if tok == nil {
		return nil, nil
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		_ = skipValue(p.dec, tok)
		return nil, mkErr("%s is %s, not a JSON object of strings", what, describe(tok))
	}
	m := map[string]string{}
	for p.dec.More() {
		tok, err := p.token()
		if err != nil {
			return nil, err
		}
		key, _ := tok.(string)
		if _, seen := m[key]; seen {
			return nil, keyErr(key, "appears twice")
		}
		tok, err = p.token()
		if err != nil {
			return nil, err
		}
		v, ok := tok.(string)
		if !ok {
			_ = skipValue(p.dec, tok)
			return nil, keyErr(key, fmt.Sprintf("value is %s, not a string", describe(tok)))
		}
		m[key] = v
	}
	if _, err := p.token(); err != nil {
		return nil, err
	}
	return m, nil
}

// uints reads an array of non-negative integers that fit in an int.
func (p *jsonParser) uints(what string, mkErr func(format string, args ...any) *Error) ([]uint64, *Error) {
	tok, err := p.token()
	if err != nil {
		return nil, err
	}
	if d, ok := tok.(json.Delim); !ok || d != '[' {
		_ = skipValue(p.dec, tok)
		return nil, mkErr("%s is %s, not an array of integers", what, describe(tok))
	}
	out := []uint64{}
	for p.dec.More() {
		tok, err := p.token()
		if err != nil {
			return nil, err
		}
		num, ok := tok.(json.Number)
		if !ok {
			_ = skipValue(p.dec, tok)
			return nil, mkErr("%s: element %d is %s, not an integer", what, len(out), describe(tok))
		}
		s := string(num)
		if strings.HasPrefix(s, "-") {
			return nil, mkErr("%s: element %d is negative (%s)", what, len(out), s)
		}
		v, perr := strconv.ParseUint(s, 10, 64)
		if perr != nil {
			if errors.Is(perr, strconv.ErrRange) {
				return nil, mkErr("%s: element %d (%s) overflows", what, len(out), s)
			}
			return nil, mkErr("%s: element %d (%s) is not an integer", what, len(out), s)
		}
		if v > uint64(math.MaxInt) {
			return nil, mkErr("%s: element %d (%s) overflows", what, len(out), s)
		}
		out = append(out, v)
	}
	if _, err := p.token(); err != nil {
		return nil, err
	}
	return out, nil
}

// parseHeader parses and validates the JSON header of a file whose data
// buffer (everything after the header) is bufLen bytes long.
func parseHeader(file string, data []byte, bufLen int64) (*header, *Error) {
	if !utf8.Valid(data) {
		return nil, fileErr(file, "header is not valid UTF-8")
	}
	p, perr := newJSONParser(file, "header", data)
	if perr != nil {
		return nil, perr
	}
	h := &header{}
	hdrErr := func(format string, args ...any) *Error { return fileErr(file, format, args...) }
	dup := func(name string) *Error {
		if name == metadataKey {
			return hdrErr("header has %q twice", name)
		}
		return tensorErr(file, name, "name appears twice in the header")
	}
	err := p.object("header", hdrErr, dup, func(name string) *Error {
		if name == metadataKey {
			m, err := p.stringMap(metadataKey, hdrErr, nil)
			h.metadata = m
			return err
		}
		ti, err := parseEntry(p, name, bufLen)
		if err != nil {
			return err
		}
		h.tensors = append(h.tensors, ti)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := p.end(); err != nil {
		return nil, err
	}
	sort.Slice(h.tensors, func(i, j int) bool {
		a, b := &h.tensors[i], &h.tensors[j]
		if a.Begin != b.Begin {
			return a.Begin < b.Begin
		}
		if a.End != b.End {
			return a.End < b.End
		}
		return a.Name < b.Name
	})
	// Overlap: empty ranges hold no bytes and overlap nothing.
	last := -1
	for i := range h.tensors {
		t := &h.tensors[i]
		if t.Begin == t.End {
			continue
		}
		if last >= 0 && t.Begin < h.tensors[last].End {
			o := &h.tensors[last]
			return nil, tensorErr(file, t.Name, "data_offsets [%d, %d] overlap those of tensor %q [%d, %d]", t.Begin, t.End, o.Name, o.Begin, o.End)
		}
		last = i
	}
	h.index = make(map[string]int, len(h.tensors))
	for i, t := range h.tensors {
		h.index[t.Name] = i
	}
	return h, nil
}

// parseEntry reads and validates one tensor's header entry.
func parseEntry(p *jsonParser, name string, bufLen int64) (TensorInfo, *Error) {
	ti := TensorInfo{Name: name}
	mkErr := func(format string, args ...any) *Error { return tensorErr(p.file, name, format, args...) }
	var dtype string
	var shape, offsets []uint64
	var hasDType, hasShape, hasOffsets bool
	err := p.object("header entry", mkErr, nil, func(key string) *Error {
		switch key {
		case "dtype":
			hasDType = true
			tok, err := p.token()
			if err != nil {
				return err
			}
			s, ok := tok.(string)
			if !ok {
				_ = skipValue(p.dec, tok)
				return mkErr("dtype is %s, not a string", describe(tok))
			}
			dtype = s
		case "shape":
			hasShape = true
			var err *Error
			shape, err = p.uints("shape", mkErr)
			return err
		case "data_offsets":
			hasOffsets = true
			var err *Error
			offsets, err = p.uints("data_offsets", mkErr)
			return err
		default: // unknown fields are ignored, as by the reference implementation
			return p.skip()
		}
		return nil
	})
	if err != nil {
		return ti, err
	}
	switch {
	case !hasDType:
		return ti, mkErr("header entry has no \"dtype\"")
	case !hasShape:
		return ti, mkErr("header entry has no \"shape\"")
	case !hasOffsets:
		return ti, mkErr("header entry has no \"data_offsets\"")
	}
	dt, ok := dtypes[dtype]
	if !ok {
		if otherDTypes[dtype] {
			return ti, mkErr("dtype %q is not supported", dtype)
		}
		return ti, mkErr("unknown dtype %q", dtype)
	}
	ti.DType = dt
	if len(offsets) != 2 {
		return ti, mkErr("data_offsets has %d elements, want 2 [begin, end]", len(offsets))
	}
	begin, end := offsets[0], offsets[1]
	if begin > end {
		return ti, mkErr("data_offsets [%d, %d]: begin is after end", begin, end)
	}
	if end > uint64(bufLen) {
		return ti, mkErr("data_offsets [%d, %d] run past the end of the %d-byte data buffer", begin, end, bufLen)
	}
	ti.Begin, ti.End = int64(begin), int64(end)
	ti.Shape = make(tensor.Shape, len(shape))
	for i, d := range shape {
		ti.Shape[i] = int(d)
	}
	n := uint64(1)
	for _, d := range shape {
		hi, lo := bits.Mul64(n, d)
		if hi != 0 || lo > uint64(math.MaxInt) {
			return ti, mkErr("shape %v: element count overflows", ti.Shape)
		}
		n = lo
	}
	hi, nbytes := bits.Mul64(n, uint64(dt.Size()))
	if hi != 0 || nbytes > uint64(math.MaxInt) {
		return ti, mkErr("shape %v of %s: byte size overflows", ti.Shape, dt)
	}
	if nbytes != end-begin {
		return ti, mkErr("shape %v of %s needs %d bytes, but data_offsets [%d, %d] hold %d", ti.Shape, dt, nbytes, begin, end, end-begin)
	}
	return ti, nil
}
