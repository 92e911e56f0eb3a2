// Package opaque is a test backend whose storage is opaque: its tensors
// carry a private handle (tensor.Tensor.Store) and no host slice, so any
// code above the backend that reaches into storage (.F32, .F64, .U16,
// .Bytes) finds nil and fails, as it would on a device backend. Each op
// resolves its operands' handles to the private host buffers inside this
// package and runs the CPU backend's kernel on them, so results are
// bit-identical to the CPU backend's. It proves the memory seam
// (backend.Memory) without a GPU.
//
// Host tensors passed to an op (anything but Upload's source and
// Download's destination) are a programmer error and panic: they show
// storage that was not allocated through the backend.
package opaque

import (
	"fmt"
	"math/rand/v2"

	"github.com/shoggo/shoggo/backend"
	"github.com/shoggo/shoggo/backend/cpu"
	"github.com/shoggo/shoggo/tensor"
)

// buffer is one allocation: a private host tensor nobody outside the
// package can reach.
type buffer struct {
	host  *tensor.Tensor
	freed bool
}

// Backend names the owner.
func (b *buffer) Backend() string { return "opaque" }

// Backend is the opaque test backend. The embedded CPU backend provides
// ops this package does not wrap yet: those see nil host slices and panic,
// and TestWrapsEveryOp names them.
type Backend struct {
	*cpu.CPU
	c *cpu.CPU
}

var _ backend.Backend = (*Backend)(nil)

// New returns an opaque backend over a fresh CPU backend.
func New() *Backend {
	c := cpu.New()
	return &Backend{CPU: c, c: c}
}

// Name returns "opaque".
func (o *Backend) Name() string { return "opaque" }

// h resolves a backend tensor to a host view of its private buffer (nil
// stays nil).
func h(t *tensor.Tensor) *tensor.Tensor {
	if t == nil {
		return nil
	}
	b, ok := t.Store.(*buffer)
	if !ok {
		panic(fmt.Sprintf("opaque: tensor %s is not opaque storage (allocated outside the backend?)", t))
	}
	if b.freed {
		panic(fmt.Sprintf("opaque: tensor %s used after Free", t))
	}
	v := b.host.View(t.Offset, t.Shape...)
	v.Name = t.Name
	return v
}

func hs(ts []*tensor.Tensor) []*tensor.Tensor {
	out := make([]*tensor.Tensor, len(ts))
	for i, t := range ts {
		out[i] = h(t)
	}
	return out
}

// Memory.

// Alloc returns a zeroed opaque tensor.
func (o *Backend) Alloc(dt tensor.DType, shape ...int) *tensor.Tensor {
	return &tensor.Tensor{Shape: tensor.Shape(shape).Clone(), DType: dt, Store: &buffer{host: tensor.New(dt, shape...)}}
}

// NewArena carves the arena from one opaque allocation.
func (o *Backend) NewArena(dt tensor.DType, specs []tensor.Spec) (*tensor.Arena, error) {
	return tensor.NewArenaAlloc(dt, specs, func(dt tensor.DType, n int) *tensor.Tensor { return o.Alloc(dt, n) })
}

// Upload copies the host tensor src into dst.
func (o *Backend) Upload(dst, src *tensor.Tensor) { cpu.CopyHost("Upload", h(dst), src) }

// Download copies src into the host tensor dst.
func (o *Backend) Download(dst, src *tensor.Tensor) { cpu.CopyHost("Download", dst, h(src)) }

// Adopt uploads t into a new opaque tensor.
func (o *Backend) Adopt(t *tensor.Tensor) *tensor.Tensor {
	d := o.Alloc(t.DType, t.Shape...)
	d.Name = t.Name
	o.Upload(d, t)
	return d
}

// Free drops a whole allocation; later use panics.
func (o *Backend) Free(t *tensor.Tensor) {
	b, ok := t.Store.(*buffer)
	if !ok || t.Offset != 0 || t.Numel() != b.host.Numel() {
		panic(fmt.Sprintf("opaque.Free: %s is not a whole opaque allocation", t))
	}
	b.freed, b.host = true, nil
}

// Optimizer ops.

// Zero runs the CPU backend's Zero on host views of the operands.
func (o *Backend) Zero(t *tensor.Tensor) { o.c.Zero(h(t)) }

// AdamW runs the CPU backend's AdamW on host views of the operands.
func (o *Backend) AdamW(w, g, m, v []*tensor.Tensor, decay []bool, u backend.AdamWUpdate, workers int) {
	o.c.AdamW(hs(w), hs(g), hs(m), hs(v), decay, u, workers)
}

// SumSquares runs the CPU backend's SumSquares on host views of the operands.
func (o *Backend) SumSquares(ts []*tensor.Tensor) float64 { return o.c.SumSquares(hs(ts)) }

// ScaleAll runs the CPU backend's ScaleAll on host views of the operands.
func (o *Backend) ScaleAll(ts []*tensor.Tensor, s float64) { o.c.ScaleAll(hs(ts), s) }

// Dropout.

// DropoutMask runs the CPU backend's DropoutMask on host views of the operands.
func (o *Backend) DropoutMask(mask *tensor.Tensor, n int, p float64, rng *rand.Rand) {
	o.c.DropoutMask(h(mask), n, p, rng)
}

// DropoutForward runs the CPU backend's DropoutForward on host views of the operands.
func (o *Backend) DropoutForward(y, x, mask *tensor.Tensor, scale float64) {
	o.c.DropoutForward(h(y), h(x), h(mask), scale)
}

// DropoutBackward runs the CPU backend's DropoutBackward on host views of the operands.
func (o *Backend) DropoutBackward(dx, dy, mask *tensor.Tensor, scale float64) {
	o.c.DropoutBackward(h(dx), h(dy), h(mask), scale)
}

// Quantized matmul.

// opaqueKey keys this backend's host view of a QuantWeight (one per
// compute dtype, which the host view carries).
type opaqueKey struct {
	o       *Backend
	compute tensor.DType
}

// hostQuant runs the CPU backend's hostQuant on host views of the operands.
func (o *Backend) hostQuant(w *backend.QuantWeight) *backend.QuantWeight {
	return w.Prepared(opaqueKey{o, w.Compute}, func() any {
		return &backend.QuantWeight{
			Format: w.Format, Out: w.Out, In: w.In, Compute: w.Compute,
			Packed:    h(w.Packed),
			BlockSize: w.BlockSize, Absmax: h(w.Absmax), QAbsmax: h(w.QAbsmax), Absmax2: h(w.Absmax2),
			NestedCode: h(w.NestedCode), Offset: w.Offset, NestedBlockSize: w.NestedBlockSize,
			Scales: h(w.Scales), Zeros: h(w.Zeros), GroupSize: w.GroupSize,
		}
	}).(*backend.QuantWeight)
}

// QuantLinearForward runs the CPU backend's QuantLinearForward on host views of the operands.
func (o *Backend) QuantLinearForward(y, x *tensor.Tensor, w *backend.QuantWeight, b *tensor.Tensor) {
	o.c.QuantLinearForward(h(y), h(x), o.hostQuant(w), h(b))
}

// QuantLinearBackward runs the CPU backend's QuantLinearBackward on host views of the operands.
func (o *Backend) QuantLinearBackward(dx, dy *tensor.Tensor, w *backend.QuantWeight) {
	o.c.QuantLinearBackward(h(dx), h(dy), o.hostQuant(w))
}

// Model ops.

// EmbeddingForward runs the CPU backend's EmbeddingForward on host views of the operands.
func (o *Backend) EmbeddingForward(out, w *tensor.Tensor, ids []int32, accumulate bool) error {
	return o.c.EmbeddingForward(h(out), h(w), ids, accumulate)
}

// EmbeddingBackward runs the CPU backend's EmbeddingBackward on host views of the operands.
func (o *Backend) EmbeddingBackward(dw, dout *tensor.Tensor, ids []int32) {
	o.c.EmbeddingBackward(h(dw), h(dout), ids)
}

// LinearForward runs the CPU backend's LinearForward on host views of the operands.
func (o *Backend) LinearForward(y, x, w, b *tensor.Tensor) { o.c.LinearForward(h(y), h(x), h(w), h(b)) }

// LinearBackward runs the CPU backend's LinearBackward on host views of the operands.
func (o *Backend) LinearBackward(dx, dw, db, dy, x, w *tensor.Tensor) {
	o.c.LinearBackward(h(dx), h(dw), h(db), h(dy), h(x), h(w))
}

// LayerNormForward runs the CPU backend's LayerNormForward on host views of the operands.
func (o *Backend) LayerNormForward(y, mean, rstd, x, w, b *tensor.Tensor, eps float64) {
	o.c.LayerNormForward(h(y), h(mean), h(rstd), h(x), h(w), h(b), eps)
}

// LayerNormBackward runs the CPU backend's LayerNormBackward on host views of the operands.
func (o *Backend) LayerNormBackward(dx, dw, db, dy, x, w, mean, rstd *tensor.Tensor) {
	o.c.LayerNormBackward(h(dx), h(dw), h(db), h(dy), h(x), h(w), h(mean), h(rstd))
}

// RMSNormForward runs the CPU backend's RMSNormForward on host views of the operands.
func (o *Backend) RMSNormForward(y, rstd, x, w *tensor.Tensor, eps float64) {
	o.c.RMSNormForward(h(y), h(rstd), h(x), h(w), eps)
}

// RMSNormBackward runs the CPU backend's RMSNormBackward on host views of the operands.
func (o *Backend) RMSNormBackward(dx, dw, dy, x, w, rstd *tensor.Tensor) {
	o.c.RMSNormBackward(h(dx), h(dw), h(dy), h(x), h(w), h(rstd))
}

// RoPE runs the CPU backend's RoPE on host views of the operands.
func (o *Backend) RoPE(x *tensor.Tensor, pos []int32, theta float64, inverse bool) {
	o.c.RoPE(h(x), pos, theta, inverse)
}

// AttentionForward runs the CPU backend's AttentionForward on host views of the operands.
func (o *Backend) AttentionForward(out, lse, q, k, v *tensor.Tensor, p backend.AttnParams) {
	o.c.AttentionForward(h(out), h(lse), h(q), h(k), h(v), p)
}

// AttentionBackward runs the CPU backend's AttentionBackward on host views of the operands.
func (o *Backend) AttentionBackward(dq, dk, dv, dout, q, k, v, out, lse *tensor.Tensor, p backend.AttnParams) {
	o.c.AttentionBackward(h(dq), h(dk), h(dv), h(dout), h(q), h(k), h(v), h(out), h(lse), p)
}

// GELUForward runs the CPU backend's GELUForward on host views of the operands.
func (o *Backend) GELUForward(y, x *tensor.Tensor) { o.c.GELUForward(h(y), h(x)) }

// GELUBackward runs the CPU backend's GELUBackward on host views of the operands.
func (o *Backend) GELUBackward(dx, dy, x *tensor.Tensor) { o.c.GELUBackward(h(dx), h(dy), h(x)) }

// SwiGLUForward runs the CPU backend's SwiGLUForward on host views of the operands.
func (o *Backend) SwiGLUForward(y, gate, up *tensor.Tensor) {
	o.c.SwiGLUForward(h(y), h(gate), h(up))
}

// SwiGLUBackward runs the CPU backend's SwiGLUBackward on host views of the operands.
func (o *Backend) SwiGLUBackward(dgate, dup, dy, gate, up *tensor.Tensor) {
	o.c.SwiGLUBackward(h(dgate), h(dup), h(dy), h(gate), h(up))
}

// Add runs the CPU backend's Add on host views of the operands.
func (o *Backend) Add(y, a, b *tensor.Tensor) { o.c.Add(h(y), h(a), h(b)) }

// AddInto runs the CPU backend's AddInto on host views of the operands.
func (o *Backend) AddInto(dst, src *tensor.Tensor) { o.c.AddInto(h(dst), h(src)) }

// Scale runs the CPU backend's Scale on host views of the operands.
func (o *Backend) Scale(x *tensor.Tensor, s float64) { o.c.Scale(h(x), s) }

// Copy runs the CPU backend's Copy on host views of the operands.
func (o *Backend) Copy(dst, src *tensor.Tensor) { o.c.Copy(h(dst), h(src)) }

// CrossEntropy runs the CPU backend's CrossEntropy on host views of the operands.
func (o *Backend) CrossEntropy(hid, w *tensor.Tensor, targets []int32, chunkRows int, gradScale float64, dh, dw *tensor.Tensor) (float64, int, error) {
	return o.c.CrossEntropy(h(hid), h(w), targets, chunkRows, gradScale, h(dh), h(dw))
}

// SeqLogProbs implements backend.LogProber.
func (o *Backend) SeqLogProbs(hid, w *tensor.Tensor, targets []int32, T, chunkRows int, out []float64) error {
	return o.c.SeqLogProbs(h(hid), h(w), targets, T, chunkRows, out)
}

// SeqLogProbsBackward implements backend.LogProber.
func (o *Backend) SeqLogProbsBackward(hid, w *tensor.Tensor, targets []int32, T, chunkRows int, dout []float64, dh, dw *tensor.Tensor) error {
	return o.c.SeqLogProbsBackward(h(hid), h(w), targets, T, chunkRows, dout, h(dh), h(dw))
}

// KVAttention implements backend.Backend.
func (o *Backend) KVAttention(out, q, k, v, kc, vc *tensor.Tensor, p backend.KVParams) {
	o.c.KVAttention(h(out), h(q), h(k), h(v), h(kc), h(vc), p)
}
