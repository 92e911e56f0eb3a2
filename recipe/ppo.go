package recipe

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/shoggo/shoggo/align"
	"github.com/shoggo/shoggo/data"
	"github.com/shoggo/shoggo/dist"
	"github.com/shoggo/shoggo/model"
	"github.com/shoggo/shoggo/train"
)

// PPOConfig configures PPO; names follow TRL's PPOConfig (before its
// removal).
type PPOConfig struct {
	RLConfig       `yaml:",inline"`
	PPOEpochs      int     `yaml:"ppo_epochs"`       // passes over each rollout batch
	MiniBatches    int     `yaml:"num_mini_batches"` // minibatches per rollout batch
	Gamma          float64 `yaml:"gamma"`
	Lam            float64 `yaml:"lam"`
	ClipRange      float64 `yaml:"cliprange"`
	ClipRangeValue float64 `yaml:"cliprange_value"`
	VFCoef         float64 `yaml:"vf_coef"`
	InitKLCoef     float64 `yaml:"init_kl_coef"`
	Target         float64 `yaml:"target"`
	Horizon        float64 `yaml:"horizon"`
	AdapKLCtrl     bool    `yaml:"adap_kl_ctrl"`
	WhitenAdv      bool    `yaml:"whiten_advantages"`
	// ValueTrunkGrad: the value loss trains the policy's trunk as well as
	// the value head (TRL's shared model); off by default, which kept the
	// small default policy from losing exact match early on.
	ValueTrunkGrad bool `yaml:"value_trunk_grad"`
}

// DefaultPPO is `shoggo ppo` without flags (measured; see README). Steps
// counts iterations (rollout batches).
func DefaultPPO() PPOConfig {
	c := PPOConfig{RLConfig: defaultRL("runs/ppo"), PPOEpochs: 4, MiniBatches: 2, Gamma: 1, Lam: 0.95,
		ClipRange: 0.2, ClipRangeValue: 0.2, VFCoef: 0.1, InitKLCoef: 0.2, Target: 6, Horizon: 10000,
		AdapKLCtrl: true, WhitenAdv: true}
	c.PromptsPerStep = 64
	c.Steps, c.LR, c.Warmup, c.EvalEvery = 300, 5e-5, 5, 10
	return c
}

// ppoSource is PPO's rollout Source: a rollout batch (one completion per
// prompt, scored, with the policy's log-probs and values and the
// reference's log-probs, per-token KL-penalised rewards, GAE and whitened
// advantages) is served as MiniBatches minibatches, shuffled, PPOEpochs
// times; then the next batch is rolled out.
type ppoSource struct {
	r     *rlRun
	cfg   *PPOConfig
	obj   *align.PPO
	kl    align.KLController
	iter  int
	mbs   []*model.Batch
	data  []*align.PPOBatch
	order []int
	pos   int
	last  time.Time
	cur   iterLog
}

func (s *ppoSource) Fill(micro []*model.Batch) error {
	if s.pos >= len(s.order) {
		s.flush()
		if err := s.rollout(); err != nil {
			return err
		}
	}
	s.obj.Data = map[*model.Batch]*align.PPOBatch{}
	for k := range micro {
		i := s.order[s.pos]
		micro[k] = s.mbs[i]
		s.obj.Data[s.mbs[i]] = s.data[i]
		s.pos++
	}
	return nil
}

// rollout makes the next rollout batch.
func (s *ppoSource) rollout() error {
	r, c := s.r, s.cfg
	r.mark()
	ids, rows, ps, err := r.rollout(s.iter, c.PromptsPerStep, 1, c.MiniBatches)
	if err != nil {
		return err
	}
	t0 := time.Now()
	nmb := c.MiniBatches
	per := (len(rows) + nmb - 1) / nmb
	s.mbs, s.data = s.mbs[:0], s.data[:0]
	var em, length, seqKL, toks float64
	var allAdv, allMask []float64
	var tRef time.Duration
	for k := 0; k < nmb; k++ {
		lo, hi := min(k*per, len(rows)), min((k+1)*per, len(rows))
		comps, scores := make([][]int32, hi-lo), make([]float64, hi-lo)
		for i := lo; i < hi; i++ {
			comps[i-lo], scores[i-lo] = rows[i].Completion, rows[i].Reward
			em += align.ExactMatchReward("", rows[i].Text, ps[rows[i].Prompt].Answer)
			length += float64(len(rows[i].Completion))
		}
		b, mask := align.BuildBatch(ids[lo:hi], comps, r.pad)
		old, err := align.PolicyLogProbs(r.policy, b)
		if err != nil {
			return err
		}
		hid, err := align.HiddenF32(r.policy)
		if err != nil {
			return err
		}
		vOld := s.obj.Head.Forward(hid, b.B*b.T)
		t1 := time.Now()
		ref, err := r.ref.LogProbs(b)
		if err != nil {
			return err
		}
		tRef += time.Since(t1)
		for _, v := range mask {
			toks += v
		}
		rw, kl := align.PPORewards(old, ref, mask, scores, s.kl.Value(), b.B, b.T)
		for _, v := range kl {
			seqKL += v
		}
		adv, ret := align.GAE(rw, vOld, mask, b.B, b.T, c.Gamma, c.Lam)
		s.mbs = append(s.mbs, b)
		s.data = append(s.data, &align.PPOBatch{Mask: mask, Old: old, VOld: vOld, Adv: adv, Ret: ret})
		allAdv, allMask = append(allAdv, adv...), append(allMask, mask...)
	}
	if c.WhitenAdv {
		w, err := whitenOn(r.cfg.Comm, allAdv, allMask)
		if err != nil {
			return err
		}
		off := 0
		for _, d := range s.data {
			d.Adv = w[off : off+len(d.Adv)]
			off += len(d.Adv)
		}
	}
	r.times["reference"] += tRef.Seconds()
	r.times["rollout"] += time.Since(t0).Seconds() - tRef.Seconds() // the policy's log-probs and values
	var rsum float64
	for i := range rows {
		rsum += rows[i].Reward
	}
	// The iteration's figures (and the KL controller's input) over every
	// rank's rows.
	g, err := sumOn(r.cfg.Comm, rsum, em, length, seqKL, toks, float64(len(rows)))
	if err != nil {
		return err
	}
	rsum, em, length, seqKL, toks = g[0], g[1], g[2], g[3], g[4]
	n := g[5]
	s.cur = iterLog{Iter: s.iter + 1, Reward: rsum / n, ExactMatch: em / n, Length: length / n, KL: seqKL / n, KLToken: seqKL / max(toks, 1), KLCoef: s.kl.Value()}
	r.split(&s.cur)
	s.kl.Update(seqKL/n, int(n))
	s.order = s.order[:0]
	for e := 0; e < c.PPOEpochs; e++ { // the one seeded shuffle, an "epoch" per pass over each batch
		s.order = append(s.order, data.Shuffle(len(s.mbs), int64(c.Seed)+7000, s.iter*c.PPOEpochs+e)...)
	}
	s.pos = 0
	s.obj.Stats = align.PPOStats{}
	s.iter++
	s.last = time.Now()
	return nil
}

// flush logs the finished iteration with its updates' statistics.
func (s *ppoSource) flush() {
	l, ok := s.r.endUpdate(&s.last, s.cur)
	if !ok {
		return
	}
	st := s.obj.Stats
	if v, err := sumOn(s.r.cfg.Comm, st.Tokens, st.PGLoss, st.VFLoss, st.PGClipped, st.VFClipped, st.NegLogP, st.ApproxKL); err == nil {
		st = align.PPOStats{Tokens: v[0], PGLoss: v[1], VFLoss: v[2], PGClipped: v[3], VFClipped: v[4], NegLogP: v[5], ApproxKL: v[6]}
	}
	if st.Tokens > 0 {
		l.Entropy, l.ClipFrac, l.ValueLoss = st.NegLogP/st.Tokens, st.PGClipped/st.Tokens, st.VFLoss/st.Tokens
		l.ApproxKL = st.ApproxKL / st.Tokens
	}
	s.r.logIter(l)
}

func (s *ppoSource) MarshalState() ([]byte, error) {
	return json.Marshal(map[string]float64{"iter": float64(s.iter), "kl_coef": s.kl.Value()})
}

func (s *ppoSource) RestoreState(b []byte) error {
	var st map[string]float64
	if err := json.Unmarshal(b, &st); err != nil {
		return err
	}
	s.iter, s.pos, s.order = int(st["iter"]), 0, nil // the interrupted batch is rolled out afresh
	if k, ok := s.kl.(*align.AdaptiveKL); ok {
		k.Coef = st["kl_coef"]
	}
	return nil
}

// withValueHead adds the value head to the Trainable: its parameters are
// optimised, checkpointed and saved next to the policy.
func withValueHead(tr train.Trainable, h *align.ValueHead) train.Trainable {
	tr.Params = append(tr.Params, h.Params()...)
	tr.Grads = append(tr.Grads, h.DW, h.DB)
	zero, save := tr.ZeroGrad, tr.Save
	tr.ZeroGrad = func() { zero(); h.ZeroGrad() }
	tr.Save = func(dir string) error {
		if err := save(dir); err != nil {
			return err
		}
		return h.Save(dir)
	}
	if sw, lw := tr.SaveWeights, tr.LoadWeights; sw != nil && lw != nil {
		tr.SaveWeights = func(dir string) error {
			if err := sw(dir); err != nil {
				return err
			}
			return h.Save(dir)
		}
		tr.LoadWeights = func(dir string) error {
			if err := lw(dir); err != nil {
				return err
			}
			return h.Load(dir)
		}
	}
	return tr
}

// PPO tunes a policy (an SFT model, full or LoRA) with PPO on the embedded
// task's prompts: batched rollouts, rewards from the programmatic reward
// (or a reward model), a per-token KL penalty to the reference with TRL's
// adaptive controller, GAE, whitened advantages, clipped policy and value
// losses (value head on the policy's trunk), PPOEpochs passes over each
// batch, all on the trainer harness. Steps counts rollout batches. With no
// model it first makes a weak SFT model (WeakSFT).
func PPO(ctx context.Context, cfg PPOConfig, log io.Writer) (RLSummary, error) {
	if cfg.PPOEpochs < 1 || cfg.MiniBatches < 1 || cfg.PromptsPerStep < cfg.MiniBatches {
		return RLSummary{}, fmt.Errorf("--ppo-epochs %d, --num-mini-batches %d: need at least 1, and --prompts-per-step %d at least one per minibatch", cfg.PPOEpochs, cfg.MiniBatches, cfg.PromptsPerStep)
	}
	if cfg.MaxCompletionLength < 1 || cfg.Steps < 1 {
		return RLSummary{}, fmt.Errorf("--max-completion-length %d and --steps %d must be positive", cfg.MaxCompletionLength, cfg.Steps)
	}
	per := cfg.PPOEpochs * cfg.MiniBatches
	accum := max(cfg.Accum, 1)
	if per%accum != 0 {
		return RLSummary{}, fmt.Errorf("--grad-accum %d must divide ppo_epochs·num_mini_batches = %d", accum, per)
	}
	if _, n := ranks(cfg.Comm); n > 1 && cfg.PromptsPerStep%(cfg.MiniBatches*n) != 0 {
		return RLSummary{}, fmt.Errorf("--prompts-per-step %d: every minibatch (%d) must split evenly over the %d ranks", cfg.PromptsPerStep, cfg.MiniBatches, n)
	}
	log = rankLog(cfg.Comm, log)
	r, err := prepareRL(ctx, &cfg.RLConfig, log)
	if err != nil {
		return RLSummary{}, err
	}
	if err := mkOut(cfg.Comm, cfg.Out); err != nil {
		return RLSummary{}, err
	}
	head := align.NewValueHead(r.policy.Cfg.HiddenSize)
	tr := withValueHead(r.tr, head)
	var kl align.KLController = &align.FixedKL{Coef: cfg.InitKLCoef}
	if cfg.AdapKLCtrl {
		kl = &align.AdaptiveKL{Coef: cfg.InitKLCoef, Target: cfg.Target, Horizon: cfg.Horizon}
	}
	obj := &align.PPO{Cfg: align.PPOConfig{ClipRange: cfg.ClipRange, ClipRangeValue: cfg.ClipRangeValue, VFCoef: cfg.VFCoef}, Head: head, ValueTrunkGrad: cfg.ValueTrunkGrad}
	src := &ppoSource{r: r, cfg: &cfg, obj: obj, kl: kl}
	r.pending = src.flush
	opts := cfg.Options
	opts.Steps = cfg.Steps * per / accum
	opts.EvalEvery = max(cfg.EvalEvery, 1) * per / accum
	opts.SaveEvery *= per / accum
	opts.StopAfter *= per / accum
	opts.Warmup *= per / accum
	t := &train.Trainer{Opts: opts, Model: r.policy, Trainable: tr, Objective: obj, Data: src,
		Log: log, Recipe: "ppo", Eval: r.evalHook(func() int { return src.iter })}
	res, err := t.Run(ctx)
	if err != nil {
		return RLSummary{}, err
	}
	src.flush()
	return r.finish(res, cfg.Model)
}

// whitenOn is align.Whiten (shifting the mean) with the mean and variance
// taken over every rank's masked values.
func whitenOn(c dist.Comm, x, mask []float64) ([]float64, error) {
	if _, n := ranks(c); n <= 1 {
		return align.Whiten(x, mask, true), nil
	}
	var n, s float64
	for i, v := range x {
		if mask[i] != 0 {
			n++
			s += v
		}
	}
	g, err := sumOn(c, n, s)
	if err != nil {
		return nil, err
	}
	out := make([]float64, len(x))
	if n = g[0]; n == 0 {
		return out, nil
	}
	mean := g[1] / n
	var ss float64
	for i, v := range x {
		if mask[i] != 0 {
			ss += (v - mean) * (v - mean)
		}
	}
	if g, err = sumOn(c, ss); err != nil {
		return nil, err
	}
	variance := g[0] / n
	if n > 1 {
		variance *= n / (n - 1)
	}
	inv := 1 / math.Sqrt(variance+1e-8)
	for i, v := range x {
		if mask[i] != 0 {
			out[i] = (v - mean) * inv
		}
	}
	return out, nil
}
