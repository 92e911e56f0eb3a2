package model

import (
	"math"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shoggo/shoggo/backend"
	"github.com/shoggo/shoggo/backend/cpu"
	"github.com/shoggo/shoggo/internal/gradcheck"
	"github.com/shoggo/shoggo/safetensors"
	"github.com/shoggo/shoggo/tensor"
)

// TestSeqLogProbsParity compares with transformers on the fixtures of
// reference/make_logprob_fixture.py: a ragged right-padded batch (prompts
// and padding masked with -100) through testdata/models/{llama,gpt2}.
// Tolerances: per-token and per-sequence log-probs within 1e-4 absolute
// (the logits parity of TestHFParity is 1e-4; a sequence sums <= 8 tokens
// of O(1) log-probs, and the observed gap is ~1e-6), and the gradient of
// sum_b c_b logp_b for every parameter within 1e-4 + 1e-3·max|g|
// (TestHFParity's gradient tolerance).
func TestSeqLogProbsParity(t *testing.T) {
	for _, name := range []string{"llama", "gpt2"} {
		t.Run(name, func(t *testing.T) {
			fx := filepath.Join("../testdata/logprob", name+".safetensors")
			f, err := safetensors.Open(fx)
			if err != nil {
				t.Fatalf("%v (run reference/make_logprob_fixture.py)", err)
			}
			defer f.Close()
			m, _, err := LoadHF(filepath.Join("../testdata/models", name), cpu.New(), tensor.F32, true)
			if err != nil {
				t.Fatal(err)
			}
			m.ChunkRows = 4 // several chunks, gathered (non-adjacent) rows
			ids, shape := ints(t, f, "input_ids")
			B, T := shape[0], shape[1]
			mask, _ := ints(t, f, "attention_mask")
			labels, _ := ints(t, f, "labels")
			coef := floats(t, f, "coef")
			b := &Batch{B: B, T: T, IDs: ids, KeyMask: mask, Targets: ShiftLabels(labels, B, T)}
			if err := m.Forward(b); err != nil {
				t.Fatal(err)
			}
			tok := make([]float64, B*T)
			if err := m.TokenLogProbs(b, tok); err != nil {
				t.Fatal(err)
			}
			if d, mx := maxAbsDiff(floats(t, f, "token_logps"), tok); d > 1e-4 {
				t.Errorf("token log-probs differ by %.3g (max |logp| %.3g)", d, mx)
			} else {
				t.Logf("token log-probs max abs diff %.3g (max |logp| %.3g)", d, mx)
			}
			seq := make([]float64, B)
			if err := m.SeqLogProbs(b, seq); err != nil {
				t.Fatal(err)
			}
			if d, mx := maxAbsDiff(floats(t, f, "seq_logps"), seq); d > 1e-4 {
				t.Errorf("sequence log-probs %v differ by %.3g (max |logp| %.3g)", seq, d, mx)
			} else {
				t.Logf("sequence log-probs max abs diff %.3g (max |logp| %.3g)", d, mx)
			}

			dout := make([]float64, B)
			for i, c := range coef {
				dout[i] = float64(c)
			}
			m.ZeroGrad()
			if err := m.SeqLogProbsBackward(b, dout); err != nil {
				t.Fatal(err)
			}
			m.Backward(b)
			checked := 0
			for _, fname := range f.Names() {
				pname, ok := strings.CutPrefix(fname, "grad.")
				if !ok {
					continue
				}
				g := m.Grads.Get(pname)
				if g == nil {
					t.Errorf("fixture gradient %q has no parameter", pname)
					continue
				}
				got := g.F32
				if m.Cfg.Family() == GPT2 && IsConv1D(pname) {
					got = transpose(got, g.Shape[0], g.Shape[1])
				}
				want := floats(t, f, fname)
				var d, mx float64
				for i := range want {
					d = math.Max(d, math.Abs(float64(want[i]-got[i])))
					mx = math.Max(mx, math.Abs(float64(want[i])))
				}
				if d > 1e-4+1e-3*mx {
					t.Errorf("grad %s: max abs diff %.3g (max |g| %.3g)", pname, d, mx)
				}
				checked++
			}
			if checked != len(m.Params.Tensors()) {
				t.Errorf("checked %d gradients, the model has %d parameters", checked, len(m.Params.Tensors()))
			}
		})
	}
}

// Per-sequence log-probs sum to minus the LM loss, per-token ones sum to the
// per-sequence ones, and the backward with dout = -gradScale gives the LM
// loss's gradients bit for bit (DHidden, every parameter after Backward).
// A frozen model (no gradient arena) computes the same log-probs and a
// DHidden without an LM-head gradient.
func TestSeqLogProbsMatchesLoss(t *testing.T) {
	for _, preset := range []string{"tiny-gpt2", "tiny-llama"} {
		t.Run(preset, func(t *testing.T) {
			cfg, _ := LookupPreset(preset)
			cfg.NumHiddenLayers, cfg.HiddenSize, cfg.IntermediateSize, cfg.VocabSize = 2, 16, 24, 29
			cfg.NumAttentionHeads, cfg.NumKeyValueHeads = 4, 2
			if cfg.Family() == GPT2 {
				cfg.NumKeyValueHeads = 4
			}
			rng := rand.New(rand.NewPCG(3, 4))
			m, err := New(cfg, cpu.New(), tensor.F32, true)
			if err != nil {
				t.Fatal(err)
			}
			randomize(m, rng, 0.3)
			m.ChunkRows = 3
			B, T := 3, 5
			b := testBatch(rng, B, T, cfg.VocabSize, "padding")
			for i := 0; i < T; i++ {
				b.Targets[T+i] = backend.IgnoreIndex // row 1 entirely masked
			}
			count := CountTargets([]*Batch{b})
			scale := 1 / float64(count)

			m.ZeroGrad()
			lossSum, _, err := m.ForwardBackward(b, scale)
			if err != nil {
				t.Fatal(err)
			}
			wantDH := m.DHidden().Clone()
			wantG := m.Grads.Flat().Clone()

			if err := m.Forward(b); err != nil {
				t.Fatal(err)
			}
			seq, tok := make([]float64, B), make([]float64, B*T)
			if err := m.SeqLogProbs(b, seq); err != nil {
				t.Fatal(err)
			}
			if err := m.TokenLogProbs(b, tok); err != nil {
				t.Fatal(err)
			}
			var sum float64
			for i, s := range seq {
				sum += s
				var ts float64
				for _, v := range tok[i*T : i*T+T] {
					ts += v
				}
				if ts != s {
					t.Errorf("row %d: token log-probs sum to %.17g, sequence %.17g", i, ts, s)
				}
			}
			if seq[1] != 0 {
				t.Errorf("masked row has log-prob %g", seq[1])
			}
			if math.Abs(sum+lossSum) > 1e-12*math.Abs(lossSum) {
				t.Errorf("sum of log-probs %.17g, -loss %.17g", sum, -lossSum)
			}

			dout := []float64{-scale, -scale, -scale}
			m.ZeroGrad()
			if err := m.SeqLogProbsBackward(b, dout); err != nil {
				t.Fatal(err)
			}
			if !equalF32(m.DHidden().F32, wantDH.F32) {
				t.Error("DHidden differs from the LM loss's")
			}
			m.Backward(b)
			if !equalF32(m.Grads.Flat().F32, wantG.F32) {
				t.Error("parameter gradients differ from the LM loss's")
			}
			// Per-token coefficients: the same gradient again.
			m.ZeroGrad()
			tdout := make([]float64, B*T)
			for i := range tdout {
				tdout[i] = -scale
			}
			if err := m.TokenLogProbsBackward(b, tdout); err != nil {
				t.Fatal(err)
			}
			m.Backward(b)
			if !equalF32(m.Grads.Flat().F32, wantG.F32) {
				t.Error("per-token backward: parameter gradients differ from the LM loss's")
			}

			// A frozen copy of the weights.
			fm, err := New(cfg, cpu.New(), tensor.F32, false)
			if err != nil {
				t.Fatal(err)
			}
			copy(fm.Params.Flat().F32, m.Params.Flat().F32)
			fm.ChunkRows = 3
			if err := fm.Forward(b); err != nil {
				t.Fatal(err)
			}
			fseq := make([]float64, B)
			if err := fm.SeqLogProbs(b, fseq); err != nil {
				t.Fatal(err)
			}
			for i := range seq {
				if fseq[i] != seq[i] {
					t.Errorf("frozen row %d: %.17g, trainable %.17g", i, fseq[i], seq[i])
				}
			}
			if err := fm.SeqLogProbsBackward(b, dout); err != nil {
				t.Fatal(err)
			}
			if !equalF32(fm.DHidden().F32, wantDH.F32) {
				t.Error("frozen model: DHidden differs")
			}
		})
	}
}

func equalF32(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Misuse is an error naming the problem, never a panic.
func TestSeqLogProbsErrors(t *testing.T) {
	cfg, _ := LookupPreset("tiny-llama")
	cfg.NumHiddenLayers, cfg.HiddenSize, cfg.IntermediateSize, cfg.VocabSize = 1, 16, 24, 29
	cfg.NumAttentionHeads, cfg.NumKeyValueHeads = 4, 2
	m, err := New(cfg, cpu.New(), tensor.F32, true)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(5, 6))
	b := testBatch(rng, 2, 4, cfg.VocabSize, "plain")
	if err := m.SeqLogProbs(b, make([]float64, 2)); err == nil || !strings.Contains(err.Error(), "Forward") {
		t.Errorf("before Forward: %v", err)
	}
	if err := m.Forward(b); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		run  func() error
		want string
	}{
		{"short out", func() error { return m.SeqLogProbs(b, make([]float64, 1)) }, "out has 1 entries, want 2"},
		{"token out", func() error { return m.TokenLogProbs(b, make([]float64, 2)) }, "out has 2 entries, want 8"},
		{"short dout", func() error { return m.SeqLogProbsBackward(b, make([]float64, 3)) }, "dout has 3 entries, want 2"},
		{"token dout", func() error { return m.TokenLogProbsBackward(b, make([]float64, 2)) }, "dout has 2 entries, want 8"},
		{"no targets", func() error { return m.SeqLogProbs(&Batch{B: 2, T: 4, IDs: b.IDs}, make([]float64, 2)) }, "no targets"},
		{"other shape", func() error {
			return m.SeqLogProbs(&Batch{B: 1, T: 8, IDs: b.IDs, Targets: b.Targets}, make([]float64, 1))
		}, "1x8"},
		{"bad target", func() error {
			bad := *b
			bad.Targets = append([]int32(nil), b.Targets...)
			bad.Targets[2] = int32(cfg.VocabSize)
			return m.SeqLogProbs(&bad, make([]float64, 2))
		}, "position 2"},
	}
	for _, c := range cases {
		err := c.run()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one mentioning %q", c.name, err, c.want)
		}
	}
}

// Whole-model gradient of sum_b c_b·logp_b (SeqLogProbsBackward then
// Backward) against central finite differences in float64, on right-padded
// rows with masked targets; tolerance as TestWholeModelGradients: eps 1e-5,
// |fd - analytic| <= 1e-8 + 1e-5·max(|fd|, |analytic|).
func TestSeqLogProbsWholeModelGradients(t *testing.T) {
	for _, preset := range []string{"tiny-gpt2", "tiny-llama"} {
		t.Run(preset, func(t *testing.T) {
			cfg, _ := LookupPreset(preset)
			cfg.NumHiddenLayers, cfg.HiddenSize, cfg.IntermediateSize, cfg.VocabSize = 2, 16, 24, 23
			cfg.NumAttentionHeads, cfg.NumKeyValueHeads = 4, 2
			if cfg.Family() == GPT2 {
				cfg.NumKeyValueHeads = 4
			}
			m, err := New(cfg, cpu.New(), tensor.F64, true)
			if err != nil {
				t.Fatal(err)
			}
			m.ChunkRows = 3
			rng := rand.New(rand.NewPCG(7, 8))
			randomize(m, rng, 0.3)
			b := testBatch(rng, 3, 5, cfg.VocabSize, "padding")
			coef := []float64{0.7, -1.3, 0.4}
			lp := make([]float64, b.B)
			loss := func() float64 {
				if err := m.Forward(b); err != nil {
					t.Fatal(err)
				}
				if err := m.SeqLogProbs(b, lp); err != nil {
					t.Fatal(err)
				}
				var s float64
				for i, v := range lp {
					s += coef[i] * v
				}
				return s
			}
			m.ZeroGrad()
			loss()
			if err := m.SeqLogProbsBackward(b, coef); err != nil {
				t.Fatal(err)
			}
			m.Backward(b)
			for _, p := range m.Params.Tensors() {
				grad := append([]float64(nil), m.Grads.Get(p.Name).F64...)
				if err := gradcheck.Check(p.Name, p.F64, grad, gradcheck.Sample(p.Numel(), 5), 1e-5, 1e-8, 1e-5, loss); err != nil {
					t.Error(err)
				}
			}
		})
	}
}

// A DPO reference model: frozen, token embedding and LM head in bf16
// (HalfEmbeddings). Its log-probs and DHidden equal those of the fp32 model
// whose tables are rounded to bf16 (1e-5 relative: the split GEMMs of the
// bf16 head may sum in another order).
func TestSeqLogProbsHalfEmbeddings(t *testing.T) {
	dir := "../testdata/models/llama"
	ref, _, err := LoadHF(dir, cpu.New(), tensor.F32, false)
	if err != nil {
		t.Fatal(err)
	}
	roundTables(ref)
	hm, _, err := LoadHFFrozenOpts(dir, cpu.New(), tensor.F32, false, FrozenOptions{HalfEmbeddings: true})
	if err != nil {
		t.Fatal(err)
	}
	if hm.LMHead.DType != tensor.BF16 {
		t.Fatalf("LM head is %s", hm.LMHead.DType)
	}
	rng := rand.New(rand.NewPCG(9, 10))
	b := testBatch(rng, 2, 6, ref.Cfg.VocabSize, "padding")
	dout := []float64{0.5, -2}
	var lps [2][]float64
	var dhs [2][]float32
	for i, m := range []*Transformer{ref, hm} {
		m.ChunkRows = 4
		if err := m.Forward(b); err != nil {
			t.Fatal(err)
		}
		lps[i] = make([]float64, b.B)
		if err := m.SeqLogProbs(b, lps[i]); err != nil {
			t.Fatal(err)
		}
		if err := m.SeqLogProbsBackward(b, dout); err != nil {
			t.Fatal(err)
		}
		dhs[i] = append([]float32(nil), m.DHidden().F32...)
	}
	for i := range lps[0] {
		if d := math.Abs(lps[1][i] - lps[0][i]); d > 1e-5*math.Abs(lps[0][i]) {
			t.Errorf("row %d: bf16 head %.9g, fp32 %.9g", i, lps[1][i], lps[0][i])
		}
	}
	if e := relErr(dhs[1], dhs[0]); e > 1e-5 {
		t.Errorf("DHidden differs by %.3g relative", e)
	}
}
