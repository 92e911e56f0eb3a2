package main

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The CLI only maps flags onto recipe configs and prints results: the
// recipes live in package recipe and the trainer harness in package train.
// These limits keep it that way.
const (
	maxCLILines     = 1500 // non-test lines in cmd/shoggo
	maxCLIFuncLines = 80   // lines of any one function (declaration to closing brace)
)

func TestCLIStaysThin(t *testing.T) {
	paths, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	total := 0
	for _, p := range paths {
		if strings.HasSuffix(p, "_test.go") {
			continue
		}
		src, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		f, err := parser.ParseFile(fset, p, src, parser.ParseComments)
		if err != nil {
			t.Fatal(err)
		}
		total += fset.File(f.Pos()).LineCount()
		for _, d := range f.Decls {
			fd, ok := d.(*ast.FuncDecl)
			if !ok {
				continue
			}
			from, to := fset.Position(fd.Pos()).Line, fset.Position(fd.End()).Line
			if n := to - from + 1; n > maxCLIFuncLines {
				t.Errorf("%s:%d: %s is %d lines (at most %d in cmd/shoggo: move the work into a library package)", p, from, fd.Name.Name, n, maxCLIFuncLines)
			}
		}
	}
	if total > maxCLILines {
		t.Errorf("cmd/shoggo has %d non-test lines, at most %d: move the work into a library package", total, maxCLILines)
	}
	t.Logf("cmd/shoggo: %d non-test lines", total)
}
