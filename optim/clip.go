package optim

import (
	"fmt"
	"math"
	"runtime"

	"github.com/shoggo/shoggo/internal/vec"
	"github.com/shoggo/shoggo/tensor"
)

// ClipGradNorm computes the global L2 norm of all grads (F32 tensors) in
// float64 and, like torch.nn.utils.clip_grad_norm_, multiplies every
// gradient by float32(maxNorm/(norm+1e-6)) when that factor is below 1
// (that is, when norm > maxNorm - 1e-6). It returns the norm before
// clipping.
//
// A NaN or infinite norm is returned with the gradients left untouched; the
// caller decides whether to skip the step. maxNorm <= 0 disables clipping
// (the norm is still computed and returned), as a "grad_clip: 0" config
// means in nanoGPT.
//
// The sum of squares runs over fixed blocks whose partial sums are added in
// order, so the result does not depend on the number of goroutines (each
// block's sum is vec.SumSquares, in float64 lanes).
func ClipGradNorm(grads []*tensor.Tensor, maxNorm float64) (totalNorm float64) {
	var chunks []chunk
	total := 0
	for i, g := range grads {
		if g.DType != tensor.F32 {
			panic(fmt.Sprintf("optim.ClipGradNorm: gradient %q is %s, want F32", g.Name, g.DType))
		}
		n := g.Numel()
		if len(g.F32) != n {
			panic(fmt.Sprintf("optim.ClipGradNorm: gradient %q holds %d values for shape %v", g.Name, len(g.F32), g.Shape))
		}
		total += n
		for lo := 0; lo < n; lo += chunkSize {
			chunks = append(chunks, chunk{i, lo, min(lo+chunkSize, n)})
		}
	}
	workers := runtime.GOMAXPROCS(0)
	if total < 4*chunkSize {
		workers = 1
	}
	partial := make([]float64, len(chunks))
	parallelFor(len(chunks), workers, func(i int) {
		c := chunks[i]
		partial[i] = vec.SumSquares(grads[c.p].F32[c.lo:c.hi])
	})
	sum := 0.0
	for _, s := range partial {
		sum += s
	}
	norm := math.Sqrt(sum)
	if math.IsNaN(norm) || math.IsInf(norm, 0) || !(maxNorm > 0) {
		return norm
	}
	coef := maxNorm / (norm + 1e-6)
	if coef >= 1 {
		return norm
	}
	c32 := float32(coef)
	parallelFor(len(chunks), workers, func(i int) {
		c := chunks[i]
		vec.Scale(grads[c.p].F32[c.lo:c.hi], c32)
	})
	return norm
}
