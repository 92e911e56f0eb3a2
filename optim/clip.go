package optim

import (
	"math"

	"github.com/shoggo/shoggo/backend"
	"github.com/shoggo/shoggo/tensor"
)

// ClipGradNorm is ClipGradNormOn with the CPU backend (host tensors).
func ClipGradNorm(grads []*tensor.Tensor, maxNorm float64) (totalNorm float64) {
	return ClipGradNormOn(host, grads, maxNorm)
}

// ClipGradNormOn computes the global L2 norm of all grads (F32 tensors of
// be) in float64 and, like torch.nn.utils.clip_grad_norm_, multiplies every
// gradient by float32(maxNorm/(norm+1e-6)) when that factor is below 1
// (that is, when norm > maxNorm - 1e-6). It returns the norm before
// clipping.
//
// A NaN or infinite norm is returned with the gradients left untouched; the
// caller decides whether to skip the step. maxNorm <= 0 disables clipping
// (the norm is still computed and returned), as a "grad_clip: 0" config
// means in nanoGPT.
//
// The sum of squares is the backend's SumSquares (fixed blocks whose partial
// sums are added in order, so the result does not depend on the number of
// threads); the scaling is its ScaleAll.
func ClipGradNormOn(be backend.Backend, grads []*tensor.Tensor, maxNorm float64) (totalNorm float64) {
	norm := math.Sqrt(be.SumSquares(grads))
	if math.IsNaN(norm) || math.IsInf(norm, 0) || !(maxNorm > 0) {
		return norm
	}
	coef := maxNorm / (norm + 1e-6)
	if coef >= 1 {
		return norm
	}
	be.ScaleAll(grads, coef)
	return norm
}
