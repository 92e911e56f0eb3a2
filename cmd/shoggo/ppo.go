package main

import (
	"context"

	"github.com/shoggo/shoggo/recipe"
)

func init() {
	register("ppo", "PPO with a value head, GAE and an adaptive KL penalty (default: a weak SFT model on the embedded task, exact-match reward)", runPPO)
}

func runPPO(args []string) error {
	r := recipe.DefaultPPO()
	log, err := alignFlags("ppo", args, &r, recipe.RLHelp, &r.Threads, &r.Options)
	if err != nil {
		return err
	}
	s, err := recipe.PPO(context.Background(), r, log)
	if err != nil {
		return err
	}
	s.Report(log, "ppo", r.Out)
	return recipe.LeaveRanks(r.Comm, nil)
}
