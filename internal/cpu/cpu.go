// Package cpu reports the x86 features that shoggo's assembly kernels need
// (what golang.org/x/sys/cpu does, kept here to avoid a dependency) and
// whether the user has switched the assembly off with SHOGGO_NOASM=1.
//
// Packages with AVX2/FMA kernels (backend/cpu/gemm, backend/cpu/attn via
// internal/vec, internal/vec, quant) start their own switch from
// UseAVX2FMA(), so that tests can still toggle each package separately.
package cpu

import "os"

// X86 holds the features of the amd64 CPU the program runs on, each
// counted only when the OS saves the YMM registers (OSXSAVE set and XCR0
// bits 1-2 enabled). All false on other architectures.
var X86 struct {
	HasAVX2 bool // AVX and AVX2
	HasFMA  bool // FMA3 (on AVX registers)
}

// NoAsm is true when the environment variable SHOGGO_NOASM was "1" at
// start-up: the assembly kernels are then not used, whatever the CPU.
var NoAsm = os.Getenv("SHOGGO_NOASM") == "1"

// HasAVX2FMA reports whether the CPU and OS can run AVX2/FMA code.
func HasAVX2FMA() bool { return X86.HasAVX2 && X86.HasFMA }

// UseAVX2FMA reports whether the AVX2/FMA kernels should be used: the CPU
// has them and SHOGGO_NOASM=1 is not set.
func UseAVX2FMA() bool { return HasAVX2FMA() && !NoAsm }
