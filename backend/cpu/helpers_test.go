package cpu

import (
	"fmt"
	"math"
	"math/rand"
	"strings"
	"testing"

	"github.com/shoggo/shoggo/internal/gradcheck"
	"github.com/shoggo/shoggo/tensor"
)

var be = New()

// randT returns an F64 tensor of standard normal values.
func randT(r *rand.Rand, shape ...int) *tensor.Tensor {
	t := tensor.New(tensor.F64, shape...)
	for i := range t.F64 {
		t.F64[i] = r.NormFloat64()
	}
	return t
}

// dot returns sum(a .* b) in float64.
func dot(a, b *tensor.Tensor) float64 {
	if a.Numel() != b.Numel() {
		panic(fmt.Sprintf("dot: %v vs %v", a.Shape, b.Shape))
	}
	var s float64
	for i := 0; i < a.Numel(); i++ {
		s += a.At(i) * b.At(i)
	}
	return s
}

func zerosLike(t *tensor.Tensor) *tensor.Tensor { return tensor.New(t.DType, t.Shape...) }

// gradOp describes one op to the gradient harness.
type gradOp struct {
	names  []string
	inputs []*tensor.Tensor // F64 inputs whose gradients are checked
	// loss runs the forward pass on the current inputs and returns
	// sum(dy .* y) for a fixed random dy (or the op's own scalar loss).
	loss func() float64
	// backward runs forward (to refresh any saved state) and then the
	// backward pass, accumulating into grads[i]; a nil grads[i] must be
	// skipped.
	backward func(grads []*tensor.Tensor)
}

// checkGrads runs four checks on op:
//  1. every input's analytic gradient against central finite differences
//     (gradcheck.Check on up to 48 sampled coordinates, with eps/atol/rtol);
//  2. accumulation: backward into grads prefilled with random values adds
//     exactly the fresh gradient to them;
//  3. nil skipping: with grads[i] nil, every other gradient is unchanged and
//     nothing panics;
//  4. all grads nil: nothing panics.
func checkGrads(t *testing.T, name string, op gradOp, eps, atol, rtol float64) {
	t.Helper()
	fresh := make([]*tensor.Tensor, len(op.inputs))
	for i, in := range op.inputs {
		fresh[i] = zerosLike(in)
	}
	op.backward(fresh)
	for i, in := range op.inputs {
		if err := gradcheck.Check(name+"."+op.names[i], in.F64, fresh[i].F64, gradcheck.Sample(in.Numel(), 48), eps, atol, rtol, op.loss); err != nil {
			t.Error(err)
		}
	}

	// Accumulation.
	r := rand.New(rand.NewSource(99))
	pre := make([]*tensor.Tensor, len(op.inputs))
	acc := make([]*tensor.Tensor, len(op.inputs))
	for i, in := range op.inputs {
		pre[i] = randT(r, in.Shape...)
		acc[i] = pre[i].Clone()
	}
	op.backward(acc)
	for i := range op.inputs {
		for j := range acc[i].F64 {
			got := acc[i].F64[j] - pre[i].F64[j]
			want := fresh[i].F64[j]
			if math.Abs(got-want) > 1e-12*(1+math.Abs(pre[i].F64[j])+math.Abs(want)) {
				t.Errorf("%s: accumulate d%s[%d]: added %g, fresh gradient %g", name, op.names[i], j, got, want)
				break
			}
		}
	}

	// Nil skipping.
	for skip := range op.inputs {
		gs := make([]*tensor.Tensor, len(op.inputs))
		for i, in := range op.inputs {
			if i != skip {
				gs[i] = zerosLike(in)
			}
		}
		op.backward(gs)
		for i := range op.inputs {
			if i == skip {
				continue
			}
			if d := maxRelDiff(gs[i], fresh[i]); d > 1e-12 {
				t.Errorf("%s: with d%s nil, d%s differs by %g (relative)", name, op.names[skip], op.names[i], d)
			}
		}
	}
	op.backward(make([]*tensor.Tensor, len(op.inputs)))
}

// maxRelDiff returns max|a-b| / max(max|b|, 1e-30): a norm-wise relative
// difference, robust to individual elements near zero.
func maxRelDiff(a, b *tensor.Tensor) float64 {
	if a.Numel() != b.Numel() {
		panic(fmt.Sprintf("maxRelDiff: %v vs %v", a.Shape, b.Shape))
	}
	var d, m float64
	for i := 0; i < a.Numel(); i++ {
		x, y := a.At(i), b.At(i)
		if math.IsNaN(x) != math.IsNaN(y) {
			return math.Inf(1)
		}
		d = math.Max(d, math.Abs(x-y))
		m = math.Max(m, math.Abs(y))
	}
	if d == 0 {
		return 0
	}
	return d / math.Max(m, 1e-30)
}

// conv converts an F64 source tensor to dt (a copy; nil stays nil).
func conv(src *tensor.Tensor, dt tensor.DType) *tensor.Tensor {
	if src == nil {
		return nil
	}
	out, err := tensor.Convert(src, dt)
	if err != nil {
		panic(err)
	}
	return out
}

// checkF32 runs the same computation in F64 and F32 (inputs converted from
// the same F64 sources by run) and requires every returned tensor to agree
// to rtol, norm-wise relative (maxRelDiff).
func checkF32(t *testing.T, name string, rtol float64, run func(dt tensor.DType) []*tensor.Tensor) {
	t.Helper()
	want := run(tensor.F64)
	got := run(tensor.F32)
	for i := range want {
		if d := maxRelDiff(got[i], want[i]); d > rtol {
			t.Errorf("%s: output %d (%v): F32 differs from F64 by %g relative (limit %g)", name, i, want[i].Shape, d, rtol)
		}
	}
}

// mustPanic fails unless f panics with a message containing every want.
func mustPanic(t *testing.T, f func(), want ...string) {
	t.Helper()
	defer func() {
		t.Helper()
		r := recover()
		if r == nil {
			t.Errorf("no panic, want one mentioning %q", want)
			return
		}
		msg := fmt.Sprint(r)
		for _, w := range want {
			if !strings.Contains(msg, w) {
				t.Errorf("panic %q does not mention %q", msg, w)
			}
		}
	}()
	f()
}

func itoa(i int) string { return fmt.Sprint(i) }
