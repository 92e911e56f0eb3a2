package main

import (
	"context"
	"flag"
	"os"

	"github.com/shoggo/shoggo/recipe"
)

func init() {
	register("ppo", "PPO with a value head, GAE and an adaptive KL penalty (default: a weak SFT model on the embedded task, exact-match reward)", runPPO)
}

func runPPO(args []string) error {
	r := recipe.DefaultPPO()
	err := parseRL("ppo", args, &r, func(fs *flag.FlagSet) {
		rlFlags(fs, &r.RLConfig)
		fs.IntVar(&r.PPOEpochs, "ppo-epochs", r.PPOEpochs, "passes over each rollout batch")
		fs.IntVar(&r.MiniBatches, "num-mini-batches", r.MiniBatches, "minibatches per rollout batch")
		fs.Float64Var(&r.Gamma, "gamma", r.Gamma, "discount")
		fs.Float64Var(&r.Lam, "lam", r.Lam, "GAE lambda")
		fs.Float64Var(&r.ClipRange, "cliprange", r.ClipRange, "policy ratio clip range")
		fs.Float64Var(&r.ClipRangeValue, "cliprange-value", r.ClipRangeValue, "value clip range")
		fs.Float64Var(&r.VFCoef, "vf-coef", r.VFCoef, "value loss weight")
		fs.Float64Var(&r.InitKLCoef, "init-kl-coef", r.InitKLCoef, "initial KL penalty coefficient")
		fs.Float64Var(&r.Target, "target", r.Target, "adaptive KL controller: target KL (nats per sequence)")
		fs.Float64Var(&r.Horizon, "horizon", r.Horizon, "adaptive KL controller: horizon")
		fs.BoolVar(&r.AdapKLCtrl, "adap-kl-ctrl", r.AdapKLCtrl, "adapt the KL coefficient (false: fixed)")
		fs.BoolVar(&r.ValueTrunkGrad, "value-trunk-grad", r.ValueTrunkGrad, "the value loss also trains the policy's trunk (default: the value head only)")
		fs.BoolVar(&r.WhitenAdv, "whiten-advantages", r.WhitenAdv, "whiten advantages over each rollout batch")
	}, &r.Threads)
	if err != nil {
		return err
	}
	s, err := recipe.PPO(context.Background(), r, os.Stderr)
	if err != nil {
		return err
	}
	printRL("ppo", s, r.Out)
	return nil
}
