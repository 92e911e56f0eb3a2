//go:build !(darwin || freebsd || linux || netbsd)

package dist

import "runtime"

// OpenMPI is not available on this platform (no dlopen through purego).
func OpenMPI() (Comm, error) { return nil, MPIAvailable() }

// MPIAvailable reports why Open MPI cannot be used here.
func MPIAvailable() error {
	return &Error{Lib: "MPI", Call: "dlopen", Msg: "Open MPI is not supported on " + runtime.GOOS + "/" + runtime.GOARCH}
}
