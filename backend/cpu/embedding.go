package cpu

import (
	"fmt"

	"github.com/shoggo/shoggo/backend/cpu/gemm"
	"github.com/shoggo/shoggo/internal/parallel"
	"github.com/shoggo/shoggo/internal/vec"
	"github.com/shoggo/shoggo/tensor"
)

// EmbeddingForward sets (or, with accumulate, adds to) out[n,:] the row
// w[ids[n],:]. out is (N, C), w is (V, C), len(ids) == N. w may be BF16 or
// F16 (a frozen table), its rows widened to out's dtype. All ids are checked
// before anything is written: an id outside [0, V) returns an error naming
// its position and value, and out is left untouched.
func (c *CPU) EmbeddingForward(out, w *tensor.Tensor, ids []int32, accumulate bool) error {
	const op = "EmbeddingForward"
	V, C := rc(w)
	checkRC(op, "out", out, len(ids), C)
	if err := checkIDs(op, w, ids, V); err != nil {
		return err
	}
	if isHalf(w) { // a frozen 16-bit table: widen the rows looked up
		switch dtypeOf(op, out) {
		case tensor.F32:
			embeddingForwardHalf(s32(out), newHalfW(w), ids, accumulate)
		case tensor.F64:
			embeddingForwardHalf(s64(out), newHalfW(w), ids, accumulate)
		}
		return nil
	}
	switch dtypeOf(op, out, w) {
	case tensor.F32:
		embeddingForward(s32(out), s32(w), ids, C, accumulate)
	case tensor.F64:
		embeddingForward(s64(out), s64(w), ids, C, accumulate)
	}
	return nil
}

// EmbeddingBackward adds dout[n,:] to dw[ids[n],:]. A nil dw (frozen
// embedding) does nothing. The ids are those EmbeddingForward accepted, so
// an id out of range here is a programmer error and panics.
func (c *CPU) EmbeddingBackward(dw, dout *tensor.Tensor, ids []int32) {
	const op = "EmbeddingBackward"
	if dw == nil {
		return
	}
	V, C := rc(dw)
	checkRC(op, "dout", dout, len(ids), C)
	if err := checkIDs(op, dw, ids, V); err != nil {
		panic(err.Error())
	}
	switch dtypeOf(op, dw, dout) {
	case tensor.F32:
		embeddingBackward(s32(dw), s32(dout), ids, C)
	case tensor.F64:
		embeddingBackward(s64(dw), s64(dout), ids, C)
	}
}

func checkIDs(op string, w *tensor.Tensor, ids []int32, V int) error {
	for n, id := range ids {
		if id < 0 || int(id) >= V {
			name := ""
			if w.Name != "" {
				name = fmt.Sprintf(" (table %q)", w.Name)
			}
			return fmt.Errorf("cpu.%s: token id %d at position %d is outside the vocabulary [0, %d)%s", op, id, n, V, name)
		}
	}
	return nil
}

// embeddingForward is parallel over output rows.
func embeddingForward[T gemm.Float](out, w []T, ids []int32, C int, accumulate bool) {
	parallel.For(len(ids), rowGrain(C), func(lo, hi int) {
		for n := lo; n < hi; n++ {
			id := int(ids[n])
			src := w[id*C : id*C+C]
			dst := out[n*C : n*C+C]
			if accumulate {
				addRow(dst, src)
			} else {
				copy(dst, src)
			}
		}
	})
}

// embeddingBackward is parallel over blocks of columns: repeated ids add
// into the same row of dw, so each column block takes the positions in
// order, giving the serial result for any thread count.
func embeddingBackward[T gemm.Float](dw, dout []T, ids []int32, C int) {
	forColBlocks(C, func(j0, j1 int) {
		for n, id := range ids {
			addRow(dw[int(id)*C+j0:int(id)*C+j1], dout[n*C+j0:n*C+j1])
		}
	})
}

// addRow sets dst += src (vec.AddInto for float32: the same bits).
func addRow[T gemm.Float](dst, src []T) {
	if d32, ok := any(dst).([]float32); ok {
		vec.AddInto(d32, any(src).([]float32))
		return
	}
	for j, v := range src {
		dst[j] += v
	}
}
