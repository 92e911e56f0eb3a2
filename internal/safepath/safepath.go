// Package safepath holds the one check every command that writes an output
// makes first: the output must not be, contain, or lie inside any of its
// inputs, after resolving real paths (symlinks included), so that no
// command ever writes into what it reads.
package safepath

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Real resolves p to an absolute path with every symlink in it followed.
// Components that do not exist yet are kept as written (after the deepest
// existing ancestor has been resolved), so an output that is about to be
// created resolves as well.
func Real(p string) (string, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	rest := ""
	cur := abs
	for {
		if r, err := filepath.EvalSymlinks(cur); err == nil {
			return filepath.Join(r, rest), nil
		} else if !os.IsNotExist(err) {
			return "", err
		}
		parent := filepath.Dir(cur)
		if parent == cur {
			return abs, nil
		}
		rest = filepath.Join(filepath.Base(cur), rest)
		cur = parent
	}
}

// within reports whether a is b or lies inside b (both clean and absolute).
func within(a, b string) bool {
	if a == b {
		return true
	}
	if !strings.HasSuffix(b, string(filepath.Separator)) {
		b += string(filepath.Separator)
	}
	return strings.HasPrefix(a, b)
}

// Input names one input of a command for CheckOutput's messages.
type Input struct {
	Flag string // e.g. "--model"
	Path string // empty: not used by this run (skipped)
}

// CheckOutput returns an error if the output directory or file out
// (named by outFlag in messages) resolves to one of the inputs, lies inside
// one, or contains one. Inputs with an empty Path are skipped.
func CheckOutput(outFlag, out string, inputs ...Input) error {
	if out == "" {
		return nil
	}
	ro, err := Real(out)
	if err != nil {
		return fmt.Errorf("%s %s: %w", outFlag, out, err)
	}
	for _, in := range inputs {
		if in.Path == "" {
			continue
		}
		ri, err := Real(in.Path)
		if err != nil {
			return fmt.Errorf("%s %s: %w", in.Flag, in.Path, err)
		}
		switch {
		case ro == ri:
			return fmt.Errorf("%s %s is the input %s %s (%s): refusing to write into the input; choose another %s", outFlag, out, in.Flag, in.Path, ri, outFlag)
		case within(ro, ri):
			return fmt.Errorf("%s %s lies inside the input %s %s (%s): refusing to write into the input; choose another %s", outFlag, out, in.Flag, in.Path, ri, outFlag)
		case within(ri, ro):
			return fmt.Errorf("%s %s contains the input %s %s (%s): writing there would overwrite the input; choose another %s", outFlag, out, in.Flag, in.Path, ri, outFlag)
		}
	}
	return nil
}
