package attn

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/shoggo/shoggo/backend"
	"github.com/shoggo/shoggo/backend/cpu/gemm"
	"github.com/shoggo/shoggo/internal/gradcheck"
	"github.com/shoggo/shoggo/internal/vec"
)

// maskKinds: which of KeyMask / Segments a case uses.
var maskKinds = []struct {
	name    string
	km, seg bool
}{{"plain", false, false}, {"keymask", true, false}, {"segments", false, true}, {"both", true, true}}

// makeParams builds AttnParams with B = 2 and, if asked, a KeyMask (batch 0:
// random with 80% ones; batch 1: left padding of min(3, T-1) zeros, so the
// first queries of batch 1 have nothing to attend) and Segments (batch 0:
// contiguous runs of random length, as packing makes; batch 1: random ids
// in {0,1,2}, not contiguous).
func makeParams(rng *rand.Rand, T, NH, KVH, HS int, km, seg bool) backend.AttnParams {
	p := backend.AttnParams{B: 2, T: T, NH: NH, KVH: KVH, HS: HS}
	if km {
		p.KeyMask = make([]int32, 2*T)
		for j := 0; j < T; j++ {
			if rng.Float64() < 0.8 {
				p.KeyMask[j] = 1
			}
			if j >= min(3, T-1) {
				p.KeyMask[T+j] = 1
			}
		}
	}
	if seg {
		p.Segments = make([]int32, 2*T)
		id, left := int32(0), 1+rng.IntN(6)
		for j := 0; j < T; j++ {
			if left == 0 {
				id, left = id+1, 1+rng.IntN(6)
			}
			p.Segments[j] = id
			left--
			p.Segments[T+j] = int32(rng.IntN(3))
		}
	}
	return p
}

func randSlice[T gemm.Float](rng *rand.Rand, n int) []T {
	x := make([]T, n)
	for i := range x {
		x[i] = T(rng.NormFloat64())
	}
	return x
}

type attnCase[T gemm.Float] struct {
	p                    backend.AttnParams
	q, k, v, dout        []T
	dq0, dk0, dv0        []T // initial gradient contents (Backward accumulates)
	out, lse, dq, dk, dv []T // results
}

func newCase[T gemm.Float](rng *rand.Rand, p backend.AttnParams) *attnCase[T] {
	nq, nk := p.B*p.T*p.NH*p.HS, p.B*p.T*p.KVH*p.HS
	return &attnCase[T]{
		p: p,
		q: randSlice[T](rng, nq), k: randSlice[T](rng, nk), v: randSlice[T](rng, nk), dout: randSlice[T](rng, nq),
		dq0: randSlice[T](rng, nq), dk0: randSlice[T](rng, nk), dv0: randSlice[T](rng, nk),
	}
}

// runBlocked runs the blocked kernels with the given tile, procs and mode.
func (c *attnCase[T]) runBlocked(tile, procs, mode int) (out, lse, dq, dk, dv []T) {
	p := c.p
	out = make([]T, len(c.q))
	lse = make([]T, p.B*p.NH*p.T)
	forward(out, lse, c.q, c.k, c.v, p, tile, procs)
	dq, dk, dv = slices.Clone(c.dq0), slices.Clone(c.dk0), slices.Clone(c.dv0)
	backward(dq, dk, dv, c.dout, c.q, c.k, c.v, out, lse, p, tile, procs, mode)
	return
}

func (c *attnCase[T]) runReference() (out, lse, dq, dk, dv []T) {
	p := c.p
	out = make([]T, len(c.q))
	lse = make([]T, p.B*p.NH*p.T)
	ReferenceForward(out, lse, c.q, c.k, c.v, p)
	dq, dk, dv = slices.Clone(c.dq0), slices.Clone(c.dk0), slices.Clone(c.dv0)
	ReferenceBackward(dq, dk, dv, c.dout, c.q, c.k, c.v, p)
	return
}

// closeTo checks |got-want| <= atol + rtol*|want| elementwise; -Inf must
// match -Inf exactly and nothing may be NaN.
func closeTo[T gemm.Float](name string, got, want []T, atol, rtol float64) error {
	for i := range want {
		g, w := float64(got[i]), float64(want[i])
		if math.IsInf(w, -1) || math.IsInf(g, -1) {
			if g != w {
				return fmt.Errorf("%s[%d] = %g, want %g", name, i, g, w)
			}
			continue
		}
		if d := math.Abs(g - w); !(d <= atol+rtol*math.Abs(w)) {
			return fmt.Errorf("%s[%d] = %.9g, want %.9g (diff %.3g)", name, i, g, w, d)
		}
	}
	return nil
}

// TestBlockedMatchesReference compares the blocked Forward/Backward with
// the float64-accumulating reference on many shapes, masks, tile sizes and
// both backward schedules.
//
// Tolerances (|got-want| <= atol + rtol*|want|; inputs are N(0,1), so
// values are O(1) and gradients O(1..10)):
//   - float64: atol 1e-12, rtol 1e-11: only summation order differs.
//   - float32: atol 1e-5, rtol 1e-5 for out/lse; atol 3e-5, rtol 3e-5 for
//     gradients, which sum up to T terms of products of O(1) values in
//     float32 (and use a float32 exp accurate to ~2 ulp). Observed worst
//     |err|/(1+|want|) up to T = 300: out 9e-7, lse 4e-7, grads 3e-6.
func TestBlockedMatchesReference(t *testing.T) {
	Ts := []int{1, 2, 7, 17, 64, 130}
	HSs := []int{1, 4, 8, 64}
	heads := [][2]int{{4, 4}, {4, 2}, {4, 1}}
	rng := rand.New(rand.NewPCG(1, 2))
	n := 0
	for _, T := range Ts {
		for _, HS := range HSs {
			for _, hk := range heads {
				for _, mk := range maskKinds {
					p := makeParams(rng, T, hk[0], hk[1], HS, mk.km, mk.seg)
					// Tile sizes: the default (48), and small ones that do
					// not divide T, so most cases cross many tiles.
					tile := []int{defaultTile, 5, 16}[n%3]
					mode := []int{modeOnePass, modeTwoPass}[n%2]
					name := fmt.Sprintf("T%d/HS%d/NH%d/KVH%d/%s/tile%d/mode%d", T, HS, hk[0], hk[1], mk.name, tile, mode)
					n++
					if err := compareBlocked[float64](newCase[float64](rng, p), tile, mode, 1e-12, 1e-11, 1e-12, 1e-11); err != nil {
						t.Errorf("%s float64: %v", name, err)
					}
					if err := compareBlocked[float32](newCase[float32](rng, p), tile, mode, 1e-5, 1e-5, 3e-5, 3e-5); err != nil {
						t.Errorf("%s float32: %v", name, err)
					}
				}
			}
		}
	}
}

func compareBlocked[T gemm.Float](c *attnCase[T], tile, mode int, fa, fr, ga, gr float64) error {
	out, lse, dq, dk, dv := c.runBlocked(tile, 3, mode)
	rout, rlse, rdq, rdk, rdv := c.runReference()
	for _, x := range []struct {
		name       string
		got, want  []T
		atol, rtol float64
	}{{"out", out, rout, fa, fr}, {"lse", lse, rlse, fa, fr}, {"dq", dq, rdq, ga, gr}, {"dk", dk, rdk, ga, gr}, {"dv", dv, rdv, ga, gr}} {
		if err := closeTo(x.name, x.got, x.want, x.atol, x.rtol); err != nil {
			return err
		}
	}
	return nil
}

// TestPublicEntryPoints runs Forward/Backward (default tile, GOMAXPROCS)
// against the reference once per dtype, with all masks. Tolerances as in
// TestBlockedMatchesReference.
func TestPublicEntryPoints(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	p := makeParams(rng, 100, 6, 2, 16, true, true)
	check := func(err error) {
		t.Helper()
		if err != nil {
			t.Error(err)
		}
	}
	{
		c := newCase[float64](rng, p)
		out, lse := make([]float64, len(c.q)), make([]float64, p.B*p.NH*p.T)
		Forward(out, lse, c.q, c.k, c.v, p)
		dq, dk, dv := slices.Clone(c.dq0), slices.Clone(c.dk0), slices.Clone(c.dv0)
		Backward(dq, dk, dv, c.dout, c.q, c.k, c.v, out, lse, p)
		rout, rlse, rdq, rdk, rdv := c.runReference()
		check(closeTo("out", out, rout, 1e-12, 1e-11))
		check(closeTo("lse", lse, rlse, 1e-12, 1e-11))
		check(closeTo("dq", dq, rdq, 1e-12, 1e-11))
		check(closeTo("dk", dk, rdk, 1e-12, 1e-11))
		check(closeTo("dv", dv, rdv, 1e-12, 1e-11))
	}
	{
		c := newCase[float32](rng, p)
		out, lse := make([]float32, len(c.q)), make([]float32, p.B*p.NH*p.T)
		Forward(out, lse, c.q, c.k, c.v, p)
		dq, dk, dv := slices.Clone(c.dq0), slices.Clone(c.dk0), slices.Clone(c.dv0)
		Backward(dq, dk, dv, c.dout, c.q, c.k, c.v, out, lse, p)
		rout, rlse, rdq, rdk, rdv := c.runReference()
		check(closeTo("out", out, rout, 1e-5, 1e-5))
		check(closeTo("lse", lse, rlse, 1e-5, 1e-5))
		check(closeTo("dq", dq, rdq, 3e-5, 3e-5))
		check(closeTo("dk", dk, rdk, 3e-5, 3e-5))
		check(closeTo("dv", dv, rdv, 3e-5, 3e-5))
	}
}

// TestFullyMaskedRows: queries with no attendable key (left padding, or a
// segment whose only earlier keys are padding) get out = 0 exactly, lse =
// -Inf, and contribute exactly nothing to any gradient.
func TestFullyMaskedRows(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	const T, NH, KVH, HS = 20, 2, 1, 8
	p := backend.AttnParams{B: 1, T: T, NH: NH, KVH: KVH, HS: HS,
		KeyMask:  make([]int32, T),
		Segments: make([]int32, T),
	}
	for j := range T {
		p.KeyMask[j] = 1
		if j < 4 || j == 10 {
			p.KeyMask[j] = 0 // keys 0-3 padding; key 10 starts segment 1 masked
		}
		if j >= 10 {
			p.Segments[j] = 1
		}
	}
	dead := map[int]bool{0: true, 1: true, 2: true, 3: true, 10: true}
	c := newCase[float64](rng, p)
	for _, tile := range []int{3, 64} {
		for _, mode := range []int{modeOnePass, modeTwoPass} {
			// Start gradients at 0, and give dead rows a dout and q that
			// would matter if they leaked.
			clear(c.dq0)
			clear(c.dk0)
			clear(c.dv0)
			out, lse, dq, dk, dv := c.runBlocked(tile, 2, mode)
			for i := range T {
				for h := range NH {
					row := out[(i*NH+h)*HS : (i*NH+h+1)*HS]
					drow := dq[(i*NH+h)*HS : (i*NH+h+1)*HS]
					l := lse[h*T+i]
					if dead[i] {
						if !math.IsInf(l, -1) || slices.ContainsFunc(row, func(x float64) bool { return x != 0 }) ||
							slices.ContainsFunc(drow, func(x float64) bool { return x != 0 }) {
							t.Errorf("tile %d mode %d: dead query %d head %d: lse %g out %v dq %v", tile, mode, i, h, l, row, drow)
						}
					} else if math.IsInf(l, 0) || math.IsNaN(l) {
						t.Errorf("tile %d mode %d: live query %d head %d: lse %g", tile, mode, i, h, l)
					}
				}
				// Masked keys receive no gradient.
				if p.KeyMask[i] == 0 {
					if slices.ContainsFunc(dk[i*HS:(i+1)*HS], func(x float64) bool { return x != 0 }) ||
						slices.ContainsFunc(dv[i*HS:(i+1)*HS], func(x float64) bool { return x != 0 }) {
						t.Errorf("tile %d mode %d: masked key %d got a gradient", tile, mode, i)
					}
				}
			}
			for _, g := range [][]float64{dq, dk, dv} {
				if slices.ContainsFunc(g, math.IsNaN) {
					t.Fatalf("NaN in gradient")
				}
			}
		}
	}
}

// TestDeterministic: results are bit-identical whatever the number of
// goroutines and whichever backward schedule runs (both add the same terms
// in the same order).
func TestDeterministic(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	p := makeParams(rng, 150, 4, 2, 32, true, true)
	c := newCase[float32](rng, p)
	out1, lse1, dq1, dk1, dv1 := c.runBlocked(32, 1, modeOnePass)
	for _, run := range []struct{ procs, mode int }{{4, modeOnePass}, {1, modeTwoPass}, {3, modeTwoPass}, {2, modeAuto}} {
		out, lse, dq, dk, dv := c.runBlocked(32, run.procs, run.mode)
		for _, x := range []struct {
			name string
			a, b []float32
		}{{"out", out, out1}, {"lse", lse, lse1}, {"dq", dq, dq1}, {"dk", dk, dk1}, {"dv", dv, dv1}} {
			if !slices.Equal(x.a, x.b) {
				t.Errorf("procs %d mode %d: %s differs from the 1-goroutine one-pass result", run.procs, run.mode, x.name)
			}
		}
	}
}

// TestNilGradients: a nil gradient is skipped and the others are unchanged.
func TestNilGradients(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	p := makeParams(rng, 40, 4, 2, 8, true, false)
	c := newCase[float64](rng, p)
	out, lse, dq, dk, dv := c.runBlocked(16, 2, modeOnePass)
	for _, mode := range []int{modeOnePass, modeTwoPass} {
		for mask := 0; mask < 8; mask++ {
			g := [3][]float64{slices.Clone(c.dq0), slices.Clone(c.dk0), slices.Clone(c.dv0)}
			for i := range g {
				if mask&(1<<i) != 0 {
					g[i] = nil
				}
			}
			backward(g[0], g[1], g[2], c.dout, c.q, c.k, c.v, out, lse, p, 16, 2, mode)
			for i, want := range [][]float64{dq, dk, dv} {
				if g[i] != nil && !slices.Equal(g[i], want) {
					t.Errorf("mode %d nil-mask %03b: gradient %d differs", mode, mask, i)
				}
			}
		}
	}
}

// TestGradCheck checks Forward/Backward against central finite differences
// of loss = sum(dout .* out) in float64, for q, k and v, with KeyMask and
// Segments, GQA (NH/KVH = 4/2), and tiles of 3 (so blocks, the online
// softmax and both schedules are exercised) and the default tile.
// Tolerance: eps 1e-5, |fd - grad| <= 1e-8 + 1e-6*max(|fd|,|grad|): the
// truncation error is O(eps^2 * f”') ~ 1e-10 and rounding ~ 1e-16/eps.
func TestGradCheck(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	p := makeParams(rng, 9, 4, 2, 4, true, true)
	c := newCase[float64](rng, p)
	for _, cfg := range []struct{ tile, mode int }{{3, modeOnePass}, {3, modeTwoPass}, {defaultTile, modeAuto}} {
		out := make([]float64, len(c.q))
		lse := make([]float64, p.B*p.NH*p.T)
		loss := func() float64 {
			forward(out, lse, c.q, c.k, c.v, p, cfg.tile, 2)
			var s float64
			for i, o := range out {
				s += o * c.dout[i]
			}
			return s
		}
		loss()
		dq, dk, dv := make([]float64, len(c.q)), make([]float64, len(c.k)), make([]float64, len(c.v))
		backward(dq, dk, dv, c.dout, c.q, c.k, c.v, out, lse, p, cfg.tile, 2, cfg.mode)
		for _, x := range []struct {
			name    string
			x, grad []float64
		}{{"q", c.q, dq}, {"k", c.k, dk}, {"v", c.v, dv}} {
			if err := gradcheck.Check(fmt.Sprintf("tile%d/mode%d/d%s", cfg.tile, cfg.mode, x.name), x.x, x.grad, nil, 1e-5, 1e-8, 1e-6, loss); err != nil {
				t.Error(err)
			}
		}
	}
}

// TestScalarExpPath runs one blocked-vs-reference comparison with the
// assembly exp (internal/vec's) switched off (the path of CPUs without
// AVX2/FMA). Tolerances as in TestBlockedMatchesReference.
func TestScalarExpPath(t *testing.T) {
	defer func(old bool) { vec.UseAsm = old }(vec.UseAsm)
	vec.UseAsm = false
	rng := rand.New(rand.NewPCG(13, 14))
	p := makeParams(rng, 70, 4, 2, 16, true, true)
	if err := compareBlocked[float32](newCase[float32](rng, p), defaultTile, modeAuto, 1e-5, 1e-5, 3e-5, 3e-5); err != nil {
		t.Error(err)
	}
}

// TestBadShapesPanic: shape mismatches are programmer errors.
func TestBadShapesPanic(t *testing.T) {
	p := backend.AttnParams{B: 1, T: 4, NH: 3, KVH: 2, HS: 4}
	defer func() {
		if recover() == nil {
			t.Error("NH not a multiple of KVH did not panic")
		}
	}()
	n := 4 * 3 * 4
	Forward(make([]float32, n), make([]float32, 12), make([]float32, n), make([]float32, 32), make([]float32, 32), p)
}

func benchAttn(b *testing.B, B, T, NH, KVH, HS int, backwardToo bool) {
	rng := rand.New(rand.NewPCG(1, 1))
	p := backend.AttnParams{B: B, T: T, NH: NH, KVH: KVH, HS: HS}
	c := newCase[float32](rng, p)
	out := make([]float32, len(c.q))
	lse := make([]float32, B*NH*T)
	dq, dk, dv := make([]float32, len(c.q)), make([]float32, len(c.k)), make([]float32, len(c.v))
	Forward(out, lse, c.q, c.k, c.v, p)
	// Causal: about half of the T^2 block products are formed.
	flops := 2.0 * float64(B*NH) * float64(T) * float64(T) * float64(HS) // 2 matmuls x 2 flops x T^2/2
	if backwardToo {
		flops *= 2.5 // 5 matmuls
	}
	b.ResetTimer()
	for range b.N {
		if backwardToo {
			Backward(dq, dk, dv, c.dout, c.q, c.k, c.v, out, lse, p)
		} else {
			Forward(out, lse, c.q, c.k, c.v, p)
		}
	}
	b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
}

// GPT-2 124M shapes (NH 12, HS 64) at the B=4, T=64, and longer T.
func BenchmarkForwardGPT2T64(b *testing.B)   { benchAttn(b, 4, 64, 12, 12, 64, false) }
func BenchmarkBackwardGPT2T64(b *testing.B)  { benchAttn(b, 4, 64, 12, 12, 64, true) }
func BenchmarkForwardGPT2T1024(b *testing.B) { benchAttn(b, 1, 1024, 12, 12, 64, false) }
func BenchmarkBackwardGPT2T1024(b *testing.B) {
	benchAttn(b, 1, 1024, 12, 12, 64, true)
}

// Qwen2-0.5B-like GQA (NH 14, KVH 2, HS 64).
func BenchmarkBackwardGQAT512(b *testing.B) { benchAttn(b, 1, 512, 14, 2, 64, true) }
