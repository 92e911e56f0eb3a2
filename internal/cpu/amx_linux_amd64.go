package cpu

import (
	"sync"
	"syscall"
)

var amxOnce = sync.OnceValue(func() bool {
	// arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA): Linux 5.16+
	// makes a process ask before it uses the AMX tile data (8 KiB of
	// register state per thread that uses it, and larger signal frames:
	// Go's 32 KiB signal stacks hold them).
	const archReqXcompPerm, xfeatureXtiledata = 0x1023, 18
	_, _, errno := syscall.RawSyscall(syscall.SYS_ARCH_PRCTL, archReqXcompPerm, xfeatureXtiledata, 0)
	return errno == 0
})

// EnableAMX asks the OS, once per process, for the permission to use the
// AMX tile registers, and reports whether it was granted.
func EnableAMX() bool { return X86.HasAMXBF16 && amxOnce() }
