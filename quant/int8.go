package quant

import (
	"fmt"
	"math"

	"github.com/shoggo/shoggo/internal/parallel"
)

// inv127 is bitsandbytes' 1/127 (int8_vectorwise_dequant), as float32.
const inv127 = float32(7.874015718698502e-3)

// Int8Weight is an (out, in) matrix quantized per output row, as
// bitsandbytes' LLM.int8() vector-wise quantization (int8_vectorwise_quant
// with threshold 0): SCB[r] = max |W[r, :]|, Q = round(W * (127 / SCB[r]))
// (half to even), and W ~ Q * SCB[r] / 127.
type Int8Weight struct {
	Q       []int8    // out x in, row-major
	SCB     []float32 // per-row absmax (bitsandbytes' "SCB")
	out, in int
}

// NewInt8Weight wraps codes and row absmax (not copied), checking sizes.
func NewInt8Weight(q []int8, scb []float32, out, in int) (*Int8Weight, error) {
	if out < 0 || in < 0 {
		return nil, fmt.Errorf("negative shape (%d, %d)", out, in)
	}
	if len(q) != out*in {
		return nil, fmt.Errorf("%d int8 codes for shape (%d, %d)", len(q), out, in)
	}
	if len(scb) != out {
		return nil, fmt.Errorf("%d row scales (SCB) for %d rows", len(scb), out)
	}
	return &Int8Weight{Q: q, SCB: scb, out: out, in: in}, nil
}

// QuantizeInt8 quantizes an (out, in) float32 matrix row by row exactly as
// bitsandbytes' int8_vectorwise_quant on float32 input (127/absmax is
// computed as float32(1/absmax) * 127, as torch does). An all-zero row gets
// codes 0 and SCB 0 (bitsandbytes would produce NaN codes).
func QuantizeInt8(w []float32, out, in int) (*Int8Weight, error) {
	if len(w) != out*in {
		return nil, fmt.Errorf("quant: %d elements for shape (%d, %d)", len(w), out, in)
	}
	if i := firstNonFinite(w); i >= 0 {
		return nil, fmt.Errorf("quant: element %d is %v; only finite values can be quantized", i, w[i])
	}
	q := make([]int8, out*in)
	scb := make([]float32, out)
	parallel.For(out, 16, func(r0, r1 int) {
		for r := r0; r < r1; r++ {
			row := w[r*in : (r+1)*in]
			m := float32(0)
			for _, v := range row {
				m = max(m, abs32(v))
			}
			scb[r] = m
			if m == 0 {
				continue
			}
			s := (1 / m) * 127
			for i, v := range row {
				c := math.RoundToEven(float64(v * s))
				q[r*in+i] = int8(min(max(c, -127), 127))
			}
		}
	})
	return &Int8Weight{Q: q, SCB: scb, out: out, in: in}, nil
}

// Format is Int8.
func (w *Int8Weight) Format() string { return Int8 }

// Dims returns (out, in).
func (w *Int8Weight) Dims() (out, in int) { return w.out, w.in }

// StorageBytes is the memory the quantized weight occupies.
func (w *Int8Weight) StorageBytes() int { return len(w.Q) + 4*len(w.SCB) }

// DequantizeRows writes rows [r0, r1) as bitsandbytes' int8_vectorwise_dequant:
// (float32(q) * SCB) * float32(1/127).
func (w *Int8Weight) DequantizeRows(dst []float32, r0, r1 int) {
	in := w.in
	for r := r0; r < r1; r++ {
		deqI8Row(dst[(r-r0)*in:(r-r0+1)*in], w.Q[r*in:(r+1)*in], w.SCB[r])
	}
}

// deqI8Row writes d[i] = (float32(q[i]) * s) * (1/127).
func deqI8Row(d []float32, q []int8, s float32) {
	i := 0
	if n := len(q) &^ 15; useAsm && n > 0 {
		deqI8(&q[0], &d[0], n, s, inv127)
		i = n
	}
	for ; i < len(q); i++ {
		d[i] = float32(q[i]) * s * inv127
	}
}

// DequantizeCols writes columns [c0, c1) into dst (out x (c1-c0)).
func (w *Int8Weight) DequantizeCols(dst []float32, c0, c1 int) {
	n, in := c1-c0, w.in
	for r := 0; r < w.out; r++ {
		deqI8Row(dst[r*n:(r+1)*n], w.Q[r*in+c0:r*in+c1], w.SCB[r])
	}
}

// MatVec sets y[r-r0] = W[r, :] . x for r in [r0, r1), computed as
// SCB[r]/127 * sum q x.
func (w *Int8Weight) MatVec(y, x []float32, r0, r1 int) {
	in := w.in
	x = x[:in]
	for r := r0; r < r1; r++ {
		q := w.Q[r*in : (r+1)*in]
		var a0, a1, a2, a3 float32
		i := 0
		if n := in &^ 15; useAsm && n > 0 {
			a0 = dotI8(&q[0], &x[0], n)
			i = n
		}
		for ; i+3 < len(q); i += 4 {
			q4 := q[i : i+4 : i+4]
			x4 := x[i : i+4 : i+4]
			a0 += float32(q4[0]) * x4[0]
			a1 += float32(q4[1]) * x4[1]
			a2 += float32(q4[2]) * x4[2]
			a3 += float32(q4[3]) * x4[3]
		}
		for ; i < len(q); i++ {
			a0 += float32(q[i]) * x[i]
		}
		y[r-r0] = ((a0 + a1) + (a2 + a3)) * (w.SCB[r] * inv127)
	}
}
