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

// sameVals fails unless the opaque tensor got holds want's values bit for
// bit (any float dtype).
func sameVals(t *testing.T, o *Backend, what string, want, got *tensor.Tensor) {
	t.Helper()
	if want.DType != got.DType {
		t.Fatalf("%s: dtype %v on the opaque backend, %v on the CPU", what, got.DType, want.DType)
	}
	g := tensor.New(got.DType, got.Shape...)
	o.Download(g, got)
	for i := range want.Numel() {
		a, b := want.At(i), g.At(i)
		if math.Float64bits(a) != math.Float64bits(b) {
			t.Fatalf("%s[%d] = %v on the opaque backend, %v on the CPU", what, i, b, a)
		}
	}
}

// half returns a random host tensor of dtype dt (values rounded).
func half(rng *rand.Rand, dt tensor.DType, shape ...int) *tensor.Tensor {
	x, err := tensor.Convert(randT(rng, shape...), dt)
	if err != nil {
		panic(err)
	}
	return x
}

// TestOpaqueAutocast: autocast calls (16-bit activations) on opaque
// storage give the CPU backend's bits: linear forward/backward, layer
// norm into a 16-bit y, attention, cross-entropy on a 16-bit h, mixed
// Add, dropout, and the quantized linear at a compute dtype.
func TestOpaqueAutocast(t *testing.T) {
	o := New()
	c := cpu.New()
	rng := rand.New(rand.NewPCG(7, 8))
	for _, P := range []tensor.DType{tensor.BF16, tensor.F16} {
		const N, in, out = 9, 12, 7
		xc, xo := upload(o, half(rng, P, N, in))
		wc, wo := upload(o, randT(rng, out, in))
		bc, bo := upload(o, randT(rng, out))
		yc, yo := c.Alloc(P, N, out), o.Alloc(P, N, out)
		c.LinearForward(yc, xc, wc, bc)
		o.LinearForward(yo, xo, wo, bo)
		sameVals(t, o, P.String()+" LinearForward", yc, yo)
		y32c, y32o := c.Alloc(tensor.F32, N, out), o.Alloc(tensor.F32, N, out)
		c.LinearForward(y32c, xc, wc, bc)
		o.LinearForward(y32o, xo, wo, bo)
		sameVals(t, o, P.String()+" LinearForward into F32", y32c, y32o)

		dyc, dyo := upload(o, randT(rng, N, out))
		dxc, dxo := c.Alloc(tensor.F32, N, in), o.Alloc(tensor.F32, N, in)
		dwc, dwo := c.Alloc(tensor.F32, out, in), o.Alloc(tensor.F32, out, in)
		dbc, dbo := c.Alloc(tensor.F32, out), o.Alloc(tensor.F32, out)
		c.LinearBackward(dxc, dwc, dbc, dyc, xc, wc)
		o.LinearBackward(dxo, dwo, dbo, dyo, xo, wo)
		sameVals(t, o, P.String()+" LinearBackward dx", dxc, dxo)
		sameVals(t, o, P.String()+" LinearBackward dw", dwc, dwo)
		sameVals(t, o, P.String()+" LinearBackward db", dbc, dbo)

		rc, ro := upload(o, randT(rng, N, in))
		gc, gO := upload(o, randT(rng, in))
		lnc, lno := c.Alloc(P, N, in), o.Alloc(P, N, in)
		mc, mo := c.Alloc(tensor.F32, N), o.Alloc(tensor.F32, N)
		sc, so := c.Alloc(tensor.F32, N), o.Alloc(tensor.F32, N)
		c.LayerNormForward(lnc, mc, sc, rc, gc, nil, 1e-5)
		o.LayerNormForward(lno, mo, so, ro, gO, nil, 1e-5)
		sameVals(t, o, P.String()+" LayerNormForward", lnc, lno)

		ac, ao := c.Alloc(tensor.F32, N, in), o.Alloc(tensor.F32, N, in)
		c.Add(ac, rc, xc)
		o.Add(ao, ro, xo)
		sameVals(t, o, P.String()+" Add", ac, ao)

		mask := tensor.New(tensor.U8, (N*in+7)/8)
		for i := range mask.Bytes {
			mask.Bytes[i] = byte(rng.IntN(256))
		}
		mkc, mko := upload(o, mask)
		ddc, ddo := c.Alloc(P, N, in), o.Alloc(P, N, in)
		c.DropoutForward(ddc, xc, mkc, 1.25)
		o.DropoutForward(ddo, xo, mko, 1.25)
		sameVals(t, o, P.String()+" DropoutForward", ddc, ddo)

		p := backend.AttnParams{B: 2, T: 5, NH: 2, KVH: 1, HS: 4}
		qc, qo := upload(o, half(rng, P, 2, 5, 2, 4))
		kc, ko := upload(o, half(rng, P, 2, 5, 1, 4))
		vc, vo := upload(o, half(rng, P, 2, 5, 1, 4))
		oc, oo := c.Alloc(P, 2, 5, 2, 4), o.Alloc(P, 2, 5, 2, 4)
		lc, lo := c.Alloc(tensor.F32, 2*2*5), o.Alloc(tensor.F32, 2*2*5)
		c.AttentionForward(oc, lc, qc, kc, vc, p)
		o.AttentionForward(oo, lo, qo, ko, vo, p)
		sameVals(t, o, P.String()+" AttentionForward", oc, oo)
		doc, doo := upload(o, randT(rng, 2, 5, 2, 4))
		dqc, dqo := c.Alloc(tensor.F32, 2, 5, 2, 4), o.Alloc(tensor.F32, 2, 5, 2, 4)
		dkc, dko := c.Alloc(tensor.F32, 2, 5, 1, 4), o.Alloc(tensor.F32, 2, 5, 1, 4)
		c.AttentionBackward(dqc, dkc, nil, doc, qc, kc, vc, oc, lc, p)
		o.AttentionBackward(dqo, dko, nil, doo, qo, ko, vo, oo, lo, p)
		sameVals(t, o, P.String()+" AttentionBackward dq", dqc, dqo)
		sameVals(t, o, P.String()+" AttentionBackward dk", dkc, dko)

		const V = 11
		hc, ho := upload(o, half(rng, P, N, in))
		ec, eo := upload(o, randT(rng, V, in))
		targets := make([]int32, N)
		for i := range targets {
			targets[i] = int32(rng.IntN(V))
		}
		dhc, dho := c.Alloc(tensor.F32, N, in), o.Alloc(tensor.F32, N, in)
		dec, deo := c.Alloc(tensor.F32, V, in), o.Alloc(tensor.F32, V, in)
		lossC, _, err1 := c.CrossEntropy(hc, ec, targets, 4, 0.1, dhc, dec)
		lossO, _, err2 := o.CrossEntropy(ho, eo, targets, 4, 0.1, dho, deo)
		if err1 != nil || err2 != nil || math.Float64bits(lossC) != math.Float64bits(lossO) {
			t.Fatalf("%v CrossEntropy: %v (%v) on the opaque backend, %v (%v) on the CPU", P, lossO, err2, lossC, err1)
		}
		sameVals(t, o, P.String()+" CrossEntropy dh", dhc, dho)
		sameVals(t, o, P.String()+" CrossEntropy dw", dec, deo)

		ql, err := quant.QuantizeLinear(randT(rng, out, in), nil, quant.NF4, quant.Options{BlockSize: 32})
		if err != nil {
			t.Fatal(err)
		}
		lqc := &quant.Linear{Name: "c", W: ql.W, BE: c}
		lqo := &quant.Linear{Name: "o", W: ql.W, BE: o}
		for _, l := range []*quant.Linear{lqc, lqo} {
			l.SetComputeDType(P)
		}
		qyc, qyo := c.Alloc(P, N, out), o.Alloc(P, N, out)
		lqc.Forward(qyc, xc)
		lqo.Forward(qyo, xo)
		sameVals(t, o, P.String()+" quant forward", qyc, qyo)
		qdc, qdo := c.Alloc(tensor.F32, N, in), o.Alloc(tensor.F32, N, in)
		lqc.Backward(qdc, dyc, xc)
		lqo.Backward(qdo, dyo, xo)
		sameVals(t, o, P.String()+" quant backward", qdc, qdo)
		// The compute dtype changed after first use reaches the opaque
		// backend's host view too.
		lqc.SetComputeDType(tensor.F32)
		lqo.SetComputeDType(tensor.F32)
		c.Zero(qdc)
		o.Zero(qdo)
		lqc.Backward(qdc, dyc, xc)
		lqo.Backward(qdo, dyo, xo)
		sameVals(t, o, P.String()+" quant backward at F32", qdc, qdo)
	}
}
