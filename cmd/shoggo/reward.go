package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/shoggo/shoggo/recipe"
	"github.com/shoggo/shoggo/train"
)

func init() {
	register("reward", "train a reward model (Bradley-Terry) on preference pairs (default: the embedded pairs)", runReward)
}

// alignFlags parses args onto cfg (a recipe config whose fields carry yaml
// keys, o its train.Options): the recipe file first, then the flags; then
// it joins the job's ranks (recipe.Join: *threads > 0 sets the thread
// count) and returns where to print.
func alignFlags(name string, args []string, cfg any, help map[string]string, threads *int, o *train.Options) (io.Writer, error) {
	if err := loadRecipe(args, cfg); err != nil {
		return nil, err
	}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.String("recipe", "", "YAML recipe file (keys are the flag names with underscores; flags override it)")
	recipe.BindFlags(fs, cfg, help)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %v", fs.Args())
	}
	return recipe.Join(o, *threads)
}

func runReward(args []string) error {
	r := recipe.DefaultReward()
	log, err := alignFlags("reward", args, &r, recipe.AlignHelp, &r.Threads, &r.Options)
	if err != nil {
		return err
	}
	res, err := recipe.Reward(context.Background(), r, log)
	if err != nil {
		return err
	}
	fmt.Fprintf(log, "\ndone: %d steps in %.0fs; held-out pairwise accuracy %.1f%% before, %.1f%% after\nsaved: %s   summary: %s/summary.json\n",
		res.Steps, res.ElapsedS, 100*res.PairwiseAccuracyBefore, 100*res.PairwiseAccuracy, res.Output, r.Out)
	return recipe.LeaveRanks(r.Comm, nil)
}
