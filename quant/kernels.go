package quant

import "github.com/shoggo/shoggo/internal/cpu"

// useAsm selects the AVX2/FMA kernels (kernels_amd64.s): the CPU must have
// AVX, AVX2 and FMA with YMM state enabled, and SHOGGO_NOASM must not be 1.
// Tests toggle it.
var useAsm = cpu.UseAVX2FMA()
