package cpu

import (
	"fmt"

	"github.com/shoggo/shoggo/backend/cpu/gemm"
	"github.com/shoggo/shoggo/internal/parallel"
	"github.com/shoggo/shoggo/tensor"
)

// Autocast linear layers (see autocast.go): x is BF16 or F16 and sets P.

// mixedBlockElems bounds the float32 scratch of an autocast call whose
// 16-bit output is formed a block of rows at a time (16 MiB); a variable so
// tests can force many blocks. Each block repacks the weight, so blocks
// should hold many rows.
var mixedBlockElems = 1 << 22

// checkLinearW panics unless a linear weight or bias is F32, BF16 or F16.
func checkLinearW(op string, P tensor.DType, name string, t *tensor.Tensor) {
	if t != nil && t.DType != tensor.F32 && !isHalfDT(t.DType) {
		panic(fmt.Sprintf("cpu.%s: %s is %s, want F32, BF16 or F16 in a %s autocast call (precision set by x)", op, label(name, t), t.DType, P))
	}
}

// fillBias sets every row of y (rows x out) to round_P(b).
func fillBias(y []float32, b *tensor.Tensor, rows, out int, P tensor.DType) {
	rb := make([]float32, out)
	if isHalfDT(b.DType) {
		widenSlice(rb, u16(b), b.DType)
	} else {
		copy(rb, s32(b))
	}
	roundInPlace(rb, P)
	parallel.For(rows, rowGrain(out), func(lo, hi int) {
		for n := lo; n < hi; n++ {
			copy(y[n*out:n*out+out], rb)
		}
	})
}

// linearForwardMixed: y = round_P(round_P(x) round_P(W)ᵀ + round_P(b)) with
// float32 accumulation (the bias added to the float32 sum, one rounding).
// An F32 y receives the rounded values (torch's half output promoted to
// float32); a 16-bit y is formed a block of rows at a time in scratch.
func linearForwardMixed(c *CPU, y, x, w, b *tensor.Tensor, P tensor.DType, N, in, out int) {
	wop := operand(w, P)
	if y.DType == tensor.F32 {
		yv := s32(y)
		var beta float32
		if b != nil {
			fillBias(yv, b, N, out, P)
			beta = 1
		}
		gemm.GemmMixed(false, true, N, out, in, 1, gemm.HalfOp(u16(x), P, P), in, wop, in, beta, yv, out)
		parRoundInPlace(yv, P)
		return
	}
	if N == 0 || out == 0 {
		return
	}
	rb := max(1, min(N, mixedBlockElems/out))
	buf := getBuf[float32](c, rb*out)
	defer putBuf(c, buf)
	for r0 := 0; r0 < N; r0 += rb {
		nb := min(rb, N-r0)
		yb := buf[:nb*out]
		var beta float32
		if b != nil {
			fillBias(yb, b, nb, out, P)
			beta = 1
		}
		gemm.GemmMixed(false, true, nb, out, in, 1, gemm.HalfOp(u16(x)[r0*in:], P, P), in, wop, in, beta, yb, out)
		parRound(u16(y)[r0*out:(r0+nb)*out], yb, P)
	}
}

// linearBackwardMixed: dx += round_P(dy) round_P(W), dw += round_P(dy)ᵀ x,
// db += sum_n round_P(dy[n, :]), all accumulated in float32 (db's column
// sums in float64, rows in order) and not rounded.
func linearBackwardMixed(dx, dw, db, dy, x, w *tensor.Tensor, P tensor.DType, N, in, out int) {
	dyop := operand(dy, P)
	if dx != nil {
		gemm.GemmMixed(false, false, N, in, out, 1, dyop, out, operand(w, P), in, 1, s32(dx), in)
	}
	if dw != nil {
		gemm.GemmMixed(true, false, out, in, N, 1, dyop, out, gemm.HalfOp(u16(x), P, P), in, 1, s32(dw), in)
	}
	if db != nil {
		dbv := s32(db)
		forColBlocks(out, func(j0, j1 int) {
			var buf [colGrain]float64
			var row [colGrain]float32
			acc := buf[:j1-j0]
			r := row[:j1-j0]
			for n := 0; n < N; n++ {
				if isHalfDT(dy.DType) {
					widenSlice(r, u16(dy)[n*out+j0:n*out+j1], dy.DType)
				} else {
					copy(r, s32(dy)[n*out+j0:n*out+j1])
				}
				roundInPlace(r, P)
				accumRow(acc, r)
			}
			for j, v := range acc {
				dbv[j0+j] += float32(v)
			}
		})
	}
}
