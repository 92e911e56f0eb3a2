// Package sysinfo reads what benchmarks report about the machine and the
// process: CPU model, CPU time, resident memory, load average.
package sysinfo

import (
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"syscall"
	"time"
	"unsafe"
)

// CPUName is the model name from /proc/cpuinfo ("unknown CPU" elsewhere).
func CPUName() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "model name"); ok {
			return strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
		}
	}
	return "unknown CPU"
}

// CPUTime returns the CPU time (user + system) the process has used, all
// threads together.
func CPUTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// ProcStatus returns a "kB" field of /proc/self/status in bytes (0 where
// there is none).
func ProcStatus(field string) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			var kb int64
			fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), &kb)
			return kb << 10
		}
	}
	return 0
}

// VmHWM returns the process's peak resident set size in bytes.
func VmHWM() int64 { return ProcStatus("VmHWM") }

// LoadAvg1 is the 1-minute load average (0 where unknown).
func LoadAvg1() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	var l float64
	fmt.Sscan(string(b), &l)
	return l
}

var epoch = time.Now()

// WallSeconds is a monotonic clock in seconds.
func WallSeconds() float64 { return time.Since(epoch).Seconds() }

// ThreadSeconds returns the calling OS thread's CPU time in seconds (the
// wall clock where the kernel cannot tell).
func ThreadSeconds() float64 {
	var ts syscall.Timespec
	const clockThreadCPUTimeID = 3
	if _, _, errno := syscall.Syscall(syscall.SYS_CLOCK_GETTIME, clockThreadCPUTimeID, uintptr(unsafe.Pointer(&ts)), 0); errno != 0 {
		return WallSeconds()
	}
	return float64(ts.Sec) + float64(ts.Nsec)*1e-9
}

// MiB converts bytes to MiB.
func MiB(b int64) float64 { return float64(b) / (1 << 20) }

// Median of v (NaN for none).
func Median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// Human formats a count as 1.23B, 4.5M, 6.7K.
func Human(n float64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.2fB", n/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.1fM", n/1e6)
	case n >= 1e3:
		return fmt.Sprintf("%.1fK", n/1e3)
	}
	return fmt.Sprintf("%.0f", n)
}
