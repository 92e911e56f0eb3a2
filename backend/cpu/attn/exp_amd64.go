package attn

import "os"

// expSubAVX2 is expSub32 for n a multiple of 8, 8 lanes at a time
// (exp_amd64.s).
//
//go:noescape
func expSubAVX2(x *float32, n int, m float32) (sum float32)

// useAsm selects the AVX2/FMA exp. It is false where the CPU lacks AVX2 or
// FMA and when SHOGGO_NOASM=1 (as for the gemm package); tests toggle it.
var useAsm = detectAVX2FMA() && os.Getenv("SHOGGO_NOASM") != "1"

// CPU feature detection (as in backend/cpu/gemm, which keeps its own copy
// unexported): AVX, AVX2 and FMA, and YMM state saved by the OS.

func cpuid(eaxArg, ecxArg uint32) (eax, ebx, ecx, edx uint32)
func xgetbv() (eax, edx uint32)

func detectAVX2FMA() bool {
	maxID, _, _, _ := cpuid(0, 0)
	if maxID < 7 {
		return false
	}
	_, _, ecx1, _ := cpuid(1, 0)
	const (
		fma     = 1 << 12
		osxsave = 1 << 27
		avx     = 1 << 28
	)
	if ecx1&fma == 0 || ecx1&osxsave == 0 || ecx1&avx == 0 {
		return false
	}
	if xcr0, _ := xgetbv(); xcr0&6 != 6 {
		return false
	}
	_, ebx7, _, _ := cpuid(7, 0)
	const avx2 = 1 << 5
	return ebx7&avx2 != 0
}
