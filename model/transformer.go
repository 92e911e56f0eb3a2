package model

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"

	"github.com/shoggo/shoggo/backend"
	"github.com/shoggo/shoggo/nn"
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

// Block is one Transformer layer.
type Block struct {
	Norm1, Norm2   *nn.Norm
	Q, K, V, O     nn.Layer
	Fc, Proj       nn.Layer // GPT-2 MLP
	Gate, Up, Down nn.Layer // SwiGLU MLP
}

// Transformer is a decoder-only language model with explicit forward and
// backward passes. Parameters and gradients each live in one arena.
type Transformer struct {
	Cfg    Config
	BE     backend.Backend
	DType  tensor.DType
	Params *tensor.Arena
	Grads  *tensor.Arena // nil for a frozen model (e.g. a DPO reference)

	Embed, PosEmbed   *tensor.Tensor
	DEmbed, DPosEmbed *tensor.Tensor
	Blocks            []*Block
	NormF             *nn.Norm
	LMHead, DLMHead   *tensor.Tensor // alias Embed/DEmbed when tied

	// ChunkRows bounds the logits buffer of the loss to ChunkRows x V.
	ChunkRows int

	// RecomputeHook, if set, is called with true before gradient
	// checkpointing re-runs a block's forward and with false after, so
	// stochastic layers (LoRA dropout) can replay their masks.
	RecomputeHook func(recomputing bool)

	acts          *activations
	checkpointing bool
}

// New allocates a model for cfg on backend be with parameters of dtype dt
// (F32, or F64 for gradient checks). Parameters start at zero: call
// InitWeights or load a checkpoint. trainable=false allocates no gradients.
func New(cfg *Config, be backend.Backend, dt tensor.DType, trainable bool) (*Transformer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	specs := ParamSpecs(cfg)
	params, err := tensor.NewArena(dt, specs)
	if err != nil {
		return nil, err
	}
	m := &Transformer{Cfg: *cfg, BE: be, DType: dt, Params: params, ChunkRows: 64}
	if trainable {
		if m.Grads, err = tensor.NewArena(dt, specs); err != nil {
			return nil, err
		}
	}
	m.wire()
	return m, nil
}

func (m *Transformer) p(name string) *tensor.Tensor {
	t := m.Params.Get(name)
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

func (m *Transformer) linear(prefix string, bias bool) *nn.Linear {
	l := &nn.Linear{BE: m.BE, Name: prefix, W: m.p(prefix + ".weight"), DW: m.g(prefix + ".weight")}
	if bias {
		l.B, l.DB = m.p(prefix+".bias"), m.g(prefix+".bias")
	}
	return l
}

func (m *Transformer) norm(prefix string) *nn.Norm {
	c := &m.Cfg
	n := &nn.Norm{BE: m.BE, Name: prefix, RMS: c.Family() != GPT2, Eps: c.NormEps(),
		W: m.p(prefix + ".weight"), DW: m.g(prefix + ".weight")}
	if !n.RMS {
		n.B, n.DB = m.p(prefix+".bias"), m.g(prefix+".bias")
	}
	return n
}

// wire builds the modules as views into the arenas.
func (m *Transformer) wire() {
	c := &m.Cfg
	C := c.HiddenSize
	m.Blocks = make([]*Block, c.NumHiddenLayers)
	if c.Family() == GPT2 {
		m.Embed, m.DEmbed = m.p("transformer.wte.weight"), m.g("transformer.wte.weight")
		m.PosEmbed, m.DPosEmbed = m.p("transformer.wpe.weight"), m.g("transformer.wpe.weight")
		for l := range m.Blocks {
			p := fmt.Sprintf("transformer.h.%d.", l)
			qkv := m.linear(p+"attn.c_attn", true)
			// q, k and v are row blocks of the fused (3C, C) c_attn weight.
			part := func(i int) *nn.Linear {
				lin := &nn.Linear{BE: m.BE, Name: qkv.Name, W: qkv.W.View(i*C*C, C, C), B: qkv.B.View(i*C, C)}
				if qkv.DW != nil {
					lin.DW, lin.DB = qkv.DW.View(i*C*C, C, C), qkv.DB.View(i*C, C)
				}
				return lin
			}
			m.Blocks[l] = &Block{
				Norm1: m.norm(p + "ln_1"), Norm2: m.norm(p + "ln_2"),
				Q: part(0), K: part(1), V: part(2), O: m.linear(p+"attn.c_proj", true),
				Fc: m.linear(p+"mlp.c_fc", true), Proj: m.linear(p+"mlp.c_proj", true),
			}
		}
		m.NormF = m.norm("transformer.ln_f")
		m.LMHead, m.DLMHead = m.Embed, m.DEmbed
		return
	}
	m.Embed, m.DEmbed = m.p("model.embed_tokens.weight"), m.g("model.embed_tokens.weight")
	for l := range m.Blocks {
		p := fmt.Sprintf("model.layers.%d.", l)
		m.Blocks[l] = &Block{
			Norm1: m.norm(p + "input_layernorm"), Norm2: m.norm(p + "post_attention_layernorm"),
			Q: m.linear(p+"self_attn.q_proj", c.QKVBias()), K: m.linear(p+"self_attn.k_proj", c.QKVBias()),
			V: m.linear(p+"self_attn.v_proj", c.QKVBias()), O: m.linear(p+"self_attn.o_proj", c.OBias()),
			Gate: m.linear(p+"mlp.gate_proj", false), Up: m.linear(p+"mlp.up_proj", false), Down: m.linear(p+"mlp.down_proj", false),
		}
	}
	m.NormF = m.norm("model.norm")
	if c.TieWordEmbeddings {
		m.LMHead, m.DLMHead = m.Embed, m.DEmbed
	} else {
		m.LMHead, m.DLMHead = m.p("lm_head.weight"), m.g("lm_head.weight")
	}
}

// InitWeights draws fresh weights as GPT-2/nanoGPT do: linear and embedding
// weights from N(0, 0.02²), the projections that write into the residual
// stream scaled by 1/sqrt(2·layers), norm weights 1, biases 0.
func (m *Transformer) InitWeights(rng *rand.Rand) {
	std := 0.02
	resid := std / math.Sqrt(2*float64(m.Cfg.NumHiddenLayers))
	for _, t := range m.Params.Tensors() {
		n := t.Name
		switch {
		case strings.HasSuffix(n, ".bias"):
			t.Zero()
		case len(t.Shape) == 1: // norm weights
			for i := 0; i < t.Numel(); i++ {
				t.Set(i, 1)
			}
		default:
			s := std
			if strings.HasSuffix(n, "c_proj.weight") || strings.HasSuffix(n, "o_proj.weight") || strings.HasSuffix(n, "down_proj.weight") {
				s = resid
			}
			for i := 0; i < t.Numel(); i++ {
				t.Set(i, rng.NormFloat64()*s)
			}
		}
	}
}

// ZeroGrad clears all gradients.
func (m *Transformer) ZeroGrad() {
	if m.Grads != nil {
		m.Grads.Zero()
	}
}

// NumParams counts parameters (tied LM head once).
func (m *Transformer) NumParams() int64 { return int64(m.Params.Numel()) }
