package model

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"

	"github.com/shoggo/shoggo/backend"
	"github.com/shoggo/shoggo/nn"
	"github.com/shoggo/shoggo/quant"
	"github.com/shoggo/shoggo/tensor"
)

// Batch is one micro-batch of B sequences of T tokens.
type Batch struct {
	B, T int
	IDs  []int32 // (B, T) input token ids
	// Pos holds position ids (B, T); nil means 0..T-1 in every row.
	Pos []int32
	// KeyMask is the attention mask over keys (B, T), 1 = attend; nil = all.
	KeyMask []int32
	// Segments are per-token document ids for packed rows (B, T); nil = one
	// document per row.
	Segments []int32
	// Targets (B, T) are the token each position must predict (already
	// shifted) or backend.IgnoreIndex; nil for forward-only use.
	Targets []int32
}

// ShiftLabels turns labels aligned with the inputs (the Hugging Face
// convention: labels = input ids, -100 where ignored) into per-position
// targets: target[b,t] = labels[b,t+1], and the last position is ignored.
func ShiftLabels(labels []int32, B, T int) []int32 {
	out := make([]int32, B*T)
	for b := 0; b < B; b++ {
		for t := 0; t < T-1; t++ {
			out[b*T+t] = labels[b*T+t+1]
		}
		out[b*T+T-1] = backend.IgnoreIndex
	}
	return out
}

// CountTargets counts the positions of batches that contribute to the loss.
func CountTargets(batches []*Batch) int {
	n := 0
	for _, b := range batches {
		for _, t := range b.Targets {
			if t != backend.IgnoreIndex {
				n++
			}
		}
	}
	return n
}

// Block is one Transformer layer.
type Block struct {
	Norm1, Norm2   *nn.Norm
	Q, K, V, O     nn.Layer
	QNorm, KNorm   *nn.Norm // per-head norms on q and k (Qwen3); nil otherwise
	Fc, Proj       nn.Layer // GELU MLP (GPT-2)
	Gate, Up, Down nn.Layer // SwiGLU MLP
}

// Transformer is a decoder-only language model with explicit forward and
// backward passes. Parameters and gradients each live in one arena of
// backend storage (BE.NewArena), activations in BE.Alloc tensors; code
// outside the backend reads or writes them only through backend.Memory
// (FillHost, ReadHost, ToHost).
type Transformer struct {
	Cfg    Config
	BE     backend.Backend
	DType  tensor.DType
	Params *tensor.Arena
	Grads  *tensor.Arena // nil for a frozen model (e.g. a DPO reference)
	// Tables, if non-nil, is a BF16 arena holding the frozen token
	// embedding and LM head (FrozenOptions.HalfEmbeddings); they are then
	// not in Params.
	Tables *tensor.Arena

	Embed, PosEmbed   *tensor.Tensor
	DEmbed, DPosEmbed *tensor.Tensor
	Blocks            []*Block
	NormF             *nn.Norm
	LMHead, DLMHead   *tensor.Tensor // alias Embed/DEmbed when tied

	// ChunkRows bounds the logits buffer of the loss to ChunkRows x V
	// (default DefaultChunkRows).
	ChunkRows int

	// RecomputeHook, if set, is called with true before gradient
	// checkpointing re-runs a block's forward and with false after, so
	// stochastic layers (LoRA dropout) can replay their masks.
	RecomputeHook func(recomputing bool)

	// BackwardHook, if set, is called by Backward as groups of parameter
	// gradients become final (data-parallel training launches their
	// all-reduce while backward goes on): with len(Blocks) after the final
	// norm's backward (its gradients, the LM head's and anything the loss
	// or a head wrote before Backward), with l after block l's backward
	// (the block's gradients), and with -1 at the end (the embeddings').
	BackwardHook func(layer int)

	// fam is the family table entry of Cfg, looked up once when the model
	// is built.
	fam           *FamilySpec
	acts          *activations
	checkpointing bool
	precision     tensor.DType // compute precision (SetPrecision); F32 by default
	factory       LinearFactory
	pending       []pendingLinear
}

// DefaultChunkRows is the ChunkRows of a new model: 128 rows of float32
// logits are 26 MB for GPT-2's vocabulary; the LM-head GEMMs run about 12%
// faster than at 64 rows, and each chunk's dW update streams the whole
// V x C gradient once, so fewer chunks also cost less memory traffic.
const DefaultChunkRows = 128

// New allocates a model for cfg on backend be with parameters of dtype dt
// (F32, or F64 for gradient checks). Parameters start at zero: call
// InitWeights or load a checkpoint. trainable=false allocates no gradients.
func New(cfg *Config, be backend.Backend, dt tensor.DType, trainable bool) (*Transformer, error) {
	return NewFrozen(cfg, be, dt, trainable, nil)
}

// LinearFactory builds a frozen block linear layer (for instance a bf16 or
// NF4 copy) from its fp32 weight (out, in) and bias (or nil). The tensors
// are temporary host tensors: the factory must copy what it keeps, into
// backend storage (be.Adopt of a copy). A *quant.Linear it returns without
// a backend gets the model's.
type LinearFactory func(name string, w, b *tensor.Tensor) (nn.Layer, error)

// FrozenOptions say how NewFrozenOpts holds a frozen model's weights.
type FrozenOptions struct {
	// Factory, if non-nil, builds the block linears outside the parameter
	// arena (see NewFrozen).
	Factory LinearFactory
	// HalfEmbeddings keeps the token embedding and the LM head (one table
	// when tied) in BF16, in the separate arena Tables, instead of the
	// compute dtype: half the memory of the two largest tables. The
	// embedding lookup widens the rows it reads; the loss and the logits
	// widen blocks of LM-head rows into a small scratch. Only for a model
	// without gradients (trainable == false).
	HalfEmbeddings bool
}

// pendingLinear is a block linear built outside the parameter arena.
type pendingLinear struct {
	prefix  string
	out, in int
	bias    bool
	// split, for a fused layer (GPT-2's c_attn), are the row counts of the
	// layers it is cut into (q, k, v); build then asks the factory once per
	// part, in order, with row blocks of w and b.
	split []int
	build func(w, b *tensor.Tensor) error
}

// NewFrozen is New with the block linears (attention and MLP projections)
// kept out of the parameter arena when factory is non-nil: InitWeights or
// LoadWeights materialises each one in fp32, one at a time, and hands it to
// factory, so a model whose base is held in bf16 or 4 bits never has a
// whole fp32 copy. Embeddings, norms and the LM head stay in the arena.
// Until InitWeights or LoadWeights runs, those layers are nil.
func NewFrozen(cfg *Config, be backend.Backend, dt tensor.DType, trainable bool, factory LinearFactory) (*Transformer, error) {
	return NewFrozenOpts(cfg, be, dt, trainable, FrozenOptions{Factory: factory})
}

// NewFrozenOpts is NewFrozen with options (see FrozenOptions).
func NewFrozenOpts(cfg *Config, be backend.Backend, dt tensor.DType, trainable bool, opt FrozenOptions) (*Transformer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if opt.HalfEmbeddings && trainable {
		return nil, fmt.Errorf("model: half (bf16) embeddings need a frozen model (trainable=false)")
	}
	factory := opt.Factory
	fam := cfg.Spec()
	specs := ParamSpecs(cfg)
	var kept, tables []tensor.Spec
	for _, s := range specs {
		if _, ok := fam.BlockLinear(s.Name); ok && factory != nil {
			continue
		}
		if opt.HalfEmbeddings && fam.isTable(s.Name) {
			tables = append(tables, s)
			continue
		}
		kept = append(kept, s)
	}
	specs = kept
	params, err := be.NewArena(dt, specs)
	if err != nil {
		return nil, err
	}
	m := &Transformer{Cfg: *cfg, BE: be, DType: dt, Params: params, ChunkRows: DefaultChunkRows, factory: factory, fam: fam}
	if len(tables) > 0 {
		if m.Tables, err = be.NewArena(tensor.BF16, tables); err != nil {
			return nil, err
		}
	}
	if trainable {
		if m.Grads, err = be.NewArena(dt, specs); err != nil {
			return nil, err
		}
	}
	m.wire()
	return m, nil
}

// weights returns the parameters held in arenas (Params, then Tables) in
// the order of ParamSpecs, so InitWeights draws the same values whichever
// arena holds a tensor.
func (m *Transformer) weights() []*tensor.Tensor {
	if m.Tables == nil {
		return m.Params.Tensors()
	}
	var out []*tensor.Tensor
	for _, s := range ParamSpecs(&m.Cfg) {
		if t := m.Params.Get(s.Name); t != nil {
			out = append(out, t)
		} else if t := m.Tables.Get(s.Name); t != nil {
			out = append(out, t)
		}
	}
	return out
}

func (m *Transformer) p(name string) *tensor.Tensor {
	t := m.Params.Get(name)
	if t == nil && m.Tables != nil {
		t = m.Tables.Get(name)
	}
	if t == nil {
		panic("model: no parameter " + name)
	}
	return t
}

func (m *Transformer) g(name string) *tensor.Tensor {
	if m.Grads == nil {
		return nil
	}
	return m.Grads.Get(name)
}

// slot returns the layer for prefix: a plain Linear over the arena, or, with
// a factory, nil now and a pending entry that fills *dst later.
func (m *Transformer) slot(dst *nn.Layer, prefix string, out, in int, bias bool) {
	if m.factory == nil {
		*dst = m.linear(prefix, bias)
		return
	}
	m.pending = append(m.pending, pendingLinear{prefix: prefix, out: out, in: in, bias: bias,
		build: func(w, b *tensor.Tensor) error {
			l, err := m.factory(prefix, w, b)
			if err != nil {
				return err
			}
			*dst = m.onBackend(l)
			return nil
		}})
}

// onBackend gives a quantized layer a factory built without a backend
// (QuantizingFactory, the quantized loader) the model's backend, so its
// matmuls run as the backend's QuantOps on backend tensors.
func (m *Transformer) onBackend(l nn.Layer) nn.Layer {
	if q, ok := l.(*quant.Linear); ok && q.BE == nil {
		q.BE = m.BE
	}
	return l
}

func (m *Transformer) linear(prefix string, bias bool) *nn.Linear {
	l := &nn.Linear{BE: m.BE, Name: prefix, W: m.p(prefix + ".weight"), DW: m.g(prefix + ".weight")}
	if bias {
		l.B, l.DB = m.p(prefix+".bias"), m.g(prefix+".bias")
	}
	return l
}

func (m *Transformer) norm(prefix string) *nn.Norm {
	c := &m.Cfg
	n := &nn.Norm{BE: m.BE, Name: prefix, RMS: m.fam.Norm == RMSNorm, Eps: c.NormEps(),
		W: m.p(prefix + ".weight"), DW: m.g(prefix + ".weight")}
	if !n.RMS {
		n.B, n.DB = m.p(prefix+".bias"), m.g(prefix+".bias")
	}
	return n
}

// wire builds the modules as views into the arenas, following the family
// table.
func (m *Transformer) wire() {
	c, f := &m.Cfg, m.fam
	n := &f.Names
	C, I := c.HiddenSize, c.IntermediateSize
	hs := c.HeadDim()
	Q, KV := c.NumAttentionHeads*hs, c.NumKeyValueHeads*hs
	qkvBias, oBias, mlpBias := c.QKVBias(), c.OBias(), c.MLPBiases()
	m.Embed, m.DEmbed = m.p(n.Embed+".weight"), m.g(n.Embed+".weight")
	if f.LearnedPositions {
		m.PosEmbed, m.DPosEmbed = m.p(n.Pos+".weight"), m.g(n.Pos+".weight")
	}
	m.Blocks = make([]*Block, c.NumHiddenLayers)
	for l := range m.Blocks {
		p := f.LayerPrefix(l)
		blk := &Block{Norm1: m.norm(p + n.Norm1), Norm2: m.norm(p + n.Norm2)}
		m.Blocks[l] = blk
		if n.QKV != "" {
			m.fused(p+n.QKV, []*nn.Layer{&blk.Q, &blk.K, &blk.V}, []int{Q, KV, KV}, C, qkvBias)
		} else {
			m.slot(&blk.Q, p+n.Q, Q, C, qkvBias)
			m.slot(&blk.K, p+n.K, KV, C, qkvBias)
			m.slot(&blk.V, p+n.V, KV, C, qkvBias)
		}
		if f.QKNorm {
			blk.QNorm, blk.KNorm = m.norm(p+n.QNorm), m.norm(p+n.KNorm)
		}
		m.slot(&blk.O, p+n.O, C, Q, oBias)
		if f.MLP == GELUMLP {
			m.slot(&blk.Fc, p+n.Fc, I, C, mlpBias)
			m.slot(&blk.Proj, p+n.Proj, C, I, mlpBias)
		} else {
			m.slot(&blk.Gate, p+n.Gate, I, C, mlpBias)
			m.slot(&blk.Up, p+n.Up, I, C, mlpBias)
			m.slot(&blk.Down, p+n.Down, C, I, mlpBias)
		}
	}
	m.NormF = m.norm(n.NormF)
	if c.TieWordEmbeddings || f.TiedOnly {
		m.LMHead, m.DLMHead = m.Embed, m.DEmbed
	} else {
		m.LMHead, m.DLMHead = m.p(n.LMHead+".weight"), m.g(n.LMHead+".weight")
	}
}

// fused wires a fused linear (GPT-2's (Q+2KV, C) c_attn) as one layer per
// row block: views of the arena's weight, or, with a factory, one factory
// call per row block when the weight is materialised.
func (m *Transformer) fused(prefix string, dst []*nn.Layer, rows []int, in int, bias bool) {
	out := 0
	for _, r := range rows {
		out += r
	}
	if m.factory != nil {
		m.pending = append(m.pending, pendingLinear{prefix: prefix, out: out, in: in, bias: bias, split: rows,
			build: func(w, b *tensor.Tensor) error {
				r0 := 0
				for i, d := range dst {
					// w and b are nil when the caller's factory ignores
					// them (loadQuantized hands out prepared layers).
					var wp, bp *tensor.Tensor
					if w != nil {
						wp = w.View(r0*in, rows[i], in)
					}
					if b != nil {
						bp = b.View(r0, rows[i])
					}
					l, err := m.factory(prefix, wp, bp)
					if err != nil {
						return err
					}
					*d = m.onBackend(l)
					r0 += rows[i]
				}
				return nil
			}})
		return
	}
	all := m.linear(prefix, bias)
	r0 := 0
	for i, d := range dst {
		r := rows[i]
		lin := &nn.Linear{BE: m.BE, Name: all.Name, W: all.W.View(r0*in, r, in)}
		if all.DW != nil {
			lin.DW = all.DW.View(r0*in, r, in)
		}
		if bias {
			lin.B = all.B.View(r0, r)
			if all.DB != nil {
				lin.DB = all.DB.View(r0, r)
			}
		}
		*d = lin
		r0 += r
	}
}

// InitWeights draws fresh weights as GPT-2/nanoGPT do: linear and embedding
// weights from N(0, 0.02²), the projections that write into the residual
// stream scaled by 1/sqrt(2·layers), norm weights 1, biases 0. Each tensor
// is filled on the host (backend.FillHost: in place on the CPU backend,
// uploaded otherwise), so every backend gets the same values.
func (m *Transformer) InitWeights(rng *rand.Rand) {
	std := 0.02
	resid := std / math.Sqrt(2*float64(m.Cfg.NumHiddenLayers))
	for _, t := range m.weights() {
		n := t.Name
		switch {
		case strings.HasSuffix(n, ".bias"):
			m.BE.Zero(t)
		case len(t.Shape) == 1: // norm weights
			backend.FillHost(m.BE, t, func(h *tensor.Tensor) {
				for i := 0; i < h.Numel(); i++ {
					h.Set(i, 1)
				}
			})
		default:
			s := std
			if prefix, ok := m.fam.BlockLinear(n); ok && m.fam.residualOut(prefix) {
				s = resid
			}
			backend.FillHost(m.BE, t, func(h *tensor.Tensor) {
				for i := 0; i < h.Numel(); i++ {
					h.Set(i, rng.NormFloat64()*s)
				}
			})
		}
	}
	for _, pl := range m.pending {
		s := std
		if m.fam.residualOut(pl.prefix) {
			s = resid
		}
		// The factory gets host tensors (it converts or quantizes them into
		// the layer it builds, on the backend it was made for).
		w := tensor.New(tensor.F32, pl.out, pl.in)
		for i := range w.F32 {
			w.F32[i] = float32(rng.NormFloat64() * s)
		}
		var b *tensor.Tensor
		if pl.bias {
			b = tensor.New(tensor.F32, pl.out)
		}
		if err := pl.build(w, b); err != nil {
			panic(fmt.Sprintf("model: building %s: %v", pl.prefix, err)) // factories fail only on programmer errors here
		}
	}
}

// ZeroGrad clears all gradients (the backend's Zero: split across threads
// on the CPU, the gradient arena being as large as the model).
func (m *Transformer) ZeroGrad() {
	if m.Grads == nil {
		return
	}
	m.BE.Zero(m.Grads.Flat())
}

// NumParams counts parameters in the arenas (tied LM head once).
func (m *Transformer) NumParams() int64 {
	n := int64(m.Params.Numel())
	if m.Tables != nil {
		n += int64(m.Tables.Numel())
	}
	return n
}
