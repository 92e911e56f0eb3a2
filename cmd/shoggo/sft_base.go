package main

import (
	"fmt"

	"github.com/shoggo/shoggo/lora"
	"github.com/shoggo/shoggo/model"
	"github.com/shoggo/shoggo/tensor"
)

// convertBase holds the frozen base of a LoRA run in bf16/fp16 or NF4.
func convertBase(m *model.Transformer, r sftRecipe) error {
	if r.QLoRA {
		return fmt.Errorf("--qlora: not available yet")
	}
	switch r.BaseDType {
	case "", "fp32", "f32":
		return nil
	case "bf16", "fp16", "f16":
		dt := tensor.BF16
		if r.BaseDType != "bf16" {
			dt = tensor.F16
		}
		return lora.ConvertBase(m, dt)
	}
	return fmt.Errorf("--base-dtype %q: want fp32, bf16 or fp16", r.BaseDType)
}

// sftBench is defined with the benchmarks.
func sftBench(r sftRecipe) error { return fmt.Errorf("--bench-steps: not available yet") }
