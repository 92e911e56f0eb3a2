package cpu

import (
	"fmt"

	"github.com/shoggo/shoggo/backend/cpu/gemm"
	"github.com/shoggo/shoggo/tensor"
)

// EmbeddingForward sets (or, with accumulate, adds to) out[n,:] the row
// w[ids[n],:]. out is (N, C), w is (V, C), len(ids) == N. All ids are checked
// before anything is written: an id outside [0, V) returns an error naming
// its position and value, and out is left untouched.
func (c *CPU) EmbeddingForward(out, w *tensor.Tensor, ids []int32, accumulate bool) error {
	const op = "EmbeddingForward"
	V, C := rc(w)
	checkRC(op, "out", out, len(ids), C)
	if err := checkIDs(op, w, ids, V); err != nil {
		return err
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

func embeddingForward[T gemm.Float](out, w []T, ids []int32, C int, accumulate bool) {
	for n, id := range ids {
		src := w[int(id)*C : int(id)*C+C]
		dst := out[n*C : n*C+C]
		if accumulate {
			for j, v := range src {
				dst[j] += v
			}
		} else {
			copy(dst, src)
		}
	}
}

func embeddingBackward[T gemm.Float](dw, dout []T, ids []int32, C int) {
	for n, id := range ids {
		src := dout[n*C : n*C+C]
		dst := dw[int(id)*C : int(id)*C+C]
		for j, v := range src {
			dst[j] += v
		}
	}
}
