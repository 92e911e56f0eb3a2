package cpu

import (
	"math/rand"
	"testing"

	"github.com/shoggo/shoggo/tensor"
)

// Gradient check of y = s * (a + b) built from Add, Copy and Scale, with
// the backward built from Copy, Scale and AddInto (da += s dy, db += s dy).
// eps=1e-6, atol=1e-8, rtol=1e-6 (linear).
func TestElementwiseGrad(t *testing.T) {
	r := rand.New(rand.NewSource(40))
	const s = -1.7
	for _, shape := range actShapes {
		a, b := randT(r, shape...), randT(r, shape...)
		y, tmp, dy := tensor.New(tensor.F64, shape...), tensor.New(tensor.F64, shape...), randT(r, shape...)
		op := gradOp{
			names:  []string{"a", "b"},
			inputs: []*tensor.Tensor{a, b},
			loss: func() float64 {
				be.Add(tmp, a, b)
				be.Copy(y, tmp)
				be.Scale(y, s)
				return dot(dy, y)
			},
			backward: func(g []*tensor.Tensor) {
				be.Copy(tmp, dy)
				be.Scale(tmp, s)
				for _, gi := range g {
					if gi != nil {
						be.AddInto(gi, tmp)
					}
				}
			},
		}
		checkGrads(t, "elementwise", op, 1e-6, 1e-8, 1e-6)
	}
}

func TestAddAliasAndShapes(t *testing.T) {
	r := rand.New(rand.NewSource(41))
	a := randT(r, 2, 3, 4)
	b := randT(r, 6, 4) // same numel, flattened shape
	want := tensor.New(tensor.F64, 2, 3, 4)
	for i := range want.F64 {
		want.F64[i] = a.F64[i] + b.F64[i]
	}
	a2 := a.Clone()
	be.Add(a2, a2, b) // y aliases a
	b2 := b.Clone()
	be.Add(b2, a, b2) // y aliases b
	if maxRelDiff(a2, want) != 0 || maxRelDiff(b2, want) != 0 {
		t.Error("aliased Add differs")
	}
	mustPanic(t, func() { be.Add(a, a, tensor.New(tensor.F64, 5)) }, "[5]", "24")
	mustPanic(t, func() { be.AddInto(a, tensor.New(tensor.F32, 2, 3, 4)) }, "mixed dtypes")
}

func TestCopyConvert(t *testing.T) {
	r := rand.New(rand.NewSource(42))
	src := randT(r, 3, 5)
	want32, _ := tensor.Convert(src, tensor.F32)
	want16, _ := tensor.Convert(src, tensor.BF16)
	d32 := tensor.New(tensor.F32, 15)
	be.Copy(d32, src)
	for i := range d32.F32 {
		if d32.F32[i] != want32.F32[i] {
			t.Fatalf("F64->F32 [%d]: %g, want %g", i, d32.F32[i], want32.F32[i])
		}
	}
	d16 := tensor.New(tensor.BF16, 3, 5)
	be.Copy(d16, d32)
	for i := range d16.U16 {
		if d16.U16[i] != want16.U16[i] {
			t.Fatalf("F32->BF16 [%d]: %#x, want %#x", i, d16.U16[i], want16.U16[i])
		}
	}
	back := tensor.New(tensor.F64, 3, 5)
	be.Copy(back, d16)
	for i := range back.F64 {
		if back.F64[i] != d16.At(i) {
			t.Fatalf("BF16->F64 [%d]", i)
		}
	}
	ints := tensor.New(tensor.I32, 4)
	ints.Bytes[5] = 7
	ints2 := tensor.New(tensor.I32, 2, 2)
	be.Copy(ints2, ints)
	if ints2.Bytes[5] != 7 {
		t.Error("I32 copy")
	}
	mustPanic(t, func() { be.Copy(tensor.New(tensor.F64, 4), ints) }, "cannot copy")
	mustPanic(t, func() { be.Copy(tensor.New(tensor.F64, 4), src) }, "[4]", "15")
}

func TestElementwiseF32(t *testing.T) {
	r := rand.New(rand.NewSource(43))
	a, b := randT(r, 4, 9), randT(r, 4, 9)
	checkF32(t, "elementwise", 1e-6, func(dt tensor.DType) []*tensor.Tensor {
		y := tensor.New(dt, 4, 9)
		aa := conv(a, dt)
		be.Add(y, aa, conv(b, dt))
		be.Scale(y, 0.3)
		be.AddInto(aa, y)
		return []*tensor.Tensor{y, aa}
	})
}
