// Package optim provides shoggo's optimizer: AdamW with decoupled weight
// decay over parameters whose two moments each live in one arena, global
// L2-norm gradient clipping, and learning-rate schedules that are pure
// functions of the step.
//
// Everything here works on F32 tensors held by a backend (NewAdamWOn,
// ClipGradNormOn): the moments are allocated by the backend, and the update,
// the norm and the scaling are backend ops (backend.OptimOps), so the state
// can live in device memory. NewAdamW and ClipGradNorm use the CPU backend.
// Passing another dtype, or a gradient whose shape differs from its weight,
// is a programmer error and panics.
package optim

import (
	"fmt"
	"math"
	"strings"

	"github.com/shoggo/shoggo/backend"
	"github.com/shoggo/shoggo/backend/cpu"
	"github.com/shoggo/shoggo/tensor"
)

// host is the backend of NewAdamW and ClipGradNorm: host memory.
var host backend.Backend = cpu.New()

// Param is one trainable tensor: its weight W and gradient G (F32, same
// shape; usually views into the parameter and gradient arenas). Decay says
// whether AdamW applies weight decay to it (see DefaultDecay).
type Param struct {
	Name  string
	W, G  *tensor.Tensor
	Decay bool
}

// Config holds AdamW's hyperparameters. The learning rate is not here: it is
// passed to every Step, usually from a Schedule.
type Config struct {
	Beta1, Beta2 float64
	Eps          float64
	// WeightDecay is the decoupled decay coefficient: each step multiplies a
	// decaying weight by (1 - lr*WeightDecay) before the Adam update.
	WeightDecay float64
	// Workers bounds the goroutines one Step uses; 0 means GOMAXPROCS. The
	// update is elementwise, so results do not depend on it.
	Workers int
}

// DefaultConfig returns torch.optim.AdamW's defaults: betas (0.9, 0.999),
// eps 1e-8, weight decay 0.01.
func DefaultConfig() Config {
	return Config{Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.01}
}

// Validate reports the first out-of-range field, by name and value, with the
// same limits torch.optim.AdamW enforces.
func (c Config) Validate() error {
	switch {
	case !(c.Beta1 >= 0 && c.Beta1 < 1):
		return fmt.Errorf("optim: beta1 = %v, want 0 <= beta1 < 1", c.Beta1)
	case !(c.Beta2 >= 0 && c.Beta2 < 1):
		return fmt.Errorf("optim: beta2 = %v, want 0 <= beta2 < 1", c.Beta2)
	case !(c.Eps >= 0) || math.IsInf(c.Eps, 0):
		return fmt.Errorf("optim: eps = %v, want a finite value >= 0", c.Eps)
	case !(c.WeightDecay >= 0) || math.IsInf(c.WeightDecay, 0):
		return fmt.Errorf("optim: weight_decay = %v, want a finite value >= 0", c.WeightDecay)
	case c.Workers < 0:
		return fmt.Errorf("optim: workers = %d, want >= 0", c.Workers)
	}
	return nil
}

// DefaultDecay is the usual parameter grouping (nanoGPT, Hugging Face
// Trainer): tensors with two or more dimensions (linear and embedding
// weights) decay; 1-D tensors (biases, LayerNorm/RMSNorm weights) and
// anything named as a bias or a norm do not.
func DefaultDecay(name string, shape tensor.Shape) bool {
	if len(shape) < 2 {
		return false
	}
	n := strings.ToLower(name)
	for _, part := range strings.Split(n, ".") {
		if part == "bias" || strings.HasSuffix(part, "_bias") ||
			strings.Contains(part, "norm") || part == "ln" || strings.HasPrefix(part, "ln_") {
			return false
		}
	}
	return true
}

// AdamW is torch.optim.AdamW (amsgrad=False, maximize=False). Its first and
// second moments live in one F32 arena each, with the parameters' names.
//
// Step follows the order of operations of PyTorch's single-tensor
// implementation (the default on CPU), elementwise in float32 with every
// scalar formed in float64 and rounded to float32 once, as torch does:
//
//	p      = p * float32(1 - lr*wd)                      (decaying params, wd != 0)
//	m      = lerp(m, g, float32(1 - beta1))              (m + w*(g-m) for w < 0.5)
//	v      = v*float32(beta2) + float32(1-beta2)*g*g
//	denom  = sqrt(v)/float32(sqrt(1 - beta2^t)) + float32(eps)
//	p      = p + float32(-lr/(1 - beta1^t))*m / denom
//
// which is p -= lr * mhat/(sqrt(vhat)+eps) with mhat = m/(1-beta1^t) and
// vhat = v/(1-beta2^t). No multiply-add is fused (explicit float32
// conversions forbid it on every GOARCH; the AVX2 version of the update,
// vec.AdamW.Update, uses no FMA either and gives the same bits). Torch's vectorized CPU lerp uses a
// fused multiply-add, so the two agree to float rounding (about one ulp per
// step), not bit for bit.
type AdamW struct {
	be     backend.Backend
	cfg    Config
	params []Param
	m, v   *tensor.Arena
	state  []*tensor.Tensor
	step   int
	// the arguments of be.AdamW, fixed at construction
	ws, gs, ms, vs []*tensor.Tensor
	decay          []bool
}

// NewAdamW is NewAdamWOn with the CPU backend (host tensors).
func NewAdamW(params []Param, cfg Config) (*AdamW, error) {
	return NewAdamWOn(host, params, cfg)
}

// NewAdamWOn creates an optimizer whose moments live in be's storage, with
// zero moments and step count 0; the weights and gradients are be's
// tensors. It returns an error for an invalid config or duplicate parameter
// names, and panics if a weight or gradient is not F32 or their shapes
// differ.
func NewAdamWOn(be backend.Backend, params []Param, cfg Config) (*AdamW, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	specs := make([]tensor.Spec, len(params))
	for i, p := range params {
		if p.W == nil || p.G == nil {
			panic(fmt.Sprintf("optim.NewAdamW: parameter %q has a nil weight or gradient", p.Name))
		}
		if p.W.DType != tensor.F32 || p.G.DType != tensor.F32 {
			panic(fmt.Sprintf("optim.NewAdamW: parameter %q: weight %s, gradient %s; want F32", p.Name, p.W.DType, p.G.DType))
		}
		if !p.W.Shape.Equal(p.G.Shape) {
			panic(fmt.Sprintf("optim.NewAdamW: parameter %q: weight shape %v, gradient shape %v", p.Name, p.W.Shape, p.G.Shape))
		}
		if p.W.IsHost() && len(p.W.F32) != p.W.Numel() || p.G.IsHost() && len(p.G.F32) != p.G.Numel() {
			panic(fmt.Sprintf("optim.NewAdamW: parameter %q: storage length does not match shape %v", p.Name, p.W.Shape))
		}
		specs[i] = tensor.Spec{Name: p.Name, Shape: p.W.Shape.Clone()}
	}
	m, err := be.NewArena(tensor.F32, specs)
	if err != nil {
		return nil, fmt.Errorf("optim: exp_avg: %w", err)
	}
	v, err := be.NewArena(tensor.F32, specs)
	if err != nil {
		return nil, fmt.Errorf("optim: exp_avg_sq: %w", err)
	}
	o := &AdamW{be: be, cfg: cfg, params: append([]Param(nil), params...), m: m, v: v}
	for _, prefix := range []string{"exp_avg.", "exp_avg_sq."} {
		a := m
		if prefix == "exp_avg_sq." {
			a = v
		}
		for _, t := range a.Tensors() {
			s := t.View(0, t.Shape...)
			s.Name = prefix + t.Name
			o.state = append(o.state, s)
		}
	}
	applyDecay := cfg.WeightDecay != 0
	for i, p := range params {
		o.ws = append(o.ws, p.W)
		o.gs = append(o.gs, p.G)
		o.decay = append(o.decay, p.Decay && applyDecay)
		o.ms = append(o.ms, m.Tensors()[i])
		o.vs = append(o.vs, v.Tensors()[i])
	}
	return o, nil
}

// Config returns the optimizer's configuration.
func (o *AdamW) Config() Config { return o.cfg }

// Params returns the parameters in the order given to NewAdamW.
func (o *AdamW) Params() []Param { return o.params }

// Backend returns the backend holding the optimizer's state.
func (o *AdamW) Backend() backend.Backend { return o.be }

// Moments returns the arenas holding the first (exp_avg) and second
// (exp_avg_sq) moments, with tensors named as the parameters (backend
// tensors: read them through the backend's Download).
func (o *AdamW) Moments() (m, v *tensor.Arena) { return o.m, o.v }

// StepCount is the number of Steps taken (torch's state["step"]).
func (o *AdamW) StepCount() int { return o.step }

// SetStepCount restores the step count from a checkpoint. n < 0 panics: a
// checkpoint loader must reject it as bad data first.
func (o *AdamW) SetStepCount(n int) {
	if n < 0 {
		panic(fmt.Sprintf("optim.SetStepCount(%d)", n))
	}
	o.step = n
}

// State returns the moment tensors, live views into the moment arenas: first
// "exp_avg.<name>" for every parameter in order, then "exp_avg_sq.<name>".
// They are backend tensors: a checkpoint writer saves them through the
// backend (backend.ReadHost; on the CPU backend they are host tensors and
// can be written as they are); LoadState together with SetStepCount
// restores the optimizer exactly.
func (o *AdamW) State() []*tensor.Tensor { return o.state }

// LoadState copies every State tensor from get(name), a host tensor
// (uploaded to the backend). It checks all of them first and returns an
// error naming the first missing tensor, or one whose dtype is not F32 or
// whose shape differs; the state is then unchanged.
func (o *AdamW) LoadState(get func(name string) *tensor.Tensor) error {
	srcs := make([]*tensor.Tensor, len(o.state))
	for i, dst := range o.state {
		src := get(dst.Name)
		switch {
		case src == nil:
			return fmt.Errorf("optim: optimizer state %q is missing", dst.Name)
		case src.DType != tensor.F32:
			return fmt.Errorf("optim: optimizer state %q has dtype %s, want F32", dst.Name, src.DType)
		case !src.Shape.Equal(dst.Shape):
			return fmt.Errorf("optim: optimizer state %q has shape %v, want %v", dst.Name, src.Shape, dst.Shape)
		case !src.IsHost():
			return fmt.Errorf("optim: optimizer state %q is not a host tensor", dst.Name)
		case len(src.F32) != dst.Numel():
			return fmt.Errorf("optim: optimizer state %q holds %d values, want %d", dst.Name, len(src.F32), dst.Numel())
		}
		srcs[i] = src
	}
	for i, dst := range o.state {
		o.be.Upload(dst, srcs[i].View(0, dst.Shape...))
	}
	return nil
}

// Step increments the step count and applies one AdamW update with learning
// rate lr to every parameter, using the gradients as they are.
func (o *AdamW) Step(lr float64) {
	o.step++
	t := float64(o.step)
	c := o.cfg
	bc1 := 1 - math.Pow(c.Beta1, t)
	bc2 := 1 - math.Pow(c.Beta2, t)
	w := float32(1 - c.Beta1)
	u := backend.AdamWUpdate{
		Decay:      float32(1 - lr*c.WeightDecay),
		LerpW:      w,
		LerpSmall:  math.Abs(float64(w)) < 0.5,
		LerpWc:     1 - w,
		Beta2:      float32(c.Beta2),
		OneMinusB2: float32(1 - c.Beta2),
		Bc2Sqrt:    float32(math.Sqrt(bc2)),
		Eps:        float32(c.Eps),
		NegStep:    float32(-(lr / bc1)),
	}
	o.be.AdamW(o.ws, o.gs, o.ms, o.vs, o.decay, u, c.Workers)
}
