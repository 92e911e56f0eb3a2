package tensor

import (
	"math"
	"math/rand"
	"testing"
)

// TestHalfConvExact: FastF16ToF32 equals F16ToF32 on every half;
// FastF32ToF16 equals F32ToF16 on every sign, exponent and 10-bit
// mantissa head with the rounding-relevant low 13 bits (ties, just
// below/above, zero, all ones), on NaNs and on random floats.
func TestHalfConvExact(t *testing.T) {
	for h := range 1 << 16 {
		a, b := FastF16ToF32(uint16(h)), F16ToF32(uint16(h))
		if math.Float32bits(a) != math.Float32bits(b) {
			t.Fatalf("FastF16ToF32(%#04x) = %#08x, want %#08x", h, math.Float32bits(a), math.Float32bits(b))
		}
	}
	check := func(u uint32) {
		f := math.Float32frombits(u)
		if a, b := FastF32ToF16(f), F32ToF16(f); a != b {
			t.Fatalf("FastF32ToF16(%#08x = %g) = %#04x, want %#04x", u, f, a, b)
		}
	}
	for se := uint32(0); se < 512; se++ {
		for head := uint32(0); head < 1024; head++ {
			for _, low := range []uint32{0, 1, 0xfff, 0x1000, 0x1001, 0x1fff, 0x0800} {
				check(se<<23 | head<<13 | low)
			}
		}
	}
	r := rand.New(rand.NewSource(1))
	for range 1 << 20 {
		check(r.Uint32())
	}
}
