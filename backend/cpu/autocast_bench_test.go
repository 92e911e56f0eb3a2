package cpu

import (
	"math/rand"
	"testing"

	"github.com/shoggo/shoggo/backend"
	"github.com/shoggo/shoggo/tensor"
)

// Benchmarks of autocast calls against the float32 op on GPT-2 124M shapes
// (B*T = 1024 rows, C = 768): the conversion overhead of the 16-bit paths
// around the GEMMs. go test -run - -bench Autocast ./backend/cpu

func benchPrec(b *testing.B, name string, f func(b *testing.B, dt tensor.DType)) {
	for _, dt := range []tensor.DType{tensor.F32, tensor.BF16, tensor.F16} {
		b.Run(name+"/"+dt.String(), func(b *testing.B) { f(b, dt) })
	}
}

func BenchmarkAutocastLinear(b *testing.B) {
	r := rand.New(rand.NewSource(1))
	const N, in, out = 1024, 768, 3072
	w, bias := conv(randT(r, out, in), tensor.F32), conv(randT(r, out), tensor.F32)
	xs := randT(r, N, in)
	benchPrec(b, "forward", func(b *testing.B, dt tensor.DType) {
		x, y := conv(xs, dt), tensor.New(dt, N, out)
		b.SetBytes(2 * N * in * out) // flops, reported as MB/s = MFLOP/s
		for b.Loop() {
			be.LinearForward(y, x, w, bias)
		}
	})
	benchPrec(b, "backward", func(b *testing.B, dt tensor.DType) {
		x, dy := conv(xs, dt), conv(randT(r, N, out), tensor.F32)
		dx, dw, db := tensor.New(tensor.F32, N, in), tensor.New(tensor.F32, out, in), tensor.New(tensor.F32, out)
		b.SetBytes(4 * N * in * out)
		for b.Loop() {
			be.LinearBackward(dx, dw, db, dy, x, w)
		}
	})
}

func BenchmarkAutocastAttention(b *testing.B) {
	r := rand.New(rand.NewSource(2))
	p := backend.AttnParams{B: 4, T: 256, NH: 12, KVH: 12, HS: 64}
	qs, ks, vs := randT(r, 4, 256, 12, 64), randT(r, 4, 256, 12, 64), randT(r, 4, 256, 12, 64)
	benchPrec(b, "forward+backward", func(b *testing.B, dt tensor.DType) {
		q, k, v := conv(qs, dt), conv(ks, dt), conv(vs, dt)
		out, lse := tensor.New(dt, 4, 256, 12, 64), tensor.New(tensor.F32, 4*12*256)
		dout := conv(randT(r, 4, 256, 12, 64), tensor.F32)
		dq, dk, dv := tensor.New(tensor.F32, 4, 256, 12, 64), tensor.New(tensor.F32, 4, 256, 12, 64), tensor.New(tensor.F32, 4, 256, 12, 64)
		for b.Loop() {
			be.AttentionForward(out, lse, q, k, v, p)
			be.AttentionBackward(dq, dk, dv, dout, q, k, v, out, lse, p)
		}
	})
}

func BenchmarkAutocastElementwise(b *testing.B) {
	r := rand.New(rand.NewSource(3))
	const N, C, I = 1024, 768, 3072
	xs, ws := randT(r, N, C), randT(r, C)
	benchPrec(b, "layernorm", func(b *testing.B, dt tensor.DType) {
		x, y := conv(xs, tensor.F32), tensor.New(dt, N, C)
		mean, rstd := tensor.New(tensor.F32, N), tensor.New(tensor.F32, N)
		w := conv(ws, tensor.F32)
		for b.Loop() {
			be.LayerNormForward(y, mean, rstd, x, w, w, 1e-5)
		}
	})
	hs := randT(r, N, I)
	benchPrec(b, "gelu", func(b *testing.B, dt tensor.DType) {
		x, y := conv(hs, dt), tensor.New(dt, N, I)
		for b.Loop() {
			be.GELUForward(y, x)
		}
	})
	benchPrec(b, "add", func(b *testing.B, dt tensor.DType) {
		a, y := conv(xs, tensor.F32), tensor.New(tensor.F32, N, C)
		x := conv(xs, dt)
		for b.Loop() {
			be.Add(y, a, x)
		}
	})
}

func BenchmarkAutocastCrossEntropy(b *testing.B) {
	r := rand.New(rand.NewSource(4))
	const N, C, V = 256, 768, 8192
	hs, w := randT(r, N, C), conv(scaledT(r, 0.05, V, C), tensor.F32)
	targets := make([]int32, N)
	for i := range targets {
		targets[i] = int32(r.Intn(V))
	}
	benchPrec(b, "loss+grads", func(b *testing.B, dt tensor.DType) {
		h := conv(hs, dt)
		dh, dw := tensor.New(tensor.F32, N, C), tensor.New(tensor.F32, V, C)
		for b.Loop() {
			be.CrossEntropy(h, w, targets, 64, 1.0/N, dh, dw)
		}
	})
}
