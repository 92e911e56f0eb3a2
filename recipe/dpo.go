package recipe

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/shoggo/shoggo/align"
	"github.com/shoggo/shoggo/backend/device"
	"github.com/shoggo/shoggo/data"
	"github.com/shoggo/shoggo/decode"
	"github.com/shoggo/shoggo/dist"
	"github.com/shoggo/shoggo/model"
	"github.com/shoggo/shoggo/sft"
	"github.com/shoggo/shoggo/sft/tasks"
	"github.com/shoggo/shoggo/tensor"
	"github.com/shoggo/shoggo/train"
)

// DPOConfig configures DPO.
type DPOConfig struct {
	AlignConfig    `yaml:",inline"`
	LossType       string  `yaml:"loss_type"` // sigmoid | ipo | hinge | robust
	Beta           float64 `yaml:"beta"`
	LabelSmoothing float64 `yaml:"label_smoothing"`
	// SFTWeight adds TRL's "sft" loss with this weight (loss_type
	// ["sigmoid", "sft"], loss_weights [1, w]); 0: pure DPO.
	SFTWeight float64 `yaml:"sft_weight"`
	// OnPolicy: with the embedded task, the pairs are the start model's own
	// sampled answers to training questions that the judge finds wrong
	// (rejected) against the correct answer (chosen), Samples per
	// question; false: the embedded generator's pairs.
	OnPolicy    bool    `yaml:"on_policy"`
	Samples     int     `yaml:"samples"`
	Temperature float64 `yaml:"temperature"`
	// KLSamples: held-out prompts whose sampled completions estimate the
	// KL to the reference at the end.
	KLSamples int `yaml:"kl_samples"`
}

// DefaultDPO is `shoggo dpo` without flags: on-policy pairs of the
// embedded task, the sigmoid loss with TRL's "sft" term (weight 1; pure
// DPO on this tiny model trades exact match away, see README).
func DefaultDPO() DPOConfig {
	c := DPOConfig{AlignConfig: defaultAlign("runs/dpo"), LossType: align.Sigmoid, Beta: 0.1, OnPolicy: true,
		Samples: 2, Temperature: 1, KLSamples: 200, SFTWeight: 1}
	c.TrainPairs, c.Batch = 3000, 32
	c.Steps, c.LR, c.EvalEvery, c.WeightDecay = 100, 1e-4, 25, 0
	return c
}

// DPOResult is DPO's summary.
type DPOResult struct {
	train.Summary
	ExactMatchBefore, ExactMatchAfter, KL float64
	Pairs                                 int
}

// DPO tunes the start model on preference pairs with the DPO loss
// (sigmoid, IPO, hinge or robust; β, label smoothing), full or LoRA, on the
// trainer harness. The reference log-probs are computed once, before
// training, from the starting weights (the frozen start for full
// fine-tuning; the base without adapters for LoRA, computed before the
// adapters exist) and cached. Evaluation: held-out exact match and TRL's
// eval_rewards/* on held-out pairs; training logs TRL's rewards/chosen,
// rewards/rejected, rewards/accuracies, rewards/margins. At the end the
// KL to the reference is estimated on sampled held-out completions.
func DPO(ctx context.Context, cfg DPOConfig, log io.Writer) (DPOResult, error) {
	var res DPOResult
	c := &cfg.AlignConfig
	log = rankLog(c.Comm, log)
	loss := align.DPOLoss{Type: cfg.LossType, Beta: cfg.Beta, LabelSmoothing: cfg.LabelSmoothing}
	if err := loss.Validate(); err != nil {
		return res, err
	}
	r, err := prepareAlign(c, log)
	if err != nil {
		return res, err
	}
	trainP, evalP, err := r.preferences(log)
	if err != nil {
		return res, err
	}
	if cfg.OnPolicy && c.Data == "" {
		if trainP, err = r.onPolicy(&cfg, log); err != nil {
			return res, err
		}
		if lead(c.Comm) {
			align.WritePreferences(c.Out+"/train_pairs.jsonl", trainP)
		}
	}
	if err := r.encode(trainP, evalP, log); err != nil {
		return res, err
	}
	// The reference: the starting weights, scored once (before LoRA exists).
	obj := &align.DPOObjective{Loss: loss, Ref: align.RefCache{}, SFTWeight: cfg.SFTWeight}
	if err := obj.Ref.Fill(r.m, append(align.PairBatches(r.train, c.Batch, r.T, r.pad), r.evalB...)); err != nil {
		return res, err
	}
	fmt.Fprintf(log, "reference log-probs cached for %d sequences\n", len(obj.Ref))
	tr, err := r.trainable(log)
	if err != nil {
		return res, err
	}
	tr.Save = r.saveModel(tr.Save)
	evalB, err := localRows(c.Comm, r.evalB)
	if err != nil {
		return res, err
	}
	eval := func() (map[string]float64, error) {
		// Training statistics since the last evaluation, over every rank's rows.
		ts, err := sumPairStats(c.Comm, obj.Stats)
		if err != nil {
			return nil, err
		}
		out := ts.Metrics("")
		if ts.N == 0 {
			out = map[string]float64{}
		}
		obj.Stats = align.PairStats{}
		s, err := obj.Evaluate(r.m, evalB) // this rank's rows, then summed
		if err != nil {
			return nil, err
		}
		if s, err = sumPairStats(c.Comm, s); err != nil {
			return nil, err
		}
		for k, v := range s.Metrics("eval_") {
			out[k] = v
		}
		out["val_loss"] = out["eval_loss"]
		if len(r.emSet) > 0 {
			if out["exact_match"], err = r.exactMatch(); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	_, size := ranks(c.Comm)
	src := &align.PairSource{Pairs: r.train, P: c.Batch * size, T: r.T, Pad: r.pad, Seed: int64(c.Seed)}
	t := &train.Trainer{Opts: c.Options, Model: r.m, Trainable: tr, Objective: obj, Data: train.ShardRows(src, c.Comm), Log: log, Recipe: "dpo", Eval: eval}
	if res.Summary, err = t.Run(ctx); err != nil || !lead(c.Comm) {
		return res, err // the KL estimate and summary are rank 0's
	}
	res.Pairs = len(r.train)
	res.ExactMatchBefore, res.ExactMatchAfter = res.Before["exact_match"], res.After["exact_match"]
	if res.KL, err = r.klToStart(cfg.KLSamples, cfg.Temperature); err != nil {
		return res, err
	}
	fmt.Fprintf(log, "KL to the reference (sampled held-out completions): %.4f nats\n", res.KL)
	extra := map[string]float64{"kl": res.KL, "pairs": float64(res.Pairs)}
	if len(r.emSet) > 0 {
		extra["exact_match_before"], extra["exact_match_after"] = res.ExactMatchBefore, res.ExactMatchAfter
	}
	return res, finishAlign(c.Out, res.Summary, extra, r.start,
		[]string{"exact_match", "eval_rewards/accuracies", "eval_rewards/margins", "rewards/accuracies", "rewards/margins"})
}

// saveModel wraps a Trainable's Save to add the tokenizer (full
// fine-tuning: an HF model directory; LoRA: a PEFT adapter).
func (r *alignRun) saveModel(save func(string) error) func(string) error {
	return func(dir string) error {
		if err := save(dir); err != nil {
			return err
		}
		return r.tok.Save(dir + "/tokenizer.json")
	}
}

// prompts encodes the template prompts of examples.
func (r *alignRun) prompts(exs []data.Example) ([][]int32, []int32, error) {
	stops, err := r.tmpl.Stops(r.tok)
	if err != nil {
		return nil, nil, err
	}
	out := make([][]int32, len(exs))
	for i, ex := range exs {
		pieces, _, err := r.tmpl.Prompt(ex)
		if err != nil {
			return nil, nil, err
		}
		for _, p := range pieces {
			if p.EOS {
				out[i] = append(out[i], r.tok.EOS())
			} else {
				out[i] = append(out[i], r.tok.Encode(p.Text)...)
			}
		}
	}
	return out, stops, nil
}

// sample draws one completion per prompt from m at temperature temp.
func (r *alignRun) sample(prompts [][]int32, stops []int32, temp float64, seed uint64) ([]decode.Result, error) {
	return decode.Generate(r.m, prompts, decode.Options{MaxNewTokens: r.cfg.MaxNewTokens, EOS: stops,
		Sampling: decode.Sampling{Temperature: temp}, Seed: seed, BatchSize: 64})
}

// onPolicy makes training pairs from the start model's own answers: for
// TrainPairs training questions, Samples completions each (the greedy one,
// then samples at Temperature); every distinct completion the judge does
// not find exact is rejected against the correct answer.
func (r *alignRun) onPolicy(cfg *DPOConfig, log io.Writer) ([]data.Preference, error) {
	c := r.cfg
	qs, _, err := tasks.Generate(tasks.Config{Seed: c.Seed + 101, Tasks: strings.Split(c.Task, ","), Train: c.TrainPairs})
	if err != nil {
		return nil, err
	}
	prompts, stops, err := r.prompts(qs)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var out []data.Preference
	for k := range max(cfg.Samples, 1) {
		temp := cfg.Temperature
		if k == 0 {
			temp = 0 // the greedy answer: the model's own mistakes first
		}
		res, err := r.sample(prompts, stops, temp, c.Seed*1000+uint64(k)*uint64(len(prompts)))
		if err != nil {
			return nil, err
		}
		comps := make([]string, len(res))
		for i, x := range res {
			comps[i] = r.tok.Decode(x.Tokens)
		}
		for _, p := range align.OnPolicyPairs(qs, comps) {
			key := p.Prompt + "\x00" + p.Rejected
			if !seen[key] && strings.TrimSpace(p.Rejected) != "" {
				seen[key] = true
				out = append(out, p)
			}
		}
	}
	fmt.Fprintf(log, "on-policy pairs: %d wrong answers among %d samples of %d training questions\n", len(out), len(prompts)*max(cfg.Samples, 1), len(prompts))
	if len(out) == 0 {
		return nil, fmt.Errorf("the start model answers every sampled training question correctly: nothing to prefer (use --on-policy=false)")
	}
	return out, nil
}

// klToStart estimates KL(policy || start) as the mean, over completions
// sampled from the policy for n held-out questions, of
// log π(y|x) − log π_start(y|x) over the generated tokens (the stop token
// excluded); the start model is loaded again, frozen, for this.
func (r *alignRun) klToStart(n int, temp float64) (float64, error) {
	exs := r.emSet[:min(n, len(r.emSet))]
	if len(exs) == 0 || temp <= 0 {
		return 0, nil
	}
	prompts, stops, err := r.prompts(exs)
	if err != nil {
		return 0, err
	}
	res, err := r.sample(prompts, stops, temp, r.cfg.Seed+77)
	if err != nil {
		return 0, err
	}
	ids, labels := make([][]int32, len(res)), make([][]int32, len(res))
	T := 0
	for i, x := range res {
		ids[i] = append(append([]int32(nil), prompts[i]...), x.Tokens...)
		labels[i] = make([]int32, len(ids[i]))
		for j := range labels[i] {
			labels[i][j] = sft.IgnoreIndex
			if j >= len(prompts[i]) {
				labels[i][j] = ids[i][j]
			}
		}
		T = max(T, len(ids[i]))
	}
	be, err := device.Open(r.cfg.Device)
	if err != nil {
		return 0, err
	}
	ref, _, err := model.LoadHF(r.start, be, tensor.F32, false)
	if err != nil {
		return 0, err
	}
	if err := train.SetPrecision(r.m.Precision(), ref); err != nil { // scored as the policy is
		return 0, err
	}
	var kl float64
	for i := 0; i < len(ids); i += 32 {
		j := min(i+32, len(ids))
		b := sft.PadBatch(ids[i:j], labels[i:j], j-i, T, r.pad)
		lp, err := align.SeqLogProbs(r.m, b)
		if err != nil {
			return 0, err
		}
		lr, err := align.SeqLogProbs(ref, b)
		if err != nil {
			return 0, err
		}
		for k := range lp {
			kl += lp[k] - lr[k]
		}
	}
	return kl / float64(len(ids)), nil
}

// DPOHelp is `shoggo dpo`'s flag help (AlignHelp plus DPO's own).
var DPOHelp = func() map[string]string {
	h := map[string]string{
		"loss_type":       "sigmoid | ipo | hinge | robust (TRL's names)",
		"beta":            "β: strength of the KL regularisation (IPO: τ)",
		"label_smoothing": "ε in [0, 0.5): conservative DPO for sigmoid, TRL's robust loss",
		"on_policy":       "embedded task: pairs from the start model's own wrong sampled answers",
		"samples":         "on-policy: samples per training question",
		"temperature":     "on-policy and KL sampling temperature",
		"kl_samples":      "held-out prompts whose samples estimate the KL at the end",
		"sft_weight":      "weight of TRL's \"sft\" loss (chosen NLL) added to the DPO loss; 0: pure DPO",
	}
	for k, v := range AlignHelp {
		h[k] = v
	}
	return h
}()

// sumPairStats adds the ranks' statistics.
func sumPairStats(c dist.Comm, s align.PairStats) (align.PairStats, error) {
	v, err := sumOn(c, float64(s.N), s.Loss, s.Chosen, s.Rejected, s.Acc, s.Margin)
	if err != nil {
		return s, err
	}
	return align.PairStats{N: int(v[0]), Loss: v[1], Chosen: v[2], Rejected: v[3], Acc: v[4], Margin: v[5]}, nil
}
