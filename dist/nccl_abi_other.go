//go:build (darwin || freebsd || linux || netbsd) && !amd64 && !arm64

package dist

// initRankCall: passing ncclUniqueId by value is only written for amd64
// and arm64 (NCCL ships for x86-64, aarch64 and ppc64le).
func initRankCall(fn uintptr, comm *uintptr, nranks int32, id *NCCLUniqueID, rank int32) int32 {
	return 5 // ncclInvalidUsage
}
