//go:build unix

package data

import (
	"os"
	"syscall"
)

// mapFile maps size bytes of f read-only. size must be positive.
func mapFile(f *os.File, size int) (b []byte, mapped bool, err error) {
	b, err = syscall.Mmap(int(f.Fd()), 0, size, syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil, false, err
	}
	return b, true, nil
}

func unmapFile(b []byte) error { return syscall.Munmap(b) }
