package gemm

import (
	"fmt"
	"unsafe"

	"github.com/shoggo/shoggo/internal/cpu"
)

// The fast float32 GEMM, BLIS/GotoBLAS style:
//
//	for jc over n in blocks of nc                  (columns of C)
//	  for pc over k in blocks of kc                (the summation)
//	    for ic over m in blocks of mc              (rows of C)
//	      pack alpha*op(A)[ic:ic+mc, pc:pc+kc] into mr x kc panels
//	      for jr over the nr-column panels of op(B)[pc:pc+kc, jc:jc+nc]
//	        (first ic block only: pack the panel, prefetch the next one's source)
//	        for ir over the A panels               (the B panel, kc*nr*4 bytes, stays in L1;
//	          the mr x nr micro-kernel              the A block stays in L2)
//
// Packing handles the four transpose layouts and the zero padding of edge
// panels, so one micro-kernel serves all. Edge tiles (fewer than mr rows or
// nr columns of C) are computed into a small temporary tile and written
// back with the same arithmetic as full tiles. B is packed panel by panel
// during the first ic block, with the next panel's source prefetched while
// the current one is in use, so that packing's memory traffic overlaps the
// arithmetic instead of preceding it (+4% on the NN shapes).
//
// The k blocking depends on k alone, and a tile's summation over one k
// block happens inside one kernel call, so every element of C is computed
// by the same sequence of operations however the work is split among
// threads: results are bit-identical for any thread count.

const (
	mr = 6  // rows of the micro-tile
	nr = 16 // columns of the micro-tile (two ymm registers)
)

// Cache blocking, chosen for Zen3/Zen4 (32 KiB L1d, 512 KiB-1 MiB L2 per
// core, shared L3): a kc x nr panel of B (16 KiB) stays in L1 while the
// micro-kernel runs down an mc x kc block of A (144 KiB) held in L2; the
// kc x nc block of B (1 MiB) lives in L2/L3. Measured on the GPT-2 shapes
// (one thread, thread CPU time): mc in 72..240 and kc in 192..512 are all
// within noise of each other; nc = 1024 beats 4080 by up to 8% (LM head)
// and 512 by 1-4%. Variables so tests can shrink them.
var (
	mcMax = 144  // multiple of mr
	kcMax = 256  //
	ncMax = 1024 // multiple of nr
)

// hasAsm reports whether the assembly micro-kernel can run here: amd64
// with AVX2 and FMA.
var hasAsm = cpu.HasAVX2FMA()

// useAsm selects the assembly micro-kernel. It is false where the CPU lacks
// AVX2/FMA and when SHOGGO_NOASM=1; tests toggle it to check the Go kernel.
var useAsm = hasAsm && !cpu.NoAsm

// problem is one GEMM call, or the part of one that a thread computes.
// Sgemm's operands are float32 at F32 precision (cvtA = cvtB = cvtNone);
// GemmMixed's are converted while they are packed (mixed.go).
type problem struct {
	transA, transB bool
	m, n, k        int
	alpha, beta    float32
	a, b           Operand
	cvtA, cvtB     int // conversion of each operand (cvt* in mixed.go)
	c              []float32
	lda, ldb, ldc  int
	bf16           bool // the bf16 path (bf16.go)
	amx            bool // on it, the AMX kernel (else VDPBF16PS)
}

// tile returns the rows and columns of the problem's micro-tile.
func (p *problem) tile() (int, int) {
	if p.bf16 {
		return mrX, nrX
	}
	return mr, nr
}

// buffers holds one thread's packing buffers.
type buffers struct {
	a, b   []float32
	t      [mr * nr]float32
	ta, tb []float32 // GemmMixed: converted source blocks (mixed.go)
	h      bf16Buffers
}

// aligned returns a slice of n floats whose first element is 64-byte aligned.
func aligned(n int) []float32 {
	s := make([]float32, n+16)
	off := int(uintptr(unsafe.Pointer(&s[0]))&63) / 4
	if off != 0 {
		off = 16 - off
	}
	return s[off : off+n : off+n]
}

func (buf *buffers) ensure(na, nb int) {
	if len(buf.a) < na+2 { // packA6N writes 2 floats past the last panel
		buf.a = aligned(na + 2)
	}
	if len(buf.b) < nb {
		buf.b = aligned(nb)
	}
}

// blockSize splits total into the fewest blocks of at most max and returns
// their (equal, rounded up to a multiple of unit) size.
func blockSize(total, max, unit int) int {
	nb := (total + max - 1) / max
	size := (total + nb - 1) / nb
	return (size + unit - 1) / unit * unit
}

// betaMode maps beta to the micro-kernel's write mode.
func betaMode(beta float32) int {
	switch beta {
	case 0:
		return 0
	case 1:
		return 1
	}
	return 2
}

// run computes the problem on the calling goroutine with buf's buffers.
func (p *problem) run(buf *buffers) {
	if p.bf16 {
		p.runBF16(buf)
		return
	}
	m, n, k := p.m, p.n, p.k
	kc := blockSize(k, kcMax, 1)
	mc := blockSize(m, mcMax, mr)
	nc := blockSize(n, ncMax, nr)
	buf.ensure(mc*kc, nc*kc)
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
				p.packA(buf, ic, mb, pc, kb)
				// The first ic block packs the B panels as it goes.
				macroKernel(mb, nb, kb, buf, p.c[ic*p.ldc+jc:], p.ldc, beta, mode, p, pc, jc, ic == 0)
			}
		}
	}
}

// macroKernel runs the micro-kernel over an mb x nb block of C from the
// packed A block and B block in buf (kb deep). With packB it first packs
// each B panel, op(B)[p0:p0+kb, j0+jr:j0+jr+nr], from p, and while a
// panel is in use it prefetches the source of the next one, so that the
// memory traffic of packing overlaps the arithmetic.
func macroKernel(mb, nb, kb int, buf *buffers, c []float32, ldc int, beta float32, mode int, p *problem, p0, j0 int, packNow bool) {
	asm := useAsm
	steps := (mb + mr - 1) / mr
	for jr := 0; jr < nb; jr += nr {
		cols := min(nr, nb-jr)
		bp := buf.b[jr*kb : jr*kb+kb*nr]
		// Source rows of the next panel (16 rows of B^T, or kb rows of B),
		// prefetched a few per tile.
		var next unsafe.Pointer
		var nextRows, nextStride, nextBytes, perStep int
		if packNow {
			p.packB(buf, bp, p0, kb, j0+jr, cols)
			if jn := jr + nr; asm && jn < nb {
				next, nextRows, nextStride, nextBytes = p.nextB(p0, kb, j0+jn, min(nr, nb-jn))
				perStep = (nextRows + steps - 1) / steps
			}
		}
		for ir := 0; ir < mb; ir += mr {
			if nextRows > 0 {
				r := min(perStep, nextRows)
				prefetchRows((*float32)(next), nextStride, r, nextBytes)
				nextRows -= r
				if nextRows > 0 {
					next = unsafe.Add(next, r*nextStride)
				}
			}
			rows := min(mr, mb-ir)
			ap := buf.a[ir*kb : ir*kb+kb*mr]
			ct := c[ir*ldc+jr:]
			if rows == mr && cols == nr {
				if asm {
					_ = ct[(mr-1)*ldc+nr-1] // the kernel writes this far
					kernel6x16(kb, &ap[0], &bp[0], &ct[0], ldc, beta, mode)
				} else {
					kernelGo(kb, ap, bp, ct, ldc, beta, mode)
				}
				continue
			}
			if asm {
				kernel6x16(kb, &ap[0], &bp[0], &buf.t[0], nr, 0, 0)
			} else {
				tileGo(kb, ap, bp, &buf.t)
			}
			writeTile(&buf.t, ct, ldc, rows, cols, beta, mode)
		}
	}
}

// scaleC sets C = beta*C (C = 0 when beta == 0, ignoring NaN).
func scaleC(m, n int, beta float32, c []float32, ldc int) {
	for i := 0; i < m; i++ {
		row := c[i*ldc : i*ldc+n]
		switch beta {
		case 0:
			clear(row)
		case 1:
		default:
			for j := range row {
				row[j] *= beta
			}
		}
	}
}

// checkMatrix panics unless s can hold a rows x cols row-major matrix with
// row stride ld.
func checkMatrix(name string, s []float32, rows, cols, ld int) {
	checkLen(name, len(s), rows, cols, ld)
}

func checkLen(name string, n, rows, cols, ld int) {
	if rows > 1 && ld < cols {
		panic(fmt.Sprintf("gemm: ld%s = %d < %d columns", name, ld, cols))
	}
	if need := (rows-1)*ld + cols; n < need {
		panic(fmt.Sprintf("gemm: %s has %d elements, a %dx%d matrix with stride %d needs %d", name, n, rows, cols, ld, need))
	}
}

func sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if m < 0 || n < 0 || k < 0 {
		panic(fmt.Sprintf("gemm: negative dimension m=%d n=%d k=%d", m, n, k))
	}
	if m == 0 || n == 0 {
		return
	}
	checkMatrix("c", c, m, n, ldc)
	if k == 0 || alpha == 0 {
		scaleC(m, n, beta, c, ldc)
		return
	}
	if transA {
		checkMatrix("a", a, k, m, lda)
	} else {
		checkMatrix("a", a, m, k, lda)
	}
	if transB {
		checkMatrix("b", b, n, k, ldb)
	} else {
		checkMatrix("b", b, k, n, ldb)
	}
	p := problem{transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, beta: beta,
		a: Operand{F32: a}, b: Operand{F32: b}, c: c, lda: lda, ldb: ldb, ldc: ldc}
	parallel(&p)
}
