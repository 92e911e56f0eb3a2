package main

import (
	"context"
	"os"

	"github.com/shoggo/shoggo/recipe"
)

func init() {
	register("grpo", "GRPO: group-relative policy optimisation with programmatic rewards (default: a weak SFT model on the embedded task)", runGRPO)
}

func runGRPO(args []string) error {
	r := recipe.DefaultGRPO()
	err := alignFlags("grpo", args, &r, recipe.RLHelp, &r.Threads)
	if err != nil {
		return err
	}
	s, err := recipe.GRPO(context.Background(), r, os.Stderr)
	if err != nil {
		return err
	}
	s.Report(os.Stderr, "grpo", r.Out)
	return nil
}
