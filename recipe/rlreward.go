package recipe

import (
	"fmt"
	"path/filepath"
	"sync"

	"github.com/shoggo/shoggo/align"
	"github.com/shoggo/shoggo/backend/device"
	"github.com/shoggo/shoggo/data"
	"github.com/shoggo/shoggo/model"
	"github.com/shoggo/shoggo/sft"
	"github.com/shoggo/shoggo/tokenizer"
	"github.com/shoggo/shoggo/train"
)

// rewardModelFn scores rollouts with a `shoggo reward` model: the question
// and completion are rendered with the run's template and tokenized with
// the reward model's own tokenizer, exactly as its training pairs were, and
// the scalar head's score on the last token is the reward.
func rewardModelFn(c *RLConfig) (align.RewardFn, error) {
	be, err := device.Open(c.Device)
	if err != nil {
		return nil, err
	}
	m, head, err := align.LoadRewardModel(c.RewardModel, be, false)
	if err != nil {
		return nil, fmt.Errorf("--reward-model %s: %w", c.RewardModel, err)
	}
	prec, err := c.PrecisionConfig.DType()
	if err != nil {
		return nil, err
	}
	if err := train.SetPrecision(prec, m); err != nil { // it scores at the run's precision
		return nil, err
	}
	tok, err := tokenizer.Load(filepath.Join(c.RewardModel, "tokenizer.json"))
	if err != nil {
		return nil, fmt.Errorf("--reward-model %s: %w", c.RewardModel, err)
	}
	name := c.Template
	if name == "" {
		name = "plain"
	}
	tmpl, err := sft.TemplateByName(name)
	if err != nil {
		return nil, err
	}
	maxLen := m.Cfg.MaxPositionEmbeddings
	var mu sync.Mutex // one model, one plan: score one sequence at a time
	return func(question, completion, _ string) float64 {
		ids, _, err := sft.Encode(data.Example{Instruction: question, Output: completion}, tok, tmpl, maxLen)
		if err != nil || len(ids) == 0 {
			return 0 // nothing scorable (an empty completion): no reward
		}
		mu.Lock()
		defer mu.Unlock()
		s, err := head.Score(m, &model.Batch{B: 1, T: len(ids), IDs: ids})
		if err != nil {
			return 0
		}
		return s[0]
	}, nil
}
