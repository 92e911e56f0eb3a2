//go:build darwin || freebsd || linux || netbsd

package dist

import (
	"runtime"
	"unsafe"

	"github.com/ebitengine/purego"
)

// initRankCall calls ncclCommInitRank(ncclComm_t* comm, int nranks,
// ncclUniqueId id, int rank) under AAPCS64: a composite larger than 16 bytes
// is copied by the caller and passed as a pointer in the next integer
// register, so the arguments are x0=comm, x1=nranks, x2=&copy, x3=rank.
func initRankCall(fn uintptr, comm *uintptr, nranks int32, id *NCCLUniqueID, rank int32) int32 {
	cp := new(NCCLUniqueID)
	*cp = *id
	r, _, _ := purego.SyscallN(fn, uintptr(unsafe.Pointer(comm)), uintptr(nranks), uintptr(unsafe.Pointer(cp)), uintptr(rank))
	runtime.KeepAlive(comm)
	runtime.KeepAlive(cp)
	return int32(r)
}
