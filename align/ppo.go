package align

import (
	"fmt"
	"math"
	"path/filepath"

	"github.com/shoggo/shoggo/backend"
	"github.com/shoggo/shoggo/model"
	"github.com/shoggo/shoggo/optim"
	"github.com/shoggo/shoggo/safetensors"
	"github.com/shoggo/shoggo/tensor"
)

// PPOConfig are PPO's loss settings, named as in TRL's PPOConfig.
type PPOConfig struct {
	ClipRange      float64 // cliprange: policy ratio within 1 ± ClipRange
	ClipRangeValue float64 // cliprange_value: value within old ± ClipRangeValue
	VFCoef         float64 // vf_coef: weight of the value loss
}

// PPOStats are a loss call's diagnostics (sums; divide by Tokens).
type PPOStats struct {
	Tokens, PGLoss, VFLoss, PGClipped, VFClipped, NegLogP, ApproxKL float64
}

// Add accumulates o into s.
func (s *PPOStats) Add(o PPOStats) {
	s.Tokens += o.Tokens
	s.PGLoss += o.PGLoss
	s.VFLoss += o.VFLoss
	s.PGClipped += o.PGClipped
	s.VFClipped += o.VFClipped
	s.NegLogP += o.NegLogP
	s.ApproxKL += o.ApproxKL
}

// PPOLoss is TRL's PPO loss summed over the masked tokens (the caller
// divides by the token count, making it TRL's masked mean):
//
//	pg = max(-A·r, -A·clip(r, 1-ε, 1+ε)),  r = exp(lp - old)
//	vf = ½·max((v - R)², (clip(v, vOld-εv, vOld+εv) - R)²)
//	loss = pg + VFCoef·vf
//
// It returns the sum, its gradients with respect to lp and v, and
// statistics.
func PPOLoss(c PPOConfig, lp, old, v, vOld, adv, ret, mask []float64) (float64, []float64, []float64, PPOStats) {
	var st PPOStats
	dlp, dv := make([]float64, len(lp)), make([]float64, len(lp))
	var sum float64
	for i := range lp {
		if mask[i] == 0 {
			continue
		}
		st.Tokens++
		A := adv[i]
		r := math.Exp(lp[i] - old[i])
		rc := min(max(r, 1-c.ClipRange), 1+c.ClipRange)
		pg1, pg2 := -A*r, -A*rc
		pg := pg1
		if pg1 >= pg2 {
			dlp[i] = -A * r
		} else {
			pg = pg2 // clipped: constant in lp
		}
		if pg2 > pg1 {
			st.PGClipped++
		}
		lo, hi := vOld[i]-c.ClipRangeValue, vOld[i]+c.ClipRangeValue
		vc := min(max(v[i], lo), hi)
		l1, l2 := (v[i]-ret[i])*(v[i]-ret[i]), (vc-ret[i])*(vc-ret[i])
		vf := 0.5 * l1
		if l1 >= l2 {
			dv[i] = c.VFCoef * (v[i] - ret[i])
		} else {
			vf = 0.5 * l2
			if v[i] >= lo && v[i] <= hi {
				dv[i] = c.VFCoef * (vc - ret[i])
			}
		}
		if l2 > l1 {
			st.VFClipped++
		}
		st.PGLoss += pg
		st.VFLoss += vf
		st.NegLogP -= lp[i]
		st.ApproxKL += 0.5 * (lp[i] - old[i]) * (lp[i] - old[i])
		sum += pg + c.VFCoef*vf
	}
	return sum, dlp, dv, st
}

// ValueHead is PPO's value model on the policy's trunk: a scalar per
// position, v = h·W + b, from the final hidden states (after the final
// norm). Its parameters join the Trainable.
type ValueHead struct {
	W, B, DW, DB *tensor.Tensor
}

// NewValueHead makes a zero-initialised head for hidden size C.
func NewValueHead(C int) *ValueHead {
	h := &ValueHead{W: tensor.New(tensor.F32, C), B: tensor.New(tensor.F32, 1), DW: tensor.New(tensor.F32, C), DB: tensor.New(tensor.F32, 1)}
	h.W.Name, h.B.Name = "v_head.summary.weight", "v_head.summary.bias"
	h.DW.Name, h.DB.Name = h.W.Name, h.B.Name
	return h
}

// Params are the head's parameters for the optimizer (no weight decay).
func (h *ValueHead) Params() []optim.Param {
	return []optim.Param{{Name: h.W.Name, W: h.W, G: h.DW}, {Name: h.B.Name, W: h.B, G: h.DB}}
}

// ZeroGrad clears the head's gradients.
func (h *ValueHead) ZeroGrad() { h.DW.Zero(); h.DB.Zero() }

// Save writes the head to dir/value_head.safetensors.
func (h *ValueHead) Save(dir string) error {
	return safetensors.Write(filepath.Join(dir, "value_head.safetensors"), []*tensor.Tensor{h.W, h.B}, nil)
}

// Load reads dir/value_head.safetensors.
func (h *ValueHead) Load(dir string) error {
	f, err := safetensors.Open(filepath.Join(dir, "value_head.safetensors"))
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.ReadInto(h.W.Name, h.W); err != nil {
		return err
	}
	return f.ReadInto(h.B.Name, h.B)
}

// HiddenF32 returns the final hidden states of m's last Forward (after the
// final norm) as float32 on the host: a copy when they are 16-bit (mixed
// precision saves them in bf16/fp16) or on a device, else the tensor's own
// storage (read only).
func HiddenF32(m *model.Transformer) ([]float32, error) {
	return tensor.ToF32(backend.ToHost(m.BE, m.Hidden()))
}

// Forward returns the value of each of the N rows of hidden (N, C).
func (h *ValueHead) Forward(hidden []float32, N int) []float64 {
	C := len(h.W.F32)
	out := make([]float64, N)
	for n := 0; n < N; n++ {
		s := float64(h.B.F32[0])
		row := hidden[n*C : (n+1)*C]
		for j, w := range h.W.F32 {
			s += float64(row[j]) * float64(w)
		}
		out[n] = s
	}
	return out
}

// Backward accumulates the gradients of sum_n dv[n]·v[n]: into DW, DB and
// dhidden (N, C).
func (h *ValueHead) Backward(hidden, dhidden []float32, dv []float64) {
	C := len(h.W.F32)
	for n, d := range dv {
		if d == 0 {
			continue
		}
		row, drow := hidden[n*C:(n+1)*C], dhidden[n*C:(n+1)*C]
		for j, w := range h.W.F32 {
			h.DW.F32[j] += float32(d * float64(row[j]))
			drow[j] += float32(d * float64(w))
		}
		h.DB.F32[0] += float32(d)
	}
}

// PPOBatch is one minibatch of a rollout: the completion mask and what the
// rollout recorded (old log-probs and values, whitened advantages,
// returns).
type PPOBatch struct {
	Mask, Old, VOld, Adv, Ret []float64
}

// PPO is the PPO objective for the trainer harness: the clipped policy
// loss through the policy's log-probs and the clipped value loss through
// Head on the same trunk, normalised by the step's completion tokens.
type PPO struct {
	Cfg PPOConfig
	// ValueTrunkGrad lets the value loss train the shared trunk too (TRL's
	// value head on the policy); false trains only the head.
	ValueTrunkGrad bool
	Head           *ValueHead
	Data           map[*model.Batch]*PPOBatch
	Stats          PPOStats
}

// Count is the number of completion tokens of the micro-batches.
func (o *PPO) Count(micro []*model.Batch) int {
	n := 0
	for _, b := range micro {
		if d := o.Data[b]; d != nil {
			for _, v := range d.Mask {
				if v != 0 {
					n++
				}
			}
		}
	}
	return n
}

// ForwardBackward runs the policy and the value head on b and propagates
// gradScale times PPOLoss's gradient.
func (o *PPO) ForwardBackward(m *model.Transformer, b *model.Batch, gradScale float64) (float64, error) {
	d := o.Data[b]
	if d == nil {
		return 0, fmt.Errorf("ppo: micro-batch without rollout data")
	}
	lp, err := PolicyLogProbs(m, b)
	if err != nil {
		return 0, err
	}
	hid, err := HiddenF32(m)
	if err != nil {
		return 0, err
	}
	v := o.Head.Forward(hid, b.B*b.T)
	sum, dlp, dv, st := PPOLoss(o.Cfg, lp, d.Old, v, d.VOld, d.Adv, d.Ret, d.Mask)
	o.Stats.Add(st)
	for i := range dlp {
		dlp[i] *= gradScale
		dv[i] *= gradScale
	}
	if err := m.TokenLogProbsBackward(b, dlp); err != nil {
		return 0, err
	}
	dh := m.DHidden().F32
	if dh == nil {
		return 0, fmt.Errorf("ppo: the value head needs host hidden-state gradients (CPU backend)")
	}
	if !o.ValueTrunkGrad {
		dh = make([]float32, len(dh)) // the head's gradient only
	}
	o.Head.Backward(hid, dh, dv)
	m.Backward(b)
	return sum, nil
}

// PPORewards are PPO's per-token rewards over B rows of T positions:
// -klCoef·(old - ref) at every masked position (the per-token KL penalty)
// plus the row's score at its last masked position (TRL's
// compute_rewards). It also returns each row's KL, sum(old - ref).
func PPORewards(old, ref, mask, scores []float64, klCoef float64, B, T int) (rewards, seqKL []float64) {
	rewards, seqKL = make([]float64, B*T), make([]float64, B)
	for b := 0; b < B; b++ {
		last := -1
		for t := 0; t < T; t++ {
			i := b*T + t
			if mask[i] == 0 {
				continue
			}
			k := old[i] - ref[i]
			seqKL[b] += k
			rewards[i] = -klCoef * k
			last = i
		}
		if last >= 0 {
			rewards[last] += scores[b]
		}
	}
	return rewards, seqKL
}
