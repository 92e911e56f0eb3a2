package main

import (
	"fmt"

	"github.com/shoggo/shoggo/backend"
	"github.com/shoggo/shoggo/lora"
	"github.com/shoggo/shoggo/model"
	"github.com/shoggo/shoggo/nn"
	"github.com/shoggo/shoggo/tensor"
)

// baseFactory returns how a LoRA run holds its frozen block linears: nil
// (fp32, in the arena), bf16/fp16 copies, or NF4 (QLoRA). Each layer is
// converted from a temporary fp32 copy, so the whole base never exists in
// fp32.
func baseFactory(r sftRecipe, be backend.Backend) (model.LinearFactory, error) {
	if r.QLoRA {
		return qloraFactory(be)
	}
	switch r.BaseDType {
	case "", "fp32", "f32":
		return nil, nil
	case "bf16", "fp16", "f16":
		dt := tensor.BF16
		if r.BaseDType != "bf16" {
			dt = tensor.F16
		}
		return func(name string, w, b *tensor.Tensor) (nn.Layer, error) {
			var bc *tensor.Tensor
			if b != nil {
				bc = b.Clone()
			}
			return lora.NewHalfLinear(be, name, w, bc, dt)
		}, nil
	}
	return nil, fmt.Errorf("--base-dtype %q: want fp32, bf16 or fp16", r.BaseDType)
}
