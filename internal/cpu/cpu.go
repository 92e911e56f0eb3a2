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
// counted only when the OS saves the registers it uses: the AVX features
// need OSXSAVE and XCR0 bits 1-2 (XMM, YMM state), the AVX-512 ones also
// XCR0 bits 5-7 (opmask, upper halves of ZMM0-15, ZMM16-31). All false on
// other architectures.
var X86 struct {
	HasAVX2       bool // AVX and AVX2
	HasFMA        bool // FMA3 (on AVX registers)
	HasF16C       bool // VCVTPH2PS / VCVTPS2PH
	HasAVX512F    bool // AVX-512 Foundation
	HasAVX512BW   bool // byte and word instructions
	HasAVX512VL   bool // AVX-512 instructions on xmm/ymm registers
	HasAVX512BF16 bool // VDPBF16PS, VCVTNE2PS2BF16, VCVTNEPS2BF16
	HasAMXBF16    bool // AMX-TILE and AMX-BF16 (TDPBF16PS), XCR0 bits 17-18 set
}

// NoAsm is true when the environment variable SHOGGO_NOASM was "1" at
// start-up: the assembly kernels are then not used, whatever the CPU.
var NoAsm = os.Getenv("SHOGGO_NOASM") == "1"

// NoBF16 is true when the environment variable SHOGGO_NOBF16 was "1" at
// start-up: the AVX512_BF16 kernels are then not used (the AVX2 ones
// are), to measure or compare the fallback on a CPU that has them.
var NoBF16 = os.Getenv("SHOGGO_NOBF16") == "1"

// NoAMX is true when the environment variable SHOGGO_NOAMX was "1" at
// start-up: the AMX kernels are then not used.
var NoAMX = os.Getenv("SHOGGO_NOAMX") == "1"

// HasAVX2FMA reports whether the CPU and OS can run AVX2/FMA code.
func HasAVX2FMA() bool { return X86.HasAVX2 && X86.HasFMA }

// UseAVX2FMA reports whether the AVX2/FMA kernels should be used: the CPU
// has them and SHOGGO_NOASM=1 is not set.
func UseAVX2FMA() bool { return HasAVX2FMA() && !NoAsm }

// HasAVX2F16C reports whether the CPU and OS can run AVX2, FMA and F16C
// code (the half-precision conversions of the GEMM packing routines).
func HasAVX2F16C() bool { return HasAVX2FMA() && X86.HasF16C }

// HasAVX512BF16 reports whether the CPU and OS can run AVX-512 F, BW, VL
// and BF16 code on all 32 zmm registers (the bf16 dot-product GEMM kernel).
func HasAVX512BF16() bool {
	return HasAVX2F16C() && X86.HasAVX512F && X86.HasAVX512BW && X86.HasAVX512VL && X86.HasAVX512BF16
}

// UseAVX512BF16 is HasAVX512BF16() unless SHOGGO_NOASM=1 or
// SHOGGO_NOBF16=1 is set.
func UseAVX512BF16() bool { return HasAVX512BF16() && !NoAsm && !NoBF16 }

// UseAMXBF16 reports whether the AMX-BF16 kernels should be used: the CPU
// has AMX-TILE and AMX-BF16, the OS lets this process use the tile data
// (EnableAMX), and none of SHOGGO_NOASM, SHOGGO_NOBF16, SHOGGO_NOAMX is 1.
// Its first call asks the OS for the permission.
func UseAMXBF16() bool {
	return X86.HasAMXBF16 && HasAVX512BF16() && !NoAsm && !NoBF16 && !NoAMX && EnableAMX()
}
