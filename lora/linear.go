package lora

import (
	"fmt"

	"github.com/shoggo/shoggo/backend"
	"github.com/shoggo/shoggo/nn"
	"github.com/shoggo/shoggo/tensor"
)

// Linear is a frozen base layer plus a low-rank adapter:
//
//	y = Base(x) + scaling · (dropout(x) Aᵀ) Bᵀ
//
// It satisfies nn.Layer. A is Mod.A; B is a row block of Mod.B (all of it,
// except for GPT-2's c_attn views).
type Linear struct {
	Base nn.Layer
	Mod  *Module
	// B and DB are this view's rows of Mod.B and Mod.DB.
	B, DB *tensor.Tensor

	ad    *Adapters
	view  int // index in Mod.Views
	block int
	slot  slot
	orig  nn.Layer // the layer Apply replaced (put back by Merge and Unload)

	h       *tensor.Tensor // saved scaling·(dropout(x) Aᵀ), (N, r)
	dropped bool           // the last Forward applied dropout
}

func (l *Linear) In() int  { return l.Base.In() }
func (l *Linear) Out() int { return l.Base.Out() }

// Forward overwrites y with Base(x) + scaling·(dropout(x) Aᵀ) Bᵀ, saving
// what Backward needs (the (N, r) product and, in training mode with
// dropout, the module's keep mask as bits).
func (l *Linear) Forward(y, x *tensor.Tensor) {
	be, md := l.ad.be, l.Mod
	l.Base.Forward(y, x)
	N, in := x.Rows()
	r := md.R
	// Under mixed precision (a 16-bit x, see model.SetPrecision) the
	// adapter's input, product and dropped input are 16-bit too, so its
	// matmuls run as autocast calls like the base layer's.
	hdt := l.ad.dt
	if isHalf(x) {
		hdt = x.DType
	}
	if l.h == nil || l.h.Shape[0] != N || l.h.DType != hdt {
		l.h = be.Alloc(hdt, N, r)
	}
	xin := x
	l.dropped = l.ad.training && l.ad.Cfg.Dropout > 0
	if l.dropped {
		md.prepareMask(be, l.view, x, N, in, l.ad.Cfg.Dropout)
		xd := l.ad.scratch.getAs(bufXD, N, in, x.DType)
		be.DropoutForward(xd, x, md.mask, dropScale(l.ad.Cfg.Dropout))
		xin = xd
	}
	be.LinearForward(l.h, xin, md.A, nil)
	be.Scale(l.h, md.Scaling)
	out := l.B.Shape[0]
	tmp := l.ad.scratch.get(bufTmp, N, out)
	be.LinearForward(tmp, l.h, l.B, nil)
	be.AddInto(y, tmp)
}

// Backward accumulates dx += Base'(x)ᵀdy + scaling·(dy B A) (through the
// dropout mask), dB += scaling·dyᵀh and dA += scaling·(dy B)ᵀ dropout(x).
// The base layer is asked for its input gradient only.
func (l *Linear) Backward(dx, dy, x *tensor.Tensor) {
	be, md := l.ad.be, l.Mod
	if l.h == nil {
		panic("lora.Linear.Backward before Forward")
	}
	l.Base.Backward(dx, dy, x)
	N, in := x.Rows()
	if l.h.Shape[0] != N {
		panic(fmt.Sprintf("lora.Linear.Backward: %d rows, forward had %d", N, l.h.Shape[0]))
	}
	dh := l.ad.scratch.get(bufDH, N, md.R)
	be.Zero(dh)
	// hs = scaling·h; out = hs Bᵀ: d(hs) = dy B, dB += dyᵀ hs.
	be.LinearBackward(dh, l.DB, nil, dy, l.h, l.B)
	be.Scale(dh, md.Scaling) // gradient of h = xd Aᵀ
	if !l.dropped {
		be.LinearBackward(dx, md.DA, nil, dh, x, md.A)
		return
	}
	if md.maskN != N {
		panic("lora.Linear.Backward: dropout mask from another batch shape")
	}
	s := dropScale(l.ad.Cfg.Dropout)
	xd := l.ad.scratch.getAs(bufXD, N, in, x.DType)
	be.DropoutForward(xd, x, md.mask, s)
	var dxd *tensor.Tensor
	if dx != nil {
		dxd = l.ad.scratch.get(bufDXD, N, in)
		be.Zero(dxd)
	}
	be.LinearBackward(dxd, md.DA, nil, dh, xd, md.A)
	if dx != nil {
		be.DropoutBackward(dx, dxd, md.mask, s)
	}
}

// dropMask is a dropout keep mask: a U8 backend tensor, bit i&7 of byte
// i>>3 set when element i is kept (backend.DropoutOps).
type dropMask = *tensor.Tensor

func dropScale(p float64) float64 { return 1 / (1 - p) }

// prepareMask makes sure the module has a keep mask for this forward pass.
// The views of one module (GPT-2's q, k, v rows of c_attn) see the same
// input and must share one mask: a new mask is drawn (be.DropoutMask, from
// the module's seeded generator) when a view comes back for a second time
// (a new forward pass), or when the input or its shape changes.
func (md *Module) prepareMask(be backend.Backend, view int, x *tensor.Tensor, N, in int, p float64) {
	id := x.Identity()
	fresh := md.mask == nil || md.maskN != N || (md.maskUsed[view] || md.maskX != id) && !md.frozen
	if fresh {
		bytes := (N*in + 7) / 8
		if md.mask == nil || md.mask.Numel() < bytes {
			if md.mask != nil {
				be.Free(md.mask)
			}
			md.mask = be.Alloc(tensor.U8, bytes)
		}
		be.DropoutMask(md.mask, N*in, p, md.rng)
		md.maskN, md.maskX = N, id
		clear(md.maskUsed)
	}
	md.maskUsed[view] = true
}

// isHalf reports whether t is a 16-bit (BF16 or F16) tensor.
func isHalf(t *tensor.Tensor) bool { return t.DType == tensor.BF16 || t.DType == tensor.F16 }

// SetComputeDType passes a compute dtype (model.SetPrecision) on to the
// base layer if it has one (a quantized base: bnb_4bit_compute_dtype).
func (l *Linear) SetComputeDType(dt tensor.DType) {
	if cs, ok := l.Base.(interface{ SetComputeDType(tensor.DType) }); ok {
		cs.SetComputeDType(dt)
	}
}
