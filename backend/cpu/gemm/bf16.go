package gemm

import (
	"unsafe"

	"github.com/shoggo/shoggo/internal/cpu"
	"github.com/shoggo/shoggo/tensor"
)

// The bf16 path of GemmMixed, for two operands at BF16 precision on a CPU
// with AVX512_BF16: Sgemm's loops (sgemm.go) over operands packed as bf16
// in the AMX tile layout, with a 32x32 micro-tile computed either by AMX
// (TDPBF16PS on tiles, amx.go) where the CPU has AMX-BF16, or else by
// VDPBF16PS on zmm registers (four 8x32 tiles); both in mixed_amd64.s.
//
// Packed layouts (uint16 elements, 1024 to a 16 x 64-byte tile): an A
// panel holds 32 rows of op(A); for each step of 32 values of k, tile 4
// (rows 0-15) then tile 5 (rows 16-31), row-major with k contiguous. A B
// panel holds 32 columns of op(B); for each step of 32 values of k, tile 6
// (columns 0-15) then tile 7 (columns 16-31), each of 16 rows, row q
// holding for each column the pair op(B)[2q][j], op(B)[2q+1][j] (the
// "VNNI" layout). k is padded with zeros to a multiple of 32, rows and
// columns to a multiple of 32. VDPBF16PS reads a row of a B tile as 16
// column pairs and broadcasts a pair of a row of A, which this layout
// holds as one dword.
//
// The packing converts as it goes (AVX-512 routines for full panels, Go
// for edges): float32 and fp16 values are rounded to bf16 as
// tensor.F32ToBF16 does, so no float32 or bf16 copy of an operand is made.
//
// Both kernels multiply bf16 pairs and accumulate in float32, with bf16
// denormal operands and float32 denormal results flushed to zero; each has
// its own summation order. The k blocks are multiples of 32 that depend on
// k alone, so results are bit-identical for any number of threads.

const (
	mrX = 32 // rows of the micro-tile
	nrX = 32 // columns
	kX  = 32 // values of k per tile step
)

// Cache blocking. AMX: a B panel of kc = 512 is 32 KiB, an A block of
// mc x kc 192 KiB (L2 is 2 MiB on Sapphire Rapids). VDPBF16PS: kc = 256,
// a 16 KiB B panel, for L1 caches of 32 KiB (Zen 4).
var (
	mcAMX, kcAMX, ncAMX = 192, 512, 1024 // multiples of 32
	mcDPB, kcDPB, ncDPB = 192, 256, 1024
)

// hasBF16 reports whether the VDPBF16PS kernel and the packing can run
// here (AVX-512 F, BW, VL, BF16 and the OS saving the zmm and opmask state).
var hasBF16 = cpu.HasAVX512BF16()

// useBF16 selects the bf16 path for GemmMixed calls whose operands are
// both at BF16 precision; off with SHOGGO_NOASM=1 or SHOGGO_NOBF16=1 (then
// the float32 kernel runs them). Tests toggle it.
var useBF16 = hasBF16 && cpu.UseAVX512BF16()

// bf16Buffers holds one thread's packing buffers for the bf16 path.
type bf16Buffers struct {
	a, b []uint16
	t    [mrX * nrX]float32
}

func alignedU16(n int) []uint16 {
	s := aligned((n + 1) / 2)
	return unsafe.Slice((*uint16)(unsafe.Pointer(unsafe.SliceData(s))), n)
}

func (h *bf16Buffers) ensure(na, nb int) {
	if len(h.a) < na {
		h.a = alignedU16(na)
	}
	if len(h.b) < nb {
		h.b = alignedU16(nb)
	}
}

// runBF16 computes the problem on the bf16 path on the calling goroutine.
func (p *problem) runBF16(buf *buffers) {
	h := &buf.h
	m, n, k := p.m, p.n, p.k
	mcm, kcm, ncm := mcDPB, kcDPB, ncDPB
	if p.amx {
		mcm, kcm, ncm = mcAMX, kcAMX, ncAMX
	}
	kc := blockSize(k, kcm, kX)
	mc := blockSize(m, mcm, mrX)
	nc := blockSize(n, ncm, nrX)
	h.ensure(mc*kc, nc*kc)
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

// macroBF16 is macroKernel for the bf16 path: for each B panel (packed
// during the first ic block), the AMX kernel over all full row panels at
// once where it can write C directly (alpha = 1, beta 0 or 1), else one
// kernel call per row panel, edge panels through a 32x32 buffer.
func (p *problem) macroBF16(mb, nb, kb int, h *bf16Buffers, c []float32, beta float32, mode int, p0, j0 int, packNow bool) {
	steps := (kb + kX - 1) / kX
	panel := steps * kX * 32 // uint16 per A or B panel
	ldc := p.ldc
	full := mb / mrX // full row panels
	for jr := 0; jr < nb; jr += nrX {
		cols := min(nrX, nb-jr)
		bp := h.b[jr/nrX*panel : (jr/nrX+1)*panel]
		if packNow {
			p.packBBF16(bp, p0, kb, j0+jr, cols)
		}
		ct := c[jr:]
		ir := 0
		if cols == nrX && full > 0 {
			_ = ct[(full*mrX-1)*ldc+nrX-1] // the kernels write this far
			if p.amx && p.alpha == 1 && mode != 2 {
				kernelAMX(&amxConfig[0], steps, &h.a[0], full, &bp[0], &ct[0], ldc*4, mrX*ldc*4, mode)
			} else if !p.amx {
				for q := 0; q < full; q++ {
					kernelDPB(steps, &h.a[q*panel], &bp[0], &ct[q*mrX*ldc], ldc, p.alpha, beta, mode)
				}
			}
			if !p.amx || (p.alpha == 1 && mode != 2) {
				ir = full * mrX
			}
		}
		for ; ir < mb; ir += mrX {
			rows := min(mrX, mb-ir)
			if p.amx {
				kernelAMX(&amxConfig[0], steps, &h.a[ir/mrX*panel], 1, &bp[0], &h.t[0], nrX*4, 0, 0)
				if p.alpha != 1 {
					for i := range h.t {
						h.t[i] *= p.alpha
					}
				}
			} else {
				kernelDPB(steps, &h.a[ir/mrX*panel], &bp[0], &h.t[0], nrX, p.alpha, 0, 0)
			}
			cr := ct[ir*ldc:]
			for i := 0; i < rows; i++ {
				ti := h.t[i*nrX : i*nrX+cols]
				ci := cr[i*ldc : i*ldc+cols]
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

// bf16AsmPack selects the assembly packing routines (tests compare them
// with the Go ones).
var bf16AsmPack = true

// packKind returns the source kind of the packing routines for an operand
// with bf16 conversion cvt.
func packKind(cvt int) int {
	switch cvt {
	case cvtF32BF16:
		return 0
	case cvtNone:
		return 1
	}
	return 2
}

// bf16At returns element i of the operand rounded to bf16 (conversion cvt).
func bf16At(o *Operand, cvt, i int) uint16 {
	switch cvt {
	case cvtNone:
		return o.U16[i]
	case cvtF32BF16:
		return tensor.F32ToBF16(o.F32[i])
	}
	return tensor.F32ToBF16(tensor.F16ToF32(o.U16[i]))
}

// packABF16 packs rows [i0, i0+mb) and columns [p0, p0+kb) of op(A) into
// h.a as ceil(mb/32) panels.
func (p *problem) packABF16(h *bf16Buffers, i0, mb, p0, kb int) {
	steps := (kb + kX - 1) / kX
	full := kb / kX // steps without padding
	panel := steps * kX * 32
	for q := 0; q*mrX < mb; q++ {
		rows := min(mrX, mb-q*mrX)
		d := h.a[q*panel : (q+1)*panel]
		if rows < mrX || kb%kX != 0 {
			clear(d)
		}
		ib := i0 + q*mrX
		base := ib*p.lda + p0 // element (0, 0) of the panel in A
		if p.transA {
			base = p0*p.lda + ib
		}
		k0 := 0
		if bf16AsmPack && full > 0 && (rows == mrX || !p.transA) {
			w, src := p.a.addr(base)
			if p.transA {
				p.a.addr(base + (full*kX-1)*p.lda + mrX - 1) // bounds: the last element read
				packAT(packKind(p.cvtA), full, src, p.lda*w, &d[0])
			} else {
				p.a.addr(base + (rows-1)*p.lda + full*kX - 1) // bounds: the last element read
				packAN(packKind(p.cvtA), rows, full, src, p.lda*w, &d[0])
			}
			k0 = full * kX
		}
		// Element (r, k) of the panel goes to (k/32)*1024 + r*32 + k%32:
		// tile 5 (rows 16-31) follows tile 4 directly.
		for r := 0; r < rows; r++ {
			for kk := k0; kk < kb; kk++ {
				i := base + r*p.lda + kk
				if p.transA {
					i = base + kk*p.lda + r
				}
				d[kk/kX*1024+r*32+kk%kX] = bf16At(&p.a, p.cvtA, i)
			}
		}
	}
}

// packBBF16 packs the panel of op(B) of rows [p0, p0+kb) and columns [j,
// j+cols), cols <= 32, into bp.
func (p *problem) packBBF16(bp []uint16, p0, kb, j, cols int) {
	if cols < nrX || kb%kX != 0 {
		clear(bp)
	}
	base := p0*p.ldb + j // element (0, 0) of the panel in B
	if p.transB {
		base = j*p.ldb + p0
	}
	k0 := 0
	if full := kb / kX; bf16AsmPack && full > 0 && cols == nrX {
		w, src := p.b.addr(base)
		if p.transB {
			p.b.addr(base + (nrX-1)*p.ldb + full*kX - 1) // bounds: the last element read
			packBT(packKind(p.cvtB), full, src, p.ldb*w, &bp[0])
		} else {
			p.b.addr(base + (full*kX-1)*p.ldb + nrX - 1)
			packBN(packKind(p.cvtB), full, src, p.ldb*w, &bp[0])
		}
		k0 = full * kX
	}
	// Element (k, jj) goes to (k/32)*1024 + (jj/16)*512 + (k%32/2)*32 +
	// (jj%16)*2 + k%2.
	for kk := k0; kk < kb; kk++ {
		for jj := 0; jj < cols; jj++ {
			i := base + kk*p.ldb + jj
			if p.transB {
				i = base + jj*p.ldb + kk
			}
			bp[kk/kX*1024+jj/16*512+kk%kX/2*32+jj%16*2+kk&1] = bf16At(&p.b, p.cvtB, i)
		}
	}
}
