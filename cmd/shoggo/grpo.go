package main

import (
	"context"

	"github.com/shoggo/shoggo/recipe"
)

func init() {
	register("grpo", "GRPO: group-relative policy optimisation with programmatic rewards (default: a weak SFT model on the embedded task)", runGRPO)
}

func runGRPO(args []string) error {
	r := recipe.DefaultGRPO()
	log, err := alignFlags("grpo", args, &r, recipe.RLHelp, &r.Threads, &r.Options)
	if err != nil {
		return err
	}
	s, err := recipe.GRPO(context.Background(), r, log)
	if err != nil {
		return err
	}
	s.Report(log, "grpo", r.Out)
	return recipe.LeaveRanks(r.Comm, nil)
}
