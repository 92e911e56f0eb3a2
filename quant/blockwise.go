package quant

import (
	"fmt"
	"math"

	"github.com/shoggo/shoggo/internal/parallel"
)

// Block sizes bitsandbytes' quantize_4bit accepts.
var validBlockSizes = []int{32, 64, 128, 256, 512, 1024, 2048, 4096}

func validBlockSize(bs int) bool {
	for _, v := range validBlockSizes {
		if bs == v {
			return true
		}
	}
	return false
}

// NestedBlockSize is the block size of the double quantization: bitsandbytes
// quantizes the absmax vector with quantize_blockwise(blocksize=256).
const NestedBlockSize = 256

// minAbsmax is torch's clamp(min=1e-38) in bitsandbytes' quantizer, as float32.
const minAbsmax = float32(1e-38)

// State4 is the quantization state of a 4-bit (NF4 or FP4) tensor: the
// fields of bitsandbytes' QuantState.
//
// The tensor is flattened and cut into blocks of BlockSize consecutive
// elements (the last one may be shorter); each block is scaled by its
// absolute maximum. Blocks therefore span rows when a row's length is not a
// multiple of BlockSize, as in bitsandbytes.
type State4 struct {
	QuantType string // NF4 or FP4
	Shape     []int  // shape of the quantized tensor
	BlockSize int

	// Absmax holds one float32 per block when the state is not
	// double-quantized; it is nil otherwise.
	Absmax []float32

	// Double quantization (bitsandbytes' compress_statistics=True): the
	// absmax vector minus its mean Offset, quantized with 8-bit blockwise
	// dynamic quantization in blocks of NestedBlockSize: QAbsmax holds the
	// 8-bit codes (one per 4-bit block), Absmax2 the absmax of each nested
	// block, NestedCode the 256-value code (DynamicMap()).
	QAbsmax         []uint8
	Absmax2         []float32
	Offset          float32
	NestedCode      []float32
	NestedBlockSize int
}

// Nested reports whether the absmax vector is double-quantized.
func (s *State4) Nested() bool { return s.QAbsmax != nil }

// Numel is the number of elements of the quantized tensor.
func (s *State4) Numel() int { return numel(s.Shape) }

// NumBlocks is the number of 4-bit blocks.
func (s *State4) NumBlocks() int { return ceilDiv(s.Numel(), s.BlockSize) }

// PackedLen is the number of bytes of packed codes: two codes per byte.
func (s *State4) PackedLen() int { return (s.Numel() + 1) / 2 }

// BlockAbsmax returns the float32 absmax of every block, dequantizing the
// double-quantized form as bitsandbytes does (code[q] * absmax2, then
// + offset, in float32).
func (s *State4) BlockAbsmax() []float32 {
	if !s.Nested() {
		return append([]float32(nil), s.Absmax...)
	}
	out := DequantizeBlockwise8(s.QAbsmax, s.Absmax2, s.NestedCode, s.NestedBlockSize)
	for i := range out {
		out[i] += s.Offset
	}
	return out
}

func numel(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }

// check validates the state's internal consistency (not naming tensors;
// the loader adds names).
func (s *State4) check() error {
	if code4For(s.QuantType) == nil {
		return fmt.Errorf("unknown 4-bit quant type %q (want nf4 or fp4)", s.QuantType)
	}
	if !validBlockSize(s.BlockSize) {
		return fmt.Errorf("blocksize %d is not one of %v", s.BlockSize, validBlockSizes)
	}
	for _, d := range s.Shape {
		if d < 0 {
			return fmt.Errorf("negative dimension in shape %v", s.Shape)
		}
	}
	nb := s.NumBlocks()
	if !s.Nested() {
		if len(s.Absmax) != nb {
			return fmt.Errorf("%d absmax values, but shape %v with blocksize %d has %d blocks", len(s.Absmax), s.Shape, s.BlockSize, nb)
		}
		return nil
	}
	if len(s.QAbsmax) != nb {
		return fmt.Errorf("%d quantized absmax values, but shape %v with blocksize %d has %d blocks", len(s.QAbsmax), s.Shape, s.BlockSize, nb)
	}
	if s.NestedBlockSize <= 0 {
		return fmt.Errorf("nested blocksize %d is not positive", s.NestedBlockSize)
	}
	if n2 := ceilDiv(nb, s.NestedBlockSize); len(s.Absmax2) != n2 {
		return fmt.Errorf("%d nested absmax values, but %d blocks with nested blocksize %d need %d", len(s.Absmax2), nb, s.NestedBlockSize, n2)
	}
	if len(s.NestedCode) != 256 {
		return fmt.Errorf("nested quant map has %d values, want 256", len(s.NestedCode))
	}
	return nil
}

// Quantize4Bit quantizes x (the elements of a tensor of the given shape,
// row-major) to NF4 or FP4 exactly as bitsandbytes' quantize_4bit on the CPU:
// per block of blockSize consecutive elements, absmax = max |x|; x is scaled
// by it (multiplied by its float32 reciprocal, or for a final partial block
// divided by it), clamped to [-1, 1] and mapped to the nearest code, a value
// exactly between two codes going to the lower one. Codes are packed two per
// byte, the first element in the high nibble; an odd element count is
// padded with the code of 0. An all-zero full block has absmax 0; a final
// partial block's absmax is clamped to 1e-38.
//
// With doubleQuant (compress_statistics), the absmax vector is stored as
// 8-bit codes of absmax - mean(absmax) (see State4).
//
// x must be finite; NaN or Inf is an error.
func Quantize4Bit(x []float32, shape []int, quantType string, blockSize int, doubleQuant bool) ([]byte, *State4, error) {
	c := code4For(quantType)
	if c == nil {
		return nil, nil, fmt.Errorf("quant: unknown 4-bit quant type %q (want nf4 or fp4)", quantType)
	}
	if !validBlockSize(blockSize) {
		return nil, nil, fmt.Errorf("quant: blocksize %d is not one of %v", blockSize, validBlockSizes)
	}
	if numel(shape) != len(x) {
		return nil, nil, fmt.Errorf("quant: %d elements for shape %v", len(x), shape)
	}
	if i := firstNonFinite(x); i >= 0 {
		return nil, nil, fmt.Errorf("quant: element %d is %v; only finite values can be quantized", i, x[i])
	}
	n := len(x)
	packed := make([]byte, (n+1)/2)
	absmax := make([]float32, ceilDiv(n, blockSize))
	full := n - n%blockSize
	zero := c.encode(0)
	put := func(i int, q uint8) {
		if i&1 == 0 {
			packed[i>>1] = q << 4
		} else {
			packed[i>>1] |= q
		}
	}
	// Blocks are independent and hold an even number of elements (all but
	// perhaps the last), so each writes its own bytes.
	parallel.For(len(absmax), 256, func(b0, b1 int) {
		for b := b0; b < b1; b++ {
			lo, hi := b*blockSize, min((b+1)*blockSize, n)
			m := float32(0)
			for _, v := range x[lo:hi] {
				m = max(m, abs32(v))
			}
			if lo < full {
				absmax[b] = m
				inv := 1 / max(m, minAbsmax)
				for i := lo; i < hi; i++ {
					put(i, c.encode(clamp1(x[i]*inv)))
				}
			} else {
				m = max(m, minAbsmax)
				absmax[b] = m
				for i := lo; i < hi; i++ {
					put(i, c.encode(clamp1(x[i]/m)))
				}
			}
		}
	})
	if n&1 == 1 {
		put(n, zero)
	}
	st := &State4{QuantType: quantType, Shape: append([]int(nil), shape...), BlockSize: blockSize}
	if !doubleQuant {
		st.Absmax = absmax
		return packed, st, nil
	}
	st.Offset = torchMean(absmax)
	centered := make([]float32, len(absmax))
	for i, v := range absmax {
		centered[i] = v - st.Offset
	}
	st.QAbsmax, st.Absmax2 = QuantizeBlockwise8(centered, NestedBlockSize)
	st.NestedCode = DynamicMap()
	st.NestedBlockSize = NestedBlockSize
	return packed, st, nil
}

// Dequantize4Bit undoes Quantize4Bit: element i is code[q_i] * absmax of its
// block, in float32, as bitsandbytes' dequantize_4bit.
func Dequantize4Bit(packed []byte, st *State4) ([]float32, error) {
	if err := st.check(); err != nil {
		return nil, fmt.Errorf("quant: %w", err)
	}
	if len(packed) != st.PackedLen() {
		return nil, fmt.Errorf("quant: %d packed bytes, but shape %v needs %d", len(packed), st.Shape, st.PackedLen())
	}
	w := &Weight4{st: st, packed: packed, c: code4For(st.QuantType)}
	out := make([]float32, st.Numel())
	w.dequantFlat(out, 0, len(out))
	return out, nil
}

// QuantizeBlockwise8 quantizes x with bitsandbytes' 8-bit blockwise dynamic
// quantization (quantize_blockwise with the default signed dynamic map), as
// its native CPU kernel does: per block, absmax = max |x| (a zero block gets
// all codes 0), v = x * (1/absmax) in float32, and the code is looked up in
// a 65536-bin table of [-1, 1] holding each bin's nearest code.
func QuantizeBlockwise8(x []float32, blockSize int) (q []uint8, absmax []float32) {
	lut := dynamicLUT()
	q = make([]uint8, len(x))
	absmax = make([]float32, ceilDiv(len(x), blockSize))
	for b := range absmax {
		lo, hi := b*blockSize, min((b+1)*blockSize, len(x))
		m := float32(0)
		for _, v := range x[lo:hi] {
			m = max(m, abs32(v))
		}
		absmax[b] = m
		if m == 0 {
			continue
		}
		inv := 1 / m
		for i := lo; i < hi; i++ {
			q[i] = lut[lutIndex(x[i]*inv)]
		}
	}
	return q, absmax
}

// DequantizeBlockwise8 returns code[q_i] * absmax of its block (float32).
func DequantizeBlockwise8(q []uint8, absmax, code []float32, blockSize int) []float32 {
	out := make([]float32, len(q))
	for i, v := range q {
		out[i] = float32(code[v] * absmax[i/blockSize]) // rounded before any later add
	}
	return out
}

// torchMean is torch.mean of a float32 vector as PyTorch's CPU kernel
// computes it (the sum in float32 with its cascade order, then divided by
// n), so the double-quantization offset matches bitsandbytes bit for bit.
// PyTorch splits vectors of 32768 elements or more across threads, which
// changes its rounding; shoggo always uses the single-thread order, so for
// such vectors the offset may differ from bitsandbytes' in the last bits.
func torchMean(a []float32) float32 {
	if len(a) == 0 {
		return float32(math.NaN())
	}
	return torchSum(a) / float32(len(a))
}

// torchSum follows aten/src/ATen/native/cpu/SumKernel.cpp (cascade_sum,
// vectorized_inner_sum with 8-lane vectors; the scalar row_sum when fewer
// than 8 elements).
func torchSum(a []float32) float32 {
	const lanes = 8
	n := len(a)
	if n < lanes {
		p := multiRowSum(a, 1, n/4)
		for i := n / 4 * 4; i < n; i++ {
			p[0][0] += a[i]
		}
		for k := 1; k < 4; k++ {
			p[0][0] += p[k][0]
		}
		return p[0][0]
	}
	nv := n / lanes
	p := multiRowSum(a, lanes, nv/4)
	p0 := p[0]
	for i := nv / 4 * 4; i < nv; i++ {
		for l := 0; l < lanes; l++ {
			p0[l] += a[i*lanes+l]
		}
	}
	for k := 1; k < 4; k++ {
		for l := 0; l < lanes; l++ {
			p0[l] += p[k][l]
		}
	}
	var acc float32
	for i := nv * lanes; i < n; i++ {
		acc += a[i]
	}
	for l := 0; l < lanes; l++ {
		acc += p0[l]
	}
	return acc
}

// multiRowSum is torch's multi_row_sum with 4 rows of `lanes`-wide vectors
// and 4 cascade levels: a is read as size rows of 4 consecutive vectors.
func multiRowSum(a []float32, lanes, size int) [4][8]float32 {
	const levels = 4
	levelPower := max(4, ceilLog2(size)/levels)
	step := 1 << levelPower
	mask := step - 1
	var acc [levels][4][8]float32
	add := func(dst *[8]float32, row int, k int) {
		base := (row*4 + k) * lanes
		for l := 0; l < lanes; l++ {
			dst[l] += a[base+l]
		}
	}
	i := 0
	for i+step <= size {
		for j := 0; j < step; j, i = j+1, i+1 {
			for k := 0; k < 4; k++ {
				add(&acc[0][k], i, k)
			}
		}
		for j := 1; j < levels; j++ {
			for k := 0; k < 4; k++ {
				for l := 0; l < lanes; l++ {
					acc[j][k][l] += acc[j-1][k][l]
				}
				acc[j-1][k] = [8]float32{}
			}
			if i&(mask<<(j*levelPower)) != 0 {
				break
			}
		}
	}
	for ; i < size; i++ {
		for k := 0; k < 4; k++ {
			add(&acc[0][k], i, k)
		}
	}
	for j := 1; j < levels; j++ {
		for k := 0; k < 4; k++ {
			for l := 0; l < lanes; l++ {
				acc[0][k][l] += acc[j][k][l]
			}
		}
	}
	return acc[0]
}

// ceilLog2 is c10's CeilLog2: 1 for x <= 2, else ceil(log2 x).
func ceilLog2(x int) int {
	if x <= 2 {
		return 1
	}
	b := 0
	for v := uint64(x - 1); v != 0; v >>= 1 {
		b++
	}
	return b
}

func abs32(v float32) float32 { return math.Float32frombits(math.Float32bits(v) &^ (1 << 31)) }

func clamp1(v float32) float32 { return min(max(v, -1), 1) }

func firstNonFinite(x []float32) int {
	for i, v := range x {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return i
		}
	}
	return -1
}
