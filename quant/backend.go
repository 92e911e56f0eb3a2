package quant

import (
	"fmt"
	"unsafe"

	"github.com/shoggo/shoggo/backend"
	"github.com/shoggo/shoggo/backend/cpu/gemm"
	"github.com/shoggo/shoggo/internal/parallel"
	"github.com/shoggo/shoggo/tensor"
)

// The bridge between quantized weights and the backend: Parts lays a Weight
// out as a backend.QuantWeight of host tensors (aliasing its slices, no
// copy), FromParts turns host parts back into a Weight, and HostForward and
// HostBackward are the CPU kernels of backend.QuantOps (the CPU backend
// calls them; so does a Linear without a backend).

func partU8(b []byte, n ...int) *tensor.Tensor {
	if b == nil {
		return nil
	}
	return &tensor.Tensor{Shape: tensor.Shape(n).Clone(), DType: tensor.U8, Bytes: b}
}

func partF32(f []float32) *tensor.Tensor {
	if f == nil {
		return nil
	}
	return tensor.FromF32(f, len(f))
}

// Parts describes w as a backend.QuantWeight whose tensors are host
// tensors sharing w's slices.
func Parts(w Weight) *backend.QuantWeight {
	out, in := w.Dims()
	q := &backend.QuantWeight{Format: w.Format(), Out: out, In: in}
	switch w := w.(type) {
	case *Weight4:
		s := w.st
		q.Packed = partU8(w.packed, len(w.packed))
		q.BlockSize = s.BlockSize
		q.Absmax = partF32(s.Absmax)
		q.QAbsmax = partU8(s.QAbsmax, len(s.QAbsmax))
		q.Absmax2 = partF32(s.Absmax2)
		q.NestedCode = partF32(s.NestedCode)
		q.Offset = s.Offset
		q.NestedBlockSize = s.NestedBlockSize
	case *Int8Weight:
		var b []byte
		if len(w.Q) > 0 {
			b = unsafe.Slice((*byte)(unsafe.Pointer(&w.Q[0])), len(w.Q))
		} else {
			b = []byte{}
		}
		q.Packed = &tensor.Tensor{Shape: tensor.Shape{out, in}, DType: tensor.I8, Bytes: b}
		q.Scales = partF32(w.SCB)
	case *Int4Weight:
		q.Packed = partU8(w.Packed, out, w.RowBytes())
		q.Scales = partF32(w.Scales)
		q.Zeros = partU8(w.Zeros, len(w.Zeros))
		q.GroupSize = w.GroupSize
	default:
		panic(fmt.Sprintf("quant.Parts: unknown weight type %T", w))
	}
	return q
}

func hostBytes(t *tensor.Tensor) []byte {
	if t == nil {
		return nil
	}
	if !t.IsHost() {
		panic(fmt.Sprintf("quant: %s is not a host tensor", t))
	}
	return t.Bytes[:t.Numel()*t.DType.Size()]
}

func hostF32(t *tensor.Tensor) []float32 {
	if t == nil {
		return nil
	}
	if !t.IsHost() || t.DType != tensor.F32 {
		panic(fmt.Sprintf("quant: %s is not a host F32 tensor", t))
	}
	return t.F32[:t.Numel()]
}

// FromParts builds the Weight described by q, whose tensors are host
// tensors (shared, not copied). It returns an error if the parts disagree.
func FromParts(q *backend.QuantWeight) (Weight, error) {
	switch q.Format {
	case NF4, FP4:
		st := &State4{
			QuantType: q.Format, Shape: []int{q.Out, q.In}, BlockSize: q.BlockSize,
			Absmax: hostF32(q.Absmax), QAbsmax: hostBytes(q.QAbsmax), Absmax2: hostF32(q.Absmax2),
			Offset: q.Offset, NestedCode: hostF32(q.NestedCode), NestedBlockSize: q.NestedBlockSize,
		}
		return NewWeight4(hostBytes(q.Packed), st)
	case Int8:
		b := hostBytes(q.Packed)
		var codes []int8
		if len(b) > 0 {
			codes = unsafe.Slice((*int8)(unsafe.Pointer(&b[0])), len(b))
		}
		return NewInt8Weight(codes, hostF32(q.Scales), q.Out, q.In)
	case Int4:
		return NewInt4Weight(hostBytes(q.Packed), hostF32(q.Scales), hostBytes(q.Zeros), q.GroupSize, q.Out, q.In)
	}
	return nil, fmt.Errorf("quant: unknown format %q (want nf4, fp4, int8 or int4)", q.Format)
}

// HostForward sets Y (N x out) = X (N x in) Wᵀ + bias (bias may be nil),
// dequantizing W a panel of rows at a time into per-goroutine scratch and
// multiplying with gemm.Sgemm, or, for a few rows of X, with direct
// dequantize-and-dot kernels.
func HostForward(Y, X, bias []float32, N int, w Weight) {
	out, in := w.Dims()
	if N == 0 || out == 0 {
		return
	}
	if N <= matVecLimit(w) {
		forwardMatVec(w, Y, X, bias, N, in, out)
		return
	}
	if in == 0 {
		for n := 0; n < N; n++ {
			if bias != nil {
				copy(Y[n*out:(n+1)*out], bias)
			} else {
				clear(Y[n*out : (n+1)*out])
			}
		}
		return
	}
	P := panelSize(out, in)
	np := ceilDiv(out, P)
	parallel.For(np, 1, func(lo, hi int) {
		sp := getScratch(P * in)
		defer scratchPool.Put(sp)
		s := *sp
		for p := lo; p < hi; p++ {
			r0, r1 := p*P, min((p+1)*P, out)
			w.DequantizeRows(s, r0, r1)
			var beta float32
			if bias != nil {
				for n := 0; n < N; n++ {
					copy(Y[n*out+r0:n*out+r1], bias[r0:r1])
				}
				beta = 1
			}
			gemm.Sgemm(false, true, N, r1-r0, in, 1, X, in, s, in, beta, Y[r0:], out)
		}
	})
}

func forwardMatVec(w Weight, Y, X, bias []float32, N, in, out int) {
	i4, isInt4 := w.(*Int4Weight)
	var sums [][]float32
	if isInt4 {
		sums = make([][]float32, N)
		for n := range sums {
			sums[n] = i4.groupSums(X[n*in:(n+1)*in], make([]float32, 0, i4.Groups()))
		}
	}
	parallel.For(out, 64, func(lo, hi int) {
		for n := 0; n < N; n++ {
			ys := Y[n*out+lo : n*out+hi]
			xs := X[n*in : (n+1)*in]
			if isInt4 {
				i4.matVec(ys, xs, sums[n], lo, hi)
			} else {
				w.MatVec(ys, xs, lo, hi)
			}
			if bias != nil {
				for i := range ys {
					ys[i] += bias[lo+i]
				}
			}
		}
	})
}

// HostBackward accumulates DX (N x in) += DY (N x out) W, dequantizing W a
// panel of columns at a time.
func HostBackward(DX, DY []float32, N int, w Weight) {
	out, in := w.Dims()
	if N == 0 || in == 0 || out == 0 {
		return
	}
	C := panelSize(in, out)
	np := ceilDiv(in, C)
	parallel.For(np, 1, func(lo, hi int) {
		sp := getScratch(C * out)
		defer scratchPool.Put(sp)
		s := *sp
		for p := lo; p < hi; p++ {
			c0, c1 := p*C, min((p+1)*C, in)
			cw := c1 - c0
			w.DequantizeCols(s[:out*cw], c0, c1)
			gemm.Sgemm(false, false, N, cw, out, 1, DY, out, s, cw, 1, DX[c0:], in)
		}
	})
}
