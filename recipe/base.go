package recipe

import (
	"fmt"
	"io"
	"math/rand/v2"

	"github.com/shoggo/shoggo/backend"
	"github.com/shoggo/shoggo/lora"
	"github.com/shoggo/shoggo/model"
	"github.com/shoggo/shoggo/nn"
	"github.com/shoggo/shoggo/tensor"
)

// BaseFactory returns how a LoRA run holds its frozen block linears: nil
// (fp32, in the arena), bf16/fp16 copies (baseDType), or NF4 (qlora). Each
// layer is converted from a temporary fp32 copy, so the whole base never
// exists in fp32.
func BaseFactory(baseDType string, qlora bool, be backend.Backend) (model.LinearFactory, error) {
	if qlora {
		return QLoRAFactory(be)
	}
	switch baseDType {
	case "", "fp32", "f32":
		return nil, nil
	case "bf16", "fp16", "f16":
		dt := tensor.BF16
		if baseDType != "bf16" {
			dt = tensor.F16
		}
		return func(name string, w, b *tensor.Tensor) (nn.Layer, error) {
			var bc *tensor.Tensor
			if b != nil {
				bc = be.Adopt(b.Clone()) // HalfLinear keeps a backend bias
			}
			return lora.NewHalfLinear(be, name, w, bc, dt)
		}, nil
	}
	return nil, fmt.Errorf("--base-dtype %q: want fp32, bf16 or fp16", baseDType)
}

// BaseConfig says which base model a fine-tuning run starts from and how
// it is held in memory.
type BaseConfig struct {
	Model     string `yaml:"model"`      // HF model directory
	Preset    string `yaml:"preset"`     // or a preset with random weights
	BaseDType string `yaml:"base_dtype"` // fp32 | bf16 | fp16 (LoRA only)
	QLoRA     bool   `yaml:"qlora"`      // NF4 base (LoRA only)
}

// LoadBase loads or creates the base model: trainable (full fine-tuning,
// frozen false) or frozen (LoRA), with the frozen block linears held as
// BaseFactory says and, for a bf16/fp16/NF4 base, the token embedding and
// LM head in bf16. A preset's vocabulary grows to vocab if smaller; its
// random weights come from seed. Warnings go to log.
func LoadBase(c BaseConfig, frozen bool, vocab int, seed uint64, be backend.Backend, log io.Writer) (*model.Transformer, error) {
	full := !frozen
	if !full && c.BaseDType != "" && c.BaseDType != "fp32" && c.QLoRA {
		return nil, fmt.Errorf("--qlora and --base-dtype %s are exclusive", c.BaseDType)
	}
	if full && (c.QLoRA || (c.BaseDType != "" && c.BaseDType != "fp32")) {
		return nil, fmt.Errorf("--qlora and --base-dtype need LoRA (--lora-r > 0)")
	}
	factory, err := BaseFactory(c.BaseDType, c.QLoRA, be)
	if err != nil {
		return nil, err
	}
	// A QLoRA or half-precision LoRA base also holds its frozen token
	// embedding and LM head in bf16 (as PEFT/bitsandbytes QLoRA does).
	opt := model.FrozenOptions{Factory: factory, HalfEmbeddings: !full && factory != nil}
	// Estimate in the dtype the frozen linears are held in (bf16 for a
	// half or NF4 base: a lower bound of the latter).
	est := tensor.F32
	if factory != nil {
		est = tensor.BF16
	}
	if c.Model != "" {
		if err := model.PrecheckHF(c.Model, est, full, 0, 0); err != nil {
			return nil, err
		}
		m, warns, err := model.LoadHFFrozenOpts(c.Model, be, tensor.F32, full, opt)
		if err != nil {
			return nil, err
		}
		for _, w := range warns {
			fmt.Fprintln(log, "warning:", w)
		}
		return m, nil
	}
	cfg, err := model.LookupPreset(c.Preset)
	if err != nil {
		return nil, err
	}
	cfg.VocabSize = max(cfg.VocabSize, vocab)
	if err := model.CheckConfigFits("preset "+c.Preset, cfg, est, full, 0, 0); err != nil {
		return nil, err
	}
	m, err := model.NewFrozenOpts(cfg, be, tensor.F32, full, opt)
	if err != nil {
		return nil, err
	}
	m.InitWeights(rand.New(rand.NewPCG(seed, 3)))
	return m, nil
}
