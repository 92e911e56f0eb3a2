package tokenizer

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func TestFileNames(t *testing.T) {
	names := FileNames()
	for _, want := range []string{"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json", "vocab.json", "merges.txt"} {
		if !slices.Contains(names, want) {
			t.Errorf("FileNames lacks %s", want)
		}
	}
	if slices.Contains(names, "config.json") || slices.Contains(names, "model.safetensors") {
		t.Errorf("FileNames has model files: %v", names)
	}
	names[0] = "changed"
	if FileNames()[0] == "changed" {
		t.Error("FileNames returns the package's own slice")
	}
}

// Present files (and extras) are copied with mode 0644, missing ones and
// non-tokenizer files are not, and the destination directory is created.
func TestCopyFiles(t *testing.T) {
	src := t.TempDir()
	writeFiles(t, src, map[string]string{
		"tokenizer.json": `{"model":{}}`, "merges.txt": "a b\n", "generation_config.json": "{}",
		"config.json": "{}", "model.safetensors": "x",
	})
	dst := filepath.Join(t.TempDir(), "out", "model")
	got, err := CopyFiles(src, dst, "generation_config.json")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"tokenizer.json", "merges.txt", "generation_config.json"}; !slices.Equal(got, want) {
		t.Errorf("copied %v, want %v", got, want)
	}
	ents, _ := os.ReadDir(dst)
	if len(ents) != 3 {
		t.Errorf("destination holds %v", ents)
	}
	for _, name := range got {
		a, _ := os.ReadFile(filepath.Join(src, name))
		b, err := os.ReadFile(filepath.Join(dst, name))
		if err != nil || string(a) != string(b) {
			t.Errorf("%s: %q, want %q (%v)", name, b, a, err)
		}
		if st, _ := os.Stat(filepath.Join(dst, name)); st.Mode().Perm() != 0o644 {
			t.Errorf("%s: mode %v", name, st.Mode().Perm())
		}
	}
	// Nothing to copy: no directory is created.
	none := filepath.Join(t.TempDir(), "none")
	if got, err := CopyFiles(t.TempDir(), none); err != nil || len(got) != 0 {
		t.Errorf("empty source: %v, %v", got, err)
	}
	if _, err := os.Stat(none); !os.IsNotExist(err) {
		t.Errorf("destination created for nothing: %v", err)
	}
}

// Copying a directory onto itself, or onto a hard link or a symlink to the
// source file, leaves the source intact; a symlink elsewhere is replaced,
// not written through.
func TestCopyFilesNeverWritesSource(t *testing.T) {
	src := t.TempDir()
	writeFiles(t, src, map[string]string{"tokenizer.json": "TOK", "vocab.json": "VOCAB", "merges.txt": "MERGES"})
	check := func(what string) {
		t.Helper()
		for name, want := range map[string]string{"tokenizer.json": "TOK", "vocab.json": "VOCAB", "merges.txt": "MERGES"} {
			if b, err := os.ReadFile(filepath.Join(src, name)); err != nil || string(b) != want {
				t.Fatalf("%s: source %s now %q (%v)", what, name, b, err)
			}
		}
	}
	if got, err := CopyFiles(src, src); err != nil || len(got) != 0 {
		t.Errorf("same directory: copied %v, %v", got, err)
	}
	check("same directory")
	// The same directory by another path.
	link := filepath.Join(t.TempDir(), "alias")
	if err := os.Symlink(src, link); err != nil {
		t.Skip(err)
	}
	if got, err := CopyFiles(src, link); err != nil || len(got) != 0 {
		t.Errorf("symlinked directory: copied %v, %v", got, err)
	}
	check("symlinked directory")

	dst := t.TempDir()
	if err := os.Link(filepath.Join(src, "tokenizer.json"), filepath.Join(dst, "tokenizer.json")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(src, "vocab.json"), filepath.Join(dst, "vocab.json")); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(t.TempDir(), "other")
	writeFiles(t, filepath.Dir(other), map[string]string{"other": "OTHER"})
	if err := os.Symlink(other, filepath.Join(dst, "merges.txt")); err != nil {
		t.Fatal(err)
	}
	got, err := CopyFiles(src, dst)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, []string{"merges.txt"}) {
		t.Errorf("copied %v, want only merges.txt", got)
	}
	check("links")
	if b, _ := os.ReadFile(other); string(b) != "OTHER" {
		t.Errorf("symlink target written through: %q", b)
	}
	if st, err := os.Lstat(filepath.Join(dst, "merges.txt")); err != nil || !st.Mode().IsRegular() {
		t.Errorf("merges.txt in the destination is not a regular file: %v", err)
	}
}

func TestCopyFilesNotRegular(t *testing.T) {
	src := t.TempDir()
	if err := os.Mkdir(filepath.Join(src, "tokenizer.json"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := CopyFiles(src, t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "tokenizer.json") {
		t.Errorf("directory named tokenizer.json: %v", err)
	}
}
