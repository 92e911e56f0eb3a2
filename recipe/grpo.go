package recipe

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/shoggo/shoggo/align"
	"github.com/shoggo/shoggo/backend/device"
	"github.com/shoggo/shoggo/data"
	"github.com/shoggo/shoggo/decode"
	"github.com/shoggo/shoggo/dist"
	"github.com/shoggo/shoggo/internal/atomicfile"
	"github.com/shoggo/shoggo/internal/plot"
	"github.com/shoggo/shoggo/lora"
	"github.com/shoggo/shoggo/model"
	"github.com/shoggo/shoggo/sft"
	"github.com/shoggo/shoggo/sft/tasks"
	"github.com/shoggo/shoggo/tokenizer"
	"github.com/shoggo/shoggo/train"
)

// RLConfig is what `shoggo grpo` and `shoggo ppo` share: the policy, the
// prompts, the rollouts and the reward. The yaml keys are the flag names
// with underscores (TRL's names where one exists).
type RLConfig struct {
	train.Options `yaml:",inline"`
	BaseConfig    `yaml:",inline"` // Model: the SFT model; empty: a weak one is made (SFTSteps)
	Tokenizer     string           `yaml:"tokenizer"`
	Task          string           `yaml:"task"`
	TrainExamples int              `yaml:"train_examples"` // prompts drawn from
	EvalExamples  int              `yaml:"eval_examples"`  // held-out exact match
	Template      string           `yaml:"template"`

	LoraR       int     `yaml:"lora_r"` // 0: full fine-tuning (reference = frozen copy)
	LoraAlpha   float64 `yaml:"lora_alpha"`
	LoraTargets string  `yaml:"lora_targets"`

	RewardFn    string `yaml:"reward_fn"`    // exact-match[,format:w,length:w]
	RewardModel string `yaml:"reward_model"` // a `shoggo reward` directory
	// Reward, when set, replaces RewardFn (library callers, tests).
	Reward              align.RewardFn `yaml:"-"`
	PromptsPerStep      int            `yaml:"prompts_per_step"`
	MaxCompletionLength int            `yaml:"max_completion_length"`
	Temperature         float64        `yaml:"temperature"`
	// TopK limits rollout sampling to the k most likely tokens (0: the
	// whole vocabulary). The default 50 leaves out a negligible mass and
	// makes sampling several times faster (see docs/BENCHMARKS.md).
	TopK int `yaml:"top_k"`
	// SFTSteps: with no --model, the weak SFT model is trained for this
	// many steps into SFTDir (reused when it is already there).
	SFTSteps int    `yaml:"sft_steps"`
	SFTDir   string `yaml:"sft_dir"`
	Threads  int    `yaml:"threads"`
	Device   string `yaml:"device"`
}

func defaultRL(out string) RLConfig {
	c := RLConfig{Task: "add2", TrainExamples: 4000, EvalExamples: 200, RewardFn: "exact-match,numeric:0.5",
		PromptsPerStep: 32, MaxCompletionLength: 8, Temperature: 1, TopK: 50, SFTSteps: 240, SFTDir: "runs/rl-sft",
		LoraAlpha: 16, LoraTargets: "q_proj,v_proj"}
	c.Seed, c.Out, c.Accum, c.Schedule, c.Clip = 1, out, 1, "constant", 1
	c.Beta2 = 0.99
	return c
}

// GRPOConfig configures GRPO; the loss fields are TRL GRPOConfig's.
type GRPOConfig struct {
	RLConfig       `yaml:",inline"`
	NumGenerations int     `yaml:"num_generations"` // G
	Beta           float64 `yaml:"beta"`
	Epsilon        float64 `yaml:"epsilon"`
	EpsilonHigh    float64 `yaml:"epsilon_high"`
	LossType       string  `yaml:"loss_type"`
	ScaleRewards   bool    `yaml:"scale_rewards"`
}

// DefaultGRPO is `shoggo grpo` without flags (measured; see README).
func DefaultGRPO() GRPOConfig {
	c := GRPOConfig{RLConfig: defaultRL("runs/grpo"), NumGenerations: 8, Beta: 0.04, Epsilon: 0.2, LossType: "dapo", ScaleRewards: true}
	c.Steps, c.LR, c.Warmup, c.EvalEvery = 300, 3e-4, 10, 20
	return c
}

// RLSummary is OUT/summary.json of an alignment run: the harness's summary
// and the headline figures (stable names).
type RLSummary struct {
	train.Summary
	Iterations       int                `json:"iterations"` // rollout batches done
	ExactMatchBefore float64            `json:"exact_match_before"`
	ExactMatchAfter  float64            `json:"exact_match_after"`
	KL               float64            `json:"kl"`           // mean per-sequence KL(policy || reference), last eval window
	KLPerToken       float64            `json:"kl_per_token"` // mean k3 per completion token, last eval window
	RewardFirst      float64            `json:"reward_first"`
	RewardFinal      float64            `json:"reward_final"`
	TimeS            map[string]float64 `json:"time_s"` // rollout, scoring, reference, update, eval
	SFTModel         string             `json:"sft_model"`
	EvalExamples     int                `json:"eval_examples"`
}

// rlRun is what GRPO and PPO share once prepared.
type rlRun struct {
	cfg      *RLConfig
	tok      *tokenizer.Tokenizer
	tmpl     sft.Template
	stops    []int32
	pad      int32
	policy   *model.Transformer
	adapters *lora.Adapters
	ref      align.Reference
	tr       train.Trainable
	prompts  []align.Prompt
	evalEx   []data.Example
	reward   align.RewardFn
	log      io.Writer

	times  map[string]float64
	iters  []iterLog
	evals  [][2]float64 // (step, exact match)
	window iterLog      // sums since the last eval
	wn     float64
	mlog   *os.File
	// pending flushes the last iteration's log line (set by the source).
	pending func()
	snap    map[string]float64 // times at the start of the iteration
}

// mark starts an iteration's time split.
func (r *rlRun) mark() {
	r.snap = map[string]float64{}
	for k, v := range r.times {
		r.snap[k] = v
	}
}

// split fills l's time split since mark.
func (r *rlRun) split(l *iterLog) {
	l.RolloutS = r.times["rollout"] - r.snap["rollout"]
	l.ScoringS = r.times["scoring"] - r.snap["scoring"]
	l.ReferenceS = r.times["reference"] - r.snap["reference"]
}

// iterLog is one line of OUT/rollouts.jsonl.
type iterLog struct {
	Iter       int     `json:"iter"`
	Reward     float64 `json:"reward"`
	ExactMatch float64 `json:"train_exact_match"` // share of sampled completions that are exactly right
	KL         float64 `json:"kl"`                // mean per-sequence k1 KL to the reference
	KLToken    float64 `json:"kl_per_token"`      // mean per-token k3 KL
	Entropy    float64 `json:"entropy"`           // mean -log p of sampled tokens
	ClipFrac   float64 `json:"clip_frac"`
	ApproxKL   float64 `json:"approx_kl,omitempty"` // PPO: mean ½(lp-old)² over the epochs
	ValueLoss  float64 `json:"value_loss,omitempty"`
	KLCoef     float64 `json:"kl_coef,omitempty"`
	Length     float64 `json:"completion_length"`
	RolloutS   float64 `json:"rollout_s"`
	ScoringS   float64 `json:"scoring_s"`
	ReferenceS float64 `json:"reference_s"`
	UpdateS    float64 `json:"update_s"`
}

// WeakSFT returns the HF directory of the weak SFT model the alignment
// defaults start from: dir/final if it holds a model, else a short SFT
// run on the embedded task (steps steps) made there.
func WeakSFT(ctx context.Context, dir, task string, steps int, seed uint64, log io.Writer) (string, error) {
	return weakSFT(ctx, nil, dir, task, steps, seed, log)
}

// weakSFT is WeakSFT, data-parallel over c's ranks.
func weakSFT(ctx context.Context, comm dist.Comm, dir, task string, steps int, seed uint64, log io.Writer) (string, error) {
	final := filepath.Join(dir, "final")
	if fileExists(filepath.Join(final, "config.json")) && fileExists(filepath.Join(final, "tokenizer.json")) {
		fmt.Fprintf(log, "policy: the weak SFT model in %s\n", final)
		return final, nil
	}
	fmt.Fprintf(log, "policy: no --model; training a weak SFT model (%d steps) into %s\n", steps, dir)
	c := DefaultSFT()
	c.TaskDefaults()
	c.Preset, c.Task, c.Out, c.Seed = TaskPreset, task, dir, seed
	c.Steps, c.EvalEvery = steps, steps
	c.Comm = comm
	if _, err := SFT(ctx, c, log); err != nil {
		return "", fmt.Errorf("weak SFT model: %w", err)
	}
	return final, nil
}

// prepareRL loads the policy, reference, prompts and reward.
func prepareRL(ctx context.Context, c *RLConfig, log io.Writer) (*rlRun, error) {
	if _, err := c.PrecisionConfig.DType(); err != nil {
		return nil, err
	}
	if err := perRank(c.Comm, "--prompts-per-step", c.PromptsPerStep); err != nil {
		return nil, err
	}
	if c.Model == "" && c.Preset == "" {
		dir, err := weakSFT(ctx, c.Comm, c.SFTDir, c.Task, c.SFTSteps, c.Seed, log)
		if err != nil {
			return nil, err
		}
		c.Model = dir
	}
	r := &rlRun{cfg: c, log: log, times: map[string]float64{}}
	var err error
	if r.reward, err = rlReward(c); err != nil {
		return nil, err
	}
	tp := c.Tokenizer
	if tp == "" && c.Model != "" {
		tp = filepath.Join(c.Model, "tokenizer.json")
	}
	if tp == "" {
		return nil, fmt.Errorf("no tokenizer: pass --tokenizer with --preset")
	}
	if r.tok, err = tokenizer.Load(tp); err != nil {
		return nil, err
	}
	if c.Template == "" {
		c.Template = "plain"
	}
	if r.tmpl, err = sft.TemplateByName(c.Template); err != nil {
		return nil, err
	}
	if r.stops, err = r.tmpl.Stops(r.tok); err != nil {
		return nil, err
	}
	r.pad = r.tok.PAD()
	if r.pad < 0 {
		r.pad = max(r.tok.EOS(), 0)
	}
	if err := r.loadModels(log); err != nil {
		return nil, err
	}
	return r, r.loadPrompts()
}

// rlReward builds the reward: the programmatic functions, or a reward model.
func rlReward(c *RLConfig) (align.RewardFn, error) {
	if c.Reward != nil {
		return c.Reward, nil
	}
	if c.RewardModel != "" {
		if !fileExists(filepath.Join(c.RewardModel, "config.json")) {
			return nil, fmt.Errorf("--reward-model %s: no config.json there (train one with `shoggo reward`)", c.RewardModel)
		}
		return rewardModelFn(c)
	}
	return align.ParseRewardFns(c.RewardFn)
}

// loadModels loads the policy (full or LoRA) and the reference, both at
// the run's precision (the old and reference log-probs are scored as the
// update scores the policy; sampling runs in fp32).
func (r *rlRun) loadModels(log io.Writer) error {
	c := r.cfg
	prec, err := c.PrecisionConfig.DType()
	if err != nil {
		return err
	}
	be, err := device.Open(c.Device)
	if err != nil {
		return err
	}
	if r.policy, err = LoadBase(c.BaseConfig, c.LoraR > 0, r.tok.VocabSize(), c.Seed, be, log); err != nil {
		return err
	}
	if err := train.SetPrecision(prec, r.policy); err != nil {
		return err
	}
	if c.LoraR > 0 {
		sc := SFTConfig{LoraR: c.LoraR, LoraAlpha: c.LoraAlpha, LoraTargets: c.LoraTargets}
		sc.Seed, sc.Comm = c.Seed, c.Comm
		if r.adapters, err = ApplyLoRA(r.policy, &sc); err != nil {
			return err
		}
		if c.Model != "" {
			r.adapters.BaseModel, _ = filepath.Abs(c.Model)
		}
		r.tr = train.LoRA(r.policy, r.adapters)
		r.ref = align.Reference{Model: r.policy, Adapters: r.adapters}
		fmt.Fprintln(log, r.adapters.Report(r.policy), "(reference: the same weights, adapters off)")
		return nil
	}
	m := r.policy
	r.tr = train.FullTrainable(m)
	r.tr.Save = func(dir string) error {
		if err := m.SaveHF(dir, model.SaveOptions{}); err != nil {
			return err
		}
		return r.tok.Save(filepath.Join(dir, "tokenizer.json"))
	}
	refM, err := LoadBase(c.BaseConfig, true, r.tok.VocabSize(), c.Seed, be, log)
	if err != nil {
		return fmt.Errorf("reference copy: %w", err)
	}
	if err := train.SetPrecision(prec, refM); err != nil {
		return err
	}
	r.ref = align.Reference{Model: refM}
	fmt.Fprintf(log, "full fine-tuning of %d parameters (reference: a frozen copy)\n", m.NumParams())
	return nil
}

// loadPrompts draws the training prompts and the held-out examples.
func (r *rlRun) loadPrompts() error {
	c := r.cfg
	trainEx, evalEx, err := tasks.Generate(tasks.Config{Seed: c.Seed, Tasks: strings.Split(c.Task, ","), Train: c.TrainExamples, Test: c.EvalExamples})
	if err != nil {
		return err
	}
	r.evalEx = evalEx
	maxLen := r.policy.Cfg.MaxPositionEmbeddings - c.MaxCompletionLength
	r.prompts, err = align.EncodePrompts(trainEx, r.tok, r.tmpl, maxLen)
	return err
}

// rollout samples n completions for each of the iteration's prompts and
// scores them; it returns the rows' prompt ids and the rows. In a
// data-parallel run every rank draws the same perStep prompts, cut into
// groups consecutive groups (PPO's minibatches; 1 for GRPO), and rolls
// out its block of each group (the rows' sampling seeds are those of their
// place in the whole batch, so the ranks together sample what one process
// would, and rank r's k-th minibatch is its block of the k-th global one).
func (r *rlRun) rollout(iter, perStep, n, groups int) ([][]int32, []align.Row, []align.Prompt, error) {
	c := r.cfg
	rng := rand.New(rand.NewPCG(c.Seed, uint64(iter)+1000))
	ps := make([]align.Prompt, perStep)
	var ids [][]int32
	var seeds []uint64
	for i := range ps {
		ps[i] = r.prompts[rng.IntN(len(r.prompts))]
		for g := 0; g < n; g++ {
			ids = append(ids, ps[i].IDs)
			seeds = append(seeds, c.Seed<<32^uint64(iter*perStep*n+len(seeds)))
		}
	}
	if rank, size := ranks(c.Comm); size > 1 {
		var mps []align.Prompt
		var mids [][]int32
		var mseeds []uint64
		per := perStep / groups / size
		for g := range groups {
			lo := g*perStep/groups + rank*per
			mps = append(mps, ps[lo:lo+per]...)
			mids, mseeds = append(mids, ids[lo*n:(lo+per)*n]...), append(mseeds, seeds[lo*n:(lo+per)*n]...)
		}
		ps, ids, seeds = mps, mids, mseeds
	}
	t0 := time.Now()
	rows, err := align.Sample(r.policy, ids, seeds, r.stops, c.MaxCompletionLength, decode.Sampling{Temperature: c.Temperature, TopK: c.TopK}, r.tok.Decode)
	if err != nil {
		return nil, nil, nil, err
	}
	t1 := time.Now()
	r.times["rollout"] += t1.Sub(t0).Seconds()
	for i := range rows {
		p := ps[i/n]
		rows[i].Prompt = i / n
		rows[i].Reward = r.reward(p.Question, rows[i].Text, p.Answer)
	}
	r.times["scoring"] += time.Since(t1).Seconds()
	return ids, rows, ps, nil
}

// evalHook returns greedy held-out exact match and the rollout statistics
// averaged since the last evaluation.
func (r *rlRun) evalHook(step func() int) func() (map[string]float64, error) {
	return func() (map[string]float64, error) {
		if r.pending != nil {
			r.pending()
		}
		t0 := time.Now()
		em, err := exactMatchOn(r.cfg.Comm, r.evalEx, func(set []data.Example) (float64, error) {
			return sft.ExactMatch(r.policy, r.tok, r.tmpl, set, r.cfg.MaxCompletionLength)
		})
		if err != nil {
			return nil, err
		}
		r.times["eval"] += time.Since(t0).Seconds()
		out := map[string]float64{"exact_match": em}
		if r.wn > 0 {
			w, n := r.window, r.wn
			out["reward"], out["kl"], out["kl_per_token"], out["entropy"], out["clip_frac"] = w.Reward/n, w.KL/n, w.KLToken/n, w.Entropy/n, w.ClipFrac/n
			if w.ValueLoss != 0 {
				out["value_loss"] = w.ValueLoss / n
			}
		}
		r.window, r.wn = iterLog{}, 0
		r.evals = append(r.evals, [2]float64{float64(step()), em})
		return out, nil
	}
}

// logIter records one iteration in rollouts.jsonl and the eval window.
func (r *rlRun) logIter(l iterLog) {
	if r.mlog == nil && lead(r.cfg.Comm) {
		f, err := os.Create(filepath.Join(r.cfg.Out, "rollouts.jsonl"))
		if err != nil {
			fmt.Fprintf(r.log, "rollouts.jsonl: %v\n", err)
			return
		}
		r.mlog = f
	}
	if r.mlog != nil {
		json.NewEncoder(r.mlog).Encode(l)
	}
	r.iters = append(r.iters, l)
	w := &r.window
	w.Reward += l.Reward
	w.KL += l.KL
	w.KLToken += l.KLToken
	w.Entropy += l.Entropy
	w.ClipFrac += l.ClipFrac
	w.ValueLoss += l.ValueLoss
	r.wn++
}

// finish writes summary.json (the harness's plus the alignment figures)
// and the reward, KL and exact-match curves.
func (r *rlRun) finish(res train.Summary, sftModel string) (RLSummary, error) {
	if r.mlog != nil {
		r.mlog.Close()
	}
	s := RLSummary{Summary: res, TimeS: r.times, SFTModel: sftModel, EvalExamples: len(r.evalEx), Iterations: len(r.iters)}
	s.ExactMatchBefore, s.ExactMatchAfter = res.Before["exact_match"], res.After["exact_match"]
	s.KL, s.KLPerToken = res.After["kl"], res.After["kl_per_token"]
	if len(r.iters) > 0 {
		s.RewardFirst, s.RewardFinal = r.iters[0].Reward, res.After["reward"]
	}
	if !lead(r.cfg.Comm) {
		return s, nil
	}
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return s, err
	}
	if err := atomicfile.WriteFile(filepath.Join(r.cfg.Out, "summary.json"), append(b, '\n'), 0o644); err != nil {
		return s, err
	}
	return s, r.plots()
}

// plots draws reward.png, kl.png and exact_match.png in Out.
func (r *rlRun) plots() error {
	var rw, kl, em plot.Series
	rw.Name, kl.Name, em.Name = "mean reward", "KL to reference (per sequence)", "held-out exact match"
	for _, l := range r.iters {
		rw.X, rw.Y = append(rw.X, float64(l.Iter)), append(rw.Y, l.Reward)
		kl.X, kl.Y = append(kl.X, float64(l.Iter)), append(kl.Y, l.KL)
	}
	for _, e := range r.evals {
		em.X, em.Y = append(em.X, e[0]), append(em.Y, e[1])
	}
	out := r.cfg.Out
	for _, p := range []struct {
		file, title, y string
		s              plot.Series
	}{{"reward.png", "mean reward per iteration", "reward", rw}, {"kl.png", "KL to the reference per iteration", "nats", kl}, {"exact_match.png", "held-out exact match", "exact match", em}} {
		if len(p.s.X) == 0 {
			continue
		}
		if err := plot.LinePNG(filepath.Join(out, p.file), p.title, "iteration", p.y, []plot.Series{p.s}); err != nil {
			return err
		}
	}
	return nil
}

// grpoSource is the rollout Source of GRPO: every step it samples G
// completions for PromptsPerStep prompts with the policy, scores them,
// computes group advantages and the reference's log-probs, and serves the
// rows as the step's micro-batches.
type grpoSource struct {
	r    *rlRun
	cfg  *GRPOConfig
	obj  *align.GRPO
	iter int
	last time.Time // end of the last Fill (for the update time)
	cur  iterLog
}

func (s *grpoSource) Fill(micro []*model.Batch) error {
	r, c := s.r, s.cfg
	s.flush()
	r.mark()
	ids, rows, ps, err := r.rollout(s.iter, c.PromptsPerStep, c.NumGenerations, 1)
	if err != nil {
		return err
	}
	rewards := make([]float64, len(rows))
	var em, length, rsum float64
	for i, row := range rows {
		rewards[i] = row.Reward
		rsum += row.Reward
		em += align.ExactMatchReward("", row.Text, ps[row.Prompt].Answer)
		length += float64(len(row.Completion))
	}
	// The iteration's figures over every rank's rows (groups are whole on
	// each rank, so the advantages need nothing from the others).
	g, err := sumOn(r.cfg.Comm, rsum, em, length, float64(len(rows)))
	if err != nil {
		return err
	}
	adv, err := align.GroupAdvantages(rewards, c.NumGenerations, c.ScaleRewards)
	if err != nil {
		return err
	}
	t0 := time.Now()
	s.obj.Data = map[*model.Batch]*align.GRPOBatch{}
	per := (len(rows) + len(micro) - 1) / len(micro)
	for k := range micro {
		lo, hi := min(k*per, len(rows)), min((k+1)*per, len(rows))
		if lo >= hi {
			return fmt.Errorf("grpo: %d rows do not fill %d micro-batches", len(rows), len(micro))
		}
		comps := make([][]int32, hi-lo)
		for i := lo; i < hi; i++ {
			comps[i-lo] = rows[i].Completion
		}
		b, mask := align.BuildBatch(ids[lo:hi], comps, r.pad)
		d := &align.GRPOBatch{Mask: mask, Adv: adv[lo:hi]}
		if d.Ref, err = r.ref.LogProbs(b); err != nil {
			return err
		}
		micro[k] = b
		s.obj.Data[b] = d
	}
	r.times["reference"] += time.Since(t0).Seconds()
	n := g[3]
	s.cur = iterLog{Iter: s.iter + 1, Reward: g[0] / n, ExactMatch: g[1] / n, Length: g[2] / n}
	r.split(&s.cur)
	s.obj.Stats = align.GRPOStats{}
	s.iter++
	s.last = time.Now()
	return nil
}

// flush logs the finished iteration with its update's statistics.
func (s *grpoSource) flush() {
	l, ok := s.r.endUpdate(&s.last, s.cur)
	if !ok {
		return
	}
	st := s.obj.Stats
	if v, err := sumOn(s.r.cfg.Comm, st.Tokens, st.KL, st.NegLogP, st.Clipped, st.SeqKL, st.Sequences); err == nil {
		st = align.GRPOStats{Tokens: v[0], KL: v[1], NegLogP: v[2], Clipped: v[3], SeqKL: v[4], Sequences: v[5]}
	}
	if st.Tokens > 0 {
		l.KLToken, l.Entropy, l.ClipFrac = st.KL/st.Tokens, st.NegLogP/st.Tokens, st.Clipped/st.Tokens
	}
	if st.Sequences > 0 {
		l.KL = st.SeqKL / st.Sequences
	}
	s.r.logIter(l)
}

// endUpdate closes the update phase that began at *last: it books the
// update time, returns the iteration's log line with UpdateS set, and
// clears *last. ok is false when no update is in progress.
func (r *rlRun) endUpdate(last *time.Time, cur iterLog) (l iterLog, ok bool) {
	if last.IsZero() {
		return l, false
	}
	upd := time.Since(*last).Seconds()
	r.times["update"] += upd
	*last = time.Time{}
	cur.UpdateS = upd
	return cur, true
}

func (s *grpoSource) MarshalState() ([]byte, error) { return json.Marshal(s.iter) }
func (s *grpoSource) RestoreState(b []byte) error   { return json.Unmarshal(b, &s.iter) }

func mean(x []float64) float64 {
	if len(x) == 0 {
		return math.NaN()
	}
	var s float64
	for _, v := range x {
		s += v
	}
	return s / float64(len(x))
}

// GRPO tunes a policy (an SFT model, full or LoRA) with Group Relative
// Policy Optimization on the embedded task's prompts: G sampled
// completions per prompt through the batched decoder, rewards from the
// programmatic reward functions, group-normalised advantages, TRL's
// clipped loss with a k3 KL term to the reference, on the trainer harness.
// With no model it first makes a weak SFT model (WeakSFT). It writes
// Out/summary.json (exact_match_before/after, kl), rollouts.jsonl,
// metrics.jsonl and reward/kl/exact_match PNGs.
func GRPO(ctx context.Context, cfg GRPOConfig, log io.Writer) (RLSummary, error) {
	if cfg.NumGenerations < 2 {
		return RLSummary{}, fmt.Errorf("--num-generations %d: GRPO needs at least 2 completions per prompt", cfg.NumGenerations)
	}
	if cfg.PromptsPerStep < 1 || cfg.MaxCompletionLength < 1 {
		return RLSummary{}, fmt.Errorf("--prompts-per-step %d and --max-completion-length %d must be positive", cfg.PromptsPerStep, cfg.MaxCompletionLength)
	}
	lc := align.GRPOConfig{Beta: cfg.Beta, Epsilon: cfg.Epsilon, EpsilonHigh: cfg.EpsilonHigh, LossType: cfg.LossType, MaxCompletionLength: cfg.MaxCompletionLength}
	if err := lc.Validate(); err != nil {
		return RLSummary{}, err
	}
	log = rankLog(cfg.Comm, log)
	r, err := prepareRL(ctx, &cfg.RLConfig, log)
	if err != nil {
		return RLSummary{}, err
	}
	if err := mkOut(cfg.Comm, cfg.Out); err != nil {
		return RLSummary{}, err
	}
	obj := &align.GRPO{Cfg: lc}
	src := &grpoSource{r: r, cfg: &cfg, obj: obj}
	r.pending = src.flush
	t := &train.Trainer{Opts: cfg.Options, Model: r.policy, Trainable: r.tr, Objective: obj, Data: src,
		Log: log, Recipe: "grpo", Eval: r.evalHook(func() int { return src.iter })}
	res, err := t.Run(ctx)
	if err != nil {
		return RLSummary{}, err
	}
	src.flush()
	return r.finish(res, cfg.Model)
}
