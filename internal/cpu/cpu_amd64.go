package cpu

func cpuid(eaxArg, ecxArg uint32) (eax, ebx, ecx, edx uint32)
func xgetbv() (eax, edx uint32)

func init() {
	maxID, _, _, _ := cpuid(0, 0)
	if maxID < 1 {
		return
	}
	_, _, ecx1, _ := cpuid(1, 0)
	const (
		fma     = 1 << 12
		osxsave = 1 << 27
		avx     = 1 << 28
		f16c    = 1 << 29
	)
	if ecx1&osxsave == 0 || ecx1&avx == 0 {
		return
	}
	xcr0, _ := xgetbv()
	if xcr0&6 != 6 { // XMM and YMM state enabled by the OS
		return
	}
	X86.HasFMA = ecx1&fma != 0
	X86.HasF16C = ecx1&f16c != 0
	if maxID < 7 {
		return
	}
	eax7, ebx7, _, edx7 := cpuid(7, 0)
	const (
		avx2     = 1 << 5
		avx512f  = 1 << 16
		avx512bw = 1 << 30
		avx512vl = 1 << 31
		bf16     = 1 << 5  // CPUID.(7,1):EAX
		amxBF16  = 1 << 22 // CPUID.(7,0):EDX
		amxTile  = 1 << 24
	)
	X86.HasAVX2 = ebx7&avx2 != 0
	// Opmask, ZMM0-15 upper halves and ZMM16-31 state enabled by the OS.
	if xcr0&0xe6 != 0xe6 || ebx7&avx512f == 0 {
		return
	}
	X86.HasAVX512F = true
	X86.HasAVX512BW = ebx7&avx512bw != 0
	X86.HasAVX512VL = ebx7&avx512vl != 0
	if eax7 >= 1 {
		eax71, _, _, _ := cpuid(7, 1)
		X86.HasAVX512BF16 = eax71&bf16 != 0
	}
	// Tile configuration and data state enabled by the OS (with Linux's
	// XFD the data state also needs EnableAMX's permission request).
	X86.HasAMXBF16 = edx7&amxBF16 != 0 && edx7&amxTile != 0 && xcr0&(3<<17) == 3<<17
}
