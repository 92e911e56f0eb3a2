package cpu

import (
	"github.com/shoggo/shoggo/backend/cpu/gemm"
	"github.com/shoggo/shoggo/internal/parallel"
	"github.com/shoggo/shoggo/tensor"
)

// headRowsMixed is headRows in an autocast call (a 16-bit h of dtype a.P):
// logits = round_P(h round_P(W)ᵀ) with float32 accumulation (GemmMixed; a
// 16-bit W is converted while packing, never copied whole), the float32
// softmax of the rounded logits, and g = (softmax - onehot)·scale entering
// the gradient GEMMs rounded to P: dh += round_P(g) round_P(W), dw +=
// round_P(g)ᵀ h, float32 results. Arguments and results as headRows.
func headRowsMixed(c *CPU, a *headOp, h, w *tensor.Tensor, counted []int, chunk int, gradScale float64, rowScale []float64, dh, dw []float32, rowLoss []float64) float64 {
	if len(counted) == 0 {
		return 0
	}
	C, V, P, targets := a.C, a.V, a.P, a.targets
	chunk = min(chunk, len(counted))
	grads := dh != nil || dw != nil

	size := chunk*V + chunk*C
	if dh != nil {
		size += chunk * C
	}
	buf := getBuf[float32](c, size)
	defer putBuf(c, buf)
	logits := buf[:chunk*V]
	hbuf := buf[chunk*V : chunk*V+chunk*C]
	dhbuf := buf[chunk*V+chunk*C:]
	h16 := u16(h)
	wop := operand(w, P)

	lossBuf := make([]float64, chunk)
	var loss float64
	for i0 := 0; i0 < len(counted); i0 += chunk {
		idx := counted[i0:min(i0+chunk, len(counted))]
		rows := len(idx)
		first := idx[0]
		contiguous := idx[rows-1]-first == rows-1
		var hop gemm.Operand
		if contiguous {
			hop = gemm.HalfOp(h16[first*C:(first+rows)*C], P, P)
		} else {
			hb := hbuf[:rows*C]
			for r, n := range idx {
				widenSlice(hb[r*C:r*C+C], h16[n*C:n*C+C], P)
			}
			hop = gemm.F32Op(hb, P) // exact P values: rounding is the identity
		}
		lg := logits[:rows*V]
		gemm.GemmMixed(false, true, rows, V, C, 1, hop, C, wop, C, 0, lg, V)

		rowL := lossBuf[:rows]
		parallel.For(rows, 1, func(r0, r1 int) {
			for r := r0; r < r1; r++ {
				s := gradScale
				if rowScale != nil {
					s = rowScale[idx[r]]
				}
				row := lg[r*V : r*V+V]
				roundInPlace(row, P) // the half-precision logits
				rowL[r] = softmaxRow(row, int(targets[idx[r]]), s, grads)
			}
		})
		for r, l := range rowL {
			loss += l
			if rowLoss != nil {
				rowLoss[idx[r]] = l
			}
		}
		if !grads {
			continue
		}
		gop := gemm.F32Op(lg, P)
		if dh != nil {
			if contiguous {
				gemm.GemmMixed(false, false, rows, C, V, 1, gop, V, wop, C, 1, dh[first*C:(first+rows)*C], C)
			} else {
				db := dhbuf[:rows*C]
				gemm.GemmMixed(false, false, rows, C, V, 1, gop, V, wop, C, 0, db, C)
				for r, n := range idx {
					dst := dh[n*C : n*C+C]
					for j, v := range db[r*C : r*C+C] {
						dst[j] += v
					}
				}
			}
		}
		if dw != nil {
			gemm.GemmMixed(true, false, V, C, rows, 1, gop, V, hop, C, 1, dw, C)
		}
	}
	return loss
}
