package quant

import (
	"fmt"
	"strings"
	"sync"

	"github.com/shoggo/shoggo/backend"
	"github.com/shoggo/shoggo/backend/cpu/gemm"
	"github.com/shoggo/shoggo/internal/parallel"
	"github.com/shoggo/shoggo/nn"
	"github.com/shoggo/shoggo/tensor"
)

// Formats of a quantized linear layer.
const (
	NF4  = "nf4"  // 4-bit NormalFloat, blockwise absmax (bitsandbytes)
	FP4  = "fp4"  // 4-bit float (1-2-1), blockwise absmax (bitsandbytes)
	Int8 = "int8" // 8-bit per output row absmax (bitsandbytes LLM.int8, no outliers)
	Int4 = "int4" // 4-bit group-wise, symmetric or asymmetric (shoggo)
)

// Weight is a quantized (out, in) weight matrix: *Weight4 (NF4, FP4),
// *Int8Weight or *Int4Weight. The kernels of Linear need only these
// methods, which never materialize more of the matrix than asked for.
type Weight interface {
	Format() string
	Dims() (out, in int)
	// DequantizeRows writes rows [r0, r1) into dst ((r1-r0) x in).
	DequantizeRows(dst []float32, r0, r1 int)
	// DequantizeCols writes columns [c0, c1) into dst (out x (c1-c0)).
	DequantizeCols(dst []float32, c0, c1 int)
	// MatVec sets y[r-r0] = W[r, :] . x for r in [r0, r1).
	MatVec(y, x []float32, r0, r1 int)
	// StorageBytes is the memory the quantized weight occupies.
	StorageBytes() int
}

var (
	_ Weight = (*Weight4)(nil)
	_ Weight = (*Int8Weight)(nil)
	_ Weight = (*Int4Weight)(nil)
)

// Options tune QuantizeLinear. The zero value gives the defaults.
type Options struct {
	// BlockSize is the NF4/FP4 block size: 32, 64 (default), 128, ... 4096.
	BlockSize int
	// DoubleQuant quantizes the NF4/FP4 absmax vector again (bitsandbytes'
	// compress_statistics / bnb_4bit_use_double_quant).
	DoubleQuant bool
	// GroupSize is the int4 group size: 16, 32, 64, 128 (default) or 256.
	GroupSize int
	// Asymmetric selects int4 with a zero point per group.
	Asymmetric bool
}

// Defaults.
const (
	DefaultBlockSize = 64
	DefaultGroupSize = 128
)

// Linear is a frozen quantized linear layer y = x W^T + b implementing
// nn.Layer. Forward and Backward go through the backend's quantized matmul
// (backend.QuantOps; on the CPU: HostForward/HostBackward, which dequantize
// the weight a panel at a time into small per-goroutine buffers and multiply
// with gemm.Sgemm, or, for a few input rows, run direct dequantize-and-dot
// kernels); a full float32 copy of W never exists. Backward propagates to the input only: the weight
// and bias are frozen (QLoRA puts trainable adapters beside it).
//
// A Linear is safe for concurrent Forward/Backward calls.
type Linear struct {
	Name string         // HF name prefix, e.g. "model.layers.0.mlp.up_proj"
	W    Weight         // the quantized weight (host memory)
	B    *tensor.Tensor // F32 host bias (out), or nil
	// BE runs the matmuls (backend.QuantOps) on its own copy of the packed
	// weight and bias, made on first use (the CPU backend shares W's
	// memory). Set it before the first Forward. nil runs the host kernels
	// (HostForward, HostBackward) directly, as the CPU backend does.
	BE backend.Backend

	once    sync.Once
	bw      *backend.QuantWeight
	bb      *tensor.Tensor
	compute tensor.DType // SetComputeDType
}

var _ nn.Layer = (*Linear)(nil)

// QuantizeLinear quantizes an F32 weight (out, in) and optional F32 bias
// (out) into a Linear of the given format (NF4, FP4, Int8 or Int4). The
// bias is copied and kept in float32. The weight must be finite. The
// layer's Name is w.Name without a ".weight" suffix.
func QuantizeLinear(w, b *tensor.Tensor, format string, opts Options) (*Linear, error) {
	if w == nil || w.DType != tensor.F32 || len(w.Shape) != 2 {
		return nil, fmt.Errorf("quant: weight must be an F32 (out, in) tensor, got %v", w)
	}
	out, in := w.Shape[0], w.Shape[1]
	if len(w.F32) != out*in {
		return nil, fmt.Errorf("quant: weight %s has %d elements of storage for shape %v", w.Name, len(w.F32), w.Shape)
	}
	var bias *tensor.Tensor
	if b != nil {
		if b.DType != tensor.F32 || b.Numel() != out || len(b.F32) != out {
			return nil, fmt.Errorf("quant: bias must be an F32 tensor of %d elements, got %v", out, b)
		}
		bias = tensor.FromF32(append([]float32(nil), b.F32...), out)
		bias.Name = b.Name
	}
	var (
		qw  Weight
		err error
	)
	switch format {
	case NF4, FP4:
		bs := opts.BlockSize
		if bs == 0 {
			bs = DefaultBlockSize
		}
		qw, err = QuantizeWeight4(w.F32, out, in, format, bs, opts.DoubleQuant)
	case Int8:
		qw, err = QuantizeInt8(w.F32, out, in)
	case Int4:
		g := opts.GroupSize
		if g == 0 {
			g = DefaultGroupSize
		}
		qw, err = QuantizeInt4(w.F32, out, in, g, !opts.Asymmetric)
	default:
		return nil, fmt.Errorf("quant: unknown format %q (want nf4, fp4, int8 or int4)", format)
	}
	if err != nil {
		if w.Name != "" {
			return nil, fmt.Errorf("%s: %w", w.Name, err)
		}
		return nil, err
	}
	return &Linear{Name: strings.TrimSuffix(w.Name, ".weight"), W: qw, B: bias}, nil
}

// In is the input width.
func (l *Linear) In() int { _, in := l.W.Dims(); return in }

// Out is the output width.
func (l *Linear) Out() int { out, _ := l.W.Dims(); return out }

// Format is the weight's format (NF4, FP4, Int8 or Int4).
func (l *Linear) Format() string { return l.W.Format() }

// Dequantize returns the float32 weight (out, in), for merging adapters and
// for tests. This is the one place a full float32 copy is made.
func (l *Linear) Dequantize() *tensor.Tensor {
	out, in := l.W.Dims()
	t := tensor.New(tensor.F32, out, in)
	t.Name = l.Name + ".weight"
	parallel.For(out, 16, func(lo, hi int) {
		l.W.DequantizeRows(t.F32[lo*in:hi*in], lo, hi)
	})
	return t
}

// Tuning knobs (variables so tests and benchmarks can change them).
var (
	// matVecMaxRows, when >= 0, overrides matVecLimit (for tests).
	matVecMaxRows = -1
	// panelFloats is the target size of a dequantized panel, in floats.
	panelFloats = 1 << 18
)

// matVecLimit is the largest number of input rows for which the direct
// dequantize-and-dot kernels beat dequantized panels + Sgemm (measured on
// 2048x2048 with AVX2).
func matVecLimit(w Weight) int {
	if matVecMaxRows >= 0 {
		return matVecMaxRows
	}
	switch w.(type) {
	case *Weight4:
		return 3
	case *Int4Weight:
		return 6
	}
	return 12
}

// scratch buffers for dequantized panels, one per goroutine at a time.
var scratchPool sync.Pool

func getScratch(n int) *[]float32 {
	if p, ok := scratchPool.Get().(*[]float32); ok && cap(*p) >= n {
		*p = (*p)[:n]
		return p
	}
	s := make([]float32, n)
	return &s
}

// panelSize returns the number of rows (or columns) of a panel of
// width `width`: a multiple of 16 near panelFloats/width, at least 16.
func panelSize(count, width int) int {
	p := max(16, panelFloats/max(width, 1)/16*16)
	// keep at least two panels per thread when there is enough work
	if t := 2 * parallel.Threads(); count/p < t && count >= 16*t {
		p = max(16, ceilDiv(count, t)/16*16)
	}
	return min(p, max(count, 1))
}

// SetComputeDType sets the compute dtype of the layer's matmuls,
// bitsandbytes' bnb_4bit_compute_dtype: tensor.F32 (the default), BF16 or
// F16. It becomes the backend weight's Compute (backend.QuantWeight):
// Backward rounds dy and the dequantized weight to it, with float32
// accumulation. Forward takes its precision from x: a 16-bit x (mixed
// precision, model.SetPrecision) is an autocast call at x's dtype. Call it
// between passes, not concurrently with Forward or Backward.
func (l *Linear) SetComputeDType(dt tensor.DType) {
	switch dt {
	case tensor.F32, tensor.BF16, tensor.F16:
	default:
		panic(fmt.Sprintf("quant.Linear.SetComputeDType %s: %v, want F32, BF16 or F16", l.Name, dt))
	}
	l.compute = dt
	if l.bw != nil {
		l.bw.Compute = dt
	}
}

// ComputeDType returns the dtype set by SetComputeDType (F32 by default).
func (l *Linear) ComputeDType() tensor.DType { return l.compute }

func isHalf(t *tensor.Tensor) bool { return t.DType == tensor.BF16 || t.DType == tensor.F16 }

// checkShapes panics unless a is (N, aw) and b (N, bw), each F32, BF16 or
// F16 (the backend checks which combinations it takes).
func (l *Linear) checkShapes(op string, a, b *tensor.Tensor, aw, bw int) {
	for _, t := range []*tensor.Tensor{a, b} {
		if t.DType != tensor.F32 && !isHalf(t) {
			panic(fmt.Sprintf("quant.Linear.%s %s: tensors must be F32, BF16 or F16, got %v and %v", op, l.Name, a, b))
		}
	}
	n, ac := a.Rows()
	bn, bc := b.Rows()
	if ac != aw || bc != bw || bn != n {
		panic(fmt.Sprintf("quant.Linear.%s %s: shapes %v and %v, want (N, %d) and (N, %d)", op, l.Name, a.Shape, b.Shape, aw, bw))
	}
}

// check is checkShapes for the host kernels: also that the host storage
// holds the elements, and that a, b are F32 (or, where half is true for
// it, 16-bit).
func (l *Linear) check(op string, a, b *tensor.Tensor, aw, bw int, halfA, halfB bool) int {
	ok := func(t *tensor.Tensor, half bool) bool {
		return t.DType == tensor.F32 || half && isHalf(t)
	}
	if !ok(a, halfA) || !ok(b, halfB) {
		panic(fmt.Sprintf("quant.Linear.%s %s: tensors must be F32 (or 16-bit activations), got %v and %v", op, l.Name, a, b))
	}
	n, ac := a.Rows()
	bn, bc := b.Rows()
	if ac != aw || bc != bw || bn != n || hostLen(a) != n*aw || hostLen(b) != n*bw {
		panic(fmt.Sprintf("quant.Linear.%s %s: shapes %v and %v, want (N, %d) and (N, %d)", op, l.Name, a.Shape, b.Shape, aw, bw))
	}
	return n
}

func hostLen(t *tensor.Tensor) int {
	if isHalf(t) {
		return len(t.U16)
	}
	return len(t.F32)
}

// Forward computes y = x W^T + b; x is (N, in) (any leading shape), y is
// (N, out), both F32; y is overwritten. A BF16/F16 x is an autocast call
// (y F32 or x's dtype, rounded to it; see HostForwardMixed).
func (l *Linear) Forward(y, x *tensor.Tensor) {
	out, in := l.W.Dims()
	if l.BE != nil {
		l.checkShapes("Forward", x, y, in, out)
		bw, bb := l.backendWeight()
		l.BE.QuantLinearForward(y, x, bw, bb)
		return
	}
	N := l.check("Forward", x, y, in, out, true, true)
	var bias []float32
	if l.B != nil {
		bias = l.B.F32
	}
	if isHalf(x) {
		p := x.DType
		if y.DType != tensor.F32 && y.DType != p {
			panic(fmt.Sprintf("quant.Linear.Forward %s: y is %v, want F32 or %v (x's dtype)", l.Name, y.DType, p))
		}
		X := gemm.HalfOp(x.U16[:N*in], p, p)
		if y.DType == tensor.F32 {
			HostForwardMixed(y.F32[:N*out], nil, X, bias, N, l.W, p)
		} else {
			HostForwardMixed(nil, y.U16[:N*out], X, bias, N, l.W, p)
		}
		return
	}
	if y.DType != tensor.F32 {
		panic(fmt.Sprintf("quant.Linear.Forward %s: y is %v with an F32 x", l.Name, y.DType))
	}
	HostForward(y.F32, x.F32, bias, N, l.W)
}

// Backward accumulates the input gradient dx += dy W (dx nil: nothing to
// do); dx and dy are F32, x (unused) may be 16-bit. With a compute dtype
// set (SetComputeDType BF16/F16), dy and W enter rounded to it. The weight
// and bias are frozen, so no parameter gradient exists.
func (l *Linear) Backward(dx, dy, x *tensor.Tensor) {
	if dx == nil {
		return
	}
	out, in := l.W.Dims()
	if l.BE != nil {
		l.checkShapes("Backward", dx, dy, in, out)
		if x != nil {
			l.checkShapes("Backward", x, dy, in, out)
		}
		bw, _ := l.backendWeight()
		l.BE.QuantLinearBackward(dx, dy, bw)
		return
	}
	N := l.check("Backward", dx, dy, in, out, false, false)
	if x != nil {
		l.check("Backward", x, dy, in, out, true, false)
	}
	if l.compute != tensor.F32 {
		HostBackwardMixed(dx.F32, gemm.F32Op(dy.F32[:N*out], l.compute), N, l.W, l.compute)
		return
	}
	HostBackward(dx.F32, dy.F32, N, l.W)
}

// backendWeight returns the weight's parts and the bias as BE tensors,
// adopting them on first use (on the CPU backend: the same memory).
func (l *Linear) backendWeight() (*backend.QuantWeight, *tensor.Tensor) {
	l.once.Do(func() {
		q := Parts(l.W)
		for _, p := range []**tensor.Tensor{&q.Packed, &q.Absmax, &q.QAbsmax, &q.Absmax2, &q.NestedCode, &q.Scales, &q.Zeros} {
			if *p != nil {
				*p = l.BE.Adopt(*p)
			}
		}
		q.Compute = l.compute
		l.bw = q
		if l.B != nil {
			l.bb = l.BE.Adopt(l.B)
		}
	})
	return l.bw, l.bb
}
