package atomicfile

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// entries lists the names in dir.
func entries(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

func TestWriteFileReplaces(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f.txt")
	for i, c := range []struct {
		data string
		perm os.FileMode
	}{{"first", 0o644}, {"second, longer", 0o600}, {"", 0o640}} {
		if err := WriteFile(path, []byte(c.data), c.perm); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(path)
		if err != nil || string(got) != c.data {
			t.Errorf("write %d: read %q, %v; want %q", i, got, err, c.data)
		}
		if st, _ := os.Stat(path); st.Mode().Perm() != c.perm {
			t.Errorf("write %d: mode %v, want %v", i, st.Mode().Perm(), c.perm)
		}
		if names := entries(t, dir); len(names) != 1 {
			t.Errorf("write %d: directory holds %v", i, names)
		}
	}
}

// A failing fill leaves the old file and no temporary file, and its error
// comes back unchanged.
func TestWriteFillError(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f.txt")
	if err := WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	err := Write(path, 0o644, func(w io.Writer) error {
		w.Write([]byte("partial new contents"))
		return boom
	})
	if err != boom {
		t.Fatalf("error %v, want the fill's", err)
	}
	if got, _ := os.ReadFile(path); string(got) != "old" {
		t.Errorf("file now %q", got)
	}
	if names := entries(t, dir); len(names) != 1 {
		t.Errorf("directory holds %v", names)
	}
}

// Until Commit the destination is untouched; the temporary file is hidden
// in the same directory; WriteAt patches earlier bytes; Abort after Commit
// is a no-op and writes after Commit are errors.
func TestFileLifecycle(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "shard.bin")
	f, err := Create(path, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Abort()
	if f.Path() != path {
		t.Errorf("Path %q", f.Path())
	}
	if _, err := f.Write([]byte("HDR0body")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("destination exists before Commit: %v", err)
	}
	names := entries(t, dir)
	if len(names) != 1 || !strings.HasPrefix(names[0], ".shard.bin.tmp") {
		t.Errorf("temporary files %v", names)
	}
	if _, err := f.WriteAt([]byte("HDR1"), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("-more")); err != nil {
		t.Fatal(err)
	}
	if err := f.Commit(); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(path); string(got) != "HDR1body-more" {
		t.Errorf("contents %q", got)
	}
	f.Abort()
	if _, err := os.Stat(path); err != nil {
		t.Errorf("Abort after Commit removed the file: %v", err)
	}
	if _, err := f.Write([]byte("x")); err == nil {
		t.Error("Write after Commit accepted")
	}
	if err := f.Commit(); err == nil {
		t.Error("second Commit accepted")
	}
	if names := entries(t, dir); len(names) != 1 {
		t.Errorf("directory holds %v", names)
	}
}

func TestAbortRemovesTemp(t *testing.T) {
	dir := t.TempDir()
	f, err := Create(filepath.Join(dir, "x"), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("data"))
	f.Abort()
	if names := entries(t, dir); len(names) != 0 {
		t.Errorf("directory holds %v", names)
	}
}

// Errors name the destination: a missing directory, and a destination that
// is a directory (the rename fails; the temporary file is removed).
func TestErrorsNamePath(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "no", "x.json")
	if err := WriteFile(missing, nil, 0o644); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("missing directory: %v", err)
	}
	sub := filepath.Join(dir, "sub")
	if err := os.MkdirAll(filepath.Join(sub, "child"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(sub, []byte("x"), 0o644); err == nil || !strings.Contains(err.Error(), sub) {
		t.Errorf("directory destination: %v", err)
	}
	if names := entries(t, dir); len(names) != 1 || names[0] != "sub" {
		t.Errorf("directory holds %v", names)
	}
}

func TestSyncDir(t *testing.T) {
	if err := SyncDir(t.TempDir()); err != nil {
		t.Error(err)
	}
	if err := SyncDir(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("missing directory: no error")
	}
}

// A relative path writes in the current directory.
func TestRelativePath(t *testing.T) {
	t.Chdir(t.TempDir())
	if err := WriteFile("rel.txt", []byte("r"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile("rel.txt"); string(got) != "r" {
		t.Errorf("contents %q", got)
	}
}

// Step errors are *fs.PathError values naming the destination.
func TestPathErrors(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "no", "x.json")
	err := WriteFile(missing, nil, 0o644)
	var pe *fs.PathError
	if !errors.As(err, &pe) || pe.Path != missing || pe.Op != "create" || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing directory: %#v", err)
	}
	sub := filepath.Join(dir, "sub")
	os.MkdirAll(filepath.Join(sub, "child"), 0o755)
	err = WriteFile(sub, nil, 0o644)
	if !errors.As(err, &pe) || pe.Path != sub || pe.Op != "rename" {
		t.Errorf("directory destination: %#v", err)
	}
}
