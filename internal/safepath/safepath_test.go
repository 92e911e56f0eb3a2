package safepath

import (
	"os"
	"path/filepath"
	"testing"
)

func TestCheckOutput(t *testing.T) {
	tmp := t.TempDir()
	in := filepath.Join(tmp, "in")
	other := filepath.Join(tmp, "other")
	for _, d := range []string{in, other} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	link := filepath.Join(tmp, "link")
	if err := os.Symlink(in, link); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, out string
		bad       bool
	}{
		{"same", in, true},
		{"trailing slash", in + "/", true},
		{"dot segments", filepath.Join(other, "..", "in"), true},
		{"symlink to input", link, true},
		{"inside input", filepath.Join(in, "sub", "x"), true},
		{"inside symlink", filepath.Join(link, "new"), true},
		{"contains input", tmp, true},
		{"sibling", other, false},
		{"new sibling", filepath.Join(tmp, "in2"), false},
		{"prefix but not inside", in + "-nf4", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckOutput("--out", tc.out, Input{"--in", in}, Input{"--unused", ""})
			if (err != nil) != tc.bad {
				t.Errorf("CheckOutput(%q): %v, want error %v", tc.out, err, tc.bad)
			}
		})
	}
	// the input given through a symlink, output the real directory
	if err := CheckOutput("--out", in, Input{"--in", link}); err == nil {
		t.Error("input via symlink, output its target: accepted")
	}
}
