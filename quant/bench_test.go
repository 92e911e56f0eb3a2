package quant

import (
	"fmt"

	"math/rand/v2"
	"testing"

	"github.com/shoggo/shoggo/backend/cpu/gemm"
	"github.com/shoggo/shoggo/tensor"
)

// BenchmarkLinearForward compares the float32 linear (gemm.Sgemm, as the CPU
// backend's LinearForward runs it) with the fused quantized forwards, for
// decoding (N=1) and a batch (N=256), at (out, in) = 2048x2048 and
// 5504x2048 (Qwen1.5-1.8B's attention and MLP up/gate projections):
//
//	go test -run '^$' -bench LinearForward ./quant/
//
// The reported MB/s is weight bytes read per second.
func BenchmarkLinearForward(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	for _, sh := range [][2]int{{2048, 2048}, {5504, 2048}} {
		out, in := sh[0], sh[1]
		w := randTensor(rng, 0.02, out, in)
		for _, N := range []int{1, 256} {
			x := randTensor(rng, 1, N, in)
			y := tensor.New(tensor.F32, N, out)
			b.Run(fmt.Sprintf("%dx%d/N=%d/fp32", out, in, N), func(b *testing.B) {
				b.SetBytes(int64(4 * out * in))
				for b.Loop() {
					gemm.Sgemm(false, true, N, out, in, 1, x.F32, in, w.F32, in, 0, y.F32, out)
				}
			})
			for _, c := range []layerCase{
				{NF4, Options{}},
				{NF4, Options{DoubleQuant: true}},
				{Int8, Options{}},
				{Int4, Options{GroupSize: 128}},
				{Int4, Options{GroupSize: 32, Asymmetric: true}},
			} {
				l, err := QuantizeLinear(w, nil, c.format, c.opts)
				if err != nil {
					b.Fatal(err)
				}
				b.Run(fmt.Sprintf("%dx%d/N=%d/%v", out, in, N, c), func(b *testing.B) {
					b.SetBytes(int64(l.W.StorageBytes()))
					for b.Loop() {
						l.Forward(y, x)
					}
				})
			}
		}
	}
}

// BenchmarkLinearBackward: dx += dy W for N=256.
func BenchmarkLinearBackward(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	const out, in, N = 2048, 2048, 256
	w := randTensor(rng, 0.02, out, in)
	dy := randTensor(rng, 1, N, out)
	dx := tensor.New(tensor.F32, N, in)
	b.Run("fp32", func(b *testing.B) {
		for b.Loop() {
			gemm.Sgemm(false, false, N, in, out, 1, dy.F32, out, w.F32, in, 1, dx.F32, in)
		}
	})
	for _, c := range []layerCase{{NF4, Options{DoubleQuant: true}}, {Int8, Options{}}, {Int4, Options{}}} {
		l, _ := QuantizeLinear(w, nil, c.format, c.opts)
		b.Run(c.String(), func(b *testing.B) {
			for b.Loop() {
				l.Backward(dx, dy, nil)
			}
		})
	}
}
