package optim

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/shoggo/shoggo/tensor"
)

func clipGrads() []*tensor.Tensor {
	// Norm sqrt(9+16+144) = 13 exactly.
	return []*tensor.Tensor{
		tensor.FromF32([]float32{3, 0, -4}, 3),
		tensor.FromF32([]float32{0, 12}, 1, 2),
	}
}

func TestClipGradNormBelow(t *testing.T) {
	for _, maxNorm := range []float64{13.01, 100, 0, -1} {
		g := clipGrads()
		norm := ClipGradNorm(g, maxNorm)
		if norm != 13 {
			t.Errorf("maxNorm %v: norm = %v, want 13", maxNorm, norm)
		}
		want := clipGrads()
		for i := range g {
			for j, x := range g[i].F32 {
				if x != want[i].F32[j] {
					t.Errorf("maxNorm %v: grad %d[%d] = %v changed from %v", maxNorm, i, j, x, want[i].F32[j])
				}
			}
		}
	}
}

func TestClipGradNormAbove(t *testing.T) {
	for _, maxNorm := range []float64{1, 6.5, 12.99} {
		g := clipGrads()
		norm := ClipGradNorm(g, maxNorm)
		if norm != 13 {
			t.Errorf("maxNorm %v: norm = %v, want 13", maxNorm, norm)
		}
		coef := float32(maxNorm / (13 + 1e-6))
		want := clipGrads()
		after := 0.0
		for i := range g {
			for j, x := range g[i].F32 {
				if w := want[i].F32[j] * coef; x != w {
					t.Errorf("maxNorm %v: grad %d[%d] = %v, want %v", maxNorm, i, j, x, w)
				}
				after += float64(x) * float64(x)
			}
		}
		if n := math.Sqrt(after); math.Abs(n-maxNorm) > 1e-6*maxNorm {
			t.Errorf("maxNorm %v: norm after clipping %v", maxNorm, n)
		}
	}
}

func TestClipGradNormNonFinite(t *testing.T) {
	for _, bad := range []float32{float32(math.NaN()), float32(math.Inf(-1))} {
		g := clipGrads()
		g[1].F32[0] = bad
		norm := ClipGradNorm(g, 1)
		if !math.IsNaN(norm) && !math.IsInf(norm, 1) {
			t.Errorf("bad value %v: norm = %v, want NaN or +Inf", bad, norm)
		}
		want := clipGrads()
		want[1].F32[0] = bad
		for i := range g {
			for j, x := range g[i].F32 {
				if math.Float32bits(x) != math.Float32bits(want[i].F32[j]) {
					t.Errorf("bad value %v: grad %d[%d] = %v modified", bad, i, j, x)
				}
			}
		}
	}
	// Huge but finite float32 values do not overflow the float64 sum.
	g := []*tensor.Tensor{tensor.FromF32([]float32{math.MaxFloat32, math.MaxFloat32}, 2)}
	if n := ClipGradNorm(g, 1); math.Abs(n/(math.MaxFloat32*math.Sqrt2)-1) > 1e-12 {
		t.Errorf("norm of huge grads = %v", n)
	}
}

// A gradient set big enough for the parallel path gives the float64 norm,
// the same bits every time, and clips every tensor.
func TestClipGradNormLarge(t *testing.T) {
	make1 := func() []*tensor.Tensor {
		a := tensor.New(tensor.F32, 301, 997)
		b := tensor.New(tensor.F32, 5*(1<<14)+3)
		r := rand.New(rand.NewPCG(9, 9))
		for _, t := range []*tensor.Tensor{a, b} {
			for i := range t.F32 {
				t.F32[i] = float32(r.NormFloat64())
			}
		}
		return []*tensor.Tensor{a, tensor.New(tensor.F32, 0), b}
	}
	g := make1()
	ref := 0.0
	for _, t := range g {
		for _, x := range t.F32 {
			ref += float64(x) * float64(x)
		}
	}
	ref = math.Sqrt(ref)
	n1 := ClipGradNorm(make1(), 0)
	n2 := ClipGradNorm(g, 1)
	if n1 != n2 {
		t.Errorf("norms differ between runs: %v, %v", n1, n2)
	}
	if math.Abs(n1-ref) > 1e-12*ref {
		t.Errorf("norm %v, float64 reference %v", n1, ref)
	}
	if after := ClipGradNorm(g, 0); math.Abs(after-1) > 1e-5 {
		t.Errorf("norm after clipping to 1: %v", after)
	}
}

func TestClipGradNormPanicsOnDType(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("no panic for an F64 gradient")
		}
	}()
	ClipGradNorm([]*tensor.Tensor{tensor.New(tensor.F64, 2)}, 1)
}
