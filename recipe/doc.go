// Package recipe holds shoggo's recipes as library functions, each driven
// by a config struct whose yaml keys are the CLI's flag names with
// underscores, and each reading top to bottom over the shared pieces:
// Pretrain (tokenizer, corpus or shards, model, then the train.Trainer
// harness with the LM objective), SFT (tokenizer, base model in fp32, bf16,
// fp16 or NF4 via LoadBase, instruction data or embedded tasks, full
// fine-tuning or LoRA via train.LoRA, then the same harness), Eval
// (validation loss and generation speed of a model directory), and the
// benchmarks behind `shoggo bench` and `shoggo sft --bench-steps`. The CLI
// (cmd/shoggo) only maps flags onto these configs and prints results.
package recipe
