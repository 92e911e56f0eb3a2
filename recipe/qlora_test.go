package recipe

import (
	"math"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/shoggo/shoggo/backend/cpu"
	"github.com/shoggo/shoggo/lora"
	"github.com/shoggo/shoggo/model"
	"github.com/shoggo/shoggo/optim"
	"github.com/shoggo/shoggo/quant"
	"github.com/shoggo/shoggo/tensor"
	"github.com/shoggo/shoggo/train"
)

func forwardLogits(t *testing.T, m *model.Transformer, b *model.Batch) []float32 {
	t.Helper()
	if m.Planned() != [2]int{b.B, b.T} {
		if err := m.Plan(b.B, b.T); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.Forward(b); err != nil {
		t.Fatal(err)
	}
	return append([]float32(nil), m.Logits().F32...)
}

func rmsDiff(a, b []float32) float64 {
	var d float64
	for i := range a {
		e := float64(a[i] - b[i])
		d += e * e
	}
	return math.Sqrt(d / float64(len(a)))
}

func maxDiff(a, b []float32) float64 {
	var d float64
	for i := range a {
		d = max(d, math.Abs(float64(a[i]-b[i])))
	}
	return d
}

// QLoRA: the base's block linears are NF4 (blocksize 64, double
// quantization); a few LoRA steps move the logits; the saved PEFT adapter
// loads onto the fp32 base, whose logits then match the QLoRA model's up to
// the quantization error (the NF4-vs-fp32 gap of the bare bases, plus a
// margin), for each family.
func TestQLoRAAdapterAppliesToFP32Base(t *testing.T) {
	for _, fam := range []string{"llama", "qwen2", "gpt2"} {
		t.Run(fam, func(t *testing.T) {
			dir := filepath.Join("../testdata/models", fam)
			be := cpu.New()
			factory, err := QLoRAFactory(be)
			if err != nil {
				t.Fatal(err)
			}
			m, _, err := model.LoadHFFrozen(dir, be, tensor.F32, false, factory)
			if err != nil {
				t.Fatal(err)
			}
			q, ok := m.Blocks[0].Q.(*quant.Linear)
			if !ok || q.Format() != quant.NF4 {
				t.Fatalf("QLoRA base layer is %T", m.Blocks[0].Q)
			}
			if w4 := q.W.(*quant.Weight4); w4.State().BlockSize != 64 || !w4.State().Nested() {
				t.Fatalf("NF4 state %+v", w4.State())
			}
			B, T := 4, 12
			rng := rand.New(rand.NewPCG(3, 4))
			batch := func() *model.Batch {
				b := &model.Batch{B: B, T: T, IDs: make([]int32, B*T), Targets: make([]int32, B*T)}
				for i := range b.IDs {
					b.IDs[i] = int32(rng.IntN(m.Cfg.VocabSize))
					b.Targets[i] = int32((int(b.IDs[i]) * 7) % m.Cfg.VocabSize) // a learnable map
				}
				return b
			}
			probe := batch()
			q0 := forwardLogits(t, m, probe)

			a, err := lora.Apply(m, lora.Config{R: 8, Alpha: 16, Targets: []string{lora.AllLinear}, Seed: 1})
			if err != nil {
				t.Fatal(err)
			}
			tr := train.LoRA(m, a)
			tr.SetTraining(true)
			opt, err := optim.NewAdamW(tr.Params, optim.Config{Beta1: 0.9, Beta2: 0.999, Eps: 1e-8})
			if err != nil {
				t.Fatal(err)
			}
			if err := m.Plan(B, T); err != nil {
				t.Fatal(err)
			}
			var first, last float64
			tb := batch()
			for step := 0; step < 8; step++ {
				r, err := train.StepWith(m, tr, train.LM{}, opt, []*model.Batch{tb}, 2e-2, 1)
				if err != nil {
					t.Fatal(err)
				}
				if step == 0 {
					first = r.Loss
				}
				last = r.Loss
			}
			if !(last < first) {
				t.Errorf("QLoRA loss %v -> %v did not fall", first, last)
			}
			tr.SetTraining(false)
			qa := forwardLogits(t, m, probe)
			adir := t.TempDir()
			if err := a.Save(adir); err != nil {
				t.Fatal(err)
			}

			f, _, err := model.LoadHF(dir, be, tensor.F32, false)
			if err != nil {
				t.Fatal(err)
			}
			f0 := forwardLogits(t, f, probe)
			if _, err := lora.Load(f, adir); err != nil {
				t.Fatal(err)
			}
			fa := forwardLogits(t, f, probe)
			quantErr := rmsDiff(q0, f0) // NF4 vs fp32, bare bases
			adapterErr := rmsDiff(qa, fa)
			effect := rmsDiff(fa, f0)
			t.Logf("RMS logit differences: NF4 vs fp32 base %.4g; with the adapter %.4g; adapter effect on the fp32 base %.4g", quantErr, adapterErr, effect)
			if effect < 1.5*quantErr {
				t.Errorf("the adapter moved the logits by %v only (quantization error %v)", effect, quantErr)
			}
			if adapterErr > 1.5*quantErr+1e-5 {
				t.Errorf("QLoRA and fp32+adapter logits differ by %v, more than the quantization error %v allows", adapterErr, quantErr)
			}
			// On a fresh NF4 base the saved adapter reproduces the trained
			// model exactly.
			m2, _, err := model.LoadHFFrozen(dir, be, tensor.F32, false, factory)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := lora.Load(m2, adir); err != nil {
				t.Fatal(err)
			}
			if d := maxDiff(forwardLogits(t, m2, probe), qa); d > 1e-6 {
				t.Errorf("reloaded QLoRA model differs by %v", d)
			}
		})
	}
}
