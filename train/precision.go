package train

import (
	"fmt"

	"github.com/shoggo/shoggo/model"
	"github.com/shoggo/shoggo/tensor"
)

// PrecisionConfig is a training run's compute precision as the flags and
// recipe keys give it: precision (fp32, bf16 or fp16), or the booleans of
// Hugging Face TrainingArguments, bf16 and fp16. Options embeds it, so
// every training command and recipe file has all three.
//
// Mixed precision follows PyTorch autocast (model.SetPrecision): master
// weights, gradients and optimizer state stay fp32; matmul operands are
// 16-bit with fp32 accumulation; norms, softmax, losses and the optimizer
// run in fp32; the activations saved for backward are 16-bit. fp16 adds
// dynamic loss scaling (GradScaler); bf16 needs none. Decoding (sampling,
// exact match) always runs in fp32.
type PrecisionConfig struct {
	Precision string `yaml:"precision"` // fp32 | bf16 | fp16; empty: fp32 unless bf16 or fp16
	BF16      bool   `yaml:"bf16"`      // HF TrainingArguments' bf16=True
	FP16      bool   `yaml:"fp16"`      // HF TrainingArguments' fp16=True
}

// DType resolves the three settings to tensor.F32, tensor.BF16 or
// tensor.F16. bf16 and fp16 together, or either beside a precision naming
// another dtype, are an error naming the flags and recipe keys.
func (p PrecisionConfig) DType() (tensor.DType, error) {
	if p.BF16 && p.FP16 {
		return 0, fmt.Errorf("--bf16 and --fp16 (recipe keys bf16: true, fp16: true) exclude each other: set one, or --precision")
	}
	dt, err := model.ParsePrecision(p.Precision)
	if err != nil {
		return 0, fmt.Errorf("--precision (recipe key precision): %w", err)
	}
	name, want := "", dt
	switch {
	case p.BF16:
		name, want = "bf16", tensor.BF16
	case p.FP16:
		name, want = "fp16", tensor.F16
	default:
		return dt, nil
	}
	if p.Precision != "" && dt != want {
		return 0, fmt.Errorf("--precision %s (recipe key precision: %s) conflicts with --%s (recipe key %s: true): give one (a flag does not clear the other key: --%s=false clears %s)",
			p.Precision, p.Precision, name, name, name, name)
	}
	return want, nil
}

// PrecisionName is the flag value of a precision dtype: fp32, bf16 or fp16.
func PrecisionName(dt tensor.DType) string {
	switch dt {
	case tensor.BF16:
		return "bf16"
	case tensor.F16:
		return "fp16"
	}
	return "fp32"
}

// SetPrecision sets dt on every model a run trains or scores with (the
// policy, a reference, a reward model); nil models are skipped.
func SetPrecision(dt tensor.DType, ms ...*model.Transformer) error {
	for _, m := range ms {
		if m == nil {
			continue
		}
		if err := m.SetPrecision(dt); err != nil {
			return fmt.Errorf("--precision %s: %w", PrecisionName(dt), err)
		}
	}
	return nil
}
