package lora

import (
	"fmt"

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
	if l.h == nil || l.h.Shape[0] != N {
		l.h = tensor.New(l.ad.dt, N, r)
	}
	xin := x
	l.dropped = l.ad.training && l.ad.Cfg.Dropout > 0
	if l.dropped {
		md.prepareMask(l.view, x, N, in, l.ad.Cfg.Dropout)
		xd := l.ad.scratch.get(bufXD, N, in)
		applyMask(xd, x, md.mask, dropScale(l.ad.Cfg.Dropout))
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
	dh.Zero()
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
	xd := l.ad.scratch.get(bufXD, N, in)
	applyMask(xd, x, md.mask, s)
	var dxd *tensor.Tensor
	if dx != nil {
		dxd = l.ad.scratch.get(bufDXD, N, in)
		dxd.Zero()
	}
	be.LinearBackward(dxd, md.DA, nil, dh, xd, md.A)
	if dx != nil {
		accumMasked(dx, dxd, md.mask, s)
	}
}

func dropScale(p float64) float64 { return 1 / (1 - p) }

// prepareMask makes sure the module has a keep mask for this forward pass.
// The views of one module (GPT-2's q, k, v rows of c_attn) see the same
// input and must share one mask: a new mask is drawn when a view comes back
// for a second time (a new forward pass), or when the input or its shape
// changes.
func (md *Module) prepareMask(view int, x *tensor.Tensor, N, in int, p float64) {
	id := identity(x)
	fresh := md.mask == nil || md.maskN != N || (md.maskUsed[view] || md.maskX != id) && !md.frozen
	if fresh {
		words := (N*in + 63) / 64
		if cap(md.mask) < words {
			md.mask = make([]uint64, words)
		}
		md.mask = md.mask[:words]
		clear(md.mask)
		// keep with probability 1-p: a uniform 64-bit draw at or above p·2⁶⁴.
		thr := ^uint64(0)
		if f := p * (1 << 64); f < 1<<64 {
			thr = uint64(f)
		}
		for i := 0; i < N*in; i++ {
			if md.rng.Uint64() >= thr {
				md.mask[i>>6] |= 1 << (i & 63)
			}
		}
		md.maskN, md.maskX = N, id
		clear(md.maskUsed)
	}
	md.maskUsed[view] = true
}

// identity names x's storage (its first element), so a different input
// buffer is noticed.
func identity(x *tensor.Tensor) any {
	switch {
	case len(x.F32) > 0:
		return &x.F32[0]
	case len(x.F64) > 0:
		return &x.F64[0]
	}
	return nil
}

// applyMask sets dst = src·s where the mask bit is set, 0 elsewhere.
func applyMask(dst, src *tensor.Tensor, mask []uint64, s float64) {
	switch dst.DType {
	case tensor.F32:
		maskMul(dst.F32, src.F32, mask, float32(s))
	case tensor.F64:
		maskMul(dst.F64, src.F64, mask, s)
	default:
		panic("lora: dropout on " + dst.DType.String())
	}
}

func maskMul[T float32 | float64](dst, src []T, mask []uint64, s T) {
	for i := range dst {
		if mask[i>>6]>>(i&63)&1 != 0 {
			dst[i] = src[i] * s
		} else {
			dst[i] = 0
		}
	}
}

// accumMasked adds src·s into dst where the mask bit is set.
func accumMasked(dst, src *tensor.Tensor, mask []uint64, s float64) {
	switch dst.DType {
	case tensor.F32:
		maskAdd(dst.F32, src.F32, mask, float32(s))
	case tensor.F64:
		maskAdd(dst.F64, src.F64, mask, s)
	default:
		panic("lora: dropout on " + dst.DType.String())
	}
}

func maskAdd[T float32 | float64](dst, src []T, mask []uint64, s T) {
	for i := range dst {
		if mask[i>>6]>>(i&63)&1 != 0 {
			dst[i] += src[i] * s
		}
	}
}
