package quant

import (
	"fmt"
	"math"

	"github.com/shoggo/shoggo/internal/parallel"
)

// Group sizes accepted for int4.
var validGroupSizes = []int{16, 32, 64, 128, 256}

func validGroupSize(g int) bool {
	for _, v := range validGroupSizes {
		if g == v {
			return true
		}
	}
	return false
}

// Int4Weight is an (out, in) matrix quantized to 4 bits in groups of
// GroupSize consecutive elements of a row (the last group of a row may be
// shorter), for inference. Each group has a float32 scale and a zero point
// z; element codes u are 0..15 and W ~ scale * (u - z).
//
//   - Symmetric: scale = absmax/7, code q = round(W/scale) clamped to
//     -8..7, stored as u = q + 8 (z = 8 implicitly; no zeros tensor).
//   - Asymmetric (GPTQ-style round to nearest): with lo = min(min W, 0) and
//     hi = max(max W, 0), scale = (hi - lo)/15, z = round(-lo/scale), and
//     u = clamp(round(W/scale) + z, 0, 15). z is stored per group.
//
// Rounding is half to even. A group of zeros gets scale 0.
type Int4Weight struct {
	Packed    []byte    // out x ceil(in/2): codes of a row, two per byte, first in the high nibble
	Scales    []float32 // out x groups
	Zeros     []uint8   // out x groups; nil when symmetric
	GroupSize int
	out, in   int
}

// Groups is the number of groups per row.
func (w *Int4Weight) Groups() int { return ceilDiv(w.in, w.GroupSize) }

// RowBytes is the number of packed bytes per row.
func (w *Int4Weight) RowBytes() int { return (w.in + 1) / 2 }

// Symmetric reports whether the zero point is the implicit 8.
func (w *Int4Weight) Symmetric() bool { return w.Zeros == nil }

// NewInt4Weight wraps packed codes, scales and (nil when symmetric) zero
// points, not copied, checking their sizes.
func NewInt4Weight(packed []byte, scales []float32, zeros []uint8, groupSize, out, in int) (*Int4Weight, error) {
	if out < 0 || in < 0 {
		return nil, fmt.Errorf("negative shape (%d, %d)", out, in)
	}
	if !validGroupSize(groupSize) {
		return nil, fmt.Errorf("group size %d is not one of %v", groupSize, validGroupSizes)
	}
	w := &Int4Weight{Packed: packed, Scales: scales, Zeros: zeros, GroupSize: groupSize, out: out, in: in}
	if len(packed) != out*w.RowBytes() {
		return nil, fmt.Errorf("%d bytes of packed codes, but shape (%d, %d) needs %d", len(packed), out, in, out*w.RowBytes())
	}
	if len(scales) != out*w.Groups() {
		return nil, fmt.Errorf("%d scales, but shape (%d, %d) with group size %d needs %d", len(scales), out, in, groupSize, out*w.Groups())
	}
	if zeros != nil {
		if len(zeros) != out*w.Groups() {
			return nil, fmt.Errorf("%d zero points, but shape (%d, %d) with group size %d needs %d", len(zeros), out, in, groupSize, out*w.Groups())
		}
		for i, z := range zeros {
			if z > 15 {
				return nil, fmt.Errorf("zero point %d (index %d) is outside 0..15", z, i)
			}
		}
	}
	return w, nil
}

// QuantizeInt4 quantizes an (out, in) float32 matrix group-wise.
func QuantizeInt4(w []float32, out, in, groupSize int, symmetric bool) (*Int4Weight, error) {
	if len(w) != out*in {
		return nil, fmt.Errorf("quant: %d elements for shape (%d, %d)", len(w), out, in)
	}
	if !validGroupSize(groupSize) {
		return nil, fmt.Errorf("quant: group size %d is not one of %v", groupSize, validGroupSizes)
	}
	if i := firstNonFinite(w); i >= 0 {
		return nil, fmt.Errorf("quant: element %d is %v; only finite values can be quantized", i, w[i])
	}
	q := &Int4Weight{GroupSize: groupSize, out: out, in: in}
	ng, rb := q.Groups(), q.RowBytes()
	q.Packed = make([]byte, out*rb)
	q.Scales = make([]float32, out*ng)
	if !symmetric {
		q.Zeros = make([]uint8, out*ng)
	}
	parallel.For(out, 16, func(r0, r1 int) {
		for r := r0; r < r1; r++ {
			row := w[r*in : (r+1)*in]
			prow := q.Packed[r*rb : (r+1)*rb]
			for g := 0; g < ng; g++ {
				lo, hi := g*groupSize, min((g+1)*groupSize, in)
				var scale float32
				var zero float64 = 8
				if symmetric {
					m := float32(0)
					for _, v := range row[lo:hi] {
						m = max(m, abs32(v))
					}
					scale = m / 7
				} else {
					mn, mx := float32(0), float32(0)
					for _, v := range row[lo:hi] {
						mn, mx = min(mn, v), max(mx, v)
					}
					scale = float32((float64(mx) - float64(mn)) / 15) // no overflow near MaxFloat32
					zero = 0
					if scale != 0 {
						zero = min(max(math.RoundToEven(float64(-mn/scale)), 0), 15)
					}
					q.Zeros[r*ng+g] = uint8(zero)
				}
				q.Scales[r*ng+g] = scale
				for i := lo; i < hi; i++ {
					u := zero
					if scale != 0 {
						u = min(max(math.RoundToEven(float64(row[i]/scale))+zero, 0), 15)
					}
					if i&1 == 0 {
						prow[i>>1] = uint8(u) << 4
					} else {
						prow[i>>1] |= uint8(u)
					}
				}
			}
		}
	})
	return q, nil
}

// Format is Int4.
func (w *Int4Weight) Format() string { return Int4 }

// Dims returns (out, in).
func (w *Int4Weight) Dims() (out, in int) { return w.out, w.in }

// StorageBytes is the memory the quantized weight occupies.
func (w *Int4Weight) StorageBytes() int { return len(w.Packed) + 4*len(w.Scales) + len(w.Zeros) }

func (w *Int4Weight) zero(r, g int) float32 {
	if w.Zeros == nil {
		return 8
	}
	return float32(w.Zeros[r*w.Groups()+g])
}

// u4pair maps a byte to its two nibbles as float32 (high first).
var u4pair = func() (t [256][2]float32) {
	for b := range t {
		t[b] = [2]float32{float32(b >> 4), float32(b & 15)}
	}
	return
}()

// dequantRow writes columns [c0, c1) of row r into dst.
func (w *Int4Weight) dequantRow(dst []float32, r, c0, c1 int) {
	G := w.GroupSize
	c := c0
	if useAsm {
		if c%G != 0 {
			end := min((c/G+1)*G, c1)
			w.dequantSeg(dst[:end-c0], r, c, end)
			c = end
		}
		ng := w.Groups()
		var zs [64]float32
		for nb := (c1 - c) / G; nb > 0; {
			n := min(nb, len(zs))
			g0 := c / G
			for k := range n {
				zs[k] = w.zero(r, g0+k)
			}
			deqU4Blocks(&w.Packed[r*w.RowBytes()+c>>1], &dst[c-c0], &w.Scales[r*ng+g0], &zs[0], n, G/2)
			c += n * G
			nb -= n
		}
	}
	for c < c1 {
		end := min((c/G+1)*G, c1)
		w.dequantSeg(dst[c-c0:end-c0], r, c, end)
		c = end
	}
}

// dequantSeg writes columns [c0, c1), within one group, of row r into d.
func (w *Int4Weight) dequantSeg(d []float32, r, c0, c1 int) {
	g := c0 / w.GroupSize
	prow := w.Packed[r*w.RowBytes() : (r+1)*w.RowBytes()]
	s, z := w.Scales[r*w.Groups()+g], w.zero(r, g)
	i, j := c0, 0
	if i&1 == 1 {
		d[0] = (float32(prow[i>>1]&15) - z) * s
		i, j = i+1, 1
	}
	nb := (c1 - i) >> 1
	for k, v := range prow[i>>1 : i>>1+nb] {
		p := &u4pair[v]
		d[j+2*k] = (p[0] - z) * s
		d[j+2*k+1] = (p[1] - z) * s
	}
	if i += 2 * nb; i < c1 {
		d[c1-c0-1] = (float32(prow[i>>1]>>4) - z) * s
	}
}

// DequantizeRows writes rows [r0, r1) (scale * (u - z) in float32) into dst.
func (w *Int4Weight) DequantizeRows(dst []float32, r0, r1 int) {
	for r := r0; r < r1; r++ {
		w.dequantRow(dst[(r-r0)*w.in:(r-r0+1)*w.in], r, 0, w.in)
	}
}

// DequantizeCols writes columns [c0, c1) into dst (out x (c1-c0)).
func (w *Int4Weight) DequantizeCols(dst []float32, c0, c1 int) {
	n := c1 - c0
	for r := 0; r < w.out; r++ {
		w.dequantRow(dst[r*n:(r+1)*n], r, c0, c1)
	}
}

// groupSums returns the sum of x over each group (the zero-point term).
func (w *Int4Weight) groupSums(x []float32, dst []float32) []float32 {
	ng, G := w.Groups(), w.GroupSize
	dst = dst[:0]
	for g := 0; g < ng; g++ {
		var s float32
		for _, v := range x[g*G : min((g+1)*G, w.in)] {
			s += v
		}
		dst = append(dst, s)
	}
	return dst
}

// MatVec sets y[r-r0] = W[r, :] . x for r in [r0, r1), as
// sum_g scale_g * (sum u x - z_g * sum x) over the groups.
func (w *Int4Weight) MatVec(y, x []float32, r0, r1 int) {
	var buf [64]float32
	sums := w.groupSums(x, buf[:0])
	w.matVec(y, x, sums, r0, r1)
}

// u4table holds the values 0..15: with it, dot4Blocks sums u * x.
var u4table = [16]float32{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}

func (w *Int4Weight) matVec(y, x, sums []float32, r0, r1 int) {
	ng, G, rb := w.Groups(), w.GroupSize, w.RowBytes()
	x = x[:w.in]
	full := 0 // groups done by the assembly kernel
	if useAsm {
		full = w.in / G
	}
	for r := r0; r < r1; r++ {
		prow := w.Packed[r*rb : (r+1)*rb]
		scales := w.Scales[r*ng : (r+1)*ng]
		var total float32
		if full > 0 {
			total = dotU4Blocks(&prow[0], &x[0], &scales[0], full, G/2)
		}
		for g := full; g < ng; g++ {
			lo, hi := g*G, min((g+1)*G, w.in)
			src := prow[lo>>1 : (hi+1)>>1]
			xs := x[lo:hi]
			var a0, a1, a2, a3 float32
			k := 0
			for ; 2*k+3 < len(xs); k += 2 {
				p, q := &u4pair[src[k]], &u4pair[src[k+1]]
				x4 := xs[2*k : 2*k+4 : 2*k+4]
				a0 += p[0] * x4[0]
				a1 += p[1] * x4[1]
				a2 += q[0] * x4[2]
				a3 += q[1] * x4[3]
			}
			for ; 2*k < len(xs); k++ {
				p := &u4pair[src[k]]
				a0 += p[0] * xs[2*k]
				if 2*k+1 < len(xs) {
					a1 += p[1] * xs[2*k+1]
				}
			}
			total += scales[g] * ((a0 + a1) + (a2 + a3))
		}
		// the zero points: - sum_g scale_g * z_g * sum_{i in g} x_i
		var zs float32
		if w.Zeros == nil {
			for g, s := range scales {
				zs += s * sums[g]
			}
			zs *= 8
		} else {
			for g, s := range scales {
				zs += s * float32(w.Zeros[r*ng+g]) * sums[g]
			}
		}
		y[r-r0] = total - zs
	}
}
