package tensor

import "math"

// Branch-light float32 <-> float16 conversions for the autocast paths
// (F. Giesen's float_to_half_fast3_rtne and half_to_float). They give
// exactly F32ToF16's and F16ToF32's bits (NaN payloads
// included; TestHalfConvExact), several times faster on random data: the
// reference versions branch on the rounding decision.

// FastF32ToF16 is F32ToF16 (same bits), branch-light.
func FastF32ToF16(f float32) uint16 {
	u := math.Float32bits(f)
	sign := uint16(u>>16) & 0x8000
	u &^= 0x80000000
	switch {
	case u >= 0x47800000: // |f| >= 65536, Inf or NaN
		if u > 0x7f800000 {
			return sign | 0x7e00 | uint16((u&0x7fffff)>>13)
		}
		return sign | 0x7c00
	case u < 113<<23: // below the smallest normal half: subnormal or zero
		// Adding 0.5 aligns the 10 mantissa bits at the bottom of the
		// float; the float addition rounds to nearest even.
		const magic = ((127 - 15) + (23 - 10) + 1) << 23
		v := math.Float32frombits(u) + math.Float32frombits(magic)
		return sign | uint16(math.Float32bits(v)-magic)
	}
	odd := (u >> 13) & 1
	u = u - 112<<23 + 0xfff + odd // rebias (15-127) and round; a carry may reach Inf
	return sign | uint16(u>>13)
}

// FastF16ToF32 is F16ToF32 (same bits), branch-light.
func FastF16ToF32(h uint16) float32 {
	const shiftedExp = 0x7c00 << 13
	o := uint32(h&0x7fff) << 13
	exp := o & shiftedExp
	o += (127 - 15) << 23
	switch exp {
	case shiftedExp: // Inf, NaN
		o += (128 - 16) << 23
	case 0: // zero, subnormal: renormalize
		o += 1 << 23
		o = math.Float32bits(math.Float32frombits(o) - math.Float32frombits(113<<23))
	}
	return math.Float32frombits(o | uint32(h&0x8000)<<16)
}
