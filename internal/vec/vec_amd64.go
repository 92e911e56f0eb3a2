package vec

// Assembly kernels (vec_amd64.s). n is a positive multiple of 8.

//go:noescape
func maxAVX2(x *float32, n int) float32

//go:noescape
func expSubSumAVX2(x *float32, n int, m float32) float64

//go:noescape
func scaleAVX2(x *float32, n int, k float32)

//go:noescape
func addAVX2(y, a, b *float32, n int)

//go:noescape
func accumF64AVX2(acc *float64, x *float32, n int)

//go:noescape
func sumSquaresAVX2(x *float32, n int) float64

//go:noescape
func geluAVX2(y, x *float32, n int)

//go:noescape
func geluBwdAVX2(dx, dy, x *float32, n int)

//go:noescape
func swigluAVX2(y, gate, up *float32, n int)

//go:noescape
func swigluBwdAVX2(dg, du, dy, gate, up *float32, n int)

//go:noescape
func adamwAVX2(w, grad, m, v *float32, n int, k *AdamW, small int)

func cpuid(eaxArg, ecxArg uint32) (eax, ebx, ecx, edx uint32)
func xgetbv() (eax, edx uint32)

var hasAVX2FMA = detectAVX2FMA()

// detectAVX2FMA reports AVX, AVX2 and FMA, with YMM state saved by the OS.
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
