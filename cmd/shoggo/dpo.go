package main

import (
	"context"
	"fmt"

	"github.com/shoggo/shoggo/recipe"
)

func init() {
	register("dpo", "direct preference optimisation: sigmoid, ipo, hinge or robust loss (default: on-policy pairs of the embedded task)", runDPO)
}

func runDPO(args []string) error {
	r := recipe.DefaultDPO()
	log, err := alignFlags("dpo", args, &r, recipe.DPOHelp, &r.Threads, &r.Options)
	if err != nil {
		return err
	}
	res, err := recipe.DPO(context.Background(), r, log)
	if err != nil {
		return err
	}
	fmt.Fprintf(log, "\ndone: %d steps in %.0fs on %d pairs; held-out exact match %.1f%% before, %.1f%% after; KL %.4f\nsaved: %s   summary: %s/summary.json\n",
		res.Steps, res.ElapsedS, res.Pairs, 100*res.ExactMatchBefore, 100*res.ExactMatchAfter, res.KL, res.Output, r.Out)
	return recipe.LeaveRanks(r.Comm, nil)
}
