package gemm

import (
	"fmt"

	"github.com/shoggo/shoggo/tensor"
)

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
func GemmMixed(transA, transB bool, m, n, k int, alpha float32, a Operand, lda int, b Operand, ldb int, beta float32, c []float32, ldc int) {
	a.check("A")
	b.check("B")
	if m == 0 || n == 0 {
		return
	}
	mixedRef(transA, transB, m, n, k, alpha, &a, lda, &b, ldb, beta, c, ldc)
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
