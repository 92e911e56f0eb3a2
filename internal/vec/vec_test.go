package vec

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// lengths exercise empty slices, tails only, whole blocks and both.
var lengths = []int{0, 1, 7, 8, 9, 16, 23, 64, 67, 1000}

func randVec(rng *rand.Rand, n int, scale float64) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(rng.NormFloat64() * scale)
	}
	return v
}

// both runs f with the assembly kernels (where the CPU has them) and with
// the Go code.
func both(t *testing.T, f func(t *testing.T, asm bool)) {
	t.Helper()
	saved := UseAsm
	defer func() { UseAsm = saved }()
	for _, asm := range []bool{false, true} {
		if asm && !hasAVX2FMA {
			continue
		}
		UseAsm = asm
		f(t, asm)
	}
}

func relErr(got, want float64) float64 {
	if got == want {
		return 0
	}
	return math.Abs(got-want) / math.Max(math.Abs(want), 1e-30)
}

func TestExpf(t *testing.T) {
	for _, x := range []float32{0, 1, -1, 0.5, -0.3466, 10, -10, 80, -80, 88, -87} {
		if e := relErr(float64(Expf(x)), math.Exp(float64(x))); e > 3e-7 {
			t.Errorf("Expf(%g): relative error %g", x, e)
		}
	}
	if Expf(-88) != 0 || Expf(float32(math.Inf(-1))) != 0 {
		t.Error("Expf below the range should be 0")
	}
	if v := Expf(1000); math.IsInf(float64(v), 0) || v != Expf(88) {
		t.Errorf("Expf(1000) = %g, want Expf(88)", v)
	}
	if v := Expf(float32(math.NaN())); v == v {
		t.Errorf("Expf(NaN) = %g", v)
	}
}

func TestExpSubSumAndMax(t *testing.T) {
	both(t, func(t *testing.T, asm bool) {
		rng := rand.New(rand.NewPCG(1, 2))
		for _, n := range lengths[1:] {
			x := randVec(rng, n, 5)
			x[n/2] = float32(math.Inf(-1))
			want := math.Inf(-1)
			for _, v := range x {
				want = math.Max(want, float64(v))
			}
			m := Max(x)
			if float64(m) != want {
				t.Fatalf("asm=%v n=%d: Max = %g, want %g", asm, n, m, want)
			}
			ref := make([]float64, n)
			var sum float64
			for i, v := range x {
				ref[i] = math.Exp(float64(v - m))
				sum += ref[i]
			}
			s := ExpSubSum(x, m)
			if e := relErr(s, sum); e > 1e-6 {
				t.Errorf("asm=%v n=%d: sum rel err %g", asm, n, e)
			}
			for i := range x {
				if e := math.Abs(float64(x[i]) - ref[i]); e > 3e-7*ref[i]+1e-38 {
					t.Fatalf("asm=%v n=%d: exp[%d] = %g, want %g", asm, n, i, x[i], ref[i])
				}
			}
		}
	})
}

// TestExpSubSum32 (moved from backend/cpu/attn, its user): the assembly
// and the Go code are within 3e-7 relative error (about 2.5 float32 ulp;
// observed 8e-8 for both) of exp over the range the attention softmax
// serves, flush results below the normal range to 0, map -Inf to 0 and 0
// to exactly 1, and return the sum of what they wrote.
func TestExpSubSum32(t *testing.T) {
	both(t, func(t *testing.T, asm bool) {
		const n = 400003 // not a multiple of 8: the scalar tail runs too
		row := make([]float32, n)
		for i := range row {
			row[i] = float32(-90+110*float64(i)/(n-1)) + 0.5 // exp over [-90, 20]; ExpSubSum32 subtracts 0.5
		}
		special := []float32{float32(math.Inf(-1)), -100, -87.4, 0.5}
		copy(row[1000:], special) // inside the vector part
		copy(row[n-4:], special)  // in the scalar tail
		src := slices.Clone(row)
		sum := ExpSubSum32(row, 0.5)
		worst, want := 0.0, 0.0
		for i, x := range src {
			e := math.Exp(float64(x) - 0.5)
			want += float64(row[i])
			if e < 1.1754944e-38 {
				if row[i] != 0 {
					t.Errorf("asm=%v: exp(%g) = %g, want 0", asm, x-0.5, row[i])
				}
				continue
			}
			worst = max(worst, math.Abs(float64(row[i])-e)/e)
			if x == 0.5 && row[i] != 1 {
				t.Errorf("asm=%v: exp(0) = %.9g", asm, row[i])
			}
		}
		if worst > 3e-7 {
			t.Errorf("asm=%v: worst relative error %.3g", asm, worst)
		}
		if math.Abs(float64(sum)-want) > 1e-5*want {
			t.Errorf("asm=%v: sum %g, want %g", asm, sum, want)
		}
		t.Logf("asm=%v: worst relative error %.3g", asm, worst)
	})
}

// The elementwise kernels against float64 formulas, and the assembly
// against the Go code.
func TestActivations(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	n := 203
	x := randVec(rng, n, 3)
	copy(x, []float32{0, -0, 1e-8, -1e-8, 12, -12, 50, -50, 1e4, -1e4, 88, -88})
	u := randVec(rng, n, 1)
	dy := randVec(rng, n, 1)
	gelu := func(v float64) float64 {
		return 0.5 * v * (1 + math.Tanh(0.7978845608028654*(v+0.044715*v*v*v)))
	}
	geluD := func(v float64) float64 {
		th := math.Tanh(0.7978845608028654 * (v + 0.044715*v*v*v))
		return 0.5*(1+th) + 0.5*v*(1-th*th)*0.7978845608028654*(1+3*0.044715*v*v)
	}
	sig := func(v float64) float64 { return 1 / (1 + math.Exp(-v)) }
	type res struct{ gy, gdx, sy, sdg, sdu []float32 }
	var results []res
	both(t, func(t *testing.T, asm bool) {
		var r res
		r.gy = make([]float32, n)
		GELU(r.gy, x)
		r.gdx = make([]float32, n)
		for i := range r.gdx {
			r.gdx[i] = 0.25
		}
		GELUBackward(r.gdx, dy, x)
		r.sy = make([]float32, n)
		SwiGLU(r.sy, x, u)
		r.sdg, r.sdu = make([]float32, n), make([]float32, n)
		SwiGLUBackward(r.sdg, r.sdu, dy, x, u)
		for i := range x {
			v := float64(x[i])
			check := func(name string, got float32, want, scale float64) {
				if d := math.Abs(float64(got) - want); d > 4e-7*scale || math.IsNaN(float64(got)) {
					t.Errorf("asm=%v %s(x=%g) = %g, want %g (diff %g)", asm, name, v, got, want, d)
				}
			}
			check("gelu", r.gy[i], gelu(v), math.Abs(v)+1e-30)
			check("gelu'", r.gdx[i], 0.25+float64(dy[i])*geluD(v), 1+math.Abs(float64(dy[i])*geluD(v))+math.Abs(float64(dy[i])*v))
			s := sig(v)
			check("swiglu", r.sy[i], v*s*float64(u[i]), math.Abs(v*float64(u[i]))+1e-30)
			dsil := s * (1 + v*(1-s))
			check("swiglu dg", r.sdg[i], float64(dy[i]*u[i])*dsil, math.Abs(float64(dy[i]*u[i]))*(1+math.Abs(v)))
			check("swiglu du", r.sdu[i], float64(dy[i])*v*s, math.Abs(float64(dy[i])*v)+1e-30)
		}
		results = append(results, r)
	})
	// In place.
	y := slices.Clone(x)
	GELU(y, y)
	want := make([]float32, n)
	GELU(want, x)
	if !slices.Equal(y, want) {
		t.Error("in-place GELU differs")
	}
	// Nil gradients in SwiGLU.
	dg, du := make([]float32, n), make([]float32, n)
	SwiGLUBackward(dg, nil, dy, x, u)
	SwiGLUBackward(nil, du, dy, x, u)
	ref := results[len(results)-1]
	for i := range dg {
		if math.Abs(float64(dg[i]-ref.sdg[i])) > 1e-6*(1+math.Abs(float64(ref.sdg[i]))) || math.Abs(float64(du[i]-ref.sdu[i])) > 1e-6*(1+math.Abs(float64(ref.sdu[i]))) {
			t.Fatalf("SwiGLUBackward with a nil gradient differs at %d", i)
		}
	}
}

func TestExactKernels(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	both(t, func(t *testing.T, asm bool) {
		for _, n := range lengths {
			a, b := randVec(rng, n, 1), randVec(rng, n, 1)
			y := make([]float32, n)
			Add(y, a, b)
			d := slices.Clone(a)
			AddInto(d, b)
			s := slices.Clone(a)
			Scale(s, 0.37)
			acc := make([]float64, n)
			for i := range acc {
				acc[i] = float64(i) * 0.1
			}
			AccumF64(acc, a)
			for i := range n {
				if y[i] != a[i]+b[i] || d[i] != a[i]+b[i] || s[i] != a[i]*0.37 || acc[i] != float64(i)*0.1+float64(a[i]) {
					t.Fatalf("asm=%v n=%d: element %d differs", asm, n, i)
				}
			}
			var ss float64
			for _, v := range a {
				ss += float64(v) * float64(v)
			}
			if e := relErr(SumSquares(a), ss); e > 1e-14 {
				t.Errorf("asm=%v n=%d: SumSquares rel err %g", asm, n, e)
			}
		}
	})
}

// The AdamW kernel gives the same bits with and without assembly, on both
// lerp branches and with decay off.
func TestAdamWBitIdentical(t *testing.T) {
	if !hasAVX2FMA {
		t.Skip("no AVX2/FMA")
	}
	rng := rand.New(rand.NewPCG(7, 8))
	for _, k := range []AdamW{
		{Decay: 0.999, LerpW: 0.1, LerpWc: 0.9, Beta2: 0.999, OneMinusB2: 0.001, Bc2Sqrt: 0.0316, Eps: 1e-8, NegStep: -0.01, LerpSmall: true},
		{Decay: 1, LerpW: 0.7, LerpWc: 0.3, Beta2: 0.99, OneMinusB2: 0.01, Bc2Sqrt: 0.5, Eps: 1e-6, NegStep: -0.2, LerpSmall: false},
	} {
		n := 1037
		w, g, m, v := randVec(rng, n, 1), randVec(rng, n, 0.01), randVec(rng, n, 0.01), randVec(rng, n, 1e-4)
		for i := range v {
			v[i] = float32(math.Abs(float64(v[i])))
		}
		var outs [2][3][]float32
		for j, asm := range []bool{false, true} {
			saved := UseAsm
			UseAsm = asm
			ww, mm, vv := slices.Clone(w), slices.Clone(m), slices.Clone(v)
			for range 3 {
				k.Update(ww, g, mm, vv)
			}
			UseAsm = saved
			outs[j] = [3][]float32{ww, mm, vv}
		}
		for q := range 3 {
			for i := range n {
				if math.Float32bits(outs[0][q][i]) != math.Float32bits(outs[1][q][i]) {
					t.Fatalf("%+v: array %d element %d: Go %g, asm %g", k, q, i, outs[0][q][i], outs[1][q][i])
				}
			}
		}
	}
}

// A kernel's result for an element does not depend on where the slice it
// is handed starts, as long as the start is a multiple of 8.
func TestSplitInvariance(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	n := 1001
	x, dy := randVec(rng, n, 2), randVec(rng, n, 1)
	whole := make([]float32, n)
	GELU(whole, x)
	wholeD := make([]float32, n)
	GELUBackward(wholeD, dy, x)
	parts := make([]float32, n)
	partsD := make([]float32, n)
	for lo := 0; lo < n; lo += 96 {
		hi := min(lo+96, n)
		GELU(parts[lo:hi], x[lo:hi])
		GELUBackward(partsD[lo:hi], dy[lo:hi], x[lo:hi])
	}
	if !slices.Equal(whole, parts) || !slices.Equal(wholeD, partsD) {
		t.Error("GELU depends on the split")
	}
}

func BenchmarkGELU(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	x := randVec(rng, 1<<16, 2)
	y := make([]float32, len(x))
	b.SetBytes(int64(4 * len(x)))
	for b.Loop() {
		GELU(y, x)
	}
}

func BenchmarkGELUBackward(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	x, dy := randVec(rng, 1<<16, 2), randVec(rng, 1<<16, 1)
	dx := make([]float32, len(x))
	b.SetBytes(int64(4 * len(x)))
	for b.Loop() {
		GELUBackward(dx, dy, x)
	}
}

func BenchmarkExpSubSum(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	x := randVec(rng, 50257, 2)
	y := make([]float32, len(x))
	b.SetBytes(int64(4 * len(x)))
	for b.Loop() {
		copy(y, x)
		ExpSubSum(y, Max(y))
	}
}
