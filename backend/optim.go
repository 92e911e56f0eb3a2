package backend

import "github.com/shoggo/shoggo/tensor"

// AdamWUpdate holds the float32 scalars of one AdamW step, formed once by
// the optimizer (package optim documents the order of operations):
//
//	p = p*Decay                               (decaying tensors only)
//	m = LerpSmall ? m + LerpW*(g-m) : g - (g-m)*LerpWc
//	v = v*Beta2 + OneMinusB2*g*g
//	p = p + NegStep*m / (sqrt(v)/Bc2Sqrt + Eps)
//
// elementwise in float32 with no fused multiply-add.
type AdamWUpdate struct {
	Decay      float32 // 1 - lr*weight_decay
	LerpW      float32 // 1 - beta1
	LerpWc     float32 // 1 - LerpW
	Beta2      float32
	OneMinusB2 float32
	Bc2Sqrt    float32 // sqrt(1 - beta2^t)
	Eps        float32
	NegStep    float32 // -lr/(1 - beta1^t)
	LerpSmall  bool    // |LerpW| < 0.5
}

// OptimOps are the ops an optimizer and a trainer need besides the model's
// forward and backward. Tensors are F32 backend tensors.
type OptimOps interface {
	// Zero sets every element of t to zero (any dtype): ZeroGrad, fresh
	// accumulators.
	Zero(t *tensor.Tensor)
	// AdamW applies one update to every parameter i: weight w[i], gradient
	// g[i], moments m[i] and v[i] (same element count), with the decay
	// multiply only where decay[i]. workers bounds the goroutines a CPU
	// backend uses (0: GOMAXPROCS); the update is elementwise, so results do
	// not depend on it.
	AdamW(w, g, m, v []*tensor.Tensor, decay []bool, u AdamWUpdate, workers int)
	// SumSquares returns the sum of squares of all elements of ts, in
	// float64, summed over fixed blocks in a fixed order (the same bits for
	// any thread count).
	SumSquares(ts []*tensor.Tensor) float64
	// ScaleAll multiplies every tensor by s (rounded to float32 once).
	ScaleAll(ts []*tensor.Tensor, s float64)
}
