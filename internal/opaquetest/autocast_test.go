package opaquetest

import (
	"math/rand/v2"
	"testing"

	"github.com/shoggo/shoggo/model"
	"github.com/shoggo/shoggo/optim"
	"github.com/shoggo/shoggo/tensor"
	"github.com/shoggo/shoggo/train"
)

// TestOpaqueAutocastStep: two pre-training steps under bf16 and fp16
// mixed precision (16-bit saved activations, autocast ops) on a Llama and
// a Qwen3 tiny model give the same losses, parameters, gradients and
// moments on the opaque backend as on the CPU: every 16-bit activation is
// backend storage too.
func TestOpaqueAutocastStep(t *testing.T) {
	for _, preset := range []string{"tiny-llama", "tiny-qwen3"} {
		for _, prec := range []tensor.DType{tensor.BF16, tensor.F16} {
			t.Run(preset+"/"+prec.String(), func(t *testing.T) {
				cfg, err := model.LookupPreset(preset)
				if err != nil {
					t.Fatal(err)
				}
				bes := backends()
				var ms []*model.Transformer
				var opts []*optim.AdamW
				var res [][]train.StepResult
				for _, be := range bes {
					m, err := model.New(cfg, be, tensor.F32, true)
					if err != nil {
						t.Fatal(err)
					}
					m.InitWeights(rand.New(rand.NewPCG(5, 6)))
					if err := m.SetPrecision(prec); err != nil {
						t.Fatal(err)
					}
					opt, err := optim.NewAdamWOn(be, train.Params(m), optim.DefaultConfig())
					if err != nil {
						t.Fatal(err)
					}
					rng := rand.New(rand.NewPCG(9, 10))
					var rs []train.StepResult
					for step := range 2 {
						micro := []*model.Batch{randomBatch(rng, 2, 16, cfg.VocabSize, step == 1)}
						r, err := train.StepWith(m, train.FullTrainable(m), train.LM{}, opt, micro, 1e-2, 1)
						if err != nil {
							t.Fatal(err)
						}
						rs = append(rs, r)
					}
					ms, opts, res = append(ms, m), append(opts, opt), append(res, rs)
				}
				opaqueStorage(t, "opaque model", modelTensors(ms[1]))
				sameSteps(t, res[0], res[1], 1)
				sameOn(t, "model", bes, modelTensors(ms[0]), modelTensors(ms[1]))
				sameOn(t, "moments", bes, opts[0].State(), opts[1].State())
			})
		}
	}
}
