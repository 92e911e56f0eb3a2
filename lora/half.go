package lora

import (
	"fmt"
	"strings"

	"github.com/shoggo/shoggo/backend"
	"github.com/shoggo/shoggo/model"
	"github.com/shoggo/shoggo/nn"
	"github.com/shoggo/shoggo/tensor"
)

// HalfLinear is a frozen y = x Wᵀ + b whose weight W (out, in) is stored in
// F16 or BF16 (half the memory of fp32) while the bias and all arithmetic
// stay in the compute dtype of x (F32, or F64 in tests). The backend's
// LinearForward/LinearBackward take such a W directly (the CPU backend
// widens a block of rows at a time into scratch, so a full fp32 copy of it
// never exists). Backward computes the input gradient only. W and B are
// backend tensors.
type HalfLinear struct {
	BE   backend.Backend
	Name string
	W    *tensor.Tensor // (out, in), F16 or BF16
	B    *tensor.Tensor // (out) in the compute dtype, or nil
}

// NewHalfLinear converts the host tensor w (out, in) to dt (F16 or BF16,
// rounding to nearest even) into backend storage (be.Adopt: no copy on the
// CPU backend) and keeps b, a backend tensor, as is (it may be nil).
func NewHalfLinear(be backend.Backend, name string, w, b *tensor.Tensor, dt tensor.DType) (*HalfLinear, error) {
	if dt != tensor.F16 && dt != tensor.BF16 {
		return nil, fmt.Errorf("lora: half linear %s: dtype %s, want F16 or BF16", name, dt)
	}
	if len(w.Shape) != 2 {
		return nil, fmt.Errorf("lora: half linear %s: weight shape %v, want (out, in)", name, w.Shape)
	}
	h := tensor.New(dt, w.Shape...)
	h.Name = name + ".weight"
	toHalf(h, w)
	return &HalfLinear{BE: be, Name: name, W: be.Adopt(h), B: b}, nil
}

// toHalf rounds src (F32 or F64) into the F16/BF16 tensor dst.
func toHalf(dst, src *tensor.Tensor) {
	conv := tensor.F32ToBF16
	if dst.DType == tensor.F16 {
		conv = tensor.F32ToF16
	}
	switch src.DType {
	case tensor.F32:
		for i, v := range src.F32 {
			dst.U16[i] = conv(v)
		}
	case tensor.F64:
		for i, v := range src.F64 {
			dst.U16[i] = conv(float32(v))
		}
	default:
		for i := 0; i < src.Numel(); i++ {
			dst.U16[i] = conv(float32(src.At(i)))
		}
	}
}

// widen converts half rows into the compute-dtype tensor dst.
func widen(dst, src *tensor.Tensor) {
	conv := tensor.BF16ToF32
	if src.DType == tensor.F16 {
		conv = tensor.F16ToF32
	}
	switch dst.DType {
	case tensor.F32:
		for i, v := range src.U16 {
			dst.F32[i] = conv(v)
		}
	case tensor.F64:
		for i, v := range src.U16 {
			dst.F64[i] = float64(conv(v))
		}
	default:
		panic("lora.HalfLinear: compute dtype " + dst.DType.String())
	}
}

func (l *HalfLinear) In() int  { return l.W.Shape[1] }
func (l *HalfLinear) Out() int { return l.W.Shape[0] }

// Forward overwrites y with x Wᵀ + b.
func (l *HalfLinear) Forward(y, x *tensor.Tensor) { l.BE.LinearForward(y, x, l.W, l.B) }

// Backward accumulates dx += dy W; the weight and bias get no gradient.
func (l *HalfLinear) Backward(dx, dy, x *tensor.Tensor) {
	if dx == nil {
		return
	}
	l.BE.LinearBackward(dx, nil, nil, dy, x, l.W)
}

// isBlockLinearWeight reports whether a parameter is the weight of a block
// linear (what ConvertBase stores in half precision).
func isBlockLinearWeight(name string, shape tensor.Shape) bool {
	if len(shape) != 2 || !strings.HasSuffix(name, ".weight") {
		return false
	}
	return strings.HasPrefix(name, "model.layers.") || strings.HasPrefix(name, "transformer.h.")
}

// ConvertBase stores every block linear's weight (targeted by LoRA or not)
// in dt (F16 or BF16) as a HalfLinear, and frees the fp32 copies: it moves
// the remaining parameters into a new, smaller m.Params arena and drops the
// old one. What stays in the model's compute dtype: the token and position
// embeddings, the norm weights and biases, the linear biases and an untied
// LM head. It may be called before or after Apply (a LoRA wrapper's base is
// converted in place).
//
// The model must have no gradient arena (built with trainable=false).
// Afterwards m.Params no longer lists the linear weights, so m.SaveHF and
// m.HFTensors cannot save the model; merge adapters from an fp32 base with
// MergeDir instead. Layers that are not *nn.Linear (already half, or
// quantized) are left as they are.
func ConvertBase(m *model.Transformer, dt tensor.DType) error {
	if dt != tensor.F16 && dt != tensor.BF16 {
		return fmt.Errorf("lora: base dtype %s, want F16 or BF16", dt)
	}
	if m.Grads != nil {
		return fmt.Errorf("lora: ConvertBase needs a frozen base: build the model with trainable=false")
	}
	if m.DType != tensor.F32 && m.DType != tensor.F64 {
		return fmt.Errorf("lora: model dtype %s, want F32", m.DType)
	}
	var halfSpecs, restSpecs []tensor.Spec
	for _, t := range m.Params.Tensors() {
		s := tensor.Spec{Name: t.Name, Shape: t.Shape.Clone()}
		if isBlockLinearWeight(t.Name, t.Shape) {
			halfSpecs = append(halfSpecs, s)
		} else {
			restSpecs = append(restSpecs, s)
		}
	}
	if len(halfSpecs) == 0 {
		return fmt.Errorf("lora: the model has no fp32 block linear weights to convert (already converted?)")
	}
	half, err := m.BE.NewArena(dt, halfSpecs)
	if err != nil {
		return err
	}
	rest, err := m.BE.NewArena(m.DType, restSpecs)
	if err != nil {
		return err
	}
	for _, t := range m.Params.Tensors() {
		if h := half.Get(t.Name); h != nil {
			// rounded on the host (no copies when the backend's storage is host memory)
			backend.ReadHost(m.BE, t, func(src *tensor.Tensor) {
				backend.FillHost(m.BE, h, func(dst *tensor.Tensor) { toHalf(dst, src) })
			})
		} else {
			m.BE.Copy(rest.Get(t.Name), t)
		}
	}
	// re maps a tensor of the old arena (or a row view of one) to the new one.
	re := func(t *tensor.Tensor, rowOff int) *tensor.Tensor {
		if t == nil {
			return nil
		}
		if m.Tables != nil && m.Tables.Get(t.Name) != nil {
			return t // a BF16 table (model.FrozenOptions.HalfEmbeddings) stays where it is
		}
		n := rest.Get(t.Name)
		if n == nil {
			panic("lora.ConvertBase: no tensor " + t.Name)
		}
		if rowOff == 0 && n.Numel() == t.Numel() {
			return n
		}
		return n.View(rowOff, t.Shape...)
	}
	convert := func(lin *nn.Linear, part int) *HalfLinear {
		full := half.Get(lin.Name + ".weight")
		if full == nil {
			panic("lora.ConvertBase: no weight for " + lin.Name)
		}
		out, in := lin.Out(), lin.In()
		row := 0
		if full.Shape[0] != out { // a row view (GPT-2's q, k, v parts of c_attn)
			row = part * out
		}
		return &HalfLinear{BE: lin.BE, Name: lin.Name, W: full.View(row*in, out, in), B: re(lin.B, row)}
	}
	for _, blk := range m.Blocks {
		for s := slotQ; s <= slotDown; s++ {
			f := s.field(blk)
			part := 0
			if s == slotK {
				part = 1
			} else if s == slotV {
				part = 2
			}
			switch l := (*f).(type) {
			case *nn.Linear:
				*f = convert(l, part)
			case *Linear:
				if base, ok := l.Base.(*nn.Linear); ok {
					h := convert(base, part)
					l.Base = h
					if _, ok := l.orig.(*nn.Linear); ok {
						l.orig = h
					}
				}
			}
		}
		for _, n := range []*nn.Norm{blk.Norm1, blk.Norm2} {
			n.W, n.B = re(n.W, 0), re(n.B, 0)
		}
	}
	m.NormF.W, m.NormF.B = re(m.NormF.W, 0), re(m.NormF.B, 0)
	tied := m.LMHead == m.Embed
	m.Embed = re(m.Embed, 0)
	m.PosEmbed = re(m.PosEmbed, 0)
	if tied {
		m.LMHead = m.Embed
	} else {
		m.LMHead = re(m.LMHead, 0)
	}
	m.Params = rest
	return nil
}
