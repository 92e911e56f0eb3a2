//go:build !linux

package gemm

import "time"

var epoch = time.Now()

// threadCPU returns wall time here (no thread clock outside Linux).
func threadCPU() float64 { return time.Since(epoch).Seconds() }
