package cpu

import (
	"fmt"

	"github.com/shoggo/shoggo/backend"
	"github.com/shoggo/shoggo/backend/cpu/attn"
	"github.com/shoggo/shoggo/tensor"
)

// The CPU backend implements the whole op set.
var _ backend.Backend = (*CPU)(nil)

// RoPE rotates x (B, T, H, HS) in place (see backend.Backend.RoPE); pos is
// (B, T). The kernel is attn.RoPE. A BF16/F16 x (an autocast call) is
// widened into scratch, rotated in float32 and rounded back.
func (c *CPU) RoPE(x *tensor.Tensor, pos []int32, theta float64, inverse bool) {
	if len(x.Shape) != 4 {
		panic(fmt.Sprintf("cpu.RoPE: %s has shape %v, want (B, T, H, HS)", label("x", x), x.Shape))
	}
	B, T, H, HS := x.Shape[0], x.Shape[1], x.Shape[2], x.Shape[3]
	if len(pos) != B*T {
		panic(fmt.Sprintf("cpu.RoPE: %d positions for x of shape %v, want B*T = %d", len(pos), x.Shape, B*T))
	}
	if isHalfDT(x.DType) {
		xv, release := f32Of(c, x)
		defer release()
		attn.RoPE(xv, B, T, H, HS, pos, theta, inverse)
		parRound(u16(x), xv, x.DType)
		return
	}
	switch dtypeOf("RoPE", x) {
	case tensor.F32:
		attn.RoPE(s32(x), B, T, H, HS, pos, theta, inverse)
	case tensor.F64:
		attn.RoPE(s64(x), B, T, H, HS, pos, theta, inverse)
	}
}

// AttentionForward computes causal grouped-query attention (see
// backend.Backend.AttentionForward). The kernel is attn.Forward.
//
// q, k, v and out may be BF16 or F16 (an autocast call, autocast.go): the
// 16-bit ones are widened into scratch, the float32 kernel runs on the
// exact values (scores, softmax and both products in float32) and out is
// rounded when 16-bit; lse is F32.
func (c *CPU) AttentionForward(out, lse, q, k, v *tensor.Tensor, p backend.AttnParams) {
	const op = "AttentionForward"
	checkAttn(op, p, out, lse, q, k, v, nil, nil, nil, nil)
	if P, ok := autocastP(q, k, v, out); ok {
		args := []marg{{"out", out, true}, {"lse", lse, false}, {"q", q, true}, {"k", k, true}, {"v", v, true}}
		checkMixed(op, P, halfArgs(args...), args...)
		qv, rq := f32Of(c, q)
		defer rq()
		kv, rk := f32Of(c, k)
		defer rk()
		vv, rv := f32Of(c, v)
		defer rv()
		var ov []float32
		if isHalfDT(out.DType) {
			ov = getBuf[float32](c, out.Numel())
			defer putBuf(c, ov)
		} else {
			ov = s32(out)
		}
		attn.Forward(ov, s32(lse), qv, kv, vv, p)
		if isHalfDT(out.DType) {
			parRound(u16(out), ov, out.DType)
		}
		return
	}
	switch dtypeOf(op, out, lse, q, k, v) {
	case tensor.F32:
		attn.Forward(s32(out), s32(lse), s32(q), s32(k), s32(v), p)
	case tensor.F64:
		attn.Forward(s64(out), s64(lse), s64(q), s64(k), s64(v), p)
	}
}

// AttentionBackward accumulates dq, dk, dv (each may be nil). The kernel is
// attn.Backward. q, k, v and out may be BF16 or F16 (an autocast call):
// they are widened into scratch and the float32 kernel runs; dq, dk, dv,
// dout and lse are F32.
func (c *CPU) AttentionBackward(dq, dk, dv, dout, q, k, v, out, lse *tensor.Tensor, p backend.AttnParams) {
	const op = "AttentionBackward"
	checkAttn(op, p, out, lse, q, k, v, dq, dk, dv, dout)
	if P, ok := autocastP(q, k, v, out); ok {
		args := []marg{{"dq", dq, false}, {"dk", dk, false}, {"dv", dv, false}, {"dout", dout, false},
			{"q", q, true}, {"k", k, true}, {"v", v, true}, {"out", out, true}, {"lse", lse, false}}
		checkMixed(op, P, halfArgs(args...), args...)
		if dq == nil && dk == nil && dv == nil {
			return
		}
		qv, rq := f32Of(c, q)
		defer rq()
		kv, rk := f32Of(c, k)
		defer rk()
		vv, rv := f32Of(c, v)
		defer rv()
		ov, ro := f32Of(c, out)
		defer ro()
		attn.Backward(s32(dq), s32(dk), s32(dv), s32(dout), qv, kv, vv, ov, s32(lse), p)
		return
	}
	switch dtypeOf(op, dq, dk, dv, dout, q, k, v, out, lse) {
	case tensor.F32:
		attn.Backward(s32(dq), s32(dk), s32(dv), s32(dout), s32(q), s32(k), s32(v), s32(out), s32(lse), p)
	case tensor.F64:
		attn.Backward(s64(dq), s64(dk), s64(dv), s64(dout), s64(q), s64(k), s64(v), s64(out), s64(lse), p)
	}
}

// checkAttn panics, naming the shapes, unless every tensor has the element
// count p implies: q, out, dq, dout B*T*NH*HS; k, v, dk, dv B*T*KVH*HS;
// lse B*NH*T. Nil tensors are skipped.
func checkAttn(op string, p backend.AttnParams, out, lse, q, k, v, dq, dk, dv, dout *tensor.Tensor) {
	if p.B < 0 || p.T < 0 || p.NH <= 0 || p.KVH <= 0 || p.HS <= 0 || p.NH%p.KVH != 0 {
		panic(fmt.Sprintf("cpu.%s: bad AttnParams B=%d T=%d NH=%d KVH=%d HS=%d (NH must be a positive multiple of KVH)", op, p.B, p.T, p.NH, p.KVH, p.HS))
	}
	nq, nk, nl := p.B*p.T*p.NH*p.HS, p.B*p.T*p.KVH*p.HS, p.B*p.NH*p.T
	for _, a := range []struct {
		name string
		t    *tensor.Tensor
		n    int
		want string
	}{
		{"q", q, nq, "(B, T, NH, HS)"}, {"out", out, nq, "(B, T, NH, HS)"},
		{"dq", dq, nq, "(B, T, NH, HS)"}, {"dout", dout, nq, "(B, T, NH, HS)"},
		{"k", k, nk, "(B, T, KVH, HS)"}, {"v", v, nk, "(B, T, KVH, HS)"},
		{"dk", dk, nk, "(B, T, KVH, HS)"}, {"dv", dv, nk, "(B, T, KVH, HS)"},
		{"lse", lse, nl, "(B, NH, T)"},
	} {
		if a.t != nil && a.t.Numel() != a.n {
			panic(fmt.Sprintf("cpu.%s: %s has shape %v, want %s = %d elements for B=%d T=%d NH=%d KVH=%d HS=%d",
				op, label(a.name, a.t), a.t.Shape, a.want, a.n, p.B, p.T, p.NH, p.KVH, p.HS))
		}
	}
	for _, m := range []struct {
		name string
		ids  []int32
	}{{"KeyMask", p.KeyMask}, {"Segments", p.Segments}} {
		if m.ids != nil && len(m.ids) != p.B*p.T {
			panic(fmt.Sprintf("cpu.%s: len(%s) = %d, want B*T = %d", op, m.name, len(m.ids), p.B*p.T))
		}
	}
}
