package gemm

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/shoggo/shoggo/internal/cpu"
)

// benchShapes are GPT-2 124M's GEMMs at B=4, T=64 (256 token rows), the
// same table as bench/gemm/shapes.txt. A linear layer stores W as
// (out, in): forward y = x W^T (NT), backward dX = dY W (NN) and
// dW += dY^T x (TN, beta = 1).
var benchShapes = []struct {
	name           string
	transA, transB bool
	m, n, k        int
	beta           float32
}{
	{"qkv_fwd", false, true, 256, 2304, 768, 0},
	{"attproj_fwd", false, true, 256, 768, 768, 0},
	{"attproj_nn", false, false, 256, 768, 768, 0},
	{"fc_fwd", false, true, 256, 3072, 768, 0},
	{"fcproj_fwd", false, true, 256, 768, 3072, 0},
	{"lmhead_fwd", false, true, 256, 50257, 768, 0},
	{"qkv_dx", false, false, 256, 768, 2304, 0},
	{"fc_dx", false, false, 256, 768, 3072, 0},
	{"fcproj_dx", false, false, 256, 3072, 768, 0},
	{"lmhead_dx", false, false, 256, 768, 50257, 0},
	{"qkv_dw", true, false, 2304, 768, 256, 1},
	{"attproj_dw", true, false, 768, 768, 256, 1},
	{"fc_dw", true, false, 3072, 768, 256, 1},
	{"fcproj_dw", true, false, 768, 3072, 256, 1},
	{"lmhead_dw", true, false, 50257, 768, 256, 1},
	{"attn_head", false, true, 64, 64, 64, 0},
}

// BenchmarkSgemm reports GFLOP/s (2mnk per call) for each model shape at 1
// and 2 threads:
//
//	go test -run '^$' -bench Sgemm ./backend/cpu/gemm/
func BenchmarkSgemm(b *testing.B) {
	defer SetThreads(0)
	rng := rand.New(rand.NewPCG(1, 1))
	for _, s := range benchShapes {
		lda, ldb, ldc := s.k, s.n, s.n
		if s.transA {
			lda = s.m
		}
		if s.transB {
			ldb = s.k
		}
		a := randMatrix(rng, s.m, s.k, s.k)
		bm := randMatrix(rng, s.k, s.n, s.n)
		c := randMatrix(rng, s.m, s.n, s.n)
		for _, th := range []int{1, 2} {
			b.Run(fmt.Sprintf("%s/threads=%d", s.name, th), func(b *testing.B) {
				SetThreads(th)
				for b.Loop() {
					Sgemm(s.transA, s.transB, s.m, s.n, s.k, 1, a, lda, bm, ldb, s.beta, c, ldc)
				}
				b.ReportMetric(2*float64(s.m)*float64(s.n)*float64(s.k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
	}
}

// BenchmarkSgemmGo is BenchmarkSgemm's square case on the pure-Go kernel.
func BenchmarkSgemmGo(b *testing.B) {
	defer func(v bool) { useAsm = v }(useAsm)
	useAsm = false
	rng := rand.New(rand.NewPCG(1, 1))
	const n = 512
	a, bm, c := randMatrix(rng, n, n, n), randMatrix(rng, n, n, n), randMatrix(rng, n, n, n)
	for _, th := range []int{1, 2} {
		b.Run(fmt.Sprintf("512/threads=%d", th), func(b *testing.B) {
			SetThreads(th)
			defer SetThreads(0)
			for b.Loop() {
				Sgemm(false, false, n, n, n, 1, a, n, bm, n, 0, c, n)
			}
			b.ReportMetric(2*n*n*n*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}

// BenchmarkSgemmSmall compares Sgemm with Ref on small square products at
// 1 and 2 threads, to place the single-thread and Ref cut-offs.
func BenchmarkSgemmSmall(b *testing.B) {
	defer SetThreads(0)
	rng := rand.New(rand.NewPCG(1, 1))
	for _, n := range []int{4, 8, 16, 32, 48, 64, 96, 128, 192} {
		a, bm, c := randMatrix(rng, n, n, n), randMatrix(rng, n, n, n), randMatrix(rng, n, n, n)
		flops := 2 * float64(n*n*n)
		b.Run(fmt.Sprintf("n=%d/ref", n), func(b *testing.B) {
			for b.Loop() {
				Ref(false, true, n, n, n, 1, a, n, bm, n, 0, c, n)
			}
			b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
		for _, th := range []int{1, 2} {
			b.Run(fmt.Sprintf("n=%d/threads=%d", n, th), func(b *testing.B) {
				SetThreads(th)
				defer func(w int) { parMinWork = w }(parMinWork)
				parMinWork = 0
				for b.Loop() {
					Sgemm(false, true, n, n, n, 1, a, n, bm, n, 0, c, n)
				}
				b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
	}
}

// BenchmarkMicroKernel times the micro-kernels alone on packed panels that
// stay in cache (a block of A against one B panel, kc = 256), by the
// thread's CPU time: the float32 AVX2/FMA 6x16 kernel and the bf16 path's
// VDPBF16PS and AMX 32x32 kernels.
func BenchmarkMicroKernel(b *testing.B) {
	const kc, tiles = 256, 24
	c := make([]float32, mr*nr*tiles)
	b.Run("fp32-6x16", func(b *testing.B) {
		if !hasAsm {
			b.Skip("no AVX2/FMA")
		}
		ap, bp := aligned(kc*mr*tiles+2), aligned(kc*nr)
		for i := range ap {
			ap[i] = 0.5
		}
		for i := range bp {
			bp[i] = 0.25
		}
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		t0 := threadCPU()
		for b.Loop() {
			for t := 0; t < tiles; t++ {
				kernel6x16(kc, &ap[t*kc*mr], &bp[0], &c[t*mr*nr], nr, 0, 0)
			}
		}
		b.ReportMetric(2*mr*nr*kc*tiles*float64(b.N)/(threadCPU()-t0)/1e9, "GFLOP/s-cpu")
	})
	// The bf16 kernels on 32x32 blocks: a block of A panels against one B panel.
	const steps, panels = kc / kX, 6
	ap, bp := alignedU16(panels*steps*1024), alignedU16(steps*1024)
	for i := range ap {
		ap[i] = 0x3f00
	}
	for i := range bp {
		bp[i] = 0x3e80
	}
	cb := make([]float32, panels*mrX*nrX)
	b.Run("dpbf16-32x32", func(b *testing.B) {
		if !hasBF16 {
			b.Skip("no AVX512_BF16")
		}
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		t0 := threadCPU()
		for b.Loop() {
			for q := 0; q < panels; q++ {
				kernelDPB(steps, &ap[q*steps*1024], &bp[0], &cb[q*mrX*nrX], nrX, 1, 0, 0)
			}
		}
		b.ReportMetric(2*mrX*nrX*kc*panels*float64(b.N)/(threadCPU()-t0)/1e9, "GFLOP/s-cpu")
	})
	b.Run("amx-32x32", func(b *testing.B) {
		if !hasAMX || !cpu.EnableAMX() {
			b.Skip("no AMX-BF16")
		}
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		t0 := threadCPU()
		for b.Loop() {
			kernelAMX(&amxConfig[0], steps, &ap[0], panels, &bp[0], &cb[0], nrX*4, mrX*nrX*4, 0)
		}
		b.ReportMetric(2*mrX*nrX*kc*panels*float64(b.N)/(threadCPU()-t0)/1e9, "GFLOP/s-cpu")
	})
}
