package cpu

import (
	"fmt"

	"github.com/shoggo/shoggo/backend/cpu/gemm"
	"github.com/shoggo/shoggo/internal/parallel"
	"github.com/shoggo/shoggo/tensor"
)

// LinearForward computes y = x W^T + b. x is (N, in) (any leading shape that
// flattens to N rows), w is (out, in), b is (out) or nil, y is (N, out).
// w may be BF16 or F16 (a frozen weight), widened a block of rows at a time.
//
// A BF16/F16 x makes it an autocast call at x's dtype P (autocast.go): y
// (F32 or P) = round_P(x round_P(W)ᵀ + round_P(b)) through gemm.GemmMixed,
// float32 accumulation; w and b may be F32 (rounded while packing) or
// 16-bit (a frozen weight, used as is when its dtype is P).
func (c *CPU) LinearForward(y, x, w, b *tensor.Tensor) {
	const op = "LinearForward"
	N, in := rc(x)
	out := linearOut(op, w, in)
	checkRC(op, "y", y, N, out)
	checkNumel(op, "b", b, out, w)
	if P, ok := autocastP(x); ok {
		checkMixed(op, P, "x", marg{"y", y, true})
		checkLinearW(op, P, "w", w)
		checkLinearW(op, P, "b", b)
		linearForwardMixed(c, y, x, w, b, P, N, in, out)
		return
	}
	if isHalf(w) { // a frozen 16-bit weight (an LM head): widened by blocks of rows
		switch dtypeOf(op, y, x, b) {
		case tensor.F32:
			linearForwardHalf(c, s32(y), s32(x), newHalfW(w), s32(b), N, in, out)
		case tensor.F64:
			linearForwardHalf(c, s64(y), s64(x), newHalfW(w), s64(b), N, in, out)
		}
		return
	}
	switch dtypeOf(op, y, x, w, b) {
	case tensor.F32:
		linearForward(s32(y), s32(x), s32(w), s32(b), N, in, out)
	case tensor.F64:
		linearForward(s64(y), s64(x), s64(w), s64(b), N, in, out)
	}
}

// LinearBackward accumulates dx += dy W, dw += dy^T x, db += sum_n dy[n,:].
// Each of dx, dw, db may be nil and is then neither computed nor stored.
//
// A BF16/F16 x makes it an autocast call at x's dtype P: dy (F32, or P)
// and w enter the GEMMs rounded to P, float32 accumulation; dx, dw, db are
// F32 and accumulate the unrounded results (db the column sums of
// round_P(dy)). A 16-bit w (frozen) allows only dx.
func (c *CPU) LinearBackward(dx, dw, db, dy, x, w *tensor.Tensor) {
	const op = "LinearBackward"
	N, in := rc(x)
	out := linearOut(op, w, in)
	checkRC(op, "dy", dy, N, out)
	checkRC(op, "dx", dx, N, in)
	checkRC(op, "dw", dw, out, in)
	checkNumel(op, "db", db, out, w)
	if P, ok := autocastP(x); ok {
		checkMixed(op, P, "x", marg{"dy", dy, true}, marg{"dx", dx, false}, marg{"dw", dw, false}, marg{"db", db, false})
		checkLinearW(op, P, "w", w)
		if isHalf(w) && (dw != nil || db != nil) {
			halfOpPanic(op, "dw or db", w)
		}
		linearBackwardMixed(dx, dw, db, dy, x, w, P, N, in, out)
		return
	}
	if isHalf(w) { // a frozen 16-bit weight: input gradient only
		if dw != nil || db != nil {
			halfOpPanic(op, "dw or db", w)
		}
		if dx == nil {
			return
		}
		switch dtypeOf(op, dx, dy, x) {
		case tensor.F32:
			linearBackwardHalf(c, s32(dx), s32(dy), newHalfW(w), N, in, out)
		case tensor.F64:
			linearBackwardHalf(c, s64(dx), s64(dy), newHalfW(w), N, in, out)
		}
		return
	}
	switch dtypeOf(op, dx, dw, db, dy, x, w) {
	case tensor.F32:
		linearBackward(s32(dx), s32(dw), s32(db), s32(dy), s32(x), s32(w), N, in, out)
	case tensor.F64:
		linearBackward(s64(dx), s64(dw), s64(db), s64(dy), s64(x), s64(w), N, in, out)
	}
}

// linearOut checks that w is (out, in) and returns out.
func linearOut(op string, w *tensor.Tensor, in int) int {
	out, win := rc(w)
	if len(w.Shape) != 2 || win != in {
		panic(fmt.Sprintf("cpu.%s: %s has shape %v, want (out, %d) to match the input's last dim", op, label("w", w), w.Shape, in))
	}
	return out
}

func linearForward[T gemm.Float](y, x, w, b []T, N, in, out int) {
	var beta T
	if b != nil {
		parallel.For(N, rowGrain(out), func(lo, hi int) {
			for n := lo; n < hi; n++ {
				copy(y[n*out:n*out+out], b)
			}
		})
		beta = 1
	}
	gemm.Gemm(false, true, N, out, in, 1, x, in, w, in, beta, y, out)
}

func linearBackward[T gemm.Float](dx, dw, db, dy, x, w []T, N, in, out int) {
	if dx != nil {
		gemm.Gemm(false, false, N, in, out, 1, dy, out, w, in, 1, dx, in)
	}
	if dw != nil {
		gemm.Gemm(true, false, out, in, N, 1, dy, out, x, in, 1, dw, in)
	}
	if db != nil {
		// Parallel over blocks of columns; each column sums its rows in
		// order (float64), whatever the thread count.
		forColBlocks(out, func(j0, j1 int) {
			var buf [colGrain]float64
			acc := buf[:j1-j0]
			for n := 0; n < N; n++ {
				accumRow(acc, dy[n*out+j0:n*out+j1])
			}
			for j, v := range acc {
				db[j0+j] += T(v)
			}
		})
	}
}
