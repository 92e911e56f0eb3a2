package gemm

import (
	"unsafe"

	"github.com/shoggo/shoggo/internal/cpu"
	"github.com/shoggo/shoggo/tensor"
)

// The AMX path of GemmMixed, for two operands at BF16 precision on a CPU
// with AMX-BF16 (Sapphire Rapids and later Xeons): Sgemm's loops with a
// 32x32 micro-tile computed by TDPBF16PS on tiles (mixed_amd64.s).
//
// Packed layouts (uint16 elements, 1024 to a 16 x 64-byte tile): an A
// panel holds 32 rows of op(A); for each step of 32 values of k, tile 4
// (rows 0-15) then tile 5 (rows 16-31), row-major with k contiguous. A B
// panel holds 32 columns of op(B); for each step of 32 values of k, tile 6
// (columns 0-15) then tile 7 (columns 16-31), each of 16 rows, row q
// holding for each column the pair op(B)[2q][j], op(B)[2q+1][j] (the
// "VNNI" layout). k is padded with zeros to a multiple of 32, rows and
// columns to a multiple of 32.
//
// TDPBF16PS multiplies bf16 pairs and accumulates in float32 with bf16
// denormal operands and float32 denormal results flushed to zero, like
// VDPBF16PS, so the bf16 tolerance of the tests holds for it as well; its
// summation order is its own. The k blocks are multiples of 32 that depend
// on k alone, so results are bit-identical for any number of threads.

const (
	mrX = 32 // rows of the AMX micro-tile
	nrX = 32 // columns
	kX  = 32 // values of k per tile step
)

// Cache blocking of the AMX path: a B panel of kc = 512 is 32 KiB, an A
// block of mc x kc 192 KiB (L2 is 2 MiB).
var (
	mcAMX = 192  // multiple of mrX
	kcAMX = 512  // multiple of kX
	ncAMX = 1024 // multiple of nrX
)

// hasAMX reports whether the CPU has AMX-BF16 (and the kernel's other
// needs); useAMX selects it for GemmMixed calls whose operands are both
// at BF16 precision, before the VDPBF16PS kernel. SHOGGO_NOASM=1,
// SHOGGO_NOBF16=1 and SHOGGO_NOAMX=1 switch it off. The permission that
// Linux requires is asked for on first use (amxReady).
var (
	hasAMX = cpu.X86.HasAMXBF16 && hasBF16
	useAMX = hasAMX && !cpu.NoAsm && !cpu.NoBF16 && !cpu.NoAMX
)

// amxReady reports whether AMX may run: useAMX, and the OS has granted the
// permission (asked for once).
func amxReady() bool { return useAMX && cpu.EnableAMX() }

// amxConfig is the tile configuration (LDTILECFG's 64 bytes): palette 1,
// eight tiles of 16 rows of 64 bytes.
var amxConfig = func() *[64]byte {
	var c [64]byte
	c[0] = 1
	for t := 0; t < 8; t++ {
		c[16+2*t] = 64
		c[48+t] = 16
	}
	return &c
}()

// amxBuffers holds one thread's packing buffers for the AMX kernel.
type amxBuffers struct {
	a, b []uint16
	t    [mrX * nrX]float32
}

func alignedU16(n int) []uint16 {
	s := aligned((n + 1) / 2)
	return unsafe.Slice((*uint16)(unsafe.Pointer(unsafe.SliceData(s))), n)
}

func (x *amxBuffers) ensure(na, nb int) {
	if len(x.a) < na {
		x.a = alignedU16(na)
	}
	if len(x.b) < nb {
		x.b = alignedU16(nb)
	}
}

// runAMX computes the problem with the AMX kernel on the calling goroutine.
func (p *problem) runAMX(buf *buffers) {
	x := &buf.x
	m, n, k := p.m, p.n, p.k
	kc := blockSize(k, kcAMX, kX)
	mc := blockSize(m, mcAMX, mrX)
	nc := blockSize(n, ncAMX, nrX)
	x.ensure(mc*kc, nc*kc)
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
				p.packAAMX(x, ic, mb, pc, kb)
				p.macroAMX(mb, nb, kb, x, p.c[ic*p.ldc+jc:], beta, mode, pc, jc, ic == 0)
			}
		}
	}
}

// macroAMX is macroKernel for the AMX kernel.
func (p *problem) macroAMX(mb, nb, kb int, x *amxBuffers, c []float32, beta float32, mode int, p0, j0 int, packNow bool) {
	steps := (kb + kX - 1) / kX
	panel := steps * kX * 32 // uint16 per A or B panel
	ldc := p.ldc
	full := mb / mrX // full row panels
	direct := p.alpha == 1 && mode != 2
	for jr := 0; jr < nb; jr += nrX {
		cols := min(nrX, nb-jr)
		bp := x.b[jr/nrX*panel : (jr/nrX+1)*panel]
		if packNow {
			p.packBAMX(x, bp, p0, kb, j0+jr, cols)
		}
		ct := c[jr:]
		ir := 0
		if direct && cols == nrX && full > 0 {
			_ = ct[(full*mrX-1)*ldc+nrX-1] // the kernel writes this far
			kernelAMX(&amxConfig[0], steps, &x.a[0], full, &bp[0], &ct[0], ldc*4, mrX*ldc*4, mode)
			ir = full * mrX
		}
		for ; ir < mb; ir += mrX {
			rows := min(mrX, mb-ir)
			kernelAMX(&amxConfig[0], steps, &x.a[ir/mrX*panel], 1, &bp[0], &x.t[0], nrX*4, 0, 0)
			cr := ct[ir*ldc:]
			for i := 0; i < rows; i++ {
				ti := x.t[i*nrX : i*nrX+cols]
				ci := cr[i*ldc : i*ldc+cols]
				switch mode {
				case 0:
					for j, v := range ti {
						ci[j] = p.alpha * v
					}
				case 1:
					for j, v := range ti {
						ci[j] += p.alpha * v
					}
				default:
					for j, v := range ti {
						ci[j] = float32(beta*ci[j]) + p.alpha*v
					}
				}
			}
		}
	}
}

// amxAsmPack selects the assembly packing routines (tests compare them
// with the Go ones).
var amxAsmPack = true

// amxKind returns the source kind of the AMX packing routines for an
// operand with bf16 conversion cvt.
func amxKind(cvt int) int {
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

// packAAMX packs rows [i0, i0+mb) and columns [p0, p0+kb) of op(A) into
// x.a as ceil(mb/32) AMX panels.
func (p *problem) packAAMX(x *amxBuffers, i0, mb, p0, kb int) {
	steps := (kb + kX - 1) / kX
	full := kb / kX // steps without padding
	panel := steps * kX * 32
	for q := 0; q*mrX < mb; q++ {
		rows := min(mrX, mb-q*mrX)
		d := x.a[q*panel : (q+1)*panel]
		if rows < mrX || kb%kX != 0 {
			clear(d)
		}
		ib := i0 + q*mrX
		base := ib*p.lda + p0 // element (0, 0) of the panel in A
		if p.transA {
			base = p0*p.lda + ib
		}
		k0 := 0
		if amxAsmPack && full > 0 && (rows == mrX || !p.transA) {
			w, src := p.a.addr(base)
			if p.transA {
				p.a.addr(base + (full*kX-1)*p.lda + mrX - 1) // bounds: the last element read
				amxPackAT(amxKind(p.cvtA), full, src, p.lda*w, &d[0])
			} else {
				p.a.addr(base + (rows-1)*p.lda + full*kX - 1) // bounds: the last element read
				amxPackAN(amxKind(p.cvtA), rows, full, src, p.lda*w, &d[0])
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

// packBAMX packs the panel of op(B) of rows [p0, p0+kb) and columns [j,
// j+cols), cols <= 32, into bp.
func (p *problem) packBAMX(x *amxBuffers, bp []uint16, p0, kb, j, cols int) {
	if cols < nrX || kb%kX != 0 {
		clear(bp)
	}
	base := p0*p.ldb + j // element (0, 0) of the panel in B
	if p.transB {
		base = j*p.ldb + p0
	}
	k0 := 0
	if full := kb / kX; amxAsmPack && full > 0 && cols == nrX {
		w, src := p.b.addr(base)
		if p.transB {
			p.b.addr(base + (nrX-1)*p.ldb + full*kX - 1) // bounds: the last element read
			amxPackBT(amxKind(p.cvtB), full, src, p.ldb*w, &bp[0])
		} else {
			p.b.addr(base + (full*kX-1)*p.ldb + nrX - 1)
			amxPackBN(amxKind(p.cvtB), full, src, p.ldb*w, &bp[0])
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
