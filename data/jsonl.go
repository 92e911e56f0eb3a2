package data

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

// eachLine calls fn for every line of r without its line ending ("\n" or
// "\r\n"), with its 1-based number and the byte offset where it starts. A
// UTF-8 byte order mark at the start of r is skipped. Lines may be of any
// length.
func eachLine(r io.Reader, fn func(line []byte, lineNo int, off int64) error) error {
	br := bufio.NewReaderSize(r, 1<<16)
	var off int64
	for lineNo := 1; ; lineNo++ {
		b, err := br.ReadBytes('\n')
		if err != nil && err != io.EOF {
			return err
		}
		if len(b) == 0 && err == io.EOF {
			return nil
		}
		n := int64(len(b))
		start := off
		if lineNo == 1 && bytes.HasPrefix(b, utf8BOM) {
			b = b[len(utf8BOM):]
			start += int64(len(utf8BOM))
		}
		b = bytes.TrimSuffix(b, []byte("\n"))
		b = bytes.TrimSuffix(b, []byte("\r"))
		if ferr := fn(b, lineNo, start); ferr != nil {
			return ferr
		}
		off += n
		if err == io.EOF {
			return nil
		}
	}
}

// isBlank reports whether b holds only JSON whitespace.
func isBlank(b []byte) bool {
	return len(bytes.Trim(b, " \t\r\n")) == 0
}

// checkLineUTF8 returns an error naming the line and byte offset of the first
// invalid UTF-8 sequence in line, which starts at off in the file.
func checkLineUTF8(name string, line []byte, lineNo int, off int64) *Error {
	if i := invalidUTF8(line); i >= 0 {
		return &Error{File: name, Line: lineNo, Offset: off + int64(i), Msg: "invalid UTF-8"}
	}
	return nil
}

// jsonObject decodes one JSONL line into a map of raw field values,
// with messages suited to a person fixing the file.
func jsonObject(line []byte) (map[string]json.RawMessage, error) {
	t := bytes.TrimLeft(line, " \t\r\n")
	if len(t) > 0 && t[0] != '{' {
		if !json.Valid(t) {
			return nil, fmt.Errorf("invalid JSON: %v", jsonSyntax(t))
		}
		return nil, fmt.Errorf("expected a JSON object, found %s", jsonKind(t))
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(line, &m); err != nil {
		return nil, fmt.Errorf("invalid JSON: %v", jsonSyntax(line))
	}
	return m, nil
}

// jsonSyntax describes why b is not valid JSON, with the column (1-based
// byte position in the line) where a syntax error was found.
func jsonSyntax(b []byte) error {
	var v any
	err := json.Unmarshal(b, &v)
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Errorf("%s (column %d)", se.Error(), se.Offset)
	}
	if err == nil {
		return errors.New("not a JSON value")
	}
	return err
}

// jsonKind names the kind of JSON value raw holds.
func jsonKind(raw []byte) string {
	t := bytes.TrimLeft(raw, " \t\r\n")
	if len(t) == 0 {
		return "nothing"
	}
	switch t[0] {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	default:
		return "a number"
	}
}

// stringField decodes the string field key of m. present is false when the
// field is absent or null.
func stringField(m map[string]json.RawMessage, key string) (s string, present bool, err error) {
	raw, ok := m[key]
	if !ok || jsonKind(raw) == "null" {
		return "", false, nil
	}
	if jsonKind(raw) != "a string" {
		return "", true, fmt.Errorf("%q is %s, expected a string", key, jsonKind(raw))
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", true, fmt.Errorf("%q: %v", key, err)
	}
	return s, true, nil
}

// requiredString decodes the string field key of m, which must be present
// and, unless allowEmpty, non-empty.
func requiredString(m map[string]json.RawMessage, key string, allowEmpty bool) (string, error) {
	s, ok, err := stringField(m, key)
	if err != nil {
		return "", err
	}
	if !ok {
		return "", fmt.Errorf("missing %q", key)
	}
	if s == "" && !allowEmpty {
		return "", fmt.Errorf("empty %q", key)
	}
	return s, nil
}
