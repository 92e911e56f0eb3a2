package opaquetest

import (
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/shoggo/shoggo/backend"
	"github.com/shoggo/shoggo/backend/opaque"
	"github.com/shoggo/shoggo/decode"
	"github.com/shoggo/shoggo/lora"
	"github.com/shoggo/shoggo/model"
	"github.com/shoggo/shoggo/optim"
	"github.com/shoggo/shoggo/quant"
	"github.com/shoggo/shoggo/recipe"
	"github.com/shoggo/shoggo/tensor"
	"github.com/shoggo/shoggo/train"
)

// sameSteps compares the step results of the two backends bit for bit and
// checks that clipping engaged (so ScaleAll ran).
func sameSteps(t *testing.T, a, b []train.StepResult, clip float64) {
	t.Helper()
	clipped := false
	for i := range a {
		if math.Float64bits(a[i].Loss) != math.Float64bits(b[i].Loss) || math.Float64bits(a[i].GradNorm) != math.Float64bits(b[i].GradNorm) ||
			a[i].Tokens != b[i].Tokens || a[i].Skipped != b[i].Skipped {
			t.Fatalf("step %d: %+v on the CPU, %+v on the opaque backend", i, a[i], b[i])
		}
		if math.IsNaN(a[i].Loss) || a[i].Skipped {
			t.Fatalf("step %d: %+v", i, a[i])
		}
		clipped = clipped || a[i].GradNorm > clip
	}
	if !clipped {
		t.Errorf("no step had a gradient norm above the clip %g: clipping was not exercised", clip)
	}
}

// TestOpaquePretrainStep: three full pre-training steps (two micro-batches
// each, one with padding: Forward, Loss, Backward, global-norm clipping,
// AdamW with weight decay) on a Llama-style, a GPT-2 and a Qwen3 (per-head
// q/k norms) tiny model give the same losses, gradient norms, parameters,
// gradients and moments on the opaque backend as on the CPU; the opaque
// model's arenas and moments have no host storage. A checkpoint of each
// (SaveCheckpoint: HF weights through ReadHost, moments through ToHost) has
// the same bytes, and one loaded into a fresh opaque model (LoadWeights
// through FillHost, moments through Upload) restores the same bits.
func TestOpaquePretrainStep(t *testing.T) {
	const clip = 0.1
	for _, preset := range []string{"tiny-llama", "tiny-gpt2", "tiny-qwen3"} {
		t.Run(preset, func(t *testing.T) {
			cfg, err := model.LookupPreset(preset)
			if err != nil {
				t.Fatal(err)
			}
			oc := optim.DefaultConfig()
			oc.WeightDecay = 0.1
			bes := backends()
			var ms []*model.Transformer
			var opts []*optim.AdamW
			var res [][]train.StepResult
			var ckpts []string
			for _, be := range bes {
				m, err := model.New(cfg, be, tensor.F32, true)
				if err != nil {
					t.Fatal(err)
				}
				m.InitWeights(rand.New(rand.NewPCG(5, 6)))
				opt, err := optim.NewAdamWOn(be, train.Params(m), oc)
				if err != nil {
					t.Fatal(err)
				}
				rng := rand.New(rand.NewPCG(9, 10))
				var rs []train.StepResult
				for step := range 3 {
					micro := []*model.Batch{randomBatch(rng, 2, 16, cfg.VocabSize, false), randomBatch(rng, 2, 16, cfg.VocabSize, step != 1)}
					r, err := train.StepWith(m, train.FullTrainable(m), train.LM{}, opt, micro, 1e-2, clip)
					if err != nil {
						t.Fatal(err)
					}
					rs = append(rs, r)
				}
				dir, err := train.SaveCheckpoint(t.TempDir(), m, opt, train.State{Step: 3})
				if err != nil {
					t.Fatal(err)
				}
				ms, opts, res, ckpts = append(ms, m), append(opts, opt), append(res, rs), append(ckpts, dir)
			}
			opaqueStorage(t, "opaque model", modelTensors(ms[1]))
			opaqueStorage(t, "opaque moments", opts[1].State())
			sameSteps(t, res[0], res[1], clip)
			sameOn(t, "model", bes, modelTensors(ms[0]), modelTensors(ms[1]))
			sameOn(t, "moments", bes, opts[0].State(), opts[1].State())
			sameFiles(t, ckpts[0], ckpts[1])

			o := opaque.New()
			m2, err := model.New(cfg, o, tensor.F32, true)
			if err != nil {
				t.Fatal(err)
			}
			opt2, err := optim.NewAdamWOn(o, train.Params(m2), oc)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := train.LoadCheckpoint(ckpts[1], m2, opt2); err != nil {
				t.Fatal(err)
			}
			if opt2.StepCount() != 3 {
				t.Errorf("resumed step count %d, want 3", opt2.StepCount())
			}
			sameOn(t, "resumed parameters", []backend.Backend{bes[0], o}, ms[0].Params.Tensors(), m2.Params.Tensors())
			sameOn(t, "resumed moments", []backend.Backend{bes[0], o}, opts[0].State(), opt2.State())
		})
	}
}

// TestOpaqueLoRASFTStep: three LoRA SFT steps (all-linear adapters, r 4,
// dropout 0.1, padded batches with masked prompts, clipping, AdamW) on an
// NF4 (double-quantized, bf16 embeddings and head: recipe.LoadBase with
// QLoRA) or bf16 (HalfLinear with biases) base of a Qwen2 (qkv biases) and
// a GPT-2 (fused c_attn, biases everywhere) tiny model, with gradient
// checkpointing off and on (dropout masks replayed), give the same losses,
// adapter weights, adapter gradients and moments on the opaque backend as
// on the CPU. The PEFT adapters both save are the same bytes, and loading
// the opaque one onto a fresh opaque base restores the same weights.
func TestOpaqueLoRASFTStep(t *testing.T) {
	const clip = 0.05
	cases := []struct {
		preset string
		base   recipe.BaseConfig
	}{
		{"tiny-qwen2", recipe.BaseConfig{QLoRA: true}},
		{"tiny-gpt2", recipe.BaseConfig{QLoRA: true}},
		{"tiny-qwen2", recipe.BaseConfig{BaseDType: "bf16"}},
	}
	for _, c := range cases {
		for _, ckpt := range []bool{false, true} {
			kind := "nf4"
			if !c.base.QLoRA {
				kind = c.base.BaseDType
			}
			t.Run(fmt.Sprintf("%s/%s/checkpointing=%t", c.preset, kind, ckpt), func(t *testing.T) {
				bc := c.base
				bc.Preset = c.preset
				lc := lora.Config{R: 4, Alpha: 8, Dropout: 0.1, Targets: []string{lora.AllLinear}, Seed: 3}
				oc := optim.DefaultConfig()
				bes := backends()
				var ads []*lora.Adapters
				var opts []*optim.AdamW
				var res [][]train.StepResult
				var saved []string
				var V int
				for _, be := range bes {
					m, err := recipe.LoadBase(bc, true, 0, 7, be, io.Discard)
					if err != nil {
						t.Fatal(err)
					}
					if err := m.SetCheckpointing(ckpt); err != nil {
						t.Fatal(err)
					}
					a, err := lora.Apply(m, lc)
					if err != nil {
						t.Fatal(err)
					}
					tr := train.LoRA(m, a)
					opt, err := optim.NewAdamWOn(be, tr.Params, oc)
					if err != nil {
						t.Fatal(err)
					}
					V = m.Cfg.VocabSize
					rng := rand.New(rand.NewPCG(21, 22))
					var rs []train.StepResult
					for range 3 {
						micro := []*model.Batch{randomBatch(rng, 3, 12, V, true), randomBatch(rng, 3, 12, V, true)}
						r, err := train.StepWith(m, tr, train.LM{}, opt, micro, 5e-3, clip)
						if err != nil {
							t.Fatal(err)
						}
						rs = append(rs, r)
					}
					dir := t.TempDir()
					if err := a.Save(dir); err != nil {
						t.Fatal(err)
					}
					if be.Name() == "opaque" {
						opaqueStorage(t, "opaque base", modelTensors(m))
						opaqueStorage(t, "opaque adapters", append(a.WeightArena.Tensors(), a.GradArena.Tensors()...))
						opaqueStorage(t, "opaque moments", opt.State())
					}
					ads, opts, res, saved = append(ads, a), append(opts, opt), append(res, rs), append(saved, dir)
				}
				sameSteps(t, res[0], res[1], clip)
				sameOn(t, "adapters", bes, ads[0].WeightArena.Tensors(), ads[1].WeightArena.Tensors())
				sameOn(t, "adapter gradients", bes, ads[0].GradArena.Tensors(), ads[1].GradArena.Tensors())
				sameOn(t, "moments", bes, opts[0].State(), opts[1].State())
				sameFiles(t, saved[0], saved[1])

				o := opaque.New()
				m2, err := recipe.LoadBase(bc, true, 0, 7, o, io.Discard)
				if err != nil {
					t.Fatal(err)
				}
				a2, err := lora.Load(m2, saved[1])
				if err != nil {
					t.Fatal(err)
				}
				sameOn(t, "loaded adapters", []backend.Backend{bes[0], o}, ads[0].WeightArena.Tensors(), a2.WeightArena.Tensors())
			})
		}
	}
}

// TestOpaqueDecode: batched generation (decode.Generate: left-padded
// prefill of prompts of different lengths, KV-cache steps, slots freed and
// reused when the batch is smaller than the prompt list) greedy and
// sampled with per-row seeds, on fp32 Llama-style and GPT-2 models and an
// NF4 Qwen3 base, gives the same tokens and finish reasons on the opaque
// backend as on the CPU.
func TestOpaqueDecode(t *testing.T) {
	for _, kind := range []string{"tiny-llama", "tiny-gpt2", "tiny-qwen3+nf4"} {
		t.Run(kind, func(t *testing.T) {
			preset, variant, _ := cutPlus(kind)
			rng := rand.New(rand.NewPCG(31, 32))
			var prompts [][]int32
			for _, n := range []int{1, 6, 3, 9, 2} {
				p := make([]int32, n)
				for i := range p {
					p[i] = int32(rng.IntN(101))
				}
				prompts = append(prompts, p)
			}
			runs := []decode.Options{
				{MaxNewTokens: 7},
				{MaxNewTokens: 5, BatchSize: 2, Seed: 4, Sampling: decode.Sampling{Temperature: 0.9, TopK: 20, TopP: 0.95, RepetitionPenalty: 1.2}},
				{MaxNewTokens: 8, BatchSize: 3, EOS: []int32{prompts[0][0], 7, 50}},
			}
			var out [][][]decode.Result
			for _, be := range backends() {
				var m *model.Transformer
				var err error
				if variant == "nf4" {
					m, err = recipe.LoadBase(recipe.BaseConfig{Preset: preset, QLoRA: true}, true, 0, 13, be, io.Discard)
				} else {
					var cfg *model.Config
					if cfg, err = model.LookupPreset(preset); err == nil {
						if m, err = model.New(cfg, be, tensor.F32, false); err == nil {
							m.InitWeights(rand.New(rand.NewPCG(13, 14)))
						}
					}
				}
				if err != nil {
					t.Fatal(err)
				}
				var rs [][]decode.Result
				for _, o := range runs {
					r, err := decode.Generate(m, prompts, o)
					if err != nil {
						t.Fatal(err)
					}
					rs = append(rs, r)
				}
				out = append(out, rs)
			}
			total := 0
			for i := range runs {
				for j := range prompts {
					a, b := out[0][i][j], out[1][i][j]
					if fmt.Sprint(a.Tokens) != fmt.Sprint(b.Tokens) || a.Finish != b.Finish {
						t.Fatalf("run %d prompt %d: %v (%s) on the CPU, %v (%s) on the opaque backend", i, j, a.Tokens, a.Finish, b.Tokens, b.Finish)
					}
					total += len(a.Tokens)
				}
			}
			if total == 0 {
				t.Fatal("nothing was generated")
			}
		})
	}
}

func cutPlus(s string) (string, string, bool) {
	for i := range s {
		if s[i] == '+' {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

// logitsOn runs a forward pass of a fixed batch and returns the logits on
// the host.
func logitsOn(t *testing.T, m *model.Transformer) *tensor.Tensor {
	t.Helper()
	rng := rand.New(rand.NewPCG(41, 42))
	b := randomBatch(rng, 2, 7, m.Cfg.VocabSize, false)
	if err := m.Forward(b); err != nil {
		t.Fatal(err)
	}
	return backend.ToHost(m.BE, m.Logits())
}

// TestOpaqueHF: Hugging Face fixtures (GPT-2, Llama, Qwen3, a bf16 Llama)
// loaded onto the opaque backend (LoadWeights through FillHost) give the
// CPU's logits and save back (HFTensors through ReadHost) to the same
// bytes as the CPU's save; a fixture loaded as a frozen QLoRA-style base
// (NF4 block linears, bf16 tables read through FillHost) and a quantized
// directory (QuantizeHF, then LoadForInference: quantized layers read from
// the file) give the CPU's logits too.
func TestOpaqueHF(t *testing.T) {
	root := filepath.Join("..", "..", "testdata", "models")
	for _, fx := range []string{"gpt2", "llama", "qwen3", "llama_bf16"} {
		t.Run(fx, func(t *testing.T) {
			dir := filepath.Join(root, fx)
			bes := backends()
			var logits []*tensor.Tensor
			var outs []string
			for _, be := range bes {
				m, _, err := model.LoadHF(dir, be, tensor.F32, false)
				if err != nil {
					t.Fatal(err)
				}
				if be.Name() == "opaque" {
					opaqueStorage(t, "opaque model", modelTensors(m))
				}
				logits = append(logits, logitsOn(t, m))
				out := t.TempDir()
				if err := m.SaveHF(out, model.SaveOptions{}); err != nil {
					t.Fatal(err)
				}
				outs = append(outs, out)
			}
			sameTensor(t, "logits", logits[0], logits[1])
			sameFiles(t, outs[0], outs[1])
		})
	}
	t.Run("nf4-base", func(t *testing.T) {
		opt := model.FrozenOptions{Factory: model.QuantizingFactory(quant.NF4, recipe.QLoRAQuant), HalfEmbeddings: true}
		var logits []*tensor.Tensor
		for _, be := range backends() {
			m, _, err := model.LoadHFFrozenOpts(filepath.Join(root, "llama"), be, tensor.F32, false, opt)
			if err != nil {
				t.Fatal(err)
			}
			logits = append(logits, logitsOn(t, m))
		}
		sameTensor(t, "logits", logits[0], logits[1])
	})
	t.Run("quantized-dir", func(t *testing.T) {
		for _, format := range []string{quant.NF4, quant.Int8, quant.Int4} {
			q := t.TempDir()
			qo := model.QuantizeOptions{Format: format, Quant: quant.Options{BlockSize: 32, DoubleQuant: true, GroupSize: 32}}
			if format != quant.NF4 {
				qo.Quant = quant.Options{GroupSize: 32}
			}
			if _, err := model.QuantizeHF(filepath.Join(root, "gpt2"), q, qo); err != nil {
				t.Fatal(err)
			}
			var logits []*tensor.Tensor
			for _, be := range backends() {
				m, _, err := model.LoadForInference(q, be, tensor.F32)
				if err != nil {
					t.Fatal(err)
				}
				logits = append(logits, logitsOn(t, m))
			}
			sameTensor(t, format+" logits", logits[0], logits[1])
		}
	})
}
