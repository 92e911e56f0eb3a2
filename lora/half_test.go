package lora

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/shoggo/shoggo/backend/cpu"
	"github.com/shoggo/shoggo/model"
	"github.com/shoggo/shoggo/nn"
	"github.com/shoggo/shoggo/tensor"
)

// TestHalfLinear compares HalfLinear with an nn.Linear holding the same
// rounded weights, in one block and in many (block size forced down), for
// both half dtypes and both compute dtypes. F64 compute must agree to
// 1e-12 (same products, rounding only in the sums), F32 to 1e-5.
func TestHalfLinear(t *testing.T) {
	defer cpu.SetHalfBlockElems(cpu.SetHalfBlockElems(1 << 20))
	be := cpu.New()
	const N, in, out = 5, 19, 37
	rng := rand.New(rand.NewPCG(1, 2))
	for _, half := range []tensor.DType{tensor.BF16, tensor.F16} {
		for _, cdt := range []tensor.DType{tensor.F64, tensor.F32} {
			for _, blockElems := range []int{1 << 20, 4 * in, 1} {
				cpu.SetHalfBlockElems(blockElems)
				w, bias, x := tensor.New(cdt, out, in), tensor.New(cdt, out), tensor.New(cdt, N, in)
				for _, tt := range []*tensor.Tensor{w, bias, x} {
					for i := 0; i < tt.Numel(); i++ {
						tt.Set(i, rng.NormFloat64())
					}
				}
				h, err := NewHalfLinear(be, "l", w, bias, half)
				if err != nil {
					t.Fatal(err)
				}
				wr := tensor.New(cdt, out, in)
				widen(wr, h.W)
				ref := &nn.Linear{BE: be, W: wr, B: bias}
				tol := 1e-12
				if cdt == tensor.F32 {
					tol = 1e-5
				}
				y, yr := tensor.New(cdt, N, out), tensor.New(cdt, N, out)
				h.Forward(y, x)
				ref.Forward(yr, x)
				if d := maxDiff(vals(y), vals(yr)); d > tol {
					t.Errorf("%s/%s/block %d: forward differs by %g", half, cdt, blockElems, d)
				}
				dy := tensor.New(cdt, N, out)
				for i := 0; i < dy.Numel(); i++ {
					dy.Set(i, rng.NormFloat64())
				}
				dx, dxr := tensor.New(cdt, N, in), tensor.New(cdt, N, in)
				for i := 0; i < dx.Numel(); i++ { // backward accumulates
					dx.Set(i, 1)
					dxr.Set(i, 1)
				}
				h.Backward(dx, dy, x)
				ref.Backward(dxr, dy, x)
				if d := maxDiff(vals(dx), vals(dxr)); d > tol {
					t.Errorf("%s/%s/block %d: backward differs by %g", half, cdt, blockElems, d)
				}
				// rounding is to the half dtype: relative error within its epsilon
				eps := map[tensor.DType]float64{tensor.BF16: 1.0 / 256, tensor.F16: 1.0 / 2048}[half]
				for i := 0; i < w.Numel(); i++ {
					if math.Abs(wr.At(i)-w.At(i)) > eps*math.Abs(w.At(i))+math.Ldexp(1, -25) { // + half of F16's subnormal spacing
						t.Fatalf("%s: weight %g stored as %g", half, w.At(i), wr.At(i))
					}
				}
			}
		}
	}
}

func vals(t *tensor.Tensor) []float64 {
	out := make([]float64, t.Numel())
	for i := range out {
		out[i] = t.At(i)
	}
	return out
}

// roundBlockLinears rounds every block linear weight of m to dt in place
// (the fp32 reference for a converted base).
func roundBlockLinears(m *model.Transformer, dt tensor.DType) {
	for _, p := range m.Params.Tensors() {
		if isBlockLinearWeight(p.Name, p.Shape) {
			h := tensor.New(dt, p.Shape...)
			toHalf(h, p)
			widen(p, h)
		}
	}
}

// TestConvertBase: a LoRA model whose base is converted to bf16/fp16 gives
// the logits and adapter gradients of an fp32 model holding the rounded
// weights (1e-5), whether ConvertBase runs before or after Apply; the fp32
// arena shrinks to embeddings, norms and biases; the report is unchanged.
// Merging into a half base works to the half dtype's rounding.
func TestConvertBase(t *testing.T) {
	defer cpu.SetHalfBlockElems(cpu.SetHalfBlockElems(40)) // several blocks per layer
	for _, c := range []struct {
		preset  string
		half    tensor.DType
		targets []string
		first   bool // ConvertBase before Apply
	}{
		{"tiny-gpt2", tensor.BF16, []string{"c_attn", "c_fc"}, false},
		{"tiny-gpt2", tensor.F16, []string{AllLinear}, true},
		{"tiny-llama", tensor.BF16, []string{"q_proj", "v_proj"}, false},
		{"tiny-qwen2", tensor.F16, []string{AllLinear}, true},
	} {
		t.Run(c.preset+"/"+c.half.String(), func(t *testing.T) {
			cfg := Config{R: 4, Alpha: 8, Targets: c.targets, Seed: 5}
			ref := tinyModel(t, c.preset, tensor.F32, false, 2)
			roundBlockLinears(ref, c.half)
			ra, err := Apply(ref, cfg)
			if err != nil {
				t.Fatal(err)
			}
			randomB(ra, 8, 0.3)

			m := tinyModel(t, c.preset, tensor.F32, false, 2)
			var a *Adapters
			if c.first {
				if err := ConvertBase(m, c.half); err != nil {
					t.Fatal(err)
				}
			}
			if a, err = Apply(m, cfg); err != nil {
				t.Fatal(err)
			}
			randomB(a, 8, 0.3)
			if !c.first {
				if err := ConvertBase(m, c.half); err != nil {
					t.Fatal(err)
				}
			}
			if err := ConvertBase(m, c.half); err == nil {
				t.Error("converting twice succeeded")
			}
			for _, blk := range m.Blocks {
				for s := slotQ; s <= slotDown; s++ {
					l := *s.field(blk)
					if l == nil {
						continue
					}
					if lw, ok := l.(*Linear); ok {
						l = lw.Base
					}
					if _, ok := l.(*HalfLinear); !ok {
						t.Fatalf("slot %d holds %T after ConvertBase", s, l)
					}
				}
			}
			var linW int
			for _, p := range model.ParamSpecs(&m.Cfg) {
				if isBlockLinearWeight(p.Name, p.Shape) {
					linW += p.Shape.Numel()
				}
			}
			if got, want := m.Params.Numel(), ref.Params.Numel()-linW; got != want {
				t.Errorf("fp32 arena holds %d values after ConvertBase, want %d", got, want)
			}
			if a.Report(m) != ra.Report(ref) {
				t.Errorf("report %q, fp32 %q", a.Report(m), ra.Report(ref))
			}
			b := testBatch(3, 2, 6, m.Cfg.VocabSize)
			if d := maxDiff(logits(t, m, b), logits(t, ref, b)); d > 1e-5 {
				t.Errorf("logits differ from the rounded fp32 model by %g", d)
			}
			for _, x := range []*model.Transformer{m, ref} {
				if _, _, err := x.ForwardBackward(b, 0.1); err != nil {
					t.Fatal(err)
				}
			}
			for i, g := range a.Grads() {
				rg := ra.Grads()[i]
				d, mx := maxDiff(vals(g), vals(rg)), 0.0
				for _, v := range vals(rg) {
					mx = math.Max(mx, math.Abs(v))
				}
				if d > 1e-5*(1+mx) {
					t.Errorf("%s: gradient differs by %g (max %g)", g.Name, d, mx)
				}
			}
			// Merge into the half weights.
			a.SetTraining(false)
			want := logits(t, m, b)
			if err := Merge(m, a); err != nil {
				t.Fatal(err)
			}
			d := maxDiff(logits(t, m, b), want)
			t.Logf("merged into %s: logits differ by %.3g (half rounding)", c.half, d)
			if d > 0.05 {
				t.Errorf("merged half logits differ by %g", d)
			}
		})
	}
}

func TestConvertBaseErrors(t *testing.T) {
	m := tinyModel(t, "tiny-llama", tensor.F32, true, 1)
	if err := ConvertBase(m, tensor.BF16); err == nil {
		t.Error("trainable base converted")
	}
	m = tinyModel(t, "tiny-llama", tensor.F32, false, 1)
	if err := ConvertBase(m, tensor.F32); err == nil {
		t.Error("F32 accepted as a half dtype")
	}
}
