package cpu

import (
	"fmt"
	"math"

	"github.com/shoggo/shoggo/backend"
	"github.com/shoggo/shoggo/backend/cpu/gemm"
	"github.com/shoggo/shoggo/internal/parallel"
	"github.com/shoggo/shoggo/internal/vec"
	"github.com/shoggo/shoggo/tensor"
)

// CrossEntropy computes the summed softmax cross-entropy of targets given
// the final hidden states h (N, C) and the LM head w (V, C), without ever
// forming all N x V logits: counted rows (target != IgnoreIndex) are taken
// chunkRows at a time, their logits h_blk W^T formed by one GEMM into a
// chunkRows x V scratch block, and a stable log-softmax (max subtracted,
// sums in float64) gives loss = logsumexp - logit[target] per row.
//
// If dh or dw is non-nil, g = (softmax - onehot(target)) * gradScale is
// formed in the same block and accumulated: dh += g W, dw += g^T h_blk (both
// GEMMs with beta = 1). Ignored rows get no gradient (and cost nothing:
// they are skipped before the GEMM; non-adjacent counted rows are gathered).
//
// All targets are checked first; one outside [0, V) that is not
// IgnoreIndex returns an error naming its position and value, with nothing
// accumulated. chunkRows < 1 panics.
//
// w may be BF16 or F16 (a frozen LM head) when dw is nil: blocks of its
// rows are widened into a scratch buffer for each GEMM (see halfw.go).
//
// A BF16/F16 h makes it an autocast call at h's dtype P (autocast.go,
// headRowsMixed): logits = round_P(h round_P(W)ᵀ) through gemm.GemmMixed,
// softmax and loss in float32 on the rounded logits, and the logits'
// gradient rounded to P as the operand of the dh and dw GEMMs; dh and dw
// are F32, w the F32 master or a 16-bit table.
//
// The logits block is cached on c between calls (see ReleaseScratch).
func (c *CPU) CrossEntropy(h, w *tensor.Tensor, targets []int32, chunkRows int, gradScale float64, dh, dw *tensor.Tensor) (lossSum float64, count int, err error) {
	const op = "CrossEntropy"
	a, err := headArgs(op, h, w, targets, chunkRows, dh, dw)
	if err != nil {
		return 0, 0, err
	}
	counted := make([]int, 0, a.N)
	for n, t := range targets {
		if t != backend.IgnoreIndex {
			counted = append(counted, n)
		}
	}
	return a.run(c, h, w, counted, chunkRows, gradScale, nil, dh, dw, nil), len(counted), nil
}

// headOp holds the checked arguments of an op over the LM head
// (CrossEntropy, SeqLogProbs, SeqLogProbsBackward).
type headOp struct {
	N, C, V int
	targets []int32
	wh      *halfW // non-nil for a 16-bit w (not in an autocast call)
	dt      tensor.DType
	mixed   bool         // an autocast call (a 16-bit h)
	P       tensor.DType // its precision
}

// headArgs checks the shapes and dtypes of an LM-head op (panicking on
// programmer errors) and the targets (an error naming the first one outside
// [0, V) that is not IgnoreIndex).
func headArgs(op string, h, w *tensor.Tensor, targets []int32, chunkRows int, dh, dw *tensor.Tensor) (headOp, error) {
	N, C := rc(h)
	V, wc := rc(w)
	if len(w.Shape) != 2 || wc != C {
		panic(fmt.Sprintf("cpu.%s: %s has shape %v, want (V, %d) to match h %v", op, label("w", w), w.Shape, C, h.Shape))
	}
	if len(targets) != N {
		panic(fmt.Sprintf("cpu.%s: %d targets for h of shape %v (%d rows)", op, len(targets), h.Shape, N))
	}
	checkRC(op, "dh", dh, N, C)
	checkRC(op, "dw", dw, V, C)
	if chunkRows < 1 {
		panic(fmt.Sprintf("cpu.%s: chunkRows = %d, want >= 1", op, chunkRows))
	}
	a := headOp{N: N, C: C, V: V, targets: targets}
	if P, ok := autocastP(h); ok {
		// An autocast call: h (the final norm's 16-bit output) sets P; w
		// is the F32 master or a 16-bit table, the gradients are F32.
		checkMixed(op, P, "h", marg{"dh", dh, false}, marg{"dw", dw, false})
		checkLinearW(op, P, "w", w)
		if isHalf(w) && dw != nil {
			halfOpPanic(op, "a weight gradient dw", w)
		}
		a.dt, a.P, a.mixed = tensor.F32, P, true
	} else if isHalf(w) {
		if dw != nil {
			halfOpPanic(op, "a weight gradient dw", w)
		}
		a.wh = newHalfW(w)
		a.dt = dtypeOf(op, h, dh)
	} else {
		a.dt = dtypeOf(op, h, w, dh, dw)
	}
	for n, t := range targets {
		if t != backend.IgnoreIndex && (t < 0 || int(t) >= V) {
			return headOp{}, fmt.Errorf("cpu.%s: target %d at position %d is outside the vocabulary [0, %d) and is not the ignore index %d", op, t, n, V, backend.IgnoreIndex)
		}
	}
	return a, nil
}

// run dispatches headRows on the dtype; see headRows for the arguments.
func (a *headOp) run(c *CPU, h, w *tensor.Tensor, counted []int, chunkRows int, gradScale float64, rowScale []float64, dh, dw *tensor.Tensor, rowLoss []float64) float64 {
	if a.mixed {
		return headRowsMixed(c, a, h, w, counted, chunkRows, gradScale, rowScale, s32(dh), s32(dw), rowLoss)
	}
	switch a.dt {
	case tensor.F32:
		var w32 []float32
		if a.wh == nil {
			w32 = s32(w)
		}
		return headRows(c, a, s32(h), w32, counted, chunkRows, gradScale, rowScale, s32(dh), s32(dw), rowLoss)
	case tensor.F64:
		var w64 []float64
		if a.wh == nil {
			w64 = s64(w)
		}
		return headRows(c, a, s64(h), w64, counted, chunkRows, gradScale, rowScale, s64(dh), s64(dw), rowLoss)
	}
	panic("unreachable")
}

// headRows is the chunked LM-head kernel shared by CrossEntropy and the
// log-probability ops. For the rows listed in counted (ascending, targets
// not IgnoreIndex), taken chunk at a time, it forms the logits by one GEMM
// into scratch, and returns the sum of the rows' losses
// logsumexp(logits) - logits[target], added in row order. If rowLoss is
// non-nil, rowLoss[n] is set to row n's loss for each counted n.
//
// If dh or dw is non-nil, the gradient of sum_n s_n * loss_n is accumulated
// into them, where s_n is rowScale[n] or, with rowScale nil, gradScale.
func headRows[T gemm.Float](c *CPU, a *headOp, h, w []T, counted []int, chunk int, gradScale float64, rowScale []float64, dh, dw []T, rowLoss []float64) float64 {
	if len(counted) == 0 {
		return 0
	}
	C, V, targets, wh := a.C, a.V, a.targets, a.wh
	chunk = min(chunk, len(counted))
	grads := dh != nil || dw != nil

	// One scratch block: logits (chunk x V), gathered h rows (chunk x C) and,
	// for dh, the block's dh before it is scattered back (chunk x C).
	size := chunk*V + chunk*C
	if dh != nil {
		size += chunk * C
	}
	buf := getBuf[T](c, size)
	defer putBuf(c, buf)
	logits := buf[:chunk*V]
	hbuf := buf[chunk*V : chunk*V+chunk*C]
	dhbuf := buf[chunk*V+chunk*C:]
	var wscratch []T // a widened block of a 16-bit W
	if wh != nil {
		wscratch = make([]T, wh.blockRows()*C)
	}

	lossBuf := make([]float64, chunk)
	var loss float64
	for i0 := 0; i0 < len(counted); i0 += chunk {
		idx := counted[i0:min(i0+chunk, len(counted))]
		rows := len(idx)
		first := idx[0]
		contiguous := idx[rows-1]-first == rows-1
		var hb []T
		if contiguous {
			hb = h[first*C : (first+rows)*C]
		} else {
			hb = hbuf[:rows*C]
			for r, n := range idx {
				copy(hb[r*C:r*C+C], h[n*C:n*C+C])
			}
		}
		lg := logits[:rows*V]
		gemmLogits(rows, V, C, hb, w, wh, wscratch, lg)

		// Softmax rows in parallel; each row's loss goes to its own slot
		// and the slots are summed in order, as the serial loop did.
		rowL := lossBuf[:rows]
		parallel.For(rows, 1, func(r0, r1 int) {
			for r := r0; r < r1; r++ {
				s := gradScale
				if rowScale != nil {
					s = rowScale[idx[r]]
				}
				rowL[r] = softmaxRow(lg[r*V:r*V+V], int(targets[idx[r]]), s, grads)
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
		if dh != nil {
			if contiguous {
				gemmGW(rows, V, C, lg, w, wh, wscratch, 1, dh[first*C:(first+rows)*C])
			} else {
				db := dhbuf[:rows*C]
				gemmGW(rows, V, C, lg, w, wh, wscratch, 0, db)
				for r, n := range idx {
					dst := dh[n*C : n*C+C]
					for j, v := range db[r*C : r*C+C] {
						dst[j] += v
					}
				}
			}
		}
		if dw != nil {
			gemm.Gemm(true, false, V, C, rows, 1, lg, V, hb, C, 1, dw, C)
		}
	}
	return loss
}

// softmaxRow returns the cross-entropy loss logsumexp(row) - row[t] of one
// row of logits and, with grads, overwrites the row with
// (softmax - onehot(t)) * gradScale. Sums are in float64. For float32 the
// max, exp and scaling are vec kernels (a polynomial exp, AVX2 where
// available); float64 uses math.Exp.
func softmaxRow[T gemm.Float](row []T, t int, gradScale float64, grads bool) float64 {
	target := float64(row[t])
	var mx, s float64
	if r32, ok := any(row).([]float32); ok {
		m := vec.Max(r32)
		mx = float64(m)
		s = vec.ExpSubSum(r32, m) // also when only the loss is wanted: the row is scratch
		if grads {
			vec.Scale(r32, float32(gradScale/s))
		}
	} else {
		mx = float64(row[0])
		for _, v := range row {
			if fv := float64(v); fv > mx {
				mx = fv
			}
		}
		if grads {
			for j, v := range row {
				e := math.Exp(float64(v) - mx)
				s += e
				row[j] = T(e)
			}
			k := T(gradScale / s)
			for j := range row {
				row[j] *= k
			}
		} else {
			for _, v := range row {
				s += math.Exp(float64(v) - mx)
			}
		}
	}
	if grads {
		// (p_t - 1) * gradScale from float64, not p_t*gradScale - gradScale
		// in T, which cancels badly in float32 when p_t is near 1.
		row[t] = T((math.Exp(target-mx)/s - 1) * gradScale)
	}
	return mx + math.Log(s) - target
}
