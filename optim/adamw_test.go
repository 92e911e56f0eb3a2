package optim

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/shoggo/shoggo/tensor"
)

func newParam(name string, decay bool, w []float32, shape ...int) Param {
	if len(shape) == 0 {
		shape = []int{len(w)}
	}
	return Param{
		Name:  name,
		W:     tensor.FromF32(append([]float32(nil), w...), shape...),
		G:     tensor.New(tensor.F32, shape...),
		Decay: decay,
	}
}

func mustAdamW(t *testing.T, params []Param, cfg Config) *AdamW {
	t.Helper()
	o, err := NewAdamW(params, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// The reference values below were computed by hand in float64 with the
// textbook formulas (Loshchilov & Hutter; torch.optim.AdamW docs):
//
//	p -= lr*wd*p; m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2
//	p -= lr * (m/(1-b1^t)) / (sqrt(v/(1-b2^t)) + eps)
//
// for w0 = [0.5, -1, 2, 0.25], b1 = 0.9, b2 = 0.999, eps = 1e-8, wd = 0.1,
// the gradients and per-step learning rates of adamCase. Float32 arithmetic
// agrees to about an ulp: tolerance 2.5e-7 absolute (one float32 ulp at 2
// is 2.4e-7; the largest difference seen is 6.6e-8).
var adamCase = struct {
	w0    []float32
	grads [][]float32
	lrs   []float64
	decay [][]float64 // after steps 1, 2, 3 with weight decay
	plain [][]float64 // after steps 1, 2, 3 without (Decay false)
}{
	w0:    []float32{0.5, -1.0, 2.0, 0.25},
	grads: [][]float32{{0.1, -0.2, 0.3, 0.0}, {-0.05, 0.4, 0.1, 0.01}, {0.2, 0.1, -0.3, -0.02}},
	lrs:   []float64{0.1, 0.05, 0.02},
	decay: [][]float64{
		{0.39500000999999896, -0.8900000049999998, 1.8800000033333333, 0.2475},
		{0.3797081596516949, -0.9038551807480183, 1.8270468077285977, 0.20905571142683968},
		{0.36578651232198967, -0.9103604940700818, 1.82242497471146, 0.21492331852691582},
	},
	plain: [][]float64{
		{0.40000000999999896, -0.9000000049999998, 1.9000000033333333, 0.25},
		{0.3866831597016949, -0.9183051807730183, 1.8564468077452645, 0.21279321142683968},
		{0.37352092869129305, -0.9266182044565778, 1.855479068343584, 0.2190789299497695},
	},
}

func TestAdamWHandComputed(t *testing.T) {
	cfg := Config{Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.1}
	c := adamCase
	dec := newParam("w", true, c.w0)
	pl := newParam("b", false, c.w0)
	o := mustAdamW(t, []Param{dec, pl}, cfg)
	for s := range c.lrs {
		copy(dec.G.F32, c.grads[s])
		copy(pl.G.F32, c.grads[s])
		o.Step(c.lrs[s])
		if o.StepCount() != s+1 {
			t.Fatalf("StepCount = %d after %d steps", o.StepCount(), s+1)
		}
		for i := range c.w0 {
			if d := math.Abs(float64(dec.W.F32[i]) - c.decay[s][i]); d > 2.5e-7 {
				t.Errorf("step %d decay w[%d] = %.9g, want %.9g (diff %.3g)", s+1, i, dec.W.F32[i], c.decay[s][i], d)
			}
			if d := math.Abs(float64(pl.W.F32[i]) - c.plain[s][i]); d > 2.5e-7 {
				t.Errorf("step %d no-decay w[%d] = %.9g, want %.9g (diff %.3g)", s+1, i, pl.W.F32[i], c.plain[s][i], d)
			}
		}
	}
}

// adamRef is the float64 textbook AdamW, for random cases.
func adamRef(w, m, v, g []float64, t int, lr, b1, b2, eps, wd float64, decay bool) {
	for i := range w {
		if decay {
			w[i] -= lr * wd * w[i]
		}
		m[i] = b1*m[i] + (1-b1)*g[i]
		v[i] = b2*v[i] + (1-b2)*g[i]*g[i]
		mh := m[i] / (1 - math.Pow(b1, float64(t)))
		vh := v[i] / (1 - math.Pow(b2, float64(t)))
		w[i] -= lr * mh / (math.Sqrt(vh) + eps)
	}
}

// Twenty random steps on a matrix and a vector, against float64, with
// nanoGPT-like betas and a cosine schedule. Tolerance 2e-6 absolute: float32
// rounding accumulates over the steps (largest difference seen: 2.8e-7).
func TestAdamWRandomVsFloat64(t *testing.T) {
	cfg := Config{Beta1: 0.9, Beta2: 0.95, Eps: 1e-8, WeightDecay: 0.1}
	rng := rand.New(rand.NewPCG(1, 2))
	mat := newParam("h.0.mlp.c_fc.weight", true, make([]float32, 12), 3, 4)
	vec := newParam("h.0.mlp.c_fc.bias", false, make([]float32, 4))
	params := []Param{mat, vec}
	type ref struct{ w, m, v, g []float64 }
	refs := make([]ref, len(params))
	for i, p := range params {
		n := p.W.Numel()
		refs[i] = ref{make([]float64, n), make([]float64, n), make([]float64, n), make([]float64, n)}
		for j := range n {
			p.W.F32[j] = float32(rng.NormFloat64())
			refs[i].w[j] = float64(p.W.F32[j])
		}
	}
	o := mustAdamW(t, params, cfg)
	sched := WarmupCosine{Peak: 1e-2, Min: 1e-3, Warmup: 3, Total: 20}
	for s := range 20 {
		for i, p := range params {
			for j := range p.G.F32 {
				p.G.F32[j] = float32(rng.NormFloat64() * 0.1)
				refs[i].g[j] = float64(p.G.F32[j])
			}
		}
		lr := sched.LR(o.StepCount())
		o.Step(lr)
		for i, p := range params {
			r := refs[i]
			adamRef(r.w, r.m, r.v, r.g, s+1, lr, cfg.Beta1, cfg.Beta2, cfg.Eps, cfg.WeightDecay, p.Decay)
		}
	}
	for i, p := range params {
		for j, x := range p.W.F32 {
			if d := math.Abs(float64(x) - refs[i].w[j]); d > 2e-6 {
				t.Errorf("%s[%d] = %.9g, want %.9g", p.Name, j, x, refs[i].w[j])
			}
		}
	}
}

// With zero gradients the Adam update is exactly zero (0/eps), so a decaying
// weight is multiplied by exactly float32(1 - lr*wd) and a non-decaying one
// is untouched, bit for bit.
func TestAdamWZeroGradDecay(t *testing.T) {
	cfg := Config{Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.1}
	w0 := []float32{1, -2, 3.5, 0.125, -1e-3}
	dec := newParam("wte.weight", true, w0)
	pl := newParam("ln_f.weight", false, w0)
	o := mustAdamW(t, []Param{dec, pl}, cfg)
	lr := 0.3
	want := append([]float32(nil), w0...)
	for range 3 {
		o.Step(lr)
		f := float32(1 - lr*cfg.WeightDecay)
		for i := range want {
			want[i] *= f
		}
	}
	for i := range w0 {
		if dec.W.F32[i] != want[i] {
			t.Errorf("decay w[%d] = %v, want %v", i, dec.W.F32[i], want[i])
		}
		if math.Abs(float64(dec.W.F32[i])-float64(w0[i])*math.Pow(1-lr*cfg.WeightDecay, 3)) > 1e-6*math.Abs(float64(w0[i])) {
			t.Errorf("decay w[%d] = %v, want about %v", i, dec.W.F32[i], float64(w0[i])*math.Pow(0.97, 3))
		}
		if pl.W.F32[i] != w0[i] {
			t.Errorf("no-decay w[%d] = %v changed from %v", i, pl.W.F32[i], w0[i])
		}
	}
}

// A no-decay parameter is updated exactly as by an optimizer with
// WeightDecay 0; a decaying twin is not.
func TestAdamWNoDecayGroupUntouched(t *testing.T) {
	w0 := []float32{0.3, -0.7, 1.1, 2.5}
	g := []float32{0.01, 0.2, -0.3, 0.05}
	run := func(wd float64, decay bool) []float32 {
		p := newParam("p", decay, w0)
		o := mustAdamW(t, []Param{p}, Config{Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: wd})
		for range 4 {
			copy(p.G.F32, g)
			o.Step(0.05)
		}
		return p.W.F32
	}
	base := run(0, true)
	noDecay := run(0.5, false)
	withDecay := run(0.5, true)
	for i := range base {
		if noDecay[i] != base[i] {
			t.Errorf("no-decay w[%d] = %v, want %v (wd=0)", i, noDecay[i], base[i])
		}
		if withDecay[i] == base[i] {
			t.Errorf("decaying w[%d] = %v, unchanged by weight decay", i, withDecay[i])
		}
	}
}

// At step 1, mhat = g and vhat = g^2, so the update is lr*g/(|g|+eps), i.e.
// lr*sign(g) to relative precision eps/|g| plus float32 rounding.
func TestAdamWFirstStepIsSignSGD(t *testing.T) {
	w0 := []float32{0, 1, -1, 10}
	g := []float32{1e-3, -5, 0.25, 123}
	p := newParam("p", false, w0)
	copy(p.G.F32, g)
	o := mustAdamW(t, []Param{p}, Config{Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.1})
	lr := 1e-2
	o.Step(lr)
	for i := range w0 {
		upd := float64(p.W.F32[i]) - float64(w0[i])
		want := -lr * math.Copysign(1, float64(g[i]))
		if math.Abs(upd-want) > 1e-6*max(1, math.Abs(float64(w0[i]))) {
			t.Errorf("w[%d]: update %.9g, want %.9g", i, upd, want)
		}
	}
}

// Bit-exactness of Step against the documented float32 formula, written
// out here independently, including a beta1 < 0.5 (other lerp branch).
func TestAdamWMatchesTorchFormulaBitwise(t *testing.T) {
	for _, b1 := range []float64{0.9, 0.3} {
		cfg := Config{Beta1: b1, Beta2: 0.99, Eps: 1e-6, WeightDecay: 0.05}
		rng := rand.New(rand.NewPCG(7, 8))
		n := 37
		p := newParam("p", true, make([]float32, n))
		for i := range n {
			p.W.F32[i] = float32(rng.NormFloat64())
		}
		w := append([]float32(nil), p.W.F32...)
		m := make([]float32, n)
		v := make([]float32, n)
		o := mustAdamW(t, []Param{p}, cfg)
		for s := 1; s <= 5; s++ {
			for i := range n {
				p.G.F32[i] = float32(rng.NormFloat64())
			}
			lr := 0.01 * float64(s)
			o.Step(lr)
			bc1 := 1 - math.Pow(b1, float64(s))
			bc2s := float32(math.Sqrt(1 - math.Pow(cfg.Beta2, float64(s))))
			wt := float32(1 - b1)
			for i := range n {
				g := p.G.F32[i]
				w[i] = float32(w[i] * float32(1-lr*cfg.WeightDecay))
				if wt < 0.5 {
					m[i] = m[i] + float32(wt*(g-m[i]))
				} else {
					m[i] = g - float32((g-m[i])*(1-wt))
				}
				v[i] = float32(v[i]*float32(cfg.Beta2)) + float32(float32(float32(1-cfg.Beta2)*g)*g)
				d := float32(math.Sqrt(float64(v[i])))/bc2s + float32(cfg.Eps)
				w[i] = w[i] + float32(float32(-(lr/bc1))*m[i])/d
			}
		}
		mt, vt := o.State()[0], o.State()[1]
		for i := range n {
			if p.W.F32[i] != w[i] || mt.F32[i] != m[i] || vt.F32[i] != v[i] {
				t.Fatalf("beta1 %v, element %d: got (w,m,v) = (%v,%v,%v), want (%v,%v,%v)",
					b1, i, p.W.F32[i], mt.F32[i], vt.F32[i], w[i], m[i], v[i])
			}
		}
	}
}

// bigParams builds parameters large enough for Step to go parallel, with
// sizes that are not multiples of the chunk size.
func bigParams(seed uint64) []Param {
	rng := rand.New(rand.NewPCG(seed, 99))
	shapes := [][]int{{97, 1031}, {3 * (1 << 14)}, {5}, {0}, {131, 7}}
	var ps []Param
	for i, sh := range shapes {
		n := tensor.Shape(sh).Numel()
		w := make([]float32, n)
		for j := range w {
			w[j] = float32(rng.NormFloat64())
		}
		name := []string{"a.weight", "b.bias", "c.weight", "d.empty", "e.weight"}[i]
		ps = append(ps, newParam(name, DefaultDecay(name, sh), w, sh...))
	}
	return ps
}

func fillGrads(ps []Param, rng *rand.Rand) {
	for _, p := range ps {
		for j := range p.G.F32 {
			p.G.F32[j] = float32(rng.NormFloat64() * 0.01)
		}
	}
}

// Any number of workers gives the same bits as one.
func TestAdamWParallelDeterministic(t *testing.T) {
	var results [][]Param
	for _, workers := range []int{1, 3, 16} {
		ps := bigParams(5)
		cfg := DefaultConfig()
		cfg.Workers = workers
		o := mustAdamW(t, ps, cfg)
		rng := rand.New(rand.NewPCG(11, 12))
		for s := range 3 {
			fillGrads(ps, rng)
			o.Step(1e-3 * float64(s+1))
		}
		results = append(results, ps)
	}
	for k := 1; k < len(results); k++ {
		for i, p := range results[k] {
			for j, x := range p.W.F32 {
				if x != results[0][i].W.F32[j] {
					t.Fatalf("run %d: %s[%d] = %v, single worker gave %v", k, p.Name, j, x, results[0][i].W.F32[j])
				}
			}
		}
	}
}

// Save after 3 steps, restore into a fresh optimizer over copied weights,
// and continue: both runs agree bit for bit.
func TestAdamWStateRoundTrip(t *testing.T) {
	cfg := DefaultConfig()
	cfg.WeightDecay = 0.1
	ps := bigParams(21)
	o := mustAdamW(t, ps, cfg)
	rng := rand.New(rand.NewPCG(3, 4))
	for s := range 3 {
		fillGrads(ps, rng)
		o.Step(1e-3 * float64(s+1))
	}
	// Checkpoint: weights, state tensors by name, step count.
	saved := map[string]*tensor.Tensor{}
	for _, st := range o.State() {
		saved[st.Name] = st.Clone()
	}
	step := o.StepCount()
	ps2 := make([]Param, len(ps))
	for i, p := range ps {
		ps2[i] = Param{Name: p.Name, W: p.W.Clone(), G: tensor.New(tensor.F32, p.W.Shape...), Decay: p.Decay}
	}
	o2 := mustAdamW(t, ps2, cfg)
	if err := o2.LoadState(func(n string) *tensor.Tensor { return saved[n] }); err != nil {
		t.Fatal(err)
	}
	o2.SetStepCount(step)

	rngA := rand.New(rand.NewPCG(5, 6))
	rngB := rand.New(rand.NewPCG(5, 6))
	for s := 3; s < 6; s++ {
		fillGrads(ps, rngA)
		fillGrads(ps2, rngB)
		o.Step(1e-3 * float64(s+1))
		o2.Step(1e-3 * float64(s+1))
	}
	if o2.StepCount() != o.StepCount() {
		t.Fatalf("step counts %d and %d", o2.StepCount(), o.StepCount())
	}
	for i := range ps {
		for j, x := range ps[i].W.F32 {
			if math.Float32bits(x) != math.Float32bits(ps2[i].W.F32[j]) {
				t.Fatalf("%s[%d]: straight %v, resumed %v", ps[i].Name, j, x, ps2[i].W.F32[j])
			}
		}
	}
	for i, st := range o.State() {
		st2 := o2.State()[i]
		for j, x := range st.F32 {
			if math.Float32bits(x) != math.Float32bits(st2.F32[j]) {
				t.Fatalf("%s[%d]: straight %v, resumed %v", st.Name, j, x, st2.F32[j])
			}
		}
	}
}

func TestAdamWStateNames(t *testing.T) {
	ps := []Param{
		newParam("wte.weight", true, make([]float32, 6), 2, 3),
		newParam("ln_f.bias", false, make([]float32, 3)),
	}
	o := mustAdamW(t, ps, DefaultConfig())
	var names []string
	for _, s := range o.State() {
		names = append(names, s.Name+s.Shape.String())
	}
	want := "exp_avg.wte.weight[2, 3] exp_avg.ln_f.bias[3] exp_avg_sq.wte.weight[2, 3] exp_avg_sq.ln_f.bias[3]"
	if got := strings.Join(names, " "); got != want {
		t.Errorf("state = %s, want %s", got, want)
	}
	m, v := o.Moments()
	if m.Get("wte.weight") == nil || v.Get("ln_f.bias") == nil {
		t.Error("moment arenas lack the parameter names")
	}
	// State tensors are live views: a write shows in the arena.
	o.State()[3].F32[1] = 42
	if v.Get("ln_f.bias").F32[1] != 42 {
		t.Error("State() is not a view of the exp_avg_sq arena")
	}
}

func TestAdamWLoadStateErrors(t *testing.T) {
	ps := []Param{newParam("w", true, make([]float32, 6), 2, 3)}
	o := mustAdamW(t, ps, DefaultConfig())
	good := map[string]*tensor.Tensor{
		"exp_avg.w":    tensor.FromF32([]float32{1, 2, 3, 4, 5, 6}, 2, 3),
		"exp_avg_sq.w": tensor.FromF32([]float32{1, 2, 3, 4, 5, 6}, 2, 3),
	}
	cases := []struct {
		name, key string
		t         *tensor.Tensor
		want      string
	}{
		{"missing", "exp_avg_sq.w", nil, `"exp_avg_sq.w" is missing`},
		{"shape", "exp_avg_sq.w", tensor.New(tensor.F32, 3, 2), "shape [3, 2], want [2, 3]"},
		{"dtype", "exp_avg.w", tensor.New(tensor.BF16, 2, 3), "dtype BF16, want F32"},
	}
	for _, c := range cases {
		src := map[string]*tensor.Tensor{}
		for k, v := range good {
			src[k] = v
		}
		src[c.key] = c.t
		err := o.LoadState(func(n string) *tensor.Tensor { return src[n] })
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want it to contain %q", c.name, err, c.want)
		}
		// Nothing was copied, even for tensors checked before the bad one.
		for _, s := range o.State() {
			for _, x := range s.F32 {
				if x != 0 {
					t.Fatalf("%s: failed LoadState modified %s", c.name, s.Name)
				}
			}
		}
	}
}

func TestNewAdamWErrors(t *testing.T) {
	ok := DefaultConfig()
	bad := []struct {
		mod  func(*Config)
		want string
	}{
		{func(c *Config) { c.Beta1 = 1 }, "beta1"},
		{func(c *Config) { c.Beta2 = -0.1 }, "beta2"},
		{func(c *Config) { c.Eps = math.NaN() }, "eps"},
		{func(c *Config) { c.WeightDecay = -1 }, "weight_decay"},
		{func(c *Config) { c.Workers = -1 }, "workers"},
	}
	for _, b := range bad {
		c := ok
		b.mod(&c)
		if _, err := NewAdamW(nil, c); err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("config %+v: err = %v, want mention of %s", c, err, b.want)
		}
	}
	dup := []Param{newParam("x", true, []float32{1}), newParam("x", true, []float32{2})}
	if _, err := NewAdamW(dup, ok); err == nil || !strings.Contains(err.Error(), `"x"`) {
		t.Errorf("duplicate names: err = %v", err)
	}
	// Empty parameter list: Step only counts.
	o := mustAdamW(t, nil, ok)
	o.Step(1)
	if o.StepCount() != 1 || len(o.State()) != 0 {
		t.Errorf("empty optimizer: step %d, %d state tensors", o.StepCount(), len(o.State()))
	}
}

func TestNewAdamWPanics(t *testing.T) {
	mustPanic := func(name string, ps []Param) {
		t.Helper()
		defer func() {
			if recover() == nil {
				t.Errorf("%s: no panic", name)
			}
		}()
		NewAdamW(ps, DefaultConfig())
	}
	mustPanic("shape", []Param{{Name: "p", W: tensor.New(tensor.F32, 2, 3), G: tensor.New(tensor.F32, 3, 2)}})
	mustPanic("dtype", []Param{{Name: "p", W: tensor.New(tensor.F64, 2), G: tensor.New(tensor.F64, 2)}})
	mustPanic("nil grad", []Param{{Name: "p", W: tensor.New(tensor.F32, 2)}})
}

func TestDefaultDecay(t *testing.T) {
	cases := []struct {
		name  string
		shape tensor.Shape
		want  bool
	}{
		{"transformer.wte.weight", tensor.Shape{50257, 768}, true},
		{"model.embed_tokens.weight", tensor.Shape{100, 8}, true},
		{"lm_head.weight", tensor.Shape{100, 8}, true},
		{"model.layers.0.self_attn.q_proj.weight", tensor.Shape{8, 8}, true},
		{"transformer.h.0.attn.c_attn.weight", tensor.Shape{768, 2304}, true},
		{"model.layers.0.self_attn.q_proj.bias", tensor.Shape{8}, false},
		{"transformer.h.0.ln_1.weight", tensor.Shape{768}, false},
		{"transformer.ln_f.bias", tensor.Shape{768}, false},
		{"model.layers.0.input_layernorm.weight", tensor.Shape{8}, false},
		{"model.norm.weight", tensor.Shape{8}, false},
		{"scalar", tensor.Shape{}, false},
		{"transformer.h.0.attn.bias", tensor.Shape{1, 1, 4, 4}, false},
		{"odd.norm_like.weight", tensor.Shape{4, 4}, false},
	}
	for _, c := range cases {
		if got := DefaultDecay(c.name, c.shape); got != c.want {
			t.Errorf("DefaultDecay(%q, %v) = %v, want %v", c.name, c.shape, got, c.want)
		}
	}
}
