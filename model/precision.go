package model

import (
	"fmt"

	"github.com/shoggo/shoggo/tensor"
)

// SetPrecision selects the compute precision of training and evaluation
// passes (PyTorch autocast semantics): tensor.F32 (the default) computes in
// float32; tensor.BF16 or tensor.F16 keep the parameters, gradients and
// optimizer state in float32 (the masters) while matmul operands (linears,
// attention, the LM head) enter at half precision with float32
// accumulation, norms, softmax and losses stay float32, and the
// activations saved for backward are held in 16 bits. It re-plans the
// activations if a plan exists.
func (m *Transformer) SetPrecision(dt tensor.DType) error {
	switch dt {
	case tensor.F32, tensor.BF16, tensor.F16:
	default:
		return fmt.Errorf("precision %v: want fp32, bf16 or fp16", dt)
	}
	if dt != tensor.F32 && m.DType != tensor.F32 {
		return fmt.Errorf("precision %v needs float32 parameters, the model has %v", dt, m.DType)
	}
	m.precision = dt
	if m.acts != nil {
		return m.Plan(m.acts.B, m.acts.T)
	}
	return nil
}

// Precision returns the compute precision set by SetPrecision (F32 by default).
func (m *Transformer) Precision() tensor.DType {
	return m.precision // the zero DType is F32
}

// ParsePrecision maps a --precision value (fp32, bf16, fp16; also float32,
// bfloat16, float16) to its dtype.
func ParsePrecision(s string) (tensor.DType, error) {
	switch s {
	case "", "fp32", "float32", "f32":
		return tensor.F32, nil
	case "bf16", "bfloat16":
		return tensor.BF16, nil
	case "fp16", "float16", "f16":
		return tensor.F16, nil
	}
	return 0, fmt.Errorf("precision %q: want fp32, bf16 or fp16", s)
}
