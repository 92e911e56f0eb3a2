package recipe

import (
	"context"
	"io"
	"math"
	"path/filepath"
	"testing"

	"github.com/shoggo/shoggo/align"
	"github.com/shoggo/shoggo/backend/cpu"
	"github.com/shoggo/shoggo/data"
	"github.com/shoggo/shoggo/model"
	"github.com/shoggo/shoggo/sft"
	"github.com/shoggo/shoggo/tokenizer"
)

// A `shoggo reward` model scores rollouts: rewardModelFn gives the score
// the reward model's own head gives the same rendered text, and GRPO runs
// with --reward-model.
func TestRewardModelScoresRollouts(t *testing.T) {
	start := alignStart(t)
	rc := DefaultReward()
	rc.Model, rc.Out = start, t.TempDir()
	rc.TrainPairs, rc.EvalPairs, rc.EvalExamples, rc.Batch = 64, 16, 2, 8
	rc.Steps, rc.EvalEvery, rc.LR, rc.Warmup, rc.MaxNewTokens = 4, 4, 3e-3, 0, 4
	res, err := Reward(context.Background(), rc, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	dir := res.Output
	fn, err := rewardModelFn(&RLConfig{RewardModel: dir})
	if err != nil {
		t.Fatal(err)
	}
	m, head, err := align.LoadRewardModel(dir, cpu.New(), false)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := tokenizer.Load(filepath.Join(dir, "tokenizer.json"))
	if err != nil {
		t.Fatal(err)
	}
	tmpl, _ := sft.TemplateByName("plain")
	for _, tc := range [][2]string{{"What is 2+3?", "5"}, {"What is 2+3?", "It is well known that the answer is 5."}, {"What is 40+2?", "7"}} {
		got := fn(tc[0], tc[1], "")
		ids, _, err := sft.Encode(data.Example{Instruction: tc[0], Output: tc[1]}, tok, tmpl, m.Cfg.MaxPositionEmbeddings)
		if err != nil {
			t.Fatal(err)
		}
		want, err := head.Score(m, &model.Batch{B: 1, T: len(ids), IDs: ids})
		if err != nil {
			t.Fatal(err)
		}
		if got != want[0] || math.IsNaN(got) {
			t.Errorf("%q -> %q: reward %v, the reward model scores %v", tc[0], tc[1], got, want[0])
		}
	}
	cfg := DefaultGRPO()
	tinyRL(t, &cfg.RLConfig)
	cfg.Model, cfg.Preset, cfg.Tokenizer, cfg.Reward, cfg.RewardModel = start, "", "", nil, dir
	cfg.Steps, cfg.EvalEvery, cfg.PromptsPerStep, cfg.NumGenerations = 2, 2, 2, 2
	if _, err := GRPO(context.Background(), cfg, io.Discard); err != nil {
		t.Fatal(err)
	}
	checkRLSummary(t, cfg.Out, "grpo")
}
