package backend

import (
	"sync"

	"github.com/shoggo/shoggo/tensor"
)

// Quantized weight formats (package quant documents them).
const (
	QuantNF4  = "nf4"
	QuantFP4  = "fp4"
	QuantInt8 = "int8"
	QuantInt4 = "int4"
)

// QuantWeight is a frozen quantized (Out, In) weight matrix whose packed
// parts are backend tensors, as package quant lays them out:
//
//   - NF4/FP4 (bitsandbytes Linear4bit): Packed (U8, two codes a byte, the
//     matrix quantized as one flat vector in blocks of BlockSize); Absmax
//     (F32, one per block), or with double quantization QAbsmax (U8),
//     Absmax2 (F32, one per NestedBlockSize blocks), NestedCode (F32, 256)
//     and Offset.
//   - int8 (LLM.int8 without outliers): Packed (I8, Out x In), Scales (F32,
//     per-row absmax).
//   - int4 (group-wise): Packed (U8, Out x ceil(In/2), high nibble first),
//     Scales (F32, Out x groups), Zeros (U8, Out x groups; nil when
//     symmetric), GroupSize.
type QuantWeight struct {
	Format  string
	Out, In int

	Packed *tensor.Tensor

	BlockSize       int
	Absmax          *tensor.Tensor
	QAbsmax         *tensor.Tensor
	Absmax2         *tensor.Tensor
	NestedCode      *tensor.Tensor
	Offset          float32
	NestedBlockSize int

	Scales    *tensor.Tensor
	Zeros     *tensor.Tensor
	GroupSize int

	// Compute is the compute dtype of the layer's matmuls, bitsandbytes'
	// bnb_4bit_compute_dtype: F32 (the zero value), BF16 or F16. Under
	// mixed precision (BF16/F16) QuantLinearBackward rounds dy and the
	// dequantized weight to it; QuantLinearForward takes its precision
	// from x's dtype (a 16-bit x: an autocast call). quant.Linear's
	// SetComputeDType sets it.
	Compute tensor.DType

	mu       sync.Mutex
	prepared map[any]any
}

// Prepared returns the value a backend attached to w under key, building it
// with build on first use (a backend keeps its own prepared form of the
// weight here, e.g. the CPU backend's kernel view). Safe for concurrent use.
func (w *QuantWeight) Prepared(key any, build func() any) any {
	w.mu.Lock()
	defer w.mu.Unlock()
	if v, ok := w.prepared[key]; ok {
		return v
	}
	if w.prepared == nil {
		w.prepared = map[any]any{}
	}
	v := build()
	w.prepared[key] = v
	return v
}

// QuantOps are the matmuls of a frozen quantized linear layer, with the
// weight dequantized on the fly (a full fp32 copy of it never exists).
type QuantOps interface {
	// QuantLinearForward: y = x Wᵀ + b, x (N, In), y (N, Out), b (Out) or
	// nil, all F32; y is overwritten. A BF16/F16 x makes it an autocast
	// call at x's dtype P: y (F32 or P) = round_P(x round_P(W)ᵀ +
	// round_P(b)), float32 accumulation.
	QuantLinearForward(y, x *tensor.Tensor, w *QuantWeight, b *tensor.Tensor)
	// QuantLinearBackward accumulates dx += dy W (the weight is frozen).
	// dx and dy are F32; with w.Compute BF16 or F16, dy and W enter the
	// product rounded to it (float32 accumulation).
	QuantLinearBackward(dx, dy *tensor.Tensor, w *QuantWeight)
}
