// Package device is the one place that picks a compute backend by name
// (the CLI's --device flag, a recipe's `device:` key). Adding a backend
// (CUDA) means adding a case here and nowhere else.
package device

import (
	"fmt"
	"strings"

	"github.com/shoggo/shoggo/backend"
	"github.com/shoggo/shoggo/backend/cpu"
)

// Names lists the accepted device names, for flag help and errors.
const Names = "auto|cpu"

// Open returns the backend for name: "cpu", or "auto" / "" (the best
// available; the CPU while no accelerator backend exists).
func Open(name string) (backend.Backend, error) {
	switch strings.ToLower(strings.TrimSpace(name)) {
	case "", "auto", "cpu":
		return cpu.New(), nil
	}
	return nil, fmt.Errorf("--device %q: want one of %s", name, Names)
}
