// Package lora adds low-rank adapters (LoRA, Hu et al. 2021) to a
// model.Transformer, compatible with Hugging Face PEFT.
//
// Apply replaces the targeted projections of every block (Block.Q, .V, ...)
// with a *Linear that wraps the frozen base layer:
//
//	y = base(x) + scaling · (dropout(x) Aᵀ) Bᵀ
//
// with A (r, in) initialised as PEFT does (Kaiming-uniform with a = √5, so
// A ~ U(-1/√in, 1/√in)), B (out, r) zero, and scaling = alpha/r (alpha/√r
// with rsLoRA). Dropout acts on the adapter's input only, never on the base
// path. The base layer may be any nn.Layer (a plain *nn.Linear, a
// HalfLinear holding bf16/fp16 weights, a quantized linear): its backward is
// asked for the input gradient only, and a targeted *nn.Linear that has
// gradient tensors is wrapped as a copy with DW = DB = nil, so the base
// weights' gradients are never computed.
//
// The model should be built with trainable=false (no gradient arena: norms,
// embeddings and untargeted linears then get no gradients either). Apply
// also accepts a trainable model, in which case the untargeted parameters
// keep their gradients (and anything that trains m.Grads would train them).
//
// All adapter weights live in one arena (Adapters.WeightArena) named with PEFT's
// keys ("base_model.model.<module>.lora_A.weight"), and their gradients in a
// second arena of the same layout (Adapters.GradArena). Both are backend
// storage (the model's backend's NewArena) of the model's compute dtype:
// F32 normally, F64 in gradient checks. A is initialised on the host and
// uploaded (backend.FillHost), so every backend starts from the same bits.
//
// GPT-2's fused c_attn is split by the model into three views (Q, K, V) of
// one (3C, C) weight. A PEFT adapter on c_attn is one module with A (r, C)
// and B (3C, r); here Q, K and V each get a *Linear that shares A (and its
// gradient) and uses a row block of B. They also share one dropout mask per
// forward pass, because PEFT applies one dropout to the single c_attn input.
package lora

import (
	"fmt"
	"math"
	"math/rand/v2"
	"regexp"
	"slices"
	"strings"

	"github.com/shoggo/shoggo/backend"
	"github.com/shoggo/shoggo/model"
	"github.com/shoggo/shoggo/nn"
	"github.com/shoggo/shoggo/optim"
	"github.com/shoggo/shoggo/tensor"
)

// AllLinear is the special target that selects every linear layer of the
// blocks (not the LM head), as PEFT's "all-linear" does.
const AllLinear = "all-linear"

// keyPrefix is what PEFT's PeftModelForCausalLM puts before a module path.
const keyPrefix = "base_model.model."

// Config describes the adapters to add.
type Config struct {
	R       int     // rank (PEFT r)
	Alpha   float64 // PEFT lora_alpha
	Dropout float64 // PEFT lora_dropout, in [0, 1)
	// Targets are module names matched as PEFT matches a list: a module is
	// targeted if its path (e.g. "model.layers.3.self_attn.q_proj") equals a
	// target or ends with "." + target. So "c_proj" selects both GPT-2's
	// attn.c_proj and mlp.c_proj. The single target "all-linear" selects
	// every linear of the blocks.
	Targets []string
	// TargetRegex, if set, replaces Targets with PEFT's string semantics: a
	// module is targeted if the regular expression matches its whole path.
	TargetRegex string
	UseRSLoRA   bool   // scaling alpha/√r instead of alpha/r
	Seed        uint64 // seeds A's initialisation and the dropout masks
}

// Scaling is the factor applied to the adapter's output.
func (c *Config) Scaling() float64 {
	if c.UseRSLoRA {
		return c.Alpha / math.Sqrt(float64(c.R))
	}
	return c.Alpha / float64(c.R)
}

// Validate reports the first invalid field.
func (c *Config) Validate() error {
	switch {
	case c.R <= 0:
		return fmt.Errorf("lora: r = %d, want > 0", c.R)
	case math.IsNaN(c.Alpha) || math.IsInf(c.Alpha, 0):
		return fmt.Errorf("lora: alpha = %v, want a finite number", c.Alpha)
	case !(c.Dropout >= 0 && c.Dropout < 1):
		return fmt.Errorf("lora: dropout = %v, want 0 <= dropout < 1", c.Dropout)
	case len(c.Targets) == 0 && c.TargetRegex == "":
		return fmt.Errorf("lora: no target modules")
	}
	if c.TargetRegex != "" {
		if _, err := regexp.Compile(`^(?:` + c.TargetRegex + `)$`); err != nil {
			return fmt.Errorf("lora: target regex %q: %w", c.TargetRegex, err)
		}
	}
	for _, t := range c.Targets {
		if strings.TrimSpace(t) == "" {
			return fmt.Errorf("lora: empty target module name")
		}
	}
	return nil
}

func (c *Config) allLinear() bool {
	return c.TargetRegex == "" && len(c.Targets) == 1 && strings.EqualFold(c.Targets[0], AllLinear)
}

// matcher returns a function reporting whether a module path is targeted.
func (c *Config) matcher() func(path string) bool {
	if c.allLinear() {
		return func(string) bool { return true }
	}
	if c.TargetRegex != "" {
		re := regexp.MustCompile(`^(?:` + c.TargetRegex + `)$`)
		return re.MatchString
	}
	return func(p string) bool {
		for _, t := range c.Targets {
			if suffixMatch(p, t) {
				return true
			}
		}
		return false
	}
}

// suffixMatch is PEFT's list matching: the path is the target or ends with "." + target.
func suffixMatch(path, target string) bool {
	return path == target || strings.HasSuffix(path, "."+target)
}

// Module is one PEFT LoRA module: A (r, in) and B (out, r), views into the
// adapters' arenas, and their gradients. For GPT-2's c_attn one Module
// serves three Linear views.
type Module struct {
	Name    string // module path, e.g. "model.layers.0.self_attn.q_proj"
	R       int
	Scaling float64
	A, B    *tensor.Tensor
	DA, DB  *tensor.Tensor
	Views   []*Linear

	// dropout: one mask per forward pass, shared by the views; pcg is
	// rng's source, saved by training checkpoints (DropoutState)
	pcg      *rand.PCG
	rng      *rand.Rand
	mask     dropMask // bit i set: element i of the (N, in) input is kept
	maskN    int      // rows the mask covers
	maskX    any      // identity of the input the mask was drawn for
	maskUsed []bool   // per view: has consumed the current mask
	frozen   bool     // ReplayMasks: keep the current mask
}

// KeyA and KeyB are the module's tensor names in PEFT's adapter_model.safetensors.
func (md *Module) KeyA() string { return keyPrefix + md.Name + ".lora_A.weight" }
func (md *Module) KeyB() string { return keyPrefix + md.Name + ".lora_B.weight" }

// Adapters are the LoRA modules applied to one model.
type Adapters struct {
	Cfg Config
	// BaseModel is written as base_model_name_or_path by Save.
	BaseModel string
	Family    model.Family
	// WeightArena holds every A and B; GradArena their gradients (same
	// layout and names).
	WeightArena, GradArena *tensor.Arena
	Modules                []*Module
	Layers                 []*Linear // every wrapper, in block order

	be       backend.Backend
	dt       tensor.DType
	m        *model.Transformer
	training bool
	detached bool // merged or unloaded
	scratch  scratch
}

// slot identifies one projection field of a block.
type slot int

const (
	slotQ slot = iota
	slotK
	slotV
	slotO
	slotFc
	slotProj
	slotGate
	slotUp
	slotDown
)

func (s slot) field(b *model.Block) *nn.Layer {
	switch s {
	case slotQ:
		return &b.Q
	case slotK:
		return &b.K
	case slotV:
		return &b.V
	case slotO:
		return &b.O
	case slotFc:
		return &b.Fc
	case slotProj:
		return &b.Proj
	case slotGate:
		return &b.Gate
	case slotUp:
		return &b.Up
	case slotDown:
		return &b.Down
	}
	panic("lora: bad slot")
}

// site is one PEFT module of a block: its path and the block fields that
// hold it (three for GPT-2's c_attn, whose rows are split q, k, v).
type site struct {
	path  string
	slots []slot
}

// sites lists the linear modules of block l, in the order PEFT's modules
// appear (attention, then MLP), from the model's family table: a fused
// q|k|v module (GPT-2's c_attn) serves the Q, K and V fields.
func sites(c *model.Config, l int) []site {
	f := c.Spec()
	n := &f.Names
	p := f.LayerPrefix(l)
	var out []site
	if n.QKV != "" {
		out = append(out, site{p + n.QKV, []slot{slotQ, slotK, slotV}})
	} else {
		out = append(out, site{p + n.Q, []slot{slotQ}}, site{p + n.K, []slot{slotK}}, site{p + n.V, []slot{slotV}})
	}
	out = append(out, site{p + n.O, []slot{slotO}})
	if f.MLP == model.GELUMLP {
		out = append(out, site{p + n.Fc, []slot{slotFc}}, site{p + n.Proj, []slot{slotProj}})
	} else {
		out = append(out, site{p + n.Gate, []slot{slotGate}}, site{p + n.Up, []slot{slotUp}}, site{p + n.Down, []slot{slotDown}})
	}
	return out
}

// ModuleNames lists every linear module path of m's blocks (the candidates
// for targeting).
func ModuleNames(m *model.Transformer) []string {
	var out []string
	for l := range m.Blocks {
		for _, s := range sites(&m.Cfg, l) {
			out = append(out, s.path)
		}
	}
	return out
}

// Apply adds adapters to every targeted linear of m's blocks and returns
// them in training mode (dropout active). It errors if a target matches no
// module, if a targeted layer already holds an adapter, or if nothing is
// targeted.
func Apply(m *model.Transformer, cfg Config) (*Adapters, error) {
	return apply(m, cfg, true)
}

// apply implements Apply. strict: every entry of cfg.Targets must match
// something (Apply); PEFT's loader only requires that something matches.
func apply(m *model.Transformer, cfg Config, strict bool) (*Adapters, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if m.DType != tensor.F32 && m.DType != tensor.F64 {
		return nil, fmt.Errorf("lora: model dtype %s, want F32 (or F64)", m.DType)
	}
	match := cfg.matcher()
	fam := m.Cfg.Family()
	type chosen struct {
		site
		block int
	}
	var picks []chosen
	hit := make([]bool, len(cfg.Targets))
	for l := range m.Blocks {
		for _, s := range sites(&m.Cfg, l) {
			if cfg.TargetRegex == "" {
				for i, t := range cfg.Targets {
					hit[i] = hit[i] || suffixMatch(s.path, t)
				}
			}
			if !match(s.path) {
				continue
			}
			for _, sl := range s.slots {
				lay := *sl.field(m.Blocks[l])
				if lay == nil {
					return nil, fmt.Errorf("lora: module %s has no layer", s.path)
				}
				if _, already := lay.(*Linear); already {
					return nil, fmt.Errorf("lora: module %s already has a LoRA adapter", s.path)
				}
			}
			picks = append(picks, chosen{s, l})
		}
	}
	if len(picks) == 0 {
		return nil, fmt.Errorf("lora: target modules %s match no module of this %s model (modules are named like %s)",
			targetsString(&cfg), fam, strings.Join(exampleNames(m), ", "))
	}
	if strict && !cfg.allLinear() && cfg.TargetRegex == "" {
		for i, h := range hit {
			if !h {
				return nil, fmt.Errorf("lora: target module %q matches no module of this %s model (modules are named like %s)",
					cfg.Targets[i], fam, strings.Join(exampleNames(m), ", "))
			}
		}
	}
	var specs []tensor.Spec
	dims := make([][2]int, len(picks)) // in, out per module
	for i, p := range picks {
		in, out := -1, 0
		for _, sl := range p.slots {
			lay := *sl.field(m.Blocks[p.block])
			if in >= 0 && lay.In() != in {
				return nil, fmt.Errorf("lora: module %s: views with inputs %d and %d", p.path, in, lay.In())
			}
			in = lay.In()
			out += lay.Out()
		}
		dims[i] = [2]int{in, out}
		specs = append(specs,
			tensor.Spec{Name: keyPrefix + p.path + ".lora_A.weight", Shape: tensor.Shape{cfg.R, in}},
			tensor.Spec{Name: keyPrefix + p.path + ".lora_B.weight", Shape: tensor.Shape{out, cfg.R}})
	}
	params, err := m.BE.NewArena(m.DType, specs)
	if err != nil {
		return nil, err
	}
	grads, err := m.BE.NewArena(m.DType, specs)
	if err != nil {
		return nil, err
	}
	a := &Adapters{Cfg: cfg, Family: fam, WeightArena: params, GradArena: grads, be: m.BE, dt: m.DType, m: m, training: true}
	a.Cfg.Targets = slices.Clone(cfg.Targets)
	a.scratch.dt, a.scratch.be = m.DType, m.BE
	initRNG := rand.New(rand.NewPCG(cfg.Seed, 0x6c6f72612d41)) // "lora-A"
	scaling := cfg.Scaling()
	for i, p := range picks {
		md := &Module{Name: p.path, R: cfg.R, Scaling: scaling}
		md.A, md.B = params.Get(md.KeyA()), params.Get(md.KeyB())
		md.DA, md.DB = grads.Get(md.KeyA()), grads.Get(md.KeyB())
		md.pcg = rand.NewPCG(cfg.Seed, 0x64726f70<<16+uint64(i)) // "drop"
		md.rng = rand.New(md.pcg)
		// nn.init.kaiming_uniform_(A, a=sqrt(5)): gain sqrt(2/(1+5)),
		// bound = gain*sqrt(3/fan_in) = 1/sqrt(in).
		bound := 1 / math.Sqrt(float64(dims[i][0]))
		backend.FillHost(m.BE, md.A, func(h *tensor.Tensor) {
			for j := 0; j < h.Numel(); j++ {
				h.Set(j, (2*initRNG.Float64()-1)*bound)
			}
		})
		row := 0
		for vi, sl := range p.slots {
			f := sl.field(m.Blocks[p.block])
			orig := *f
			base := orig
			if lin, ok := orig.(*nn.Linear); ok && (lin.DW != nil || lin.DB != nil) {
				frozen := *lin
				frozen.Freeze()
				base = &frozen
			}
			out := orig.Out()
			v := &Linear{Base: base, Mod: md, ad: a, view: vi, block: p.block, slot: sl, orig: orig,
				B: md.B.View(row*cfg.R, out, cfg.R), DB: md.DB.View(row*cfg.R, out, cfg.R)}
			row += out
			md.Views = append(md.Views, v)
			a.Layers = append(a.Layers, v)
			*f = v
		}
		md.maskUsed = make([]bool, len(md.Views))
		a.Modules = append(a.Modules, md)
	}
	return a, nil
}

func targetsString(c *Config) string {
	if c.TargetRegex != "" {
		return fmt.Sprintf("regex %q", c.TargetRegex)
	}
	return fmt.Sprintf("%q", c.Targets)
}

func exampleNames(m *model.Transformer) []string {
	if len(m.Blocks) == 0 {
		return nil
	}
	var out []string
	for _, s := range sites(&m.Cfg, 0) {
		out = append(out, s.path)
	}
	return out
}

// SetTraining turns dropout on (true) or off (false, evaluation).
func (a *Adapters) SetTraining(on bool) { a.training = on }

// ReplayMasks, while on, makes every training Forward reuse each module's
// last dropout mask instead of drawing a new one. Gradient checkpointing
// turns it on while it recomputes a block's forward during backward, so the
// recomputed activations (and the masks Backward uses) are the original
// ones. Each module keeps its own mask, so all layers' masks survive a
// whole forward pass.
func (a *Adapters) ReplayMasks(on bool) {
	for _, md := range a.Modules {
		md.frozen = on
	}
}

// Training reports whether dropout is active.
func (a *Adapters) Training() bool { return a.training }

// Params returns the adapter weights for the optimizer. Every A and B
// decays (Decay: true): Hugging Face Trainer applies weight_decay to all
// LoRA weights (they are 2-D and not biases or norms), so set the
// optimizer's WeightDecay to 0 for PEFT's most common setting.
func (a *Adapters) Params() []optim.Param {
	var ps []optim.Param
	for _, w := range a.WeightArena.Tensors() {
		ps = append(ps, optim.Param{Name: w.Name, W: w, G: a.GradArena.Get(w.Name), Decay: true})
	}
	return ps
}

// Grads returns the gradient tensors (for clipping and all-reduce), in the
// same order as Params.
func (a *Adapters) Grads() []*tensor.Tensor { return a.GradArena.Tensors() }

// ZeroGrad clears the adapters' gradients (the backend's Zero).
func (a *Adapters) ZeroGrad() { a.be.Zero(a.GradArena.Flat()) }

// NumTrainable is the number of adapter parameters (c_attn's A counted once).
func (a *Adapters) NumTrainable() int64 { return int64(a.WeightArena.Numel()) }

// Report returns PEFT's print_trainable_parameters line:
//
//	trainable params: 1,572,864 || all params: 1,838,401,536 || trainable%: 0.0856
//
// "all params" is the base model's parameter count (a tied LM head once,
// from the config, so it is right after ConvertBase too) plus the adapters.
func (a *Adapters) Report(m *model.Transformer) string {
	tr := a.NumTrainable()
	return reportLine(tr, model.ParamCount(&m.Cfg)+tr)
}

func reportLine(trainable, all int64) string {
	return fmt.Sprintf("trainable params: %s || all params: %s || trainable%%: %.4f",
		commas(trainable), commas(all), 100*float64(trainable)/float64(all))
}

// commas formats n as Python's format(n, ",d").
func commas(n int64) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// TargetModules is what Save writes as target_modules: the regex, the
// configured names, or (for all-linear) every adapted module path, as PEFT
// writes after expanding "all-linear".
func (a *Adapters) TargetModules() any {
	switch {
	case a.Cfg.TargetRegex != "":
		return a.Cfg.TargetRegex
	case a.Cfg.allLinear():
		var names []string
		for _, md := range a.Modules {
			names = append(names, md.Name)
		}
		sort := slices.Clone(names)
		slices.Sort(sort)
		return sort
	}
	return slices.Clone(a.Cfg.Targets)
}

// Unload puts the original layers back into m's blocks without merging; the
// adapters are detached and can no longer be merged.
func (a *Adapters) Unload(m *model.Transformer) error {
	if err := a.check(m); err != nil {
		return err
	}
	a.restore()
	return nil
}

func (a *Adapters) check(m *model.Transformer) error {
	if a.detached {
		return fmt.Errorf("lora: adapters were already merged or unloaded")
	}
	if a.m != m {
		return fmt.Errorf("lora: adapters belong to another model")
	}
	return nil
}

func (a *Adapters) restore() {
	for _, v := range a.Layers {
		f := v.slot.field(a.m.Blocks[v.block])
		if *f == nn.Layer(v) {
			*f = v.orig
		}
	}
	a.detached = true
}

// scratch holds buffers shared by all wrappers of one Adapters, grown on
// demand; they only live during one Forward or Backward call.
type scratch struct {
	dt   tensor.DType
	be   backend.Backend
	bufs [4]*tensor.Tensor
}

const (
	bufXD  = iota // dropped input (N, in)
	bufTmp        // adapter output (N, out)
	bufDH         // gradient of h (N, r)
	bufDXD        // gradient of the dropped input (N, in)
)

func (s *scratch) get(i, rows, cols int) *tensor.Tensor { return s.getAs(i, rows, cols, s.dt) }

// getAs is get with buffer i in dtype dt (a 16-bit dropped input under
// mixed precision); the buffer is reallocated when its dtype changes.
func (s *scratch) getAs(i, rows, cols int, dt tensor.DType) *tensor.Tensor {
	n := rows * cols
	if b := s.bufs[i]; b == nil || b.Numel() < n || b.DType != dt {
		s.bufs[i] = s.be.Alloc(dt, n)
	}
	return s.bufs[i].View(0, rows, cols)
}
