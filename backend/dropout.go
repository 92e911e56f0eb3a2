package backend

import (
	"math/rand/v2"

	"github.com/shoggo/shoggo/tensor"
)

// DropoutOps are inverted dropout as three ops, so a mask can be drawn once
// and replayed (gradient checkpointing re-runs a forward pass with the same
// mask). A mask is a U8 backend tensor of at least ceil(n/8) bytes: bit
// i&7 of byte i>>3 set means element i is kept.
type DropoutOps interface {
	// DropoutMask draws a keep mask for n elements, keeping each with
	// probability 1-p: element i (in order) is kept when the i-th
	// rng.Uint64() is at or above p·2⁶⁴. The draws come from rng on the host,
	// so the mask is the same on every backend for the same seed.
	DropoutMask(mask *tensor.Tensor, n int, p float64, rng *rand.Rand)
	// DropoutForward sets y = x·scale where the mask keeps, 0 elsewhere
	// (scale is 1/(1-p)). y and x have the same element count.
	DropoutForward(y, x, mask *tensor.Tensor, scale float64)
	// DropoutBackward accumulates dx += dy·scale where the mask keeps.
	DropoutBackward(dx, dy, mask *tensor.Tensor, scale float64)
}
