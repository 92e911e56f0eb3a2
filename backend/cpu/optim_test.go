package cpu

import (
	"math"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/shoggo/shoggo/backend"
	"github.com/shoggo/shoggo/tensor"
)

func randF32s(rng *rand.Rand, sizes ...int) []*tensor.Tensor {
	out := make([]*tensor.Tensor, len(sizes))
	for i, n := range sizes {
		out[i] = randF32(rng, n)
	}
	return out
}

func cloneAll(ts []*tensor.Tensor) []*tensor.Tensor {
	out := make([]*tensor.Tensor, len(ts))
	for i, t := range ts {
		out[i] = t.Clone()
	}
	return out
}

// adamRef is the scalar AdamW update of backend.AdamWUpdate's comment,
// each product rounded to float32 (no fused multiply-add).
func adamRef(w, g, m, v float32, u backend.AdamWUpdate, decay bool) (float32, float32, float32) {
	if decay {
		w = float32(w * u.Decay)
	}
	if u.LerpSmall {
		m = m + float32(u.LerpW*(g-m))
	} else {
		m = g - float32((g-m)*u.LerpWc)
	}
	v = float32(v*u.Beta2) + float32(float32(u.OneMinusB2*g)*g)
	d := float32(math.Sqrt(float64(v)))/u.Bc2Sqrt + u.Eps
	return w + float32(u.NegStep*m)/d, m, v
}

// TestAdamWOp: the AdamW op matches the scalar reference bit for bit (both
// lerp forms, decay on some tensors only, tensors of 0 to several chunks),
// for 1 and 4 workers.
func TestAdamWOp(t *testing.T) {
	c := New()
	rng := rand.New(rand.NewPCG(2, 3))
	sizes := []int{3*optimChunk + 5, 0, 7, optimChunk}
	for _, small := range []bool{true, false} {
		u := backend.AdamWUpdate{Decay: 0.999, LerpW: 0.1, LerpWc: 0.9, Beta2: 0.999, OneMinusB2: 0.001,
			Bc2Sqrt: 0.05, Eps: 1e-8, NegStep: -0.01, LerpSmall: small}
		if !small {
			u.LerpW, u.LerpWc = 0.7, 0.3
		}
		w, g, m, v := randF32s(rng, sizes...), randF32s(rng, sizes...), randF32s(rng, sizes...), randF32s(rng, sizes...)
		for _, x := range v {
			for i := range x.F32 {
				x.F32[i] *= x.F32[i]
			}
		}
		decay := []bool{true, false, true, false}
		var results [][]*tensor.Tensor
		for _, workers := range []int{1, 4} {
			ww, mm, vv := cloneAll(w), cloneAll(m), cloneAll(v)
			c.AdamW(ww, g, mm, vv, decay, u, workers)
			results = append(results, ww, mm, vv)
		}
		for i := range w {
			for j := range w[i].F32 {
				rw, rm, rv := adamRef(w[i].F32[j], g[i].F32[j], m[i].F32[j], v[i].F32[j], u, decay[i])
				for k := 0; k < 6; k += 3 {
					gw, gm, gv := results[k][i].F32[j], results[k+1][i].F32[j], results[k+2][i].F32[j]
					if math.Float32bits(gw) != math.Float32bits(rw) || math.Float32bits(gm) != math.Float32bits(rm) || math.Float32bits(gv) != math.Float32bits(rv) {
						t.Fatalf("small=%v tensor %d elem %d: (w,m,v) = (%v,%v,%v), reference (%v,%v,%v)", small, i, j, gw, gm, gv, rw, rm, rv)
					}
				}
			}
		}
	}
	mustPanic(t, func() {
		c.AdamW(randF32s(rng, 3), randF32s(rng, 4), randF32s(rng, 3), randF32s(rng, 3), []bool{false}, backend.AdamWUpdate{}, 1)
	}, "AdamW")
}

// TestSumSquaresScaleAll: SumSquares agrees with a float64 sum to 1e-12
// relative and gives the same bits for 1 and 4 threads; ScaleAll multiplies
// by float32(s) exactly; F64 tensors panic.
func TestSumSquaresScaleAll(t *testing.T) {
	c := New()
	rng := rand.New(rand.NewPCG(4, 5))
	ts := randF32s(rng, 5*optimChunk+3, 1, 0, 999)
	var want float64
	for _, x := range ts {
		for _, v := range x.F32 {
			want += float64(v) * float64(v)
		}
	}
	prev := runtime.GOMAXPROCS(1)
	s1 := c.SumSquares(ts)
	runtime.GOMAXPROCS(4)
	s4 := c.SumSquares(ts)
	runtime.GOMAXPROCS(prev)
	if math.Float64bits(s1) != math.Float64bits(s4) {
		t.Errorf("SumSquares: %v with 1 thread, %v with 4", s1, s4)
	}
	if math.Abs(s1-want) > 1e-12*want {
		t.Errorf("SumSquares = %v, want %v", s1, want)
	}
	orig := cloneAll(ts)
	const s = 0.3
	c.ScaleAll(ts, s)
	for i := range ts {
		for j, v := range ts[i].F32 {
			if w := orig[i].F32[j] * float32(s); v != w {
				t.Fatalf("ScaleAll: tensor %d elem %d = %v, want %v", i, j, v, w)
			}
		}
	}
	mustPanic(t, func() { c.SumSquares([]*tensor.Tensor{tensor.New(tensor.F64, 3)}) }, "SumSquares", "F32")
}
