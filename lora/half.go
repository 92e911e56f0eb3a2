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
// stay in the compute dtype of x (F32, or F64 in tests). The weight is
// converted a block of rows at a time into a small scratch buffer, so a full
// fp32 copy of it never exists. Backward computes the input gradient only.
type HalfLinear struct {
	BE   backend.Backend
	Name string
	W    *tensor.Tensor // (out, in), F16 or BF16
	B    *tensor.Tensor // (out) in the compute dtype, or nil
	s    *halfScratch
}

// halfScratch is shared by all HalfLinears of one model (calls are sequential).
type halfScratch struct {
	w, y map[tensor.DType]*tensor.Tensor
}

func newHalfScratch() *halfScratch {
	return &halfScratch{w: map[tensor.DType]*tensor.Tensor{}, y: map[tensor.DType]*tensor.Tensor{}}
}

func grow(m map[tensor.DType]*tensor.Tensor, dt tensor.DType, rows, cols int) *tensor.Tensor {
	if b := m[dt]; b == nil || b.Numel() < rows*cols {
		m[dt] = tensor.New(dt, rows*cols)
	}
	return m[dt].View(0, rows, cols)
}

// halfBlockElems bounds the fp32 scratch one weight block occupies (4 MiB);
// a variable so tests can force many blocks.
var halfBlockElems = 1 << 20

// NewHalfLinear converts w (out, in) to dt (F16 or BF16, rounding to
// nearest even) and keeps b as is (it may be nil).
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
	return &HalfLinear{BE: be, Name: name, W: h, B: b, s: newHalfScratch()}, nil
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

func (l *HalfLinear) rowsPerBlock() int {
	return max(1, halfBlockElems/l.In())
}

// Forward overwrites y with x Wᵀ + b, one block of output columns at a time.
func (l *HalfLinear) Forward(y, x *tensor.Tensor) {
	N, in := x.Rows()
	out := l.Out()
	rb := l.rowsPerBlock()
	dt := x.DType
	for r0 := 0; r0 < out; r0 += rb {
		nb := min(rb, out-r0)
		wf := grow(l.s.w, dt, nb, in)
		widen(wf, l.W.View(r0*in, nb, in))
		var bb *tensor.Tensor
		if l.B != nil {
			bb = l.B.View(r0, nb)
		}
		if nb == out {
			l.BE.LinearForward(y, x, wf, bb)
			return
		}
		yb := grow(l.s.y, dt, N, nb)
		l.BE.LinearForward(yb, x, wf, bb)
		copyCols(y, yb, N, out, r0, nb, true)
	}
}

// Backward accumulates dx += dy W; the weight and bias get no gradient.
func (l *HalfLinear) Backward(dx, dy, x *tensor.Tensor) {
	if dx == nil {
		return
	}
	N, in := x.Rows()
	out := l.Out()
	rb := l.rowsPerBlock()
	dt := x.DType
	for r0 := 0; r0 < out; r0 += rb {
		nb := min(rb, out-r0)
		wf := grow(l.s.w, dt, nb, in)
		widen(wf, l.W.View(r0*in, nb, in))
		if nb == out {
			l.BE.LinearBackward(dx, nil, nil, dy, x, wf)
			return
		}
		dyb := grow(l.s.y, dt, N, nb)
		copyCols(dy, dyb, N, out, r0, nb, false)
		l.BE.LinearBackward(dx, nil, nil, dyb, x, wf)
	}
}

// copyCols moves columns [c0, c0+nb) of the (N, cols) tensor full to or from
// the (N, nb) tensor blk (toFull: blk -> full).
func copyCols(full, blk *tensor.Tensor, N, cols, c0, nb int, toFull bool) {
	switch full.DType {
	case tensor.F32:
		moveCols(full.F32, blk.F32, N, cols, c0, nb, toFull)
	case tensor.F64:
		moveCols(full.F64, blk.F64, N, cols, c0, nb, toFull)
	default:
		panic("lora.HalfLinear: compute dtype " + full.DType.String())
	}
}

func moveCols[T float32 | float64](full, blk []T, N, cols, c0, nb int, toFull bool) {
	for n := 0; n < N; n++ {
		f := full[n*cols+c0 : n*cols+c0+nb]
		b := blk[n*nb : n*nb+nb]
		if toFull {
			copy(f, b)
		} else {
			copy(b, f)
		}
	}
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
	half, err := tensor.NewArena(dt, halfSpecs)
	if err != nil {
		return err
	}
	rest, err := tensor.NewArena(m.DType, restSpecs)
	if err != nil {
		return err
	}
	for _, t := range m.Params.Tensors() {
		if h := half.Get(t.Name); h != nil {
			toHalf(h, t)
		} else {
			m.BE.Copy(rest.Get(t.Name), t)
		}
	}
	sc := newHalfScratch()
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
		return &HalfLinear{BE: lin.BE, Name: lin.Name, W: full.View(row*in, out, in), B: re(lin.B, row), s: sc}
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
