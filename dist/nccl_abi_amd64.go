//go:build darwin || freebsd || linux || netbsd

package dist

import (
	"runtime"
	"unsafe"

	"github.com/ebitengine/purego"
)

// initRankCall calls ncclCommInitRank(ncclComm_t* comm, int nranks,
// ncclUniqueId id, int rank) under the System V AMD64 ABI: comm, nranks and
// rank take the integer registers rdi, rsi, rdx in that order (the struct,
// class MEMORY, takes no register), and the 128-byte id is copied to the
// stack argument area. SyscallN puts its first six arguments in rdi, rsi,
// rdx, rcx, r8, r9 and the rest on the stack in order.
func initRankCall(fn uintptr, comm *uintptr, nranks int32, id *NCCLUniqueID, rank int32) int32 {
	w := idWords(id)
	r, _, _ := purego.SyscallN(fn, uintptr(unsafe.Pointer(comm)), uintptr(nranks), uintptr(rank), 0, 0, 0,
		w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7], w[8], w[9], w[10], w[11], w[12], w[13], w[14], w[15])
	runtime.KeepAlive(comm)
	return int32(r)
}
