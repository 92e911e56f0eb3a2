package gemm

import (
	"fmt"
	"unsafe"

	"github.com/shoggo/shoggo/internal/cpu"
	"github.com/shoggo/shoggo/tensor"
)

// hasF16C reports whether the conversion routines (AVX2, F16C) can run;
// they run when useAsm is set as well.
var hasF16C = cpu.HasAVX2F16C()

// Operand is one matrix operand of GemmMixed: either float32 values (F32)
// or 16-bit values (U16, of dtype Src: tensor.BF16 or tensor.F16). Prec is
// the precision the operand enters the product at: tensor.F32 uses the
// values as they are; tensor.BF16 or tensor.F16 rounds each value to that
// type (round to nearest even, as tensor.F32ToBF16/F32ToF16) first. A U16
// operand whose Src equals Prec is used exactly; a BF16 value at F16
// precision (or the reverse) is widened and then rounded.
type Operand struct {
	F32  []float32
	U16  []uint16
	Src  tensor.DType // dtype of U16 (BF16 or F16); ignored for F32
	Prec tensor.DType // F32, BF16 or F16
}

// F32Op is a float32 operand entering at precision prec.
func F32Op(s []float32, prec tensor.DType) Operand { return Operand{F32: s, Prec: prec} }

// HalfOp is a 16-bit operand of dtype src entering at precision prec.
func HalfOp(s []uint16, src, prec tensor.DType) Operand {
	return Operand{U16: s, Src: src, Prec: prec}
}

// at returns element i of the operand at its precision, as a float32.
func (o *Operand) at(i int) float32 {
	var v float32
	if o.U16 != nil {
		if o.Src == tensor.F16 {
			v = tensor.F16ToF32(o.U16[i])
		} else {
			v = tensor.BF16ToF32(o.U16[i])
		}
		if o.Src == o.Prec || o.Prec == tensor.F32 {
			return v
		}
	} else {
		v = o.F32[i]
	}
	return Round(v, o.Prec)
}

// Round rounds v to precision p (F32: unchanged; BF16, F16: round to
// nearest even, overflow to ±Inf) and returns it as a float32.
func Round(v float32, p tensor.DType) float32 {
	switch p {
	case tensor.BF16:
		return tensor.BF16ToF32(tensor.F32ToBF16(v))
	case tensor.F16:
		return tensor.F16ToF32(tensor.F32ToF16(v))
	}
	return v
}

func (o *Operand) check(name string) {
	if o.F32 != nil && o.U16 != nil {
		panic(fmt.Sprintf("gemm.GemmMixed: operand %s has both F32 and U16 data", name))
	}
	if o.U16 != nil && o.Src != tensor.BF16 && o.Src != tensor.F16 {
		panic(fmt.Sprintf("gemm.GemmMixed: operand %s: U16 data of dtype %v", name, o.Src))
	}
	switch o.Prec {
	case tensor.F32, tensor.BF16, tensor.F16:
	default:
		panic(fmt.Sprintf("gemm.GemmMixed: operand %s: precision %v", name, o.Prec))
	}
}

// GemmMixed computes C = alpha*op(A)*op(B) + beta*C like Sgemm, with each
// operand converted to its precision (Operand) while it is read: the
// products of the rounded values are summed in float32 (products of two
// bf16 or two fp16 values are exact in float32), so a half-precision
// operand never needs a full float32 copy. This is PyTorch autocast's
// matmul: half operands, float32 accumulation. beta == 0 overwrites C.
//
// It runs Sgemm's blocking, threads and micro-kernel, with the conversion
// done as each block of an operand is packed (into a buffer of at most one
// cache block), so it follows Sgemm's rules: alpha == 0 or k == 0 only
// scales C, the result is bit-identical for any thread count, and it
// differs from the straight-loop reference mixedRef only in the order of
// the float32 summation (and in alpha, which Sgemm applies to the packed
// A, so with alpha != 1 the products are of alpha*op(A)).
//
// Where both operands enter at BF16 precision and the CPU has AVX512_BF16
// (and SHOGGO_NOASM=1, SHOGGO_NOBF16=1 are not set), it instead packs both
// operands as bf16 (bf16.go) and runs an AMX-BF16 micro-kernel where the
// CPU has AMX (and SHOGGO_NOAMX=1 is not set), a VDPBF16PS one elsewhere:
// float32 accumulation as well, but pairs of products are added at once,
// alpha is applied to the sums, and bf16 denormals in the operands and
// float32 denormals among the partial sums are flushed to zero.
func GemmMixed(transA, transB bool, m, n, k int, alpha float32, a Operand, lda int, b Operand, ldb int, beta float32, c []float32, ldc int) {
	a.check("A")
	b.check("B")
	if m < 0 || n < 0 || k < 0 {
		panic(fmt.Sprintf("gemm.GemmMixed: negative dimension m=%d n=%d k=%d", m, n, k))
	}
	if m == 0 || n == 0 {
		return
	}
	checkMatrix("c", c, m, n, ldc)
	if k == 0 || alpha == 0 {
		scaleC(m, n, beta, c, ldc)
		return
	}
	if transA {
		a.checkMatrix("a", k, m, lda)
	} else {
		a.checkMatrix("a", m, k, lda)
	}
	if transB {
		b.checkMatrix("b", n, k, ldb)
	} else {
		b.checkMatrix("b", k, n, ldb)
	}
	p := problem{transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, beta: beta,
		a: a, b: b, c: c, lda: lda, ldb: ldb, ldc: ldc}
	if useAsm && useBF16 && a.Prec == tensor.BF16 && b.Prec == tensor.BF16 {
		p.bf16 = true
		p.amx = amxReady()
		p.cvtA, p.cvtB = a.cvtBF16(), b.cvtBF16()
	} else {
		p.cvtA, p.cvtB = a.cvtF32(), b.cvtF32()
	}
	parallel(&p)
}

// Conversions of an operand while it is packed: cvtNone reads float32 as
// is (or bf16 as is, for the bf16 kernel); the others name the source
// element type and what is done to it. The numbers are those of cvtRows
// (gen_mixed.go).
const (
	cvtNone         = iota // as is
	cvtBF16F32             // bf16 widened to float32
	cvtF16F32              // fp16 widened to float32
	cvtF32RoundBF16        // float32 rounded to bf16 (kept as float32)
	cvtF32RoundF16         // float32 rounded to fp16 (kept as float32)
	cvtBF16RoundF16        // bf16 widened, rounded to fp16 (as float32)
	cvtF16RoundBF16        // fp16 widened, rounded to bf16 (as float32)
	cvtF32BF16             // float32 rounded to bf16 (as bf16)
	cvtF16BF16             // fp16 rounded to bf16 (as bf16)
)

// cvtF32 returns the conversion that gives the operand as float32 at its
// precision.
func (o *Operand) cvtF32() int {
	if o.U16 == nil {
		switch o.Prec {
		case tensor.BF16:
			return cvtF32RoundBF16
		case tensor.F16:
			return cvtF32RoundF16
		}
		return cvtNone
	}
	if o.Src == tensor.BF16 {
		if o.Prec == tensor.F16 {
			return cvtBF16RoundF16
		}
		return cvtBF16F32
	}
	if o.Prec == tensor.BF16 {
		return cvtF16RoundBF16
	}
	return cvtF16F32
}

// cvtBF16 returns the conversion that gives the operand, of precision
// BF16, as bf16 values.
func (o *Operand) cvtBF16() int {
	switch {
	case o.U16 == nil:
		return cvtF32BF16
	case o.Src == tensor.F16:
		return cvtF16BF16
	}
	return cvtNone
}

// from returns the operand starting at element off.
func (o Operand) from(off int) Operand {
	if o.U16 != nil {
		o.U16 = o.U16[off:]
	} else {
		o.F32 = o.F32[off:]
	}
	return o
}

// size returns the bytes per element and the address of element i.
func (o *Operand) addr(i int) (int, unsafe.Pointer) {
	if o.U16 != nil {
		return 2, unsafe.Pointer(&o.U16[i])
	}
	return 4, unsafe.Pointer(&o.F32[i])
}

func (o *Operand) checkMatrix(name string, rows, cols, ld int) {
	if o.U16 != nil {
		checkLen(name, len(o.U16), rows, cols, ld)
	} else {
		checkLen(name, len(o.F32), rows, cols, ld)
	}
}

// convertF32 writes rows x cols elements of o (at element off, row stride
// ld) converted by cvt (a float32 conversion) to dst (row stride ldd).
func convertF32(dst []float32, ldd int, o *Operand, cvt, off, ld, rows, cols int) {
	n8 := 0
	if useAsm && hasF16C && cols >= 8 {
		n8 = cols &^ 7
		o.addr(off + (rows-1)*ld + n8 - 1) // bounds check of the last element read
		w, src := o.addr(off)
		_ = dst[(rows-1)*ldd+n8-1]
		cvtRows(cvt, rows, n8, src, ld*w, unsafe.Pointer(&dst[0]), ldd*4)
		if n8 == cols {
			return
		}
	}
	for r := 0; r < rows; r++ {
		d := dst[r*ldd+n8 : r*ldd+cols]
		s := off + r*ld + n8
		switch cvt {
		case cvtBF16F32:
			for i, h := range o.U16[s : s+len(d)] {
				d[i] = tensor.BF16ToF32(h)
			}
		case cvtF16F32:
			for i, h := range o.U16[s : s+len(d)] {
				d[i] = tensor.F16ToF32(h)
			}
		case cvtF32RoundBF16:
			for i, v := range o.F32[s : s+len(d)] {
				d[i] = tensor.BF16ToF32(tensor.F32ToBF16(v))
			}
		case cvtF32RoundF16:
			for i, v := range o.F32[s : s+len(d)] {
				d[i] = tensor.F16ToF32(tensor.F32ToF16(v))
			}
		case cvtBF16RoundF16:
			for i, h := range o.U16[s : s+len(d)] {
				d[i] = tensor.F16ToF32(tensor.F32ToF16(tensor.BF16ToF32(h)))
			}
		case cvtF16RoundBF16:
			for i, h := range o.U16[s : s+len(d)] {
				d[i] = tensor.BF16ToF32(tensor.F32ToBF16(tensor.F16ToF32(h)))
			}
		default:
			panic("gemm: bad conversion")
		}
	}
}

// packA packs rows [i0, i0+mb) and columns [p0, p0+kb) of alpha*op(A) for
// the float32 kernel, converting a GemmMixed operand into buf.ta first.
func (p *problem) packA(buf *buffers, i0, mb, p0, kb int) {
	if p.cvtA == cvtNone {
		packA(buf.a, p.transA, p.a.F32, p.lda, i0, mb, p0, kb, p.alpha)
		return
	}
	if len(buf.ta) < mb*kb {
		buf.ta = make([]float32, mb*kb)
	}
	if p.transA {
		convertF32(buf.ta, mb, &p.a, p.cvtA, p0*p.lda+i0, p.lda, kb, mb)
		packA(buf.a, true, buf.ta, mb, 0, mb, 0, kb, p.alpha)
	} else {
		convertF32(buf.ta, kb, &p.a, p.cvtA, i0*p.lda+p0, p.lda, mb, kb)
		packA(buf.a, false, buf.ta, kb, 0, mb, 0, kb, p.alpha)
	}
}

// packB packs the panel of op(B) of rows [p0, p0+kb) and columns [j,
// j+cols), cols <= nr, into bp for the float32 kernel, converting a
// GemmMixed operand first (into buf.tb, or straight into the panel).
func (p *problem) packB(buf *buffers, bp []float32, p0, kb, j, cols int) {
	if p.cvtB == cvtNone {
		packB(bp, p.transB, p.b.F32, p.ldb, p0, kb, j, cols)
		return
	}
	if !p.transB && cols == nr {
		convertF32(bp, nr, &p.b, p.cvtB, p0*p.ldb+j, p.ldb, kb, nr)
		return
	}
	if len(buf.tb) < kb*nr {
		buf.tb = make([]float32, kcMax*nr)[:kb*nr]
	}
	if p.transB {
		convertF32(buf.tb, kb, &p.b, p.cvtB, j*p.ldb+p0, p.ldb, cols, kb)
		packB(bp, true, buf.tb, kb, 0, kb, 0, cols)
	} else {
		convertF32(buf.tb, cols, &p.b, p.cvtB, p0*p.ldb+j, p.ldb, kb, cols)
		packB(bp, false, buf.tb, cols, 0, kb, 0, cols)
	}
}

// nextB returns what prefetchRows needs to fetch the source of the panel of
// op(B) of rows [p0, p0+kb) and columns [j, j+cols).
func (p *problem) nextB(p0, kb, j, cols int) (addr unsafe.Pointer, rows, stride, bytes int) {
	if p.transB {
		w, a := p.b.addr(j*p.ldb + p0)
		return a, cols, p.ldb * w, kb * w
	}
	w, a := p.b.addr(p0*p.ldb + j)
	return a, kb, p.ldb * w, cols * w
}

// mixedRef is the reference GemmMixed: straightforward loops, float32
// accumulation in k order.
func mixedRef(transA, transB bool, m, n, k int, alpha float32, a *Operand, lda int, b *Operand, ldb int, beta float32, c []float32, ldc int) {
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s float32
			for p := 0; p < k; p++ {
				ai, bi := i*lda+p, p*ldb+j
				if transA {
					ai = p*lda + i
				}
				if transB {
					bi = j*ldb + p
				}
				s += a.at(ai) * b.at(bi)
			}
			if beta == 0 {
				c[i*ldc+j] = alpha * s
			} else {
				c[i*ldc+j] = alpha*s + beta*c[i*ldc+j]
			}
		}
	}
}
