package gemm

import (
	"syscall"
	"unsafe"
)

// threadCPU returns the calling thread's CPU time in seconds: on a loaded
// machine it leaves out the time the thread was not running.
func threadCPU() float64 {
	var ts syscall.Timespec
	const clockThreadCPUTimeID = 3
	if _, _, errno := syscall.Syscall(syscall.SYS_CLOCK_GETTIME, clockThreadCPUTimeID, uintptr(unsafe.Pointer(&ts)), 0); errno != 0 {
		return 0
	}
	return float64(ts.Sec) + float64(ts.Nsec)*1e-9
}
