package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime"

	"github.com/shoggo/shoggo/recipe"
)

func init() {
	register("reward", "train a reward model (Bradley-Terry) on preference pairs (default: the embedded pairs)", runReward)
}

// alignFlags parses args onto cfg (a recipe config whose fields carry yaml
// keys): the recipe file first, then the flags; *threads > 0 sets the
// thread count.
func alignFlags(name string, args []string, cfg any, help map[string]string, threads *int) error {
	if err := loadRecipe(args, cfg); err != nil {
		return err
	}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.String("recipe", "", "YAML recipe file (keys are the flag names with underscores; flags override it)")
	recipe.BindFlags(fs, cfg, help)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %v", fs.Args())
	}
	if *threads > 0 {
		runtime.GOMAXPROCS(*threads)
	}
	return nil
}

func runReward(args []string) error {
	r := recipe.DefaultReward()
	if err := alignFlags("reward", args, &r, recipe.AlignHelp, &r.Threads); err != nil {
		return err
	}
	res, err := recipe.Reward(context.Background(), r, os.Stderr)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "\ndone: %d steps in %.0fs; held-out pairwise accuracy %.1f%% before, %.1f%% after\nsaved: %s   summary: %s/summary.json\n",
		res.Steps, res.ElapsedS, 100*res.PairwiseAccuracyBefore, 100*res.PairwiseAccuracy, res.Output, r.Out)
	return nil
}
