package data

import (
	"math/bits"
	"math/rand/v2"
)

// Index is an integer type a permutation can be stored in.
type Index interface {
	~int | ~int32 | ~int64 | ~uint32 | ~uint64
}

// ShuffleInto sets p to a uniformly random permutation of 0..len(p)-1,
// drawn by Fisher-Yates from a PCG generator seeded with (seed, epoch).
// It is shoggo's one seeded shuffle: the pre-training loader's window order
// and the SFT dataset's example order both come from it, and resumed runs
// depend on it staying bit-for-bit the same (TestShuffleGolden pins it).
// The bounded draws are done here rather than by math/rand so that the
// order depends only on PCG's output, which math/rand/v2 specifies.
func ShuffleInto[I Index](p []I, seed int64, epoch int) {
	for i := range p {
		p[i] = I(i)
	}
	g := rand.NewPCG(uint64(seed), uint64(epoch))
	for i := len(p) - 1; i > 0; i-- {
		j := uniform(g, uint64(i)+1)
		p[i], p[j] = p[j], p[i]
	}
}

// Shuffle returns a new permutation of 0..n-1: ShuffleInto on a fresh slice.
func Shuffle(n int, seed int64, epoch int) []int {
	p := make([]int, n)
	ShuffleInto(p, seed, epoch)
	return p
}

// uniform returns a uniform value in [0, n) (Lemire's method).
func uniform(g *rand.PCG, n uint64) uint64 {
	hi, lo := bits.Mul64(g.Uint64(), n)
	if lo < n {
		thresh := -n % n
		for lo < thresh {
			hi, lo = bits.Mul64(g.Uint64(), n)
		}
	}
	return hi
}
