package cpu

import (
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/shoggo/shoggo/tensor"
)

// TestMemory: Alloc gives zeroed host tensors; Upload and Download copy
// (not alias) every dtype; Adopt returns its argument; NewArena is a host
// arena; mismatched dtypes or sizes panic.
func TestMemory(t *testing.T) {
	c := New()
	for _, dt := range []tensor.DType{tensor.F32, tensor.F64, tensor.BF16, tensor.F16, tensor.I32, tensor.U8, tensor.I8, tensor.I64} {
		a := c.Alloc(dt, 3, 5)
		if !a.IsHost() || a.Numel() != 15 {
			t.Fatalf("%s: Alloc gave %v", dt, a)
		}
		src := tensor.New(dt, 15)
		switch dt {
		case tensor.F32:
			for i := range src.F32 {
				src.F32[i] = float32(i) + 0.5
			}
		case tensor.F64:
			for i := range src.F64 {
				src.F64[i] = float64(i) - 0.25
			}
		case tensor.F16, tensor.BF16:
			for i := range src.U16 {
				src.U16[i] = uint16(7 * i)
			}
		default:
			for i := range src.Bytes {
				src.Bytes[i] = byte(3*i + 1)
			}
		}
		c.Upload(a, src)
		back := tensor.New(dt, 5, 3)
		c.Download(back, a)
		if !reflect.DeepEqual(back.Reshape(15), src) {
			t.Errorf("%s: Download(Upload(x)) != x", dt)
		}
		c.Zero(a)
		c.Download(back, a)
		if reflect.DeepEqual(back.Reshape(15), src) {
			t.Errorf("%s: Upload aliases its source, or Zero did nothing", dt)
		}
		if c.Adopt(src) != src {
			t.Errorf("%s: Adopt copied", dt)
		}
	}
	ar, err := c.NewArena(tensor.F32, []tensor.Spec{{Name: "w", Shape: tensor.Shape{2, 2}}})
	if err != nil || ar.Get("w") == nil || !ar.Get("w").IsHost() {
		t.Fatalf("NewArena: %v, %v", ar, err)
	}
	mustPanic(t, func() { c.Upload(c.Alloc(tensor.F32, 4), tensor.New(tensor.F64, 4)) }, "Upload")
	mustPanic(t, func() { c.Download(c.Alloc(tensor.F32, 4), tensor.New(tensor.F32, 5)) }, "Download")
}

// TestZero clears exactly the viewed elements, for every storage kind.
func TestZero(t *testing.T) {
	c := New()
	rng := rand.New(rand.NewPCG(1, 1))
	for _, dt := range []tensor.DType{tensor.F32, tensor.F64, tensor.BF16, tensor.I32} {
		x := tensor.New(dt, 4, 8)
		switch dt {
		case tensor.F32:
			for i := range x.F32 {
				x.F32[i] = 1 + rng.Float32()
			}
		case tensor.F64:
			for i := range x.F64 {
				x.F64[i] = 1 + rng.Float64()
			}
		case tensor.BF16:
			for i := range x.U16 {
				x.U16[i] = 0x3f80
			}
		default:
			for i := range x.Bytes {
				x.Bytes[i] = 9
			}
		}
		c.Zero(x.Slice(1, 3))
		for i := 0; i < 32; i++ {
			var nz bool
			switch dt {
			case tensor.F32:
				nz = x.F32[i] != 0
			case tensor.F64:
				nz = x.F64[i] != 0
			case tensor.BF16:
				nz = x.U16[i] != 0
			default:
				nz = x.Bytes[4*i] != 0
			}
			if inView := i >= 8 && i < 24; nz == inView {
				t.Fatalf("%s: element %d nonzero=%v after zeroing rows 1..2", dt, i, nz)
			}
		}
	}
}
