package tensor

import (
	"fmt"
	"math"
)

// F32ToBF16 rounds f to bfloat16, to nearest with ties to even. NaN stays
// NaN (made quiet, sign kept); values beyond the bf16 range become ±Inf.
func F32ToBF16(f float32) uint16 {
	b := math.Float32bits(f)
	if b&0x7fffffff > 0x7f800000 { // NaN
		return uint16(b>>16) | 0x0040
	}
	b += 0x7fff + (b>>16)&1
	return uint16(b >> 16)
}

// BF16ToF32 widens a bfloat16 to float32 (exact).
func BF16ToF32(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }

// F32ToF16 rounds f to IEEE half precision, to nearest with ties to even,
// producing subnormals where needed, ±Inf on overflow and a quiet NaN for NaN.
func F32ToF16(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int(b>>23) & 0xff
	mant := b & 0x7fffff
	if exp == 0xff {
		if mant != 0 {
			return sign | 0x7e00 | uint16(mant>>13)
		}
		return sign | 0x7c00
	}
	e := exp - 127 + 15
	if e >= 0x1f {
		return sign | 0x7c00
	}
	if e <= 0 {
		if e < -10 {
			return sign
		}
		m := mant | 0x800000
		shift := uint(14 - e)
		half := uint32(1) << (shift - 1)
		rem := m & (1<<shift - 1)
		q := m >> shift
		if rem > half || (rem == half && q&1 == 1) {
			q++
		}
		return sign | uint16(q)
	}
	q := mant >> 13
	rem := mant & 0x1fff
	if rem > 0x1000 || (rem == 0x1000 && q&1 == 1) {
		q++
	}
	return sign | (uint16(e)<<10 + uint16(q)) // a carry out of the mantissa bumps the exponent
}

// F16ToF32 widens an IEEE half to float32 (exact).
func F16ToF32(h uint16) float32 {
	sign := uint32(h&0x8000) << 16
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h & 0x3ff)
	switch exp {
	case 0:
		v := float32(mant) * (1.0 / (1 << 24))
		if sign != 0 {
			v = -v
		}
		return v
	case 0x1f:
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	}
	return math.Float32frombits(sign | (exp-15+127)<<23 | mant<<13)
}

// ToF32 returns the elements of a float tensor as float32 (a copy, except
// for F32 tensors, whose storage is returned as is).
func ToF32(t *Tensor) ([]float32, error) {
	n := t.Numel()
	switch t.DType {
	case F32:
		return t.F32, nil
	case F64:
		out := make([]float32, n)
		for i, v := range t.F64 {
			out[i] = float32(v)
		}
		return out, nil
	case F16:
		out := make([]float32, n)
		for i, v := range t.U16 {
			out[i] = F16ToF32(v)
		}
		return out, nil
	case BF16:
		out := make([]float32, n)
		for i, v := range t.U16 {
			out[i] = BF16ToF32(v)
		}
		return out, nil
	}
	return nil, fmt.Errorf("tensor %q: cannot convert %s to F32", t.Name, t.DType)
}

// Convert returns a copy of a float tensor in dtype dt (rounding to nearest
// even when narrowing).
func Convert(t *Tensor, dt DType) (*Tensor, error) {
	if !t.DType.IsFloat() || !dt.IsFloat() {
		return nil, fmt.Errorf("tensor %q: cannot convert %s to %s", t.Name, t.DType, dt)
	}
	out := New(dt, t.Shape...)
	out.Name = t.Name
	if t.DType == F64 && dt == F64 {
		copy(out.F64, t.F64)
		return out, nil
	}
	if t.DType == F64 {
		for i, v := range t.F64 {
			out.Set(i, v)
		}
		return out, nil
	}
	src, err := ToF32(t)
	if err != nil {
		return nil, err
	}
	switch dt {
	case F32:
		copy(out.F32, src)
	case F64:
		for i, v := range src {
			out.F64[i] = float64(v)
		}
	case F16:
		for i, v := range src {
			out.U16[i] = F32ToF16(v)
		}
	case BF16:
		for i, v := range src {
			out.U16[i] = F32ToBF16(v)
		}
	}
	return out, nil
}
