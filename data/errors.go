package data

import (
	"fmt"
	"strconv"
	"unicode/utf8"
)

// Error is a problem with input data. It names the file, and where known the
// line (1-based) and the byte offset (from the start of the file).
type Error struct {
	File   string // file name; empty for data parsed from memory
	Line   int    // 1-based line number, or 0 when not applicable
	Offset int64  // byte offset from the start of the file, or -1 when not applicable
	Msg    string
}

func (e *Error) Error() string {
	name := e.File
	if name == "" {
		name = "<memory>"
	}
	s := name
	if e.Line > 0 {
		s += ":" + strconv.Itoa(e.Line)
	}
	if e.Offset >= 0 {
		s += ": byte offset " + strconv.FormatInt(e.Offset, 10)
	}
	return s + ": " + e.Msg
}

func offsetErr(file string, off int64, format string, args ...any) *Error {
	return &Error{File: file, Offset: off, Msg: fmt.Sprintf(format, args...)}
}

func lineErr(file string, line int, format string, args ...any) *Error {
	return &Error{File: file, Line: line, Offset: -1, Msg: fmt.Sprintf(format, args...)}
}

// invalidUTF8 returns the index of the first byte of b that does not start a
// valid UTF-8 sequence, or -1 when b is valid UTF-8.
func invalidUTF8(b []byte) int {
	if utf8.Valid(b) {
		return -1
	}
	for i := 0; i < len(b); {
		if b[i] < utf8.RuneSelf {
			i++
			continue
		}
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n == 1 {
			return i
		}
		i += n
	}
	return -1 // unreachable: utf8.Valid said otherwise
}
