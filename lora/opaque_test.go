package lora

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/shoggo/shoggo/backend"
	"github.com/shoggo/shoggo/backend/cpu"
	"github.com/shoggo/shoggo/backend/opaque"
	"github.com/shoggo/shoggo/nn"
	"github.com/shoggo/shoggo/quant"
	"github.com/shoggo/shoggo/tensor"
)

func randHost(rng *rand.Rand, shape ...int) *tensor.Tensor {
	x := tensor.New(tensor.F32, shape...)
	for i := range x.F32 {
		x.F32[i] = float32(rng.NormFloat64())
	}
	return x
}

// onBE returns a be tensor holding a copy of the host tensor x.
func onBE(be backend.Backend, x *tensor.Tensor) *tensor.Tensor { return be.Adopt(x.Clone()) }

// hostOf downloads a be tensor.
func hostOf(be backend.Backend, x *tensor.Tensor) *tensor.Tensor {
	h := tensor.New(x.DType, x.Shape...)
	be.Download(h, x)
	return h
}

func sameF32(t *testing.T, what string, a, b *tensor.Tensor) {
	t.Helper()
	for i := range a.F32 {
		if math.Float32bits(a.F32[i]) != math.Float32bits(b.F32[i]) {
			t.Fatalf("%s[%d]: %v on the CPU, %v on the opaque backend", what, i, a.F32[i], b.F32[i])
		}
	}
}

// loraOn builds one LoRA wrapper (rank r, dropout p, module seed) around
// base on be, with A and B copied from the host tensors.
func loraOn(be backend.Backend, base nn.Layer, A, B *tensor.Tensor, p float64, seed uint64) *Linear {
	r := A.Shape[0]
	a := &Adapters{Cfg: Config{R: r, Alpha: float64(2 * r), Dropout: p}, be: be, dt: tensor.F32, training: true}
	a.scratch.dt, a.scratch.be = tensor.F32, be
	md := &Module{Name: "m", R: r, Scaling: 2, A: onBE(be, A), B: onBE(be, B),
		DA: be.Alloc(tensor.F32, A.Shape...), DB: be.Alloc(tensor.F32, B.Shape...),
		rng: rand.New(rand.NewPCG(seed, 0x64726f70<<16)), maskUsed: make([]bool, 1)}
	l := &Linear{Base: base, Mod: md, B: md.B, DB: md.DB, ad: a}
	md.Views = []*Linear{l}
	return l
}

// TestOpaqueLoRANF4: a LoRA layer with dropout on an NF4 (double-quantized)
// base, forward and backward over three passes (a fresh mask, another fresh
// mask, then the second mask replayed as gradient checkpointing does), gives
// the same bits on the opaque backend as on the CPU: outputs, input
// gradients and both adapter gradients.
func TestOpaqueLoRANF4(t *testing.T) {
	const N, in, out, r = 24, 96, 80, 4
	rng := rand.New(rand.NewPCG(7, 8))
	w, bias := randHost(rng, out, in), randHost(rng, out)
	ql, err := quant.QuantizeLinear(w, bias, quant.NF4, quant.Options{DoubleQuant: true})
	if err != nil {
		t.Fatal(err)
	}
	A, B := randHost(rng, r, in), randHost(rng, out, r)
	x, dy := randHost(rng, N, in), randHost(rng, N, out)
	c, o := cpu.New(), opaque.New()
	run := func(be backend.Backend) (ys, dxs []*tensor.Tensor, da, db *tensor.Tensor) {
		base := &quant.Linear{Name: "base", W: ql.W, B: ql.B, BE: be}
		l := loraOn(be, base, A, B, 0.3, 11)
		xb, dyb := onBE(be, x), onBE(be, dy)
		for pass := range 3 {
			l.Mod.frozen = pass == 2
			y, dx := be.Alloc(tensor.F32, N, out), be.Alloc(tensor.F32, N, in)
			l.Forward(y, xb)
			l.Backward(dx, dyb, xb)
			ys, dxs = append(ys, hostOf(be, y)), append(dxs, hostOf(be, dx))
		}
		return ys, dxs, hostOf(be, l.Mod.DA), hostOf(be, l.DB)
	}
	yc, dxc, dac, dbc := run(c)
	yo, dxo, dao, dbo := run(o)
	for i := range yc {
		sameF32(t, "y", yc[i], yo[i])
		sameF32(t, "dx", dxc[i], dxo[i])
	}
	sameF32(t, "dA", dac, dao)
	sameF32(t, "dB", dbc, dbo)
	sameF32(t, "replayed y", yc[1], yo[2]) // the replay used pass 1's mask
	diff := false
	for i := range yc[0].F32 {
		diff = diff || yc[0].F32[i] != yc[1].F32[i]
	}
	if !diff {
		t.Error("pass 1 reused pass 0's dropout mask")
	}
}

// TestOpaqueHalfLinear: a bf16/fp16 HalfLinear with bias, in one block of
// weight rows and in several, gives the same bits on the opaque backend as
// on the CPU, forward and backward (accumulating into a non-zero dx).
func TestOpaqueHalfLinear(t *testing.T) {
	defer cpu.SetHalfBlockElems(cpu.SetHalfBlockElems(1 << 20))
	const N, in, out = 9, 48, 70
	rng := rand.New(rand.NewPCG(9, 10))
	for _, dt := range []tensor.DType{tensor.BF16, tensor.F16} {
		for _, blk := range []int{1 << 20, 5 * in} {
			cpu.SetHalfBlockElems(blk)
			w, bias := randHost(rng, out, in), randHost(rng, out)
			x, dy, dx0 := randHost(rng, N, in), randHost(rng, N, out), randHost(rng, N, in)
			var ys, dxs []*tensor.Tensor
			for _, be := range []backend.Backend{cpu.New(), opaque.New()} {
				l, err := NewHalfLinear(be, "h", w, onBE(be, bias), dt)
				if err != nil {
					t.Fatal(err)
				}
				y, dx := be.Alloc(tensor.F32, N, out), onBE(be, dx0)
				l.Forward(y, onBE(be, x))
				l.Backward(dx, onBE(be, dy), onBE(be, x))
				ys, dxs = append(ys, hostOf(be, y)), append(dxs, hostOf(be, dx))
			}
			sameF32(t, dt.String()+" y", ys[0], ys[1])
			sameF32(t, dt.String()+" dx", dxs[0], dxs[1])
		}
	}
}
