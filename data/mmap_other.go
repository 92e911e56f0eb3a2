//go:build !unix

package data

import (
	"io"
	"os"
)

// mapFile reads f into memory on platforms without mmap support here.
func mapFile(f *os.File, size int) (b []byte, mapped bool, err error) {
	b = make([]byte, size)
	if _, err := io.ReadFull(f, b); err != nil {
		return nil, false, err
	}
	return b, false, nil
}

func unmapFile(b []byte) error { return nil }
