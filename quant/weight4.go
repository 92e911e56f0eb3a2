package quant

import "fmt"

// Weight4 is an NF4 or FP4 weight matrix (out, in): the packed codes and the
// State4 of bitsandbytes. The matrix is quantized as one flat tensor, so a
// block of BlockSize elements may span two rows.
type Weight4 struct {
	st      *State4
	packed  []byte
	c       *code4
	out, in int
}

// NewWeight4 wraps packed codes and their state as an (out, in) weight,
// checking that they agree. The slices are not copied.
func NewWeight4(packed []byte, st *State4) (*Weight4, error) {
	if err := st.check(); err != nil {
		return nil, err
	}
	if len(st.Shape) != 2 {
		return nil, fmt.Errorf("shape %v is not (out, in)", st.Shape)
	}
	if len(packed) != st.PackedLen() {
		return nil, fmt.Errorf("%d bytes of packed codes, but shape %v needs %d", len(packed), st.Shape, st.PackedLen())
	}
	return &Weight4{st: st, packed: packed, c: code4For(st.QuantType), out: st.Shape[0], in: st.Shape[1]}, nil
}

// QuantizeWeight4 quantizes an (out, in) float32 matrix (see Quantize4Bit).
func QuantizeWeight4(w []float32, out, in int, quantType string, blockSize int, doubleQuant bool) (*Weight4, error) {
	packed, st, err := Quantize4Bit(w, []int{out, in}, quantType, blockSize, doubleQuant)
	if err != nil {
		return nil, err
	}
	return NewWeight4(packed, st)
}

// Format is NF4 or FP4.
func (w *Weight4) Format() string { return w.st.QuantType }

// Dims returns (out, in).
func (w *Weight4) Dims() (out, in int) { return w.out, w.in }

// State returns the quantization state (shared, not copied).
func (w *Weight4) State() *State4 { return w.st }

// Packed returns the packed codes (shared, not copied).
func (w *Weight4) Packed() []byte { return w.packed }

// StorageBytes is the memory the quantized weight occupies.
func (w *Weight4) StorageBytes() int {
	s := w.st
	return len(w.packed) + 4*len(s.Absmax) + len(s.QAbsmax) + 4*len(s.Absmax2) + 4*len(s.NestedCode)
}

// scale returns the absmax of block b, dequantizing the double-quantized
// form on the fly exactly as State4.BlockAbsmax.
func (w *Weight4) scale(b int) float32 {
	s := w.st
	if s.QAbsmax == nil {
		return s.Absmax[b]
	}
	return float32(s.NestedCode[s.QAbsmax[b]]*s.Absmax2[b/s.NestedBlockSize]) + s.Offset // no FMA: as bitsandbytes
}

// scales returns the absmax of up to nb blocks from b0 on, and how many:
// without double quantization a view of Absmax (all nb), otherwise up to
// len(buf) values dequantized into buf.
func (w *Weight4) scales(buf []float32, b0, nb int) (int, []float32) {
	s := w.st
	if s.QAbsmax == nil {
		return nb, s.Absmax[b0 : b0+nb]
	}
	n := min(nb, len(buf))
	nbs := s.NestedBlockSize
	j, rem := b0/nbs, b0%nbs
	for k := range n {
		buf[k] = float32(s.NestedCode[s.QAbsmax[b0+k]]*s.Absmax2[j]) + s.Offset
		if rem++; rem == nbs {
			rem, j = 0, j+1
		}
	}
	return n, buf[:n]
}

// dequantFlat writes elements [e0, e1) of the flattened matrix into dst.
func (w *Weight4) dequantFlat(dst []float32, e0, e1 int) {
	bs := w.st.BlockSize
	dst = dst[:e1-e0]
	e := e0
	if useAsm {
		if e%bs != 0 { // partial first block
			end := min((e/bs+1)*bs, e1)
			w.dequantSeg(dst[:end-e0], e, end)
			e = end
		}
		var buf [64]float32
		for nb := (e1 - e) / bs; nb > 0; {
			n, sc := w.scales(buf[:], e/bs, nb)
			deq4Blocks(&w.c.code, &w.packed[e>>1], &dst[e-e0], &sc[0], n, bs/2)
			e += n * bs
			nb -= n
		}
	}
	for e < e1 {
		end := min((e/bs+1)*bs, e1)
		w.dequantSeg(dst[e-e0:end-e0], e, end)
		e = end
	}
}

// dequantSeg writes elements [e0, e1), within one block, into d.
func (w *Weight4) dequantSeg(d []float32, e0, e1 int) {
	code, pair, packed := &w.c.code, &w.c.pair, w.packed
	s := w.scale(e0 / w.st.BlockSize)
	i, j := e0, 0
	if i&1 == 1 {
		d[0] = code[packed[i>>1]&15] * s
		i, j = i+1, 1
	}
	nb := (e1 - i) >> 1
	src := packed[i>>1 : i>>1+nb]
	dd := d[j : j+2*nb]
	for k, v := range src {
		p := &pair[v]
		dd[2*k] = p[0] * s
		dd[2*k+1] = p[1] * s
	}
	if i += 2 * nb; i < e1 {
		d[e1-e0-1] = code[packed[i>>1]>>4] * s
	}
}

// dotFlat returns sum_e W_flat[e] * x[e-e0] over [e0, e1).
func (w *Weight4) dotFlat(x []float32, e0, e1 int) float32 {
	bs := w.st.BlockSize
	x = x[:e1-e0]
	var total float32
	e := e0
	if useAsm {
		if e%bs != 0 { // partial first block
			end := min((e/bs+1)*bs, e1)
			total += w.dotSeg(x[:end-e0], e, end) * w.scale(e/bs)
			e = end
		}
		// whole blocks, byte aligned (block starts are even)
		var buf [64]float32
		for nb := (e1 - e) / bs; nb > 0; {
			n, sc := w.scales(buf[:], e/bs, nb)
			total += dot4Blocks(&w.c.code, &w.packed[e>>1], &x[e-e0], &sc[0], n, bs/2)
			e += n * bs
			nb -= n
		}
	}
	for e < e1 {
		b := e / bs
		end := min((b+1)*bs, e1)
		total += w.dotSeg(x[e-e0:end-e0], e, end) * w.scale(b)
		e = end
	}
	return total
}

// dotSeg returns sum code[q_e] * xs[e-e0] over [e0, e1), within one block.
func (w *Weight4) dotSeg(xs []float32, e0, e1 int) float32 {
	code, pair, packed := &w.c.code, &w.c.pair, w.packed
	i, j := e0, 0
	var a0, a1, a2, a3 float32
	if i&1 == 1 {
		a0 = code[packed[i>>1]&15] * xs[0]
		i, j = i+1, 1
	}
	nb := (e1 - i) >> 1
	src := packed[i>>1 : i>>1+nb]
	xx := xs[j : j+2*nb]
	k := 0
	for ; k+1 < len(src); k += 2 {
		p, q := &pair[src[k]], &pair[src[k+1]]
		x4 := xx[2*k : 2*k+4 : 2*k+4]
		a0 += p[0] * x4[0]
		a1 += p[1] * x4[1]
		a2 += q[0] * x4[2]
		a3 += q[1] * x4[3]
	}
	if k < len(src) {
		p := &pair[src[k]]
		a0 += p[0] * xx[2*k]
		a1 += p[1] * xx[2*k+1]
	}
	if i += 2 * nb; i < e1 {
		a2 += code[packed[i>>1]>>4] * xs[len(xs)-1]
	}
	return (a0 + a1) + (a2 + a3)
}

// DequantizeRows writes rows [r0, r1) of the dequantized matrix into dst
// ((r1-r0) x in, row-major).
func (w *Weight4) DequantizeRows(dst []float32, r0, r1 int) {
	w.dequantFlat(dst, r0*w.in, r1*w.in)
}

// DequantizeCols writes columns [c0, c1) of the dequantized matrix into dst
// (out x (c1-c0), row-major).
func (w *Weight4) DequantizeCols(dst []float32, c0, c1 int) {
	n := c1 - c0
	for r := 0; r < w.out; r++ {
		w.dequantFlat(dst[r*n:(r+1)*n], r*w.in+c0, r*w.in+c1)
	}
}

// MatVec sets y[r-r0] = W[r, :] . x for r in [r0, r1), reading each weight
// byte once and never forming the dequantized row.
func (w *Weight4) MatVec(y, x []float32, r0, r1 int) {
	for r := r0; r < r1; r++ {
		y[r-r0] = w.dotFlat(x, r*w.in, (r+1)*w.in)
	}
}
