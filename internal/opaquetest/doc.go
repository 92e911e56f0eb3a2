// Package opaquetest holds the model-level tests of the backend memory seam
// (the TestOpaque... tests): whole pre-training steps, LoRA SFT steps on an
// NF4 or bf16 base, batched generation, checkpoints and Hugging Face
// load/save run on backend/opaque, whose tensors have no host slice, and
// must give the CPU backend's bits. They live in their own package because
// they drive model, lora, train, recipe and decode together (recipe and
// train import model, so model's own tests could not use them).
package opaquetest
