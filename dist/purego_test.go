//go:build darwin || freebsd || linux || netbsd

package dist

import (
	"testing"

	"github.com/ebitengine/purego"
)

func mustSym(t *testing.T, lib, name string) uintptr {
	t.Helper()
	h, err := purego.Dlopen(lib, purego.RTLD_NOW|purego.RTLD_GLOBAL)
	if err != nil {
		t.Fatal(err)
	}
	s, err := purego.Dlsym(h, name)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func registerFunc(fptr any, sym uintptr) { purego.RegisterFunc(fptr, sym) }
