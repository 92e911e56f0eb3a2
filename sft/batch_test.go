package sft

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/shoggo/shoggo/model"
	"github.com/shoggo/shoggo/optim"
	"github.com/shoggo/shoggo/tensor"
	"github.com/shoggo/shoggo/train"
)

const X = IgnoreIndex

func TestPadBatch(t *testing.T) {
	ids := [][]int32{{1, 2, 3, 4}, {5, 6}}
	labels := [][]int32{{X, X, 3, 4}, {X, 6}}
	b := PadBatch(ids, labels, 3, 5, 9)
	if b.B != 3 || b.T != 5 || b.Pos != nil || b.Segments != nil {
		t.Fatalf("shape %dx%d pos %v segments %v", b.B, b.T, b.Pos, b.Segments)
	}
	wantIDs := []int32{1, 2, 3, 4, 9, 5, 6, 9, 9, 9, 9, 9, 9, 9, 9}
	wantMask := []int32{1, 1, 1, 1, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0}
	// target[t] = label[t+1]; the last token of each example and padding: X.
	wantTargets := []int32{X, 3, 4, X, X, 6, X, X, X, X, X, X, X, X, X}
	if !slices.Equal(b.IDs, wantIDs) || !slices.Equal(b.KeyMask, wantMask) || !slices.Equal(b.Targets, wantTargets) {
		t.Fatalf("ids %v\nmask %v\ntargets %v", b.IDs, b.KeyMask, b.Targets)
	}
	// Same as model.ShiftLabels of the padded labels.
	padded := []int32{X, X, 3, 4, X, X, 6, X, X, X, X, X, X, X, X}
	if s := model.ShiftLabels(padded, 3, 5); !slices.Equal(s, b.Targets) {
		t.Fatalf("ShiftLabels %v, PadBatch %v", s, b.Targets)
	}
	mustPanic(t, "too many examples", func() { PadBatch(ids, labels, 1, 5, 0) })
	mustPanic(t, "too long", func() { PadBatch(ids, labels, 2, 3, 0) })
	mustPanic(t, "length mismatch", func() { PadBatch(ids, [][]int32{{1}, {2, 3}}, 2, 5, 0) })
}

func mustPanic(t *testing.T, what string, f func()) {
	t.Helper()
	defer func() {
		if recover() == nil {
			t.Errorf("%s: no panic", what)
		}
	}()
	f()
}

func TestPackLayout(t *testing.T) {
	ids := [][]int32{{1, 2, 3}, {4, 5, 6, 7}, {8, 9}, {10, 11, 12, 13, 14}, {15}}
	labels := [][]int32{{X, 2, 3}, {X, X, 6, 7}, {X, 9}, {X, 11, 12, 13, 14}, {X}}
	bs := Pack(ids, labels, 2, 6, 0)
	// Batch 0: row 0 = ex0 + ex2 (ex1 does not fit after ex0), row 1 = ex1.
	// ex3 fits no row: batch 1, row 0 = ex3 + ex4.
	if len(bs) != 2 {
		t.Fatalf("%d batches, want 2", len(bs))
	}
	b := bs[0]
	check := func(name string, got, want []int32) {
		t.Helper()
		if !slices.Equal(got, want) {
			t.Fatalf("%s %v, want %v", name, got, want)
		}
	}
	check("ids", b.IDs, []int32{1, 2, 3, 8, 9, 0, 4, 5, 6, 7, 0, 0})
	check("pos", b.Pos, []int32{0, 1, 2, 0, 1, 0, 0, 1, 2, 3, 0, 1})
	check("segments", b.Segments, []int32{1, 1, 1, 2, 2, 0, 1, 1, 1, 1, 0, 0})
	check("keymask", b.KeyMask, []int32{1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 0, 0})
	// The last token of ex0 (3) must not predict ex2's first token (8).
	check("targets", b.Targets, []int32{2, 3, X, 9, X, X, X, 6, 7, X, X, X})
	b = bs[1]
	check("ids", b.IDs, []int32{10, 11, 12, 13, 14, 15, 0, 0, 0, 0, 0, 0})
	check("segments", b.Segments, []int32{1, 1, 1, 1, 1, 2, 0, 0, 0, 0, 0, 0})
	check("keymask", b.KeyMask, []int32{1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0})
	check("targets", b.Targets, []int32{11, 12, 13, 14, X, X, X, X, X, X, X, X})
	if n := CountTargets(bs); n != 9 {
		t.Fatalf("%d targets, want 9", n)
	}
}

// A packed example's logits equal its logits alone: positions restart and
// no example attends to another. Likewise a right-padded example's.
// Tolerance 1e-5 absolute on logits of magnitude ~1 (float64 and float32).
func TestPackedLogitsMatchAlone(t *testing.T) {
	for _, preset := range []string{"tiny-llama", "tiny-gpt2"} {
		for _, dt := range []tensor.DType{tensor.F64, tensor.F32} {
			m := tinyModel(t, preset, dt, 0, false, 5)
			V := m.Cfg.VocabSize
			rng := rand.New(rand.NewPCG(11, 12))
			lens := []int{5, 9, 3, 12, 7}
			ids := make([][]int32, len(lens))
			labels := make([][]int32, len(lens))
			for i, n := range lens {
				ids[i] = randomIDs(rng, n, V)
				labels[i] = slices.Clone(ids[i])
			}
			alone := make([][]float64, len(lens))
			for i, x := range ids {
				if err := m.Plan(1, len(x)); err != nil {
					t.Fatal(err)
				}
				if err := m.Forward(&model.Batch{B: 1, T: len(x), IDs: x}); err != nil {
					t.Fatal(err)
				}
				alone[i] = floats(m.Logits())
			}
			const B, T = 2, 16
			if err := m.Plan(B, T); err != nil {
				t.Fatal(err)
			}
			compare := func(what string, b *model.Batch, rows [][]int) {
				t.Helper()
				if err := m.Forward(b); err != nil {
					t.Fatal(err)
				}
				got := floats(m.Logits())
				for r, row := range rows {
					off := r * T
					for _, e := range row {
						for p := 0; p < lens[e]; p++ {
							for v := 0; v < V; v++ {
								a, g := alone[e][p*V+v], got[(off+p)*V+v]
								if math.Abs(a-g) > 1e-5 {
									t.Fatalf("%s %s %s: example %d position %d logit %d: %v, alone %v", preset, dt, what, e, p, v, g, a)
								}
							}
						}
						off += lens[e]
					}
				}
			}
			// Pack: row 0 = ex0 (5) + ex1 (9), row 1 = ex2 (3) + ex3 (12); then ex4.
			bs := Pack(ids, labels, B, T, 0)
			if len(bs) != 2 {
				t.Fatalf("%d packed batches", len(bs))
			}
			compare("packed", bs[0], [][]int{{0, 1}, {2, 3}})
			compare("packed", bs[1], [][]int{{4}})
			compare("padded", PadBatch(ids[1:3], labels[1:3], B, T, 0), [][]int{{1}, {2}})
		}
	}
}

func floats(x *tensor.Tensor) []float64 {
	out := make([]float64, x.Numel())
	for i := range out {
		out[i] = x.At(i)
	}
	return out
}

// Loss normalisation happens in train.Step: it divides by the number of
// targets of all micro-batches together. Two micro-batches with different
// numbers of completion tokens then give the gradient of one batch holding
// both examples, which per-micro-batch averaging would not. In float64 the
// scaling of train.Step is applied by hand (AdamW takes float32 weights only;
// tolerance 1e-12); in float32 train.Step itself runs, at learning rate 0
// (tolerance 1e-5 relative to the largest gradient).
func TestAccumulatedNormalisation(t *testing.T) {
	for _, dt := range []tensor.DType{tensor.F64, tensor.F32} {
		m := tinyModel(t, "tiny-llama", dt, 0, true, 9)
		V := m.Cfg.VocabSize
		rng := rand.New(rand.NewPCG(4, 4))
		const T = 12
		// Example a: 10 tokens, 2 completion tokens; example b: 12 tokens, 9.
		mk := func(n, prompt int) ([]int32, []int32) {
			ids := randomIDs(rng, n, V)
			labels := slices.Clone(ids)
			for i := range prompt {
				labels[i] = X
			}
			return ids, labels
		}
		ia, la := mk(10, 8)
		ib, lb := mk(12, 3)
		microA := PadBatch([][]int32{ia}, [][]int32{la}, 1, T, 0)
		microB := PadBatch([][]int32{ib}, [][]int32{lb}, 1, T, 0)
		both := PadBatch([][]int32{ia, ib}, [][]int32{la, lb}, 2, T, 0)
		if na, nb := CountTargets([]*model.Batch{microA}), CountTargets([]*model.Batch{microB}); na != 2 || nb != 9 {
			t.Fatalf("targets %d and %d, want 2 and 9", na, nb)
		}
		var opt *optim.AdamW
		if dt == tensor.F32 {
			var err error
			if opt, err = optim.NewAdamW(train.Params(m), optim.DefaultConfig()); err != nil {
				t.Fatal(err)
			}
		}
		// grads runs one step over micro with each micro-batch's loss scaled
		// by scale(b) and returns the gradient and the summed scaled loss.
		grads := func(micro []*model.Batch, scale func(*model.Batch) float64) ([]float64, float64) {
			t.Helper()
			var loss float64
			if opt != nil && scale == nil {
				if err := m.Plan(micro[0].B, T); err != nil {
					t.Fatal(err)
				}
				r, err := train.Step(m, opt, micro, 0, 0)
				if err != nil {
					t.Fatal(err)
				}
				loss = r.Loss
			} else {
				if scale == nil { // what train.Step does
					n := train.CountTargets(micro)
					scale = func(*model.Batch) float64 { return 1 / float64(n) }
				}
				m.ZeroGrad()
				for _, b := range micro {
					if err := m.Plan(b.B, T); err != nil {
						t.Fatal(err)
					}
					s, _, err := m.ForwardBackward(b, scale(b))
					if err != nil {
						t.Fatal(err)
					}
					loss += s * scale(b)
				}
			}
			var g []float64
			for _, x := range m.Grads.Tensors() {
				g = append(g, floats(x)...)
			}
			return g, loss
		}
		maxDiff := func(a, b []float64) (d, big float64) {
			for i := range a {
				d = max(d, math.Abs(a[i]-b[i]))
				big = max(big, math.Abs(b[i]))
			}
			return d, big
		}
		tol := 1e-12
		if dt == tensor.F32 {
			tol = 1e-5
		}
		gAcc, lossAcc := grads([]*model.Batch{microA, microB}, nil)
		gOne, lossOne := grads([]*model.Batch{both}, nil)
		if math.Abs(lossAcc-lossOne) > tol*math.Abs(lossOne) {
			t.Fatalf("%s: loss accumulated %v, one batch %v", dt, lossAcc, lossOne)
		}
		if d, big := maxDiff(gAcc, gOne); d > tol*big || big < 1e-3 {
			t.Fatalf("%s: gradients differ by %g (largest %g)", dt, d, big)
		}
		// Averaging per micro-batch, then over the micro-batches, weighs a's
		// 2 tokens like b's 9: a different gradient.
		gMean, _ := grads([]*model.Batch{microA, microB}, func(b *model.Batch) float64 {
			return 0.5 / float64(CountTargets([]*model.Batch{b}))
		})
		if d, big := maxDiff(gMean, gOne); d < 0.01*big {
			t.Fatalf("%s: per-micro-batch averaging is within %g of the token average: the test cannot tell them apart", dt, d)
		}
	}
}

// Rows with no example (the end of an epoch) are all padding with KeyMask
// 0: their queries attend nothing, and the loss and gradients stay finite.
func TestEmptyRowsFinite(t *testing.T) {
	for _, pack := range []bool{false, true} {
		m := tinyModel(t, "tiny-llama", tensor.F32, 0, true, 2)
		rng := rand.New(rand.NewPCG(1, 1))
		ids := randomIDs(rng, 6, m.Cfg.VocabSize)
		b := Batches([]Encoded{{IDs: ids, Labels: ids}}, 3, 8, 0, pack)[0]
		if err := m.Plan(3, 8); err != nil {
			t.Fatal(err)
		}
		m.ZeroGrad()
		loss, n, err := m.ForwardBackward(b, 1)
		if err != nil {
			t.Fatal(err)
		}
		if n != 5 || math.IsNaN(loss) || math.IsInf(loss, 0) {
			t.Fatalf("pack=%v: loss %v over %d targets", pack, loss, n)
		}
		for _, g := range m.Grads.Tensors() {
			for _, v := range floats(g) {
				if math.IsNaN(v) || math.IsInf(v, 0) {
					t.Fatalf("pack=%v: gradient of %s not finite", pack, g.Name)
				}
			}
		}
	}
}
