package cpu

import (
	"fmt"

	"github.com/shoggo/shoggo/backend/cpu/gemm"
	"github.com/shoggo/shoggo/internal/parallel"
	"github.com/shoggo/shoggo/tensor"
)

// Frozen weights held in 16 bits (BF16 or F16): the token embedding and the
// LM head of a frozen model (model.FrozenOptions.HalfEmbeddings).
// EmbeddingForward, CrossEntropy (with dw == nil) and LinearForward accept
// such a w with F32 (or F64) activations: the rows they read are widened
// exactly to the compute dtype, a block of halfBlockElems elements at a time
// into a scratch buffer, so a full-precision copy of the table never exists.
// The results equal the full-precision path on the widened weights up to
// the summation order of the split GEMMs.

// halfBlockElems bounds the scratch one widened block of weight rows
// occupies (1M elements: 4 MiB in F32); a variable so tests can force many
// blocks.
var halfBlockElems = 1 << 20

func isHalf(t *tensor.Tensor) bool {
	return t != nil && (t.DType == tensor.BF16 || t.DType == tensor.F16)
}

// halfW is a 16-bit weight matrix (rows, C) seen by the generic kernels.
type halfW struct {
	u16  []uint16
	dt   tensor.DType
	rows int
	C    int
}

func newHalfW(w *tensor.Tensor) *halfW {
	V, C := rc(w)
	return &halfW{u16: w.U16[:w.Numel()], dt: w.DType, rows: V, C: C}
}

// blockRows is how many rows one widened block holds.
func (h *halfW) blockRows() int { return max(1, min(h.rows, halfBlockElems/max(1, h.C))) }

// widen converts rows [r0, r0+n) into dst (n*C elements), in parallel.
func widenHalf[T gemm.Float](dst []T, h *halfW, r0, n int) {
	src := h.u16[r0*h.C : (r0+n)*h.C]
	conv := tensor.BF16ToF32
	if h.dt == tensor.F16 {
		conv = tensor.F16ToF32
	}
	parallel.For(len(src), 1<<16, func(lo, hi int) {
		d := dst[lo:hi]
		for i, v := range src[lo:hi] {
			d[i] = T(conv(v))
		}
	})
}

func embeddingForwardHalf[T gemm.Float](out []T, h *halfW, ids []int32, accumulate bool) {
	C := h.C
	conv := tensor.BF16ToF32
	if h.dt == tensor.F16 {
		conv = tensor.F16ToF32
	}
	parallel.For(len(ids), rowGrain(C), func(lo, hi int) {
		for n := lo; n < hi; n++ {
			id := int(ids[n])
			src := h.u16[id*C : id*C+C]
			dst := out[n*C : n*C+C]
			if accumulate {
				for j, v := range src {
					dst[j] += T(conv(v))
				}
			} else {
				for j, v := range src {
					dst[j] = T(conv(v))
				}
			}
		}
	})
}

// gemmLogits sets lg (rows x V, row stride V) = hb (rows x C) Wᵀ, with W
// either w (full precision) or wh (16-bit, widened a block at a time into
// scratch).
func gemmLogits[T gemm.Float](rows, V, C int, hb, w []T, wh *halfW, scratch, lg []T) {
	if wh == nil {
		gemm.Gemm(false, true, rows, V, C, 1, hb, C, w, C, 0, lg, V)
		return
	}
	rb := wh.blockRows()
	for v0 := 0; v0 < V; v0 += rb {
		nb := min(rb, V-v0)
		wf := scratch[:nb*C]
		widenHalf(wf, wh, v0, nb)
		gemm.Gemm(false, true, rows, nb, C, 1, hb, C, wf, C, 0, lg[v0:], V)
	}
}

// gemmGW sets dst (rows x C) = beta*dst + g W, g (rows x V, stride V), W as
// in gemmLogits.
func gemmGW[T gemm.Float](rows, V, C int, g, w []T, wh *halfW, scratch []T, beta T, dst []T) {
	if wh == nil {
		gemm.Gemm(false, false, rows, C, V, 1, g, V, w, C, beta, dst, C)
		return
	}
	rb := wh.blockRows()
	for v0 := 0; v0 < V; v0 += rb {
		nb := min(rb, V-v0)
		wf := scratch[:nb*C]
		widenHalf(wf, wh, v0, nb)
		b := T(1)
		if v0 == 0 {
			b = beta
		}
		gemm.Gemm(false, false, rows, C, nb, 1, g[v0:], V, wf, C, b, dst, C)
	}
}

// linearForwardHalf is linearForward with a 16-bit w (out, in).
func linearForwardHalf[T gemm.Float](c *CPU, y, x []T, wh *halfW, b []T, N, in, out int) {
	var beta T
	if b != nil {
		parallel.For(N, rowGrain(out), func(lo, hi int) {
			for n := lo; n < hi; n++ {
				copy(y[n*out:n*out+out], b)
			}
		})
		beta = 1
	}
	rb := wh.blockRows()
	scratch := getBuf[T](c, rb*in)
	defer putBuf(c, scratch)
	for r0 := 0; r0 < out; r0 += rb {
		nb := min(rb, out-r0)
		wf := scratch[:nb*in]
		widenHalf(wf, wh, r0, nb)
		gemm.Gemm(false, true, N, nb, in, 1, x, in, wf, in, beta, y[r0:], out)
	}
}

// linearBackwardHalf accumulates dx += dy W with a 16-bit w (out, in),
// widened a block of rows at a time: dx += dy[:, r0:r0+nb] W[r0:r0+nb, :].
func linearBackwardHalf[T gemm.Float](c *CPU, dx, dy []T, wh *halfW, N, in, out int) {
	rb := wh.blockRows()
	scratch := getBuf[T](c, rb*in)
	defer putBuf(c, scratch)
	for r0 := 0; r0 < out; r0 += rb {
		nb := min(rb, out-r0)
		wf := scratch[:nb*in]
		widenHalf(wf, wh, r0, nb)
		gemm.Gemm(false, false, N, in, nb, 1, dy[r0:], out, wf, in, 1, dx, in)
	}
}

// SetHalfBlockElems sets the number of weight elements one widened block of
// a 16-bit weight holds (default 1<<20) and returns the previous value; tests
// use it to force many blocks.
func SetHalfBlockElems(n int) (old int) {
	old, halfBlockElems = halfBlockElems, max(1, n)
	return old
}

func halfOpPanic(op, what string, w *tensor.Tensor) {
	panic(fmt.Sprintf("cpu.%s: %s with a 16-bit %s", op, what, label("w", w)))
}
