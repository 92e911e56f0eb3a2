package opaque

import (
	"math"
	"math/rand/v2"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"github.com/shoggo/shoggo/backend"
	"github.com/shoggo/shoggo/backend/cpu"
	"github.com/shoggo/shoggo/optim"
	"github.com/shoggo/shoggo/quant"
	"github.com/shoggo/shoggo/tensor"
)

func noHostSlice(t *testing.T, what string, x *tensor.Tensor) {
	t.Helper()
	if x.F32 != nil || x.F64 != nil || x.U16 != nil || x.Bytes != nil {
		t.Errorf("%s: %s exposes a host slice", what, x)
	}
	if x.Store == nil || x.IsHost() {
		t.Errorf("%s: %s has no backend handle", what, x)
	}
}

func mustPanic(t *testing.T, what string, f func()) {
	t.Helper()
	defer func() {
		if recover() == nil {
			t.Errorf("%s: no panic", what)
		}
	}()
	f()
}

// TestOpaqueNoHostSlice: every tensor the backend hands out (allocations of
// every dtype, their views, arena tensors, adopted tensors) has a handle
// and no host slice; host-storage methods of tensor panic on them; ops
// reject host tensors; a freed tensor cannot be used.
func TestOpaqueNoHostSlice(t *testing.T) {
	o := New()
	for _, dt := range []tensor.DType{tensor.F32, tensor.F64, tensor.F16, tensor.BF16, tensor.I32, tensor.U8, tensor.I8} {
		x := o.Alloc(dt, 4, 6)
		noHostSlice(t, "Alloc "+dt.String(), x)
		noHostSlice(t, "View", x.View(3, 2, 2))
		noHostSlice(t, "Slice", x.Slice(1, 3))
		noHostSlice(t, "Reshape", x.Reshape(24))
		if v := x.Slice(1, 3); v.Offset != 6 || v.Store != x.Store {
			t.Errorf("Slice(1, 3) of (4, 6): offset %d, want 6 in the same storage", v.Offset)
		}
	}
	a, err := o.NewArena(tensor.F32, []tensor.Spec{{Name: "a", Shape: tensor.Shape{3, 5}}, {Name: "b", Shape: tensor.Shape{7}}})
	if err != nil {
		t.Fatal(err)
	}
	noHostSlice(t, "arena flat", a.Flat())
	for _, x := range a.Tensors() {
		noHostSlice(t, "arena "+x.Name, x)
	}
	host := tensor.FromF32([]float32{1, 2, 3}, 3)
	ad := o.Adopt(host)
	noHostSlice(t, "Adopt", ad)
	back := tensor.New(tensor.F32, 3)
	o.Download(back, ad)
	if !reflect.DeepEqual(back.F32, host.F32) {
		t.Errorf("Download(Adopt(x)) = %v, want %v", back.F32, host.F32)
	}
	mustPanic(t, "tensor.Zero", func() { ad.Zero() })
	mustPanic(t, "tensor.At", func() { ad.At(0) })
	mustPanic(t, "tensor.Clone", func() { ad.Clone() })
	mustPanic(t, "arena.Zero", func() { a.Zero() })
	mustPanic(t, "op on a host tensor", func() { o.Scale(host, 2) })
	mustPanic(t, "Upload from a backend tensor", func() { o.Upload(ad, ad) })
	mustPanic(t, "CPU op on an opaque tensor", func() { cpu.New().Scale(ad, 2) })
	o.Free(ad)
	mustPanic(t, "use after Free", func() { o.Download(back, ad) })
}

// TestOpaqueWrapsEveryOp: every method of backend.Backend is written in
// this package, not promoted from the embedded CPU backend (a promoted op
// would hand opaque tensors to CPU kernels). An op added to the interface
// fails here until it gets its wrapper.
func TestOpaqueWrapsEveryOp(t *testing.T) {
	it := reflect.TypeOf((*backend.Backend)(nil)).Elem()
	ot := reflect.TypeOf(New())
	for i := range it.NumMethod() {
		name := it.Method(i).Name
		m, ok := ot.MethodByName(name)
		if !ok {
			t.Errorf("no method %s", name)
			continue
		}
		f := runtime.FuncForPC(m.Func.Pointer())
		file, _ := f.FileLine(m.Func.Pointer())
		if !strings.HasSuffix(file, "opaque.go") {
			t.Errorf("%s is not wrapped (promoted from %s)", name, file)
		}
	}
}

// upload returns (cpu copy, opaque copy) of a host tensor.
func upload(o *Backend, x *tensor.Tensor) (*tensor.Tensor, *tensor.Tensor) {
	return x.Clone(), o.Adopt(x)
}

func randT(rng *rand.Rand, shape ...int) *tensor.Tensor {
	x := tensor.New(tensor.F32, shape...)
	for i := range x.F32 {
		x.F32[i] = float32(rng.NormFloat64())
	}
	return x
}

// sameBits fails unless the opaque tensor got holds exactly want's bits.
func sameBits(t *testing.T, o *Backend, what string, want, got *tensor.Tensor) {
	t.Helper()
	g := tensor.New(got.DType, got.Shape...)
	o.Download(g, got)
	for i := range want.F32 {
		if math.Float32bits(want.F32[i]) != math.Float32bits(g.F32[i]) {
			t.Fatalf("%s[%d] = %v on the opaque backend, %v on the CPU", what, i, g.F32[i], want.F32[i])
		}
	}
}

// TestOpaqueAdamW: AdamW steps (decaying and non-decaying parameters,
// tensors above and below one chunk) with moments in opaque storage give
// the CPU backend's weights and moments bit for bit; LoadState uploads.
func TestOpaqueAdamW(t *testing.T) {
	o := New()
	rng := rand.New(rand.NewPCG(1, 2))
	shapes := [][]int{{97, 1031}, {3 << 14}, {5}, {0}, {131, 7}}
	var pc, po []optim.Param
	for i, s := range shapes {
		wc, wo := upload(o, randT(rng, s...))
		gc, gO := upload(o, randT(rng, s...))
		name := string(rune('a' + i))
		pc = append(pc, optim.Param{Name: name, W: wc, G: gc, Decay: len(s) > 1})
		po = append(po, optim.Param{Name: name, W: wo, G: gO, Decay: len(s) > 1})
	}
	cfg := optim.DefaultConfig()
	cfg.WeightDecay = 0.1
	oc, err := optim.NewAdamWOn(cpu.New(), pc, cfg)
	if err != nil {
		t.Fatal(err)
	}
	oo, err := optim.NewAdamWOn(o, po, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for step := range 4 {
		for i := range pc {
			g := randT(rng, shapes[i]...)
			copy(pc[i].G.F32, g.F32)
			o.Upload(po[i].G, g)
		}
		lr := 1e-3 * float64(step+1)
		oc.Step(lr)
		oo.Step(lr)
	}
	for i := range pc {
		sameBits(t, o, "w."+pc[i].Name, pc[i].W, po[i].W)
	}
	sc, so := oc.State(), oo.State()
	for i := range sc {
		noHostSlice(t, "state", so[i])
		sameBits(t, o, sc[i].Name, sc[i], so[i])
	}
	// LoadState from host tensors, then one more step on both.
	byName := map[string]*tensor.Tensor{}
	for _, s := range sc {
		byName[s.Name] = s.Clone()
	}
	if err := oo.LoadState(func(n string) *tensor.Tensor { return byName[n] }); err != nil {
		t.Fatal(err)
	}
	oc.Step(1e-3)
	oo.Step(1e-3)
	for i := range pc {
		sameBits(t, o, "w after LoadState."+pc[i].Name, pc[i].W, po[i].W)
	}
}

// TestOpaqueClip: global-norm clipping of opaque gradients returns the
// CPU's norm and scales to the same bits, clipping or not.
func TestOpaqueClip(t *testing.T) {
	o := New()
	rng := rand.New(rand.NewPCG(3, 4))
	for _, maxNorm := range []float64{1, 1e6, 0} {
		var gc, gO []*tensor.Tensor
		for _, s := range [][]int{{301, 997}, {5<<14 + 3}, {7}} {
			c, x := upload(o, randT(rng, s...))
			gc, gO = append(gc, c), append(gO, x)
		}
		nc := optim.ClipGradNormOn(cpu.New(), gc, maxNorm)
		no := optim.ClipGradNormOn(o, gO, maxNorm)
		if math.Float64bits(nc) != math.Float64bits(no) {
			t.Errorf("max %g: norm %v on the opaque backend, %v on the CPU", maxNorm, no, nc)
		}
		for i := range gc {
			sameBits(t, o, "grad", gc[i], gO[i])
		}
	}
}

// TestOpaqueQuantLinear: the quantized matmul of every format, on a few
// rows (direct kernels) and on many (dequantized panels), forward with and
// without bias and backward, is bit-identical to the CPU backend's.
func TestOpaqueQuantLinear(t *testing.T) {
	o := New()
	c := cpu.New()
	rng := rand.New(rand.NewPCG(5, 6))
	const out, in = 70, 160
	for _, format := range []string{quant.NF4, quant.FP4, quant.Int8, quant.Int4} {
		for _, dq := range []bool{false, true} {
			w := randT(rng, out, in)
			b := randT(rng, out)
			ql, err := quant.QuantizeLinear(w, b, format, quant.Options{DoubleQuant: dq, GroupSize: 32})
			if err != nil {
				t.Fatal(err)
			}
			lc := &quant.Linear{Name: "c", W: ql.W, B: ql.B, BE: c}
			lo := &quant.Linear{Name: "o", W: ql.W, B: ql.B, BE: o}
			lh := &quant.Linear{Name: "h", W: ql.W, B: ql.B} // host kernels, no backend
			for _, N := range []int{2, 37} {
				x := randT(rng, N, in)
				xc, xo := upload(o, x)
				yc, yo, yh := tensor.New(tensor.F32, N, out), o.Alloc(tensor.F32, N, out), tensor.New(tensor.F32, N, out)
				lc.Forward(yc, xc)
				lo.Forward(yo, xo)
				lh.Forward(yh, x)
				sameBits(t, o, format+" forward", yc, yo)
				sameBits(t, o, format+" forward (no backend)", yc, o.Adopt(yh))
				dy := randT(rng, N, out)
				dyc, dyo := upload(o, dy)
				dxc, dxo := upload(o, randT(rng, N, in))
				lc.Backward(dxc, dyc, xc)
				lo.Backward(dxo, dyo, xo)
				sameBits(t, o, format+" backward", dxc, dxo)
			}
		}
	}
}
