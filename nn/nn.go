// Package nn holds the modules a Transformer is built from. A module owns
// views of its parameters and gradients (carved from the model's arenas,
// backend tensors) and calls the backend for every op, never touching
// storage itself, so the same module runs on any backend (including one
// whose storage is not host memory, see backend.Memory).
//
// Backward passes accumulate (see package backend). A module whose gradient
// tensors are nil is frozen: its backward still propagates the gradient of
// its input but never computes or stores a gradient for its weights.
package nn

import (
	"github.com/shoggo/shoggo/backend"
	"github.com/shoggo/shoggo/tensor"
)

// Layer is a linear map x (N, In) -> y (N, Out). Plain linears, LoRA
// wrappers and quantized linears all satisfy it, so a Transformer block
// doesn't care which it holds.
type Layer interface {
	// Forward overwrites y.
	Forward(y, x *tensor.Tensor)
	// Backward accumulates the input gradient into dx (skipped when nil)
	// and the layer's own parameter gradients.
	Backward(dx, dy, x *tensor.Tensor)
	In() int
	Out() int
}

// Linear is y = x W^T + b with W (out, in) and optional bias.
type Linear struct {
	BE     backend.Backend
	Name   string // HF name prefix, e.g. "model.layers.0.self_attn.q_proj"
	W, B   *tensor.Tensor
	DW, DB *tensor.Tensor // nil when frozen
}

func (l *Linear) Forward(y, x *tensor.Tensor) { l.BE.LinearForward(y, x, l.W, l.B) }

func (l *Linear) Backward(dx, dy, x *tensor.Tensor) {
	l.BE.LinearBackward(dx, l.DW, l.DB, dy, x, l.W)
}

func (l *Linear) In() int  { return l.W.Shape[1] }
func (l *Linear) Out() int { return l.W.Shape[0] }

// Freeze drops the gradient tensors, so Backward only propagates to the input.
func (l *Linear) Freeze() { l.DW, l.DB = nil, nil }

// Norm is LayerNorm (B non-nil) or RMSNorm (B nil, RMS true) over the last
// dimension, saving its statistics in the caller's buffers.
type Norm struct {
	BE     backend.Backend
	Name   string
	RMS    bool
	Eps    float64
	W, B   *tensor.Tensor
	DW, DB *tensor.Tensor
}

// Forward normalises x (N, C) into y, saving mean (LayerNorm only) and rstd (N).
func (n *Norm) Forward(y, mean, rstd, x *tensor.Tensor) {
	if n.RMS {
		n.BE.RMSNormForward(y, rstd, x, n.W, n.Eps)
		return
	}
	n.BE.LayerNormForward(y, mean, rstd, x, n.W, n.B, n.Eps)
}

// Backward accumulates dx and the weight gradients.
func (n *Norm) Backward(dx, dy, x, mean, rstd *tensor.Tensor) {
	if n.RMS {
		n.BE.RMSNormBackward(dx, n.DW, dy, x, n.W, rstd)
		return
	}
	n.BE.LayerNormBackward(dx, n.DW, n.DB, dy, x, n.W, mean, rstd)
}
