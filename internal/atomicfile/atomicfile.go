// Package atomicfile writes files so that a crash leaves either the old
// file or the complete new one, never a partial file: the bytes go to a
// temporary file in the destination's directory, which is synced, given
// its final permissions, closed, renamed over the destination, and the
// directory is synced so the rename itself is durable.
//
// Temporary files are named "." + base + ".tmp*" (hidden, next to the
// destination, so the rename never crosses file systems) and are removed
// on every error path and by Abort.
//
// Errors of this package's own steps are *fs.PathError values naming the
// destination path and the step (Op "create", "write", "fsync", "rename",
// "fsync directory"); errors from a caller's fill function pass through
// unchanged.
package atomicfile

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
)

// File is a file being written atomically. Write to it (it is buffered),
// then Commit; on any failure before that call Abort (typically deferred:
// Abort after a successful Commit does nothing). A File is not safe for
// concurrent use.
type File struct {
	path string
	perm os.FileMode
	f    *os.File
	bw   *bufio.Writer
	done bool
}

// bufSize is the write buffer of a File.
const bufSize = 1 << 20

// Create starts an atomic write of path, which will get permissions perm
// (exactly, regardless of the umask) when committed. Nothing at path
// changes until Commit.
func Create(path string, perm os.FileMode) (*File, error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp*")
	if err != nil {
		return nil, pathErr("create", path, err)
	}
	return &File{path: path, perm: perm, f: f, bw: bufio.NewWriterSize(f, bufSize)}, nil
}

// Path returns the destination path.
func (w *File) Path() string { return w.path }

// Write appends p (buffered).
func (w *File) Write(p []byte) (int, error) {
	if w.done {
		return 0, fmt.Errorf("%s: write after Commit or Abort", w.path)
	}
	return w.bw.Write(p)
}

// WriteAt flushes the buffer and writes p at offset off of the temporary
// file, to patch a region already written (a header whose fields are known
// only at the end). It does not move the position where Write continues.
func (w *File) WriteAt(p []byte, off int64) (int, error) {
	if w.done {
		return 0, fmt.Errorf("%s: write after Commit or Abort", w.path)
	}
	if err := w.bw.Flush(); err != nil {
		return 0, pathErr("write", w.path, err)
	}
	n, err := w.f.WriteAt(p, off)
	if err != nil {
		return n, pathErr("write", w.path, err)
	}
	return n, nil
}

// Commit flushes, sets the permissions, fsyncs and closes the temporary
// file, renames it over the destination and fsyncs the directory. On error
// the temporary file is removed and the destination is untouched (unless
// the rename succeeded and only the directory sync failed). Commit twice
// is an error.
func (w *File) Commit() (err error) {
	if w.done {
		return fmt.Errorf("%s: Commit after Commit or Abort", w.path)
	}
	w.done = true
	tmp := w.f.Name()
	defer func() {
		if err != nil {
			_ = w.f.Close()
			_ = os.Remove(tmp)
		}
	}()
	if err := w.bw.Flush(); err != nil {
		return pathErr("write", w.path, err)
	}
	if err := w.f.Chmod(w.perm); err != nil && runtime.GOOS != "windows" {
		return pathErr("write", w.path, err)
	}
	if err := w.f.Sync(); err != nil {
		return pathErr("fsync", w.path, err)
	}
	if err := w.f.Close(); err != nil {
		return pathErr("write", w.path, err)
	}
	if err := os.Rename(tmp, w.path); err != nil {
		return pathErr("rename", w.path, err)
	}
	if err := SyncDir(filepath.Dir(w.path)); err != nil {
		return pathErr("fsync directory", w.path, err)
	}
	return nil
}

// pathErr names the destination and the step; an underlying *fs.PathError
// (which names the temporary file) is unwrapped to its cause.
func pathErr(op, path string, err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	var le *os.LinkError
	if errors.As(err, &le) {
		err = le.Err
	}
	return &fs.PathError{Op: op, Path: path, Err: err}
}

// Abort discards the write: the temporary file is closed and removed. It
// does nothing after Commit or a previous Abort.
func (w *File) Abort() {
	if w.done {
		return
	}
	w.done = true
	_ = w.f.Close()
	_ = os.Remove(w.f.Name())
}

// Write writes path atomically with permissions perm, the contents produced
// by fill. An error from fill aborts the write and is returned as is.
func Write(path string, perm os.FileMode, fill func(w io.Writer) error) error {
	f, err := Create(path, perm)
	if err != nil {
		return err
	}
	defer f.Abort()
	if err := fill(f); err != nil {
		return err
	}
	return f.Commit()
}

// WriteFile writes data to path atomically with permissions perm (the
// atomic counterpart of os.WriteFile).
func WriteFile(path string, data []byte, perm os.FileMode) error {
	return Write(path, perm, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// SyncDir fsyncs directory dir, making renames and removals in it durable.
// Where directories cannot be synced (Windows, some file systems) it
// returns nil.
func SyncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	_ = d.Close()
	if err != nil && (errors.Is(err, os.ErrInvalid) || errors.Is(err, errors.ErrUnsupported)) {
		return nil
	}
	return err
}
