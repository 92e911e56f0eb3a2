package lora

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/shoggo/shoggo/internal/gradcheck"
	"github.com/shoggo/shoggo/model"
	"github.com/shoggo/shoggo/nn"
	"github.com/shoggo/shoggo/optim"
	"github.com/shoggo/shoggo/tensor"
)

// gradCase is one adapter configuration checked against finite differences.
type gradCase struct {
	preset  string
	targets []string
	rslora  bool
	dropout float64
}

var gradCases = []gradCase{
	{"tiny-llama", []string{"q_proj", "v_proj"}, false, 0},
	{"tiny-llama", []string{AllLinear}, true, 0},
	{"tiny-qwen2", []string{"k_proj", "o_proj", "down_proj"}, false, 0.3},
	{"tiny-gpt2", []string{"c_attn"}, false, 0},   // shared A, row blocks of B
	{"tiny-gpt2", []string{"c_attn"}, false, 0.4}, // + one shared dropout mask
	{"tiny-gpt2", []string{"c_proj", "c_fc"}, true, 0},
	{"tiny-qwen3", []string{"q_proj", "v_proj"}, false, 0.2}, // q_proj (64, 16): head_dim 16 x 4 heads != hidden 16
	{"tiny-qwen3", []string{AllLinear}, true, 0},
}

// TestGradients checks the gradient of every adapter tensor (A and B of
// every module, including the shared A of GPT-2's c_attn, whose gradient
// sums three views) against central finite differences of the whole
// model's loss in float64. With dropout the masks are drawn by a training
// forward and then frozen, so the loss is a fixed function of the weights.
// Tolerance: eps 1e-5, |fd - analytic| <= 1e-8 + 1e-5·max(|fd|, |analytic|).
func TestGradients(t *testing.T) {
	for _, c := range gradCases {
		name := fmt.Sprintf("%s/%s/rs=%v/p=%v", c.preset, strings.Join(c.targets, ","), c.rslora, c.dropout)
		t.Run(name, func(t *testing.T) {
			m := tinyModel(t, c.preset, tensor.F64, false, 1)
			a, err := Apply(m, Config{R: 3, Alpha: 5, Dropout: c.dropout, Targets: c.targets, UseRSLoRA: c.rslora, Seed: 11})
			if err != nil {
				t.Fatal(err)
			}
			randomB(a, 5, 0.3)
			b := testBatch(2, 2, 5, m.Cfg.VocabSize)
			count := 0
			for _, x := range b.Targets {
				if x >= 0 {
					count++
				}
			}
			scale := 1 / float64(count)
			a.ZeroGrad()
			if _, _, err := m.ForwardBackward(b, scale); err != nil {
				t.Fatal(err)
			}
			if c.dropout > 0 {
				for _, md := range a.Modules {
					md.frozen = true
					dropped := 0
					n := md.maskN * md.A.Shape[1]
					for i := 0; i < n; i++ {
						if md.mask.Bytes[i>>3]>>(i&7)&1 == 0 {
							dropped++
						}
					}
					if dropped == 0 || dropped == n {
						t.Fatalf("%s: %d of %d inputs dropped", md.Name, dropped, n)
					}
				}
			}
			loss := func() float64 {
				if err := m.Forward(b); err != nil {
					t.Fatal(err)
				}
				s, _, err := m.Loss(b, scale, false)
				if err != nil {
					t.Fatal(err)
				}
				return s * scale
			}
			for _, w := range a.WeightArena.Tensors() {
				g := append([]float64(nil), a.GradArena.Get(w.Name).F64...)
				if err := gradcheck.Check(w.Name, w.F64, g, gradcheck.Sample(w.Numel(), 9), 1e-5, 1e-8, 1e-5, loss); err != nil {
					t.Error(err)
				}
			}
		})
	}
}

// TestBaseFrozen: with a trainable base, the targeted layers' weights get no
// gradient (the wrapper holds a frozen copy) while untargeted ones still do;
// with trainable=false there is no gradient arena and no base layer holds a
// gradient tensor.
func TestBaseFrozen(t *testing.T) {
	for _, preset := range []string{"tiny-gpt2", "tiny-llama", "tiny-qwen3"} {
		t.Run(preset, func(t *testing.T) {
			m := tinyModel(t, preset, tensor.F32, true, 1)
			targets := []string{"q_proj", "v_proj"}
			frozen := []string{"self_attn.q_proj", "self_attn.v_proj"}
			free := "self_attn.k_proj.weight"
			if m.Cfg.Family() == model.GPT2 {
				targets = []string{"c_attn"}
				frozen = []string{"attn.c_attn"}
				free = "attn.c_proj.weight"
			}
			a, err := Apply(m, Config{R: 2, Alpha: 4, Targets: targets})
			if err != nil {
				t.Fatal(err)
			}
			randomB(a, 1, 0.3)
			m.ZeroGrad()
			a.ZeroGrad()
			if _, _, err := m.ForwardBackward(testBatch(1, 2, 5, m.Cfg.VocabSize), 0.1); err != nil {
				t.Fatal(err)
			}
			for _, g := range m.Grads.Tensors() {
				isFrozen := false
				for _, f := range frozen {
					isFrozen = isFrozen || strings.Contains(g.Name, f)
				}
				nz := nonzero(g)
				switch {
				case isFrozen && nz:
					t.Errorf("frozen base %s has a gradient", g.Name)
				case strings.HasSuffix(g.Name, free) && !nz:
					t.Errorf("untargeted %s has no gradient", g.Name)
				}
			}
			for _, v := range a.Layers {
				if lin := v.Base.(*nn.Linear); lin.DW != nil || lin.DB != nil {
					t.Errorf("%s: base holds gradient tensors", v.Mod.Name)
				}
			}
			for _, g := range a.Grads() {
				if !nonzero(g) {
					t.Errorf("adapter %s has no gradient", g.Name)
				}
			}

			m2 := tinyModel(t, preset, tensor.F32, false, 1)
			a2, err := Apply(m2, Config{R: 2, Alpha: 4, Targets: targets})
			if err != nil {
				t.Fatal(err)
			}
			randomB(a2, 1, 0.3)
			if _, _, err := m2.ForwardBackward(testBatch(1, 2, 5, m2.Cfg.VocabSize), 0.1); err != nil {
				t.Fatal(err)
			}
			if m2.Grads != nil {
				t.Error("frozen model has a gradient arena")
			}
			// Same adapter gradients whether or not the base was trainable.
			for i, g := range a2.Grads() {
				if d := maxDiff(f32s(g.F32), f32s(a.Grads()[i].F32)); d > 1e-6 {
					t.Errorf("%s: gradients differ by %g between trainable and frozen bases", g.Name, d)
				}
			}
		})
	}
}

func nonzero(t *tensor.Tensor) bool {
	for i := 0; i < t.Numel(); i++ {
		if t.At(i) != 0 {
			return true
		}
	}
	return false
}

// TestInit: with B = 0 the adapted model computes exactly the base model's
// logits, and A follows PEFT's kaiming_uniform_(a=√5): U(-1/√in, 1/√in).
func TestInit(t *testing.T) {
	for _, preset := range []string{"tiny-gpt2", "tiny-llama", "tiny-qwen2", "tiny-qwen3"} {
		m := tinyModel(t, preset, tensor.F32, false, 3)
		b := testBatch(4, 2, 6, m.Cfg.VocabSize)
		want := logits(t, m, b)
		a, err := Apply(m, Config{R: 8, Alpha: 16, Dropout: 0.1, Targets: []string{AllLinear}, Seed: 1})
		if err != nil {
			t.Fatal(err)
		}
		a.SetTraining(false)
		if d := maxDiff(logits(t, m, b), want); d != 0 {
			t.Errorf("%s: logits at init differ from the base by %g", preset, d)
		}
		for _, md := range a.Modules {
			in := md.A.Shape[1]
			bound := 1 / math.Sqrt(float64(in))
			var sum, sq float64
			n := md.A.Numel()
			for i := 0; i < n; i++ {
				v := md.A.At(i)
				if math.Abs(v) > bound {
					t.Fatalf("%s: A[%d] = %g outside ±%g", md.Name, i, v, bound)
				}
				sum += v
				sq += v * v
			}
			// Uniform(-b, b) has variance b²/3; loose 5-sigma-ish bounds.
			if v := sq / float64(n); math.Abs(v-bound*bound/3) > 0.35*bound*bound/3 {
				t.Errorf("%s: A variance %g, want about %g", md.Name, v, bound*bound/3)
			}
			if nonzero(md.B) {
				t.Errorf("%s: B is not zero at init", md.Name)
			}
		}
		// Same seed, same A; another seed, another A.
		m2 := tinyModel(t, preset, tensor.F32, false, 3)
		a2, _ := Apply(m2, Config{R: 8, Alpha: 16, Targets: []string{AllLinear}, Seed: 1})
		m3 := tinyModel(t, preset, tensor.F32, false, 3)
		a3, _ := Apply(m3, Config{R: 8, Alpha: 16, Targets: []string{AllLinear}, Seed: 2})
		if d := maxDiff(f32s(a.WeightArena.Flat().F32), f32s(a2.WeightArena.Flat().F32)); d != 0 {
			t.Errorf("%s: same seed gives different A (%g)", preset, d)
		}
		if d := maxDiff(f32s(a.WeightArena.Flat().F32), f32s(a3.WeightArena.Flat().F32)); d == 0 {
			t.Errorf("%s: seeds 1 and 2 give the same A", preset)
		}
	}
}

// TestForwardFormula checks one wrapper against y = base(x) + s·x Aᵀ Bᵀ
// computed by hand, for plain and rsLoRA scaling.
func TestForwardFormula(t *testing.T) {
	for _, rs := range []bool{false, true} {
		m := tinyModel(t, "tiny-llama", tensor.F64, false, 1)
		base := m.Blocks[1].Up.(*nn.Linear)
		a, err := Apply(m, Config{R: 4, Alpha: 6, Targets: []string{"up_proj"}, UseRSLoRA: rs})
		if err != nil {
			t.Fatal(err)
		}
		wantS := 6.0 / 4
		if rs {
			wantS = 6.0 / 2
		}
		if a.Modules[0].Scaling != wantS || a.Cfg.Scaling() != wantS {
			t.Fatalf("rslora=%v: scaling %g, want %g", rs, a.Modules[0].Scaling, wantS)
		}
		randomB(a, 2, 0.5)
		l := m.Blocks[1].Up.(*Linear)
		N, in, out := 3, l.In(), l.Out()
		x := tensor.New(tensor.F64, N, in)
		for i := range x.F64 {
			x.F64[i] = math.Sin(float64(i))
		}
		y := tensor.New(tensor.F64, N, out)
		l.Forward(y, x)
		A, B := l.Mod.A, l.B
		for n := 0; n < N; n++ {
			for o := 0; o < out; o++ {
				want := 0.0
				for i := 0; i < in; i++ {
					want += x.F64[n*in+i] * base.W.F64[o*in+i]
				}
				for k := 0; k < 4; k++ {
					h := 0.0
					for i := 0; i < in; i++ {
						h += x.F64[n*in+i] * A.F64[k*in+i]
					}
					want += wantS * h * B.F64[o*4+k]
				}
				if d := math.Abs(y.F64[n*out+o] - want); d > 1e-12 {
					t.Fatalf("rslora=%v: y[%d,%d] = %g, want %g", rs, n, o, y.F64[n*out+o], want)
				}
			}
		}
	}
}

// TestDropout checks that the mask drawn in Forward is the one Backward
// uses, that GPT-2's q, k, v views share one mask per forward pass, that
// about p of the inputs are dropped, that a new pass draws a new mask, and
// that evaluation mode turns dropout off.
func TestDropout(t *testing.T) {
	const p = 0.25
	m := tinyModel(t, "tiny-gpt2", tensor.F64, false, 1)
	qkv := []nn.Layer{m.Blocks[0].Q, m.Blocks[0].K, m.Blocks[0].V}
	a, err := Apply(m, Config{R: 2, Alpha: 2, Dropout: p, Targets: []string{"c_attn"}, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	randomB(a, 1, 0.5)
	views := []*Linear{m.Blocks[0].Q.(*Linear), m.Blocks[0].K.(*Linear), m.Blocks[0].V.(*Linear)}
	md := views[0].Mod
	N, in := 64, views[0].In()
	x := tensor.New(tensor.F64, N, in)
	for i := range x.F64 {
		x.F64[i] = math.Cos(float64(i) * 0.7)
	}
	// adapterOut returns y - base(x) for a view, computed from its own output.
	adapterOut := func(i int, y *tensor.Tensor) []float64 {
		yb := tensor.New(tensor.F64, N, views[i].Out())
		qkv[i].Forward(yb, x)
		out := make([]float64, yb.Numel())
		for j := range out {
			out[j] = y.F64[j] - yb.F64[j]
		}
		return out
	}
	// expected adapter output of view i under mask bits.
	expect := func(i int, mask []byte) []float64 {
		v := views[i]
		xd := tensor.New(tensor.F64, N, in)
		applyMaskRef(xd, x, mask, 1/(1-p))
		h := tensor.New(tensor.F64, N, 2)
		a.be.LinearForward(h, xd, md.A, nil)
		o := tensor.New(tensor.F64, N, v.Out())
		a.be.LinearForward(o, h, v.B, nil)
		a.be.Scale(o, md.Scaling)
		return o.F64
	}
	var prev []byte
	for pass := 0; pass < 2; pass++ {
		ys := make([]*tensor.Tensor, 3)
		for i, v := range views {
			ys[i] = tensor.New(tensor.F64, N, v.Out())
			v.Forward(ys[i], x)
		}
		mask := append([]byte(nil), md.mask.Bytes...)
		for i := range views {
			if d := maxDiff(adapterOut(i, ys[i]), expect(i, mask)); d > 1e-12 {
				t.Errorf("pass %d: view %d does not use the module's single mask (diff %g)", pass, i, d)
			}
		}
		kept := 0
		for j := 0; j < N*in; j++ {
			kept += int(mask[j>>3] >> (j & 7) & 1)
		}
		if frac := 1 - float64(kept)/float64(N*in); math.Abs(frac-p) > 0.05 {
			t.Errorf("pass %d: dropped fraction %g, want about %g", pass, frac, p)
		}
		if prev != nil && maxDiff(f32u(prev), f32u(mask)) == 0 {
			t.Error("a new forward pass reused the previous mask")
		}
		prev = mask

		// Backward through view 1: dx must be zero (from the adapter) exactly
		// where the mask dropped the input, dA must match the masked input.
		dy := tensor.New(tensor.F64, N, views[1].Out())
		for j := range dy.F64 {
			dy.F64[j] = math.Sin(float64(j))
		}
		dx := tensor.New(tensor.F64, N, in)
		dxBase := tensor.New(tensor.F64, N, in)
		a.ZeroGrad()
		views[1].Backward(dx, dy, x)
		qkv[1].Backward(dxBase, dy, x)
		for j := 0; j < N*in; j++ {
			if mask[j>>3]>>(j&7)&1 == 0 && dx.F64[j] != dxBase.F64[j] {
				t.Fatalf("pass %d: gradient reaches dropped input %d", pass, j)
			}
		}
		xd := tensor.New(tensor.F64, N, in)
		applyMaskRef(xd, x, mask, 1/(1-p))
		dh := tensor.New(tensor.F64, N, 2)
		a.be.LinearBackward(dh, nil, nil, dy, views[1].h, views[1].B)
		a.be.Scale(dh, md.Scaling)
		wantDA := tensor.New(tensor.F64, 2, in)
		a.be.LinearBackward(nil, wantDA, nil, dh, xd, md.A)
		if d := maxDiff(md.DA.F64, wantDA.F64); d > 1e-12 {
			t.Errorf("pass %d: dA differs from the masked input's by %g", pass, d)
		}
	}
	// Evaluation: no dropout at all.
	a.SetTraining(false)
	y := tensor.New(tensor.F64, N, views[0].Out())
	views[0].Forward(y, x)
	ones := make([]byte, (N*in+7)/8)
	for i := range ones {
		ones[i] = 0xff
	}
	got := adapterOut(0, y)
	want := expect(0, ones)
	for j := range want {
		want[j] *= 1 - p // expect() applied the inverted-dropout scale
	}
	if d := maxDiff(got, want); d > 1e-12 {
		t.Errorf("eval mode: adapter output differs from the undropped one by %g", d)
	}
}

// TestReplayMasks: with ReplayMasks on, a repeated training forward reuses
// every module's mask (what gradient checkpointing's recompute needs);
// with it off, each forward draws new masks.
func TestReplayMasks(t *testing.T) {
	m := tinyModel(t, "tiny-llama", tensor.F32, false, 1)
	a, err := Apply(m, Config{R: 2, Alpha: 4, Dropout: 0.5, Targets: []string{AllLinear}, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	randomB(a, 1, 0.5)
	b := testBatch(1, 2, 5, m.Cfg.VocabSize)
	first := logits(t, m, b)
	a.ReplayMasks(true)
	if d := maxDiff(logits(t, m, b), first); d != 0 {
		t.Errorf("replayed forward differs by %g", d)
	}
	a.ReplayMasks(false)
	if d := maxDiff(logits(t, m, b), first); d == 0 {
		t.Error("a new training forward reused the masks")
	}
}

// applyMaskRef is the reference dropout: dst = src·s where bit i&7 of
// mask[i>>3] is set, 0 elsewhere (F64).
func applyMaskRef(dst, src *tensor.Tensor, mask []byte, s float64) {
	for i := range dst.F64 {
		if mask[i>>3]>>(i&7)&1 != 0 {
			dst.F64[i] = src.F64[i] * s
		} else {
			dst.F64[i] = 0
		}
	}
}

func f32u(x []byte) []float64 {
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = float64(v)
	}
	return out
}

// TestMerge: merged weights give the adapter's logits within 1e-5, for
// GPT-2 (fused c_attn rows and both c_proj) and Llama (every linear).
func TestMerge(t *testing.T) {
	for _, c := range []struct {
		preset  string
		targets []string
	}{{"tiny-gpt2", []string{"c_attn", "c_proj"}}, {"tiny-llama", []string{AllLinear}}, {"tiny-qwen2", []string{"q_proj", "v_proj"}}, {"tiny-qwen3", []string{"q_proj", "k_proj", "o_proj"}}} {
		m := tinyModel(t, c.preset, tensor.F32, false, 5)
		a, err := Apply(m, Config{R: 4, Alpha: 8, Dropout: 0.1, Targets: c.targets, Seed: 9})
		if err != nil {
			t.Fatal(err)
		}
		randomB(a, 3, 0.3)
		a.SetTraining(false)
		b := testBatch(6, 2, 7, m.Cfg.VocabSize)
		want := logits(t, m, b)
		if err := Merge(m, a); err != nil {
			t.Fatal(err)
		}
		for _, blk := range m.Blocks {
			for s := slotQ; s <= slotDown; s++ {
				if _, ok := (*s.field(blk)).(*Linear); ok {
					t.Fatalf("%s: a LoRA wrapper is left after Merge", c.preset)
				}
			}
		}
		d := maxDiff(logits(t, m, b), want)
		t.Logf("%s: merged vs adapter logits max diff %.3g", c.preset, d)
		if d > 1e-5 {
			t.Errorf("%s: merged logits differ by %g", c.preset, d)
		}
		if err := Merge(m, a); err == nil {
			t.Error("merging twice succeeded")
		}
	}
}

// TestUnload puts the original layers back.
func TestUnload(t *testing.T) {
	m := tinyModel(t, "tiny-gpt2", tensor.F32, true, 5)
	orig := m.Blocks[1].K
	b := testBatch(6, 1, 4, m.Cfg.VocabSize)
	want := logits(t, m, b)
	a, err := Apply(m, Config{R: 2, Alpha: 8, Targets: []string{AllLinear}})
	if err != nil {
		t.Fatal(err)
	}
	randomB(a, 3, 0.3)
	if err := a.Unload(m); err != nil {
		t.Fatal(err)
	}
	if m.Blocks[1].K != orig {
		t.Error("Unload did not restore the original layer")
	}
	if d := maxDiff(logits(t, m, b), want); d != 0 {
		t.Errorf("logits after Unload differ by %g", d)
	}
}

func TestApplyErrors(t *testing.T) {
	m := tinyModel(t, "tiny-llama", tensor.F32, false, 1)
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{R: 0, Alpha: 1, Targets: []string{"q_proj"}}, "r = 0"},
		{Config{R: 2, Alpha: 1, Dropout: 1, Targets: []string{"q_proj"}}, "dropout"},
		{Config{R: 2, Alpha: 1}, "no target"},
		{Config{R: 2, Alpha: 1, Targets: []string{"c_attn"}}, `["c_attn"] match no module`},
		{Config{R: 2, Alpha: 1, Targets: []string{"q_proj", "qproj"}}, `"qproj" matches no module`},
		{Config{R: 2, Alpha: 1, TargetRegex: `(`}, "regex"},
	} {
		_, err := Apply(m, c.cfg)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error %v, want one containing %q", c.cfg, err, c.want)
		}
	}
	if _, err := Apply(m, Config{R: 2, Alpha: 1, Targets: []string{"q_proj"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := Apply(m, Config{R: 2, Alpha: 1, Targets: []string{"self_attn.q_proj"}}); err == nil || !strings.Contains(err.Error(), "already") {
		t.Errorf("second adapter on q_proj: %v", err)
	}
	// Regex semantics: the whole path must match.
	m2 := tinyModel(t, "tiny-llama", tensor.F32, false, 1)
	a, err := Apply(m2, Config{R: 2, Alpha: 1, TargetRegex: `.*\.1\.self_attn\.(q|v)_proj`})
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Modules) != 2 || a.Modules[0].Name != "model.layers.1.self_attn.q_proj" {
		t.Errorf("regex picked %d modules, first %s", len(a.Modules), a.Modules[0].Name)
	}
}

// TestReport checks PEFT's print_trainable_parameters format, including
// the example from the Qwen1.5-1.8B recipe (r=8 on q_proj and v_proj),
// computed from the preset's config.
func TestReport(t *testing.T) {
	for _, c := range []struct {
		n    int64
		want string
	}{{0, "0"}, {999, "999"}, {1000, "1,000"}, {1572864, "1,572,864"}, {1838401536, "1,838,401,536"}} {
		if got := commas(c.n); got != c.want {
			t.Errorf("commas(%d) = %q, want %q", c.n, got, c.want)
		}
	}
	cfg, err := model.LookupPreset("qwen1.5-1.8b")
	if err != nil {
		t.Fatal(err)
	}
	tr := int64(cfg.NumHiddenLayers * 2 * 8 * (cfg.HiddenSize + cfg.HiddenSize))
	got := reportLine(tr, model.ParamCount(cfg)+tr)
	if want := "trainable params: 1,572,864 || all params: 1,838,401,536 || trainable%: 0.0856"; got != want {
		t.Errorf("qwen1.5-1.8b report\n got %s\nwant %s", got, want)
	}
}

// TestTraining: AdamW on the adapters alone (frozen bf16 base, dropout on)
// lowers the loss on a fixed batch, and the base weights never change.
func TestTraining(t *testing.T) {
	m := tinyModel(t, "tiny-qwen2", tensor.F32, false, 1)
	if err := ConvertBase(m, tensor.BF16); err != nil {
		t.Fatal(err)
	}
	a, err := Apply(m, Config{R: 4, Alpha: 8, Dropout: 0.05, Targets: []string{"q_proj", "v_proj", "up_proj"}, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	q := m.Blocks[0].Q.(*Linear).Base.(*HalfLinear)
	w0 := append([]uint16(nil), q.W.U16...)
	cfg := optim.DefaultConfig()
	cfg.WeightDecay = 0
	opt, err := optim.NewAdamW(a.Params(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	b := testBatch(2, 4, 8, m.Cfg.VocabSize)
	var first, last float64
	for step := 0; step < 40; step++ {
		a.ZeroGrad()
		sum, n, err := m.ForwardBackward(b, 1.0/31)
		if err != nil {
			t.Fatal(err)
		}
		optim.ClipGradNorm(a.Grads(), 1)
		opt.Step(3e-2)
		if step == 0 {
			first = sum / float64(n)
		}
		last = sum / float64(n)
	}
	t.Logf("loss %.4f -> %.4f", first, last)
	if last > 0.8*first {
		t.Errorf("loss %.4f -> %.4f: LoRA training did not learn", first, last)
	}
	for i, v := range q.W.U16 {
		if v != w0[i] {
			t.Fatal("base weight changed during training")
		}
	}
}

// TestCheckpointingDropout: with gradient checkpointing and ReplayMasks as
// the model's recompute hook, the recomputed blocks use the masks of the
// original forward, so the adapter gradients equal those of an
// uncheckpointed pass with the same masks.
func TestCheckpointingDropout(t *testing.T) {
	for _, preset := range []string{"tiny-gpt2", "tiny-llama", "tiny-qwen3"} {
		m := tinyModel(t, preset, tensor.F64, false, 1)
		a, err := Apply(m, Config{R: 3, Alpha: 6, Dropout: 0.3, Targets: []string{AllLinear}, Seed: 4})
		if err != nil {
			t.Fatal(err)
		}
		randomB(a, 2, 0.3)
		b := testBatch(5, 2, 6, m.Cfg.VocabSize)
		m.RecomputeHook = a.ReplayMasks
		if err := m.SetCheckpointing(true); err != nil {
			t.Fatal(err)
		}
		a.ZeroGrad()
		if _, _, err := m.ForwardBackward(b, 0.1); err != nil {
			t.Fatal(err)
		}
		ckpt := append([]float64(nil), a.GradArena.Flat().F64...)
		if err := m.SetCheckpointing(false); err != nil {
			t.Fatal(err)
		}
		a.ReplayMasks(true) // the masks the checkpointed pass drew
		a.ZeroGrad()
		if _, _, err := m.ForwardBackward(b, 0.1); err != nil {
			t.Fatal(err)
		}
		a.ReplayMasks(false)
		if d := maxDiff(ckpt, a.GradArena.Flat().F64); d > 1e-12 {
			t.Errorf("%s: checkpointed gradients differ by %g", preset, d)
		}
	}
}
