package gemm

import (
	"unsafe"

	"github.com/shoggo/shoggo/internal/cpu"
	"github.com/shoggo/shoggo/tensor"
)

// The bf16 path of GemmMixed, for two operands at BF16 precision on a CPU
// with AVX512_BF16: Sgemm's loops (sgemm.go) with operands packed as bf16
// pairs along k and a 6x64 VDPBF16PS micro-kernel (mixed_amd64.s).
//
// A panel holds, for each pair p of the kb values of k (kb rounded up to
// even, a missing last value being zero), the mrH uint32 values
// op(A)[i][2p] | op(A)[i][2p+1]<<16; a B panel holds, for each pair, the
// nrH values op(B)[2p][j] | op(B)[2p+1][j]<<16. VDPBF16PS multiplies a
// broadcast pair of A with 16 pairs of B and adds both products to 16
// float32 accumulators. An operand that is not already bf16 is rounded
// to bf16 into a small buffer first (a block of A, a panel of B), as the
// float32 path does.
//
// The k blocks are even and depend on k alone, and one tile's sum over a
// k block is one kernel call, so results are bit-identical for any number
// of threads (but differ from the float32 kernel's: another summation
// order, pairs added at once, denormals flushed).

const (
	mrH = 6  // rows of the bf16 micro-tile
	nrH = 64 // columns (four zmm registers)
)

// Cache blocking of the bf16 path: a kc x nrH panel of B in bf16 is 32 KiB
// (L1 is 48 KiB on Sapphire Rapids), the mc x kc block of A 72 KiB.
var (
	mcBF16 = 144  // multiple of mrH
	kcBF16 = 256  // even
	ncBF16 = 1024 // multiple of nrH
)

// hasBF16 reports whether the bf16 kernel can run here (AVX-512 F, BW,
// VL, BF16 and the OS saving the zmm and opmask state).
var hasBF16 = cpu.HasAVX512BF16()

// useBF16 selects the bf16 kernel for GemmMixed calls whose operands are
// both at BF16 precision; off with SHOGGO_NOASM=1 or SHOGGO_NOBF16=1 (then
// the float32 kernel runs them). Tests toggle it.
var useBF16 = hasBF16 && cpu.UseAVX512BF16()

// bf16Buffers holds one thread's packing buffers for the bf16 kernel.
type bf16Buffers struct {
	a, b   []uint32 // packed pairs
	ta, tb []uint16 // an operand block rounded to bf16
	t      [mrH * nrH]float32
}

// alignedU32 returns a slice of n uint32 whose first element is 64-byte aligned.
func alignedU32(n int) []uint32 {
	s := aligned(n)
	return unsafe.Slice((*uint32)(unsafe.Pointer(unsafe.SliceData(s))), n)
}

func (h *bf16Buffers) ensure(na, nb int) {
	if len(h.a) < na {
		h.a = alignedU32(na)
	}
	if len(h.b) < nb {
		h.b = alignedU32(nb)
	}
}

// runBF16 computes the problem with the bf16 kernel on the calling goroutine.
func (p *problem) runBF16(buf *buffers) {
	h := &buf.h
	m, n, k := p.m, p.n, p.k
	kc := blockSize(k, kcBF16, 2)
	mc := blockSize(m, mcBF16, mrH)
	nc := blockSize(n, ncBF16, nrH)
	h.ensure(mc*kc/2, nc*kc/2)
	for jc := 0; jc < n; jc += nc {
		nb := min(nc, n-jc)
		for pc := 0; pc < k; pc += kc {
			kb := min(kc, k-pc)
			beta, mode := p.beta, betaMode(p.beta)
			if pc > 0 {
				beta, mode = 1, 1
			}
			for ic := 0; ic < m; ic += mc {
				mb := min(mc, m-ic)
				p.packABF16(h, ic, mb, pc, kb)
				p.macroBF16(mb, nb, kb, h, p.c[ic*p.ldc+jc:], beta, mode, pc, jc, ic == 0)
			}
		}
	}
}

// macroBF16 is macroKernel for the bf16 kernel.
func (p *problem) macroBF16(mb, nb, kb int, h *bf16Buffers, c []float32, beta float32, mode int, p0, j0 int, packNow bool) {
	kp := (kb + 1) / 2
	steps := (mb + mrH - 1) / mrH
	ldc := p.ldc
	for jr := 0; jr < nb; jr += nrH {
		cols := min(nrH, nb-jr)
		bp := h.b[jr*kp : jr*kp+kp*nrH]
		var next unsafe.Pointer
		var nextRows, nextStride, nextBytes, perStep int
		if packNow {
			p.packBBF16(h, bp, p0, kb, j0+jr, cols)
			if jn := jr + nrH; jn < nb {
				next, nextRows, nextStride, nextBytes = p.nextB(p0, kb, j0+jn, min(nrH, nb-jn))
				perStep = (nextRows + steps - 1) / steps
			}
		}
		for ir := 0; ir < mb; ir += mrH {
			if nextRows > 0 {
				r := min(perStep, nextRows)
				prefetchRows((*float32)(next), nextStride, r, nextBytes)
				nextRows -= r
				if nextRows > 0 {
					next = unsafe.Add(next, r*nextStride)
				}
			}
			rows := min(mrH, mb-ir)
			ap := h.a[ir*kp : ir*kp+kp*mrH]
			ct := c[ir*ldc+jr:]
			if rows == mrH && cols == nrH {
				_ = ct[(mrH-1)*ldc+nrH-1] // the kernel writes this far
				kernelBF16(kp, &ap[0], &bp[0], &ct[0], ldc, p.alpha, beta, mode)
				continue
			}
			kernelBF16(kp, &ap[0], &bp[0], &h.t[0], nrH, p.alpha, 0, 0)
			for i := 0; i < rows; i++ {
				ti := h.t[i*nrH : i*nrH+cols]
				ci := ct[i*ldc : i*ldc+cols]
				switch mode {
				case 0:
					copy(ci, ti)
				case 1:
					for j, v := range ti {
						ci[j] += v
					}
				default:
					for j, v := range ti {
						ci[j] = float32(beta*ci[j]) + v
					}
				}
			}
		}
	}
}

// bf16Source returns the operand's bf16 values for a block of rows x cols
// elements of its storage at element off: the operand itself when it is
// bf16, else the block rounded to bf16 into *tmp (row stride cols).
func bf16Source(o *Operand, cvt int, tmp *[]uint16, off, ld, rows, cols int) ([]uint16, int, int) {
	if cvt == cvtNone {
		return o.U16, off, ld
	}
	if len(*tmp) < rows*cols {
		*tmp = make([]uint16, rows*cols)
	}
	convertBF16(*tmp, cols, o, cvt, off, ld, rows, cols)
	return *tmp, 0, cols
}

// convertBF16 writes rows x cols elements of o (at element off, row stride
// ld) rounded to bf16 by cvt (cvtF32BF16 or cvtF16BF16) to dst (row
// stride ldd).
func convertBF16(dst []uint16, ldd int, o *Operand, cvt, off, ld, rows, cols int) {
	n8 := 0
	if useAsm && hasF16C && cols >= 8 {
		n8 = cols &^ 7
		w, _ := o.addr(off + (rows-1)*ld + n8 - 1) // bounds check of the last element read
		_, src := o.addr(off)
		_ = dst[(rows-1)*ldd+n8-1]
		cvtRows(cvt, rows, n8, src, ld*w, unsafe.Pointer(&dst[0]), ldd*2)
		if n8 == cols {
			return
		}
	}
	for r := 0; r < rows; r++ {
		d := dst[r*ldd+n8 : r*ldd+cols]
		s := off + r*ld + n8
		switch cvt {
		case cvtF32BF16:
			for i, v := range o.F32[s : s+len(d)] {
				d[i] = tensor.F32ToBF16(v)
			}
		case cvtF16BF16:
			for i, h := range o.U16[s : s+len(d)] {
				d[i] = tensor.F32ToBF16(tensor.F16ToF32(h))
			}
		default:
			panic("gemm: bad conversion")
		}
	}
}

// packABF16 packs rows [i0, i0+mb) and columns [p0, p0+kb) of op(A) as
// bf16 pairs into h.a: ceil(mb/mrH) panels of ceil(kb/2)*mrH pairs.
func (p *problem) packABF16(h *bf16Buffers, i0, mb, p0, kb int) {
	var s []uint16
	var off, ld int
	if p.transA {
		s, off, ld = bf16Source(&p.a, p.cvtA, &h.ta, p0*p.lda+i0, p.lda, kb, mb)
	} else {
		s, off, ld = bf16Source(&p.a, p.cvtA, &h.ta, i0*p.lda+p0, p.lda, mb, kb)
	}
	kp := (kb + 1) / 2
	for q := 0; q*mrH < mb; q++ {
		rows := min(mrH, mb-q*mrH)
		d := h.a[q*kp*mrH : (q+1)*kp*mrH]
		ib := q * mrH
		if p.transA {
			// op(A)[i][k] = s[off+k*ld+i]: rows 2p and 2p+1 of the storage give pair p.
			for pp := 0; pp < kp; pp++ {
				dp := (*[mrH]uint32)(d[pp*mrH:])
				r0 := s[off+2*pp*ld+ib : off+2*pp*ld+ib+rows]
				if 2*pp+1 < kb {
					r1 := s[off+(2*pp+1)*ld+ib : off+(2*pp+1)*ld+ib+rows]
					for ii, v := range r0 {
						dp[ii] = uint32(v) | uint32(r1[ii])<<16
					}
				} else {
					for ii, v := range r0 {
						dp[ii] = uint32(v)
					}
				}
				for ii := rows; ii < mrH; ii++ {
					dp[ii] = 0
				}
			}
			continue
		}
		// op(A)[i][k] = s[off+i*ld+k]: a row's pairs are adjacent.
		for ii := 0; ii < mrH; ii++ {
			if ii >= rows {
				for pp := 0; pp < kp; pp++ {
					d[pp*mrH+ii] = 0
				}
				continue
			}
			row := s[off+(ib+ii)*ld : off+(ib+ii)*ld+kb]
			for pp := 0; pp < kb/2; pp++ {
				d[pp*mrH+ii] = uint32(row[2*pp]) | uint32(row[2*pp+1])<<16
			}
			if kb&1 != 0 {
				d[(kp-1)*mrH+ii] = uint32(row[kb-1])
			}
		}
	}
}

// packBBF16 packs the panel of op(B) of rows [p0, p0+kb) and columns [j,
// j+cols), cols <= nrH, as bf16 pairs into bp (ceil(kb/2)*nrH pairs).
func (p *problem) packBBF16(h *bf16Buffers, bp []uint32, p0, kb, j, cols int) {
	kp := (kb + 1) / 2
	if p.transB {
		// op(B)[k][j] = s[off+j*ld+k]: a column's pairs are adjacent.
		s, off, ld := bf16Source(&p.b, p.cvtB, &h.tb, j*p.ldb+p0, p.ldb, cols, kb)
		for jj := 0; jj < nrH; jj++ {
			if jj >= cols {
				for pp := 0; pp < kp; pp++ {
					bp[pp*nrH+jj] = 0
				}
				continue
			}
			col := s[off+jj*ld : off+jj*ld+kb]
			for pp := 0; pp < kb/2; pp++ {
				bp[pp*nrH+jj] = uint32(col[2*pp]) | uint32(col[2*pp+1])<<16
			}
			if kb&1 != 0 {
				bp[(kp-1)*nrH+jj] = uint32(col[kb-1])
			}
		}
		return
	}
	// op(B)[k][j] = s[off+k*ld+j]: rows 2p and 2p+1 give pair p.
	s, off, ld := bf16Source(&p.b, p.cvtB, &h.tb, p0*p.ldb+j, p.ldb, kb, cols)
	for pp := 0; pp < kp; pp++ {
		dp := (*[nrH]uint32)(bp[pp*nrH:])
		r0 := s[off+2*pp*ld : off+2*pp*ld+cols]
		if 2*pp+1 < kb {
			r1 := s[off+(2*pp+1)*ld : off+(2*pp+1)*ld+cols]
			for jj, v := range r0 {
				dp[jj] = uint32(v) | uint32(r1[jj])<<16
			}
		} else {
			for jj, v := range r0 {
				dp[jj] = uint32(v)
			}
		}
		for jj := cols; jj < nrH; jj++ {
			dp[jj] = 0
		}
	}
}
