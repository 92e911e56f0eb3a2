package main

import (
	"context"
	"os"

	"github.com/shoggo/shoggo/recipe"
)

func init() {
	register("ppo", "PPO with a value head, GAE and an adaptive KL penalty (default: a weak SFT model on the embedded task, exact-match reward)", runPPO)
}

func runPPO(args []string) error {
	r := recipe.DefaultPPO()
	err := alignFlags("ppo", args, &r, recipe.RLHelp, &r.Threads)
	if err != nil {
		return err
	}
	s, err := recipe.PPO(context.Background(), r, os.Stderr)
	if err != nil {
		return err
	}
	s.Report(os.Stderr, "ppo", r.Out)
	return nil
}
