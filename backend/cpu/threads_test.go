package cpu

import (
	"fmt"
	"math"
	"math/rand"
	"testing"

	"github.com/shoggo/shoggo/backend/cpu/gemm"
	"github.com/shoggo/shoggo/internal/parallel"
	"github.com/shoggo/shoggo/tensor"
)

// withThreads runs f with the kernels' worker pool (and the GEMM) set to n
// threads.
func withThreads(n int, f func()) {
	parallel.SetThreads(n)
	gemm.SetThreads(n)
	defer func() {
		parallel.SetThreads(0)
		gemm.SetThreads(0)
	}()
	f()
}

// sameBits fails unless a and b hold identical bits.
func sameBits(t *testing.T, what string, a, b *tensor.Tensor) {
	t.Helper()
	if a.Numel() != b.Numel() {
		t.Fatalf("%s: %d vs %d elements", what, a.Numel(), b.Numel())
	}
	for i := 0; i < a.Numel(); i++ {
		x, y := a.At(i), b.At(i)
		if math.Float64bits(x) != math.Float64bits(y) && !(math.IsNaN(x) && math.IsNaN(y)) {
			t.Fatalf("%s: element %d: %v with 1 thread, %v with more", what, i, x, y)
		}
	}
}

// Every parallel kernel gives the same bits with 1, 2, 3 and 8 threads, in
// float32 and float64, on shapes big enough to be split (several row and
// column blocks, element counts not multiples of 8).
func TestThreadCountInvariance(t *testing.T) {
	r := rand.New(rand.NewSource(77))
	const N, C, V, I = 96, 200, 301, 1100 // N*I > 2 grains of the memory-bound kernels
	src := map[string]*tensor.Tensor{
		"x": randT(r, N, C), "w": randT(r, C), "b": randT(r, C), "dy": randT(r, N, C),
		"h1": randT(r, N, I), "h2": randT(r, N, I), "dh": randT(r, N, I),
		"emb": randT(r, V, C), "lin": randT(r, I, C), "lb": randT(r, I), "ly": randT(r, N, I),
	}
	ids := make([]int32, N)
	for i := range ids {
		ids[i] = int32(r.Intn(7)) // repeated ids: embedding backward reduces
	}
	targets := randTargets(r, N, V)
	for _, dt := range []tensor.DType{tensor.F32, tensor.F64} {
		in := map[string]*tensor.Tensor{}
		for k, v := range src {
			in[k] = conv(v, dt)
		}
		run := func() []*tensor.Tensor {
			var out []*tensor.Tensor
			keep := func(ts ...*tensor.Tensor) { out = append(out, ts...) }
			nt := func(shape ...int) *tensor.Tensor { return tensor.New(dt, shape...) }
			// LayerNorm and RMSNorm, both directions.
			y, mean, rstd := nt(N, C), nt(N), nt(N)
			be.LayerNormForward(y, mean, rstd, in["x"], in["w"], in["b"], 1e-5)
			dx, dw, db := nt(N, C), nt(C), nt(C)
			be.LayerNormBackward(dx, dw, db, in["dy"], in["x"], in["w"], mean, rstd)
			keep(y, mean, rstd, dx, dw, db)
			y2, rstd2 := nt(N, C), nt(N)
			be.RMSNormForward(y2, rstd2, in["x"], in["w"], 1e-6)
			dx2, dw2 := nt(N, C), nt(C)
			be.RMSNormBackward(dx2, dw2, in["dy"], in["x"], in["w"], rstd2)
			keep(y2, rstd2, dx2, dw2)
			// Activations.
			g, dg := nt(N, I), nt(N, I)
			be.GELUForward(g, in["h1"])
			be.GELUBackward(dg, in["dh"], in["h1"])
			s, ds1, ds2 := nt(N, I), nt(N, I), nt(N, I)
			be.SwiGLUForward(s, in["h1"], in["h2"])
			be.SwiGLUBackward(ds1, ds2, in["dh"], in["h1"], in["h2"])
			keep(g, dg, s, ds1, ds2)
			// Elementwise.
			a, ai, sc, cp := nt(N, I), in["h1"].Clone(), in["h2"].Clone(), nt(N, I)
			be.Add(a, in["h1"], in["h2"])
			be.AddInto(ai, in["h2"])
			be.Scale(sc, 0.3)
			be.Copy(cp, in["dh"])
			keep(a, ai, sc, cp)
			// Embedding.
			e := nt(N, C)
			if err := be.EmbeddingForward(e, in["emb"], ids, false); err != nil {
				t.Fatal(err)
			}
			if err := be.EmbeddingForward(e, in["emb"], ids, true); err != nil {
				t.Fatal(err)
			}
			de := nt(V, C)
			be.EmbeddingBackward(de, in["dy"], ids)
			keep(e, de)
			// Linear with bias (bias gradient reduces over rows).
			ly := nt(N, I)
			be.LinearForward(ly, in["x"], in["lin"], in["lb"])
			ldx, ldw, ldb := nt(N, C), nt(I, C), nt(I)
			be.LinearBackward(ldx, ldw, ldb, in["ly"], in["x"], in["lin"])
			keep(ly, ldx, ldw, ldb)
			// Cross-entropy.
			ch, cw := nt(N, C), nt(V, C)
			loss, _, err := be.CrossEntropy(in["x"], in["emb"], targets, 40, 1.0/N, ch, cw)
			if err != nil {
				t.Fatal(err)
			}
			keep(tensor.FromF64([]float64{loss}, 1), ch, cw)
			return out
		}
		var ref []*tensor.Tensor
		withThreads(1, func() { ref = run() })
		for _, n := range []int{2, 3, 8} {
			var got []*tensor.Tensor
			withThreads(n, func() { got = run() })
			for i := range ref {
				sameBits(t, fmt.Sprintf("%s output %d, %d threads", dt, i, n), ref[i], got[i])
			}
		}
	}
}
