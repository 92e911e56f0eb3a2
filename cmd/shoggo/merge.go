package main

import (
	"flag"
	"fmt"

	"github.com/shoggo/shoggo/internal/safepath"
	"github.com/shoggo/shoggo/lora"
	"github.com/shoggo/shoggo/model"
	"github.com/shoggo/shoggo/tensor"
)

func init() {
	register("merge", "fold a PEFT LoRA adapter into its base and write an HF model directory", runMerge)
}

func runMerge(args []string) error {
	fs := flag.NewFlagSet("merge", flag.ContinueOnError)
	base := fs.String("base", "", "base HF model directory")
	adapter := fs.String("adapter", "", "PEFT adapter directory (adapter_config.json + adapter_model.safetensors)")
	out := fs.String("out", "", "output HF model directory")
	finite := fs.Bool("check-finite", true, "refuse a base or adapter holding NaN or infinite weights")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *base == "" || *adapter == "" || *out == "" {
		return fmt.Errorf("usage: shoggo merge --base DIR --adapter DIR --out DIR")
	}
	if err := safepath.CheckOutput("--out", *out, safepath.Input{Flag: "--base", Path: *base}, safepath.Input{Flag: "--adapter", Path: *adapter}); err != nil {
		return err
	}
	if err := model.PrecheckHF(*base, tensor.F32, false, 0, 0); err != nil {
		return err
	}
	if *finite {
		if err := checkFinite(*base, *adapter); err != nil {
			return err
		}
	}
	if err := lora.MergeDir(*base, *adapter, *out); err != nil {
		return err
	}
	fmt.Printf("merged %s into %s: %s\n", *adapter, *base, *out)
	return nil
}
