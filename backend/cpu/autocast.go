package cpu

import (
	"fmt"
	"strings"

	"github.com/shoggo/shoggo/backend/cpu/gemm"
	"github.com/shoggo/shoggo/internal/parallel"
	"github.com/shoggo/shoggo/tensor"
)

// Autocast calls (mixed precision, PyTorch autocast semantics).
//
// An op is an autocast call at precision P when its activation input (the
// argument named in each op's documentation, e.g. x of LinearForward) is a
// BF16 or F16 tensor; P is that dtype. Precision is carried by dtypes: no
// flag is passed. In such a call the op computes in float32 from the 16-bit
// values; every matmul operand (16-bit activations, float32 weights,
// upstream gradients and biases) enters gemm.GemmMixed rounded to P, with
// float32 accumulation; norms, softmax, losses and reductions run in
// float32; every output stored in a 16-bit tensor is rounded to P (round
// to nearest even, overflow to ±Inf in F16). Arguments that may be 16-bit
// must be F32 or P; gradients and statistics stay F32 (checkMixed).
//
// A 16-bit activation the kernel needs as float32 is widened into pooled
// scratch (getBuf/putBuf, dropped by ReleaseScratch) for the length of the
// call; a weight is never copied whole: GemmMixed converts it while
// packing. The F32 and F64 paths are untouched by all of this.

// isHalfDT reports whether dt is BF16 or F16.
func isHalfDT(dt tensor.DType) bool { return dt == tensor.BF16 || dt == tensor.F16 }

// autocastP returns the dtype of the first 16-bit tensor among ts (the
// arguments that decide an op's precision) and whether there is one.
func autocastP(ts ...*tensor.Tensor) (tensor.DType, bool) {
	for _, t := range ts {
		if t != nil && isHalfDT(t.DType) {
			return t.DType, true
		}
	}
	return tensor.F32, false
}

// marg is one argument of an autocast call for checkMixed: half says it may
// be a 16-bit tensor of the call's precision (otherwise it must be F32).
type marg struct {
	name string
	t    *tensor.Tensor
	half bool
}

// checkMixed panics, naming the op and the argument, unless every non-nil
// argument is F32 or, where allowed, P. by names what set P.
func checkMixed(op string, P tensor.DType, by string, args ...marg) {
	for _, a := range args {
		if a.t == nil {
			continue
		}
		dt := a.t.DType
		if dt == tensor.F32 || a.half && dt == P {
			continue
		}
		want := "F32"
		if a.half {
			want = "F32 or " + P.String()
		}
		panic(fmt.Sprintf("cpu.%s: %s is %s, want %s in a %s autocast call (precision set by %s)", op, label(a.name, a.t), dt, want, P, by))
	}
}

// halfArgs returns the names of the 16-bit arguments (for messages).
func halfArgs(args ...marg) string {
	var names []string
	for _, a := range args {
		if a.t != nil && isHalfDT(a.t.DType) {
			names = append(names, a.name)
		}
	}
	return strings.Join(names, ", ")
}

// u16 returns a 16-bit tensor's storage, exactly Numel long (nil for nil).
func u16(t *tensor.Tensor) []uint16 {
	if t == nil {
		return nil
	}
	return t.U16[:t.Numel()]
}

// widenSlice sets dst[i] = src[i] widened from dtype dt (exact). F16 goes
// through the fast conversions of halfconv.go (same bits as tensor's).
func widenSlice(dst []float32, src []uint16, dt tensor.DType) {
	dst = dst[:len(src)]
	if dt == tensor.F16 {
		for i, v := range src {
			dst[i] = tensor.FastF16ToF32(v)
		}
		return
	}
	for i, v := range src {
		dst[i] = tensor.BF16ToF32(v)
	}
}

// roundSlice sets dst[i] = src[i] rounded to dtype dt (nearest even).
func roundSlice(dst []uint16, src []float32, dt tensor.DType) {
	dst = dst[:len(src)]
	if dt == tensor.F16 {
		for i, v := range src {
			dst[i] = tensor.FastF32ToF16(v)
		}
		return
	}
	for i, v := range src {
		dst[i] = tensor.F32ToBF16(v)
	}
}

// roundInPlace sets x[i] = round_P(x[i]) (a float32 holding a P value).
func roundInPlace(x []float32, p tensor.DType) {
	switch p {
	case tensor.BF16:
		for i, v := range x {
			x[i] = tensor.BF16ToF32(tensor.F32ToBF16(v))
		}
	case tensor.F16:
		for i, v := range x {
			x[i] = tensor.FastF16ToF32(tensor.FastF32ToF16(v))
		}
	}
}

// Parallel versions over large slices.
func parWiden(dst []float32, src []uint16, dt tensor.DType) {
	parallel.For(len(src), grainMem, func(lo, hi int) { widenSlice(dst[lo:hi], src[lo:hi], dt) })
}

func parRound(dst []uint16, src []float32, dt tensor.DType) {
	parallel.For(len(src), grainMem, func(lo, hi int) { roundSlice(dst[lo:hi], src[lo:hi], dt) })
}

func parRoundInPlace(x []float32, p tensor.DType) {
	parallel.For(len(x), grainMem, func(lo, hi int) { roundInPlace(x[lo:hi], p) })
}

// f32Of returns t's elements as float32: t's own storage when it is F32,
// otherwise (16-bit) a widened copy in pooled scratch. release gives the
// scratch back; the values must not be used after it.
func f32Of(c *CPU, t *tensor.Tensor) (vals []float32, release func()) {
	if t == nil {
		return nil, func() {}
	}
	if t.DType == tensor.F32 {
		return s32(t), func() {}
	}
	buf := getBuf[float32](c, t.Numel())
	parWiden(buf, u16(t), t.DType)
	return buf, func() { putBuf(c, buf) }
}

// operand returns t as a GemmMixed operand entering at precision p: a
// 16-bit tensor as is (converted while packing), an F32 one rounded to p.
func operand(t *tensor.Tensor, p tensor.DType) gemm.Operand {
	if isHalfDT(t.DType) {
		return gemm.HalfOp(u16(t), t.DType, p)
	}
	return gemm.F32Op(s32(t), p)
}

// operandAt is operand for the sub-slice starting at element off.
func operandAt(t *tensor.Tensor, off int, p tensor.DType) gemm.Operand {
	if isHalfDT(t.DType) {
		return gemm.HalfOp(u16(t)[off:], t.DType, p)
	}
	return gemm.F32Op(s32(t)[off:], p)
}

// chunkF32 returns elements [lo, hi) of t as float32: a subslice of t's
// storage when it is F32, else widened into buf.
func chunkF32(t *tensor.Tensor, lo, hi int, buf []float32) []float32 {
	if t.DType == tensor.F32 {
		return t.F32[lo:hi]
	}
	b := buf[:hi-lo]
	widenSlice(b, t.U16[lo:hi], t.DType)
	return b
}

// storeChunk writes vals (elements [lo, hi) of the result) into t: rounded
// when t is 16-bit, copied when t is F32 (nothing to do when vals already is
// t's storage).
func storeChunk(t *tensor.Tensor, lo, hi int, vals []float32) {
	if t.DType == tensor.F32 {
		dst := t.F32[lo:hi]
		if len(dst) > 0 && &dst[0] == &vals[0] {
			return
		}
		copy(dst, vals)
		return
	}
	roundSlice(t.U16[lo:hi], vals, t.DType)
}

// outChunk is where an elementwise kernel writes elements [lo, hi) of t:
// t's own storage when it is F32 (then storeChunk does nothing), else buf.
func outChunk(t *tensor.Tensor, lo, hi int, buf []float32) []float32 {
	if t.DType == tensor.F32 {
		return t.F32[lo:hi]
	}
	return buf[:hi-lo]
}

// elemChunk is the element count of one unit of the chunked elementwise
// autocast kernels (each unit widens into stack-sized local buffers).
const elemChunk = 2048

// forChunks runs fn over [0, n) in units of at most elemChunk elements, in
// parallel (grain elements per task), giving each call scratch buffers of
// elemChunk float32s (nbuf of them).
func forChunks(n, grain, nbuf int, fn func(lo, hi int, bufs [][]float32)) {
	grain = max(elemChunk, grain/elemChunk*elemChunk)
	parallel.For(n, grain, func(lo, hi int) {
		bufs := make([][]float32, nbuf)
		for i := range bufs {
			bufs[i] = make([]float32, elemChunk)
		}
		for c0 := lo; c0 < hi; c0 += elemChunk {
			fn(c0, min(c0+elemChunk, hi), bufs)
		}
	})
}
