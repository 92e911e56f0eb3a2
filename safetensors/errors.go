package safetensors

import (
	"errors"
	"fmt"
)

// ErrNotFound is wrapped by the error returned when a tensor name is not in a
// file or set; test for it with errors.Is.
var ErrNotFound = errors.New("no such tensor")

// ErrClosed is wrapped by the error returned when a closed File is read.
var ErrClosed = errors.New("file is closed")

// Error describes a malformed, unreadable or unwritable file. It names the
// file (a safetensors file, an index file, or "<memory>" for Parse) and, when
// one tensor is at fault, that tensor.
type Error struct {
	File   string // path of the file at fault
	Tensor string // name of the tensor at fault; see HasTensor
	// HasTensor reports whether Tensor is meaningful (a tensor may be named "").
	HasTensor bool
	Err       error
}

func (e *Error) Error() string {
	s := "safetensors: " + e.File
	if e.HasTensor {
		s += fmt.Sprintf(": tensor %q", e.Tensor)
	}
	return s + ": " + e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

func fileErr(file string, format string, args ...any) *Error {
	return &Error{File: file, Err: fmt.Errorf(format, args...)}
}

func tensorErr(file, name string, format string, args ...any) *Error {
	return &Error{File: file, Tensor: name, HasTensor: true, Err: fmt.Errorf(format, args...)}
}
