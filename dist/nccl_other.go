//go:build !(darwin || freebsd || linux || netbsd)

package dist

import "runtime"

// NCCL is not available on this platform (no dlopen through purego).
type NCCL struct{}

// LoadNCCL reports that NCCL cannot be opened here.
func LoadNCCL(path string) (*NCCL, error) {
	return nil, &Error{Lib: "NCCL", Call: "dlopen", Msg: "NCCL is not supported on " + runtime.GOOS + "/" + runtime.GOARCH}
}
