package model

import (
	"fmt"

	"github.com/shoggo/shoggo/nn"
	"github.com/shoggo/shoggo/tensor"
)

// SetPrecision selects the compute precision of training and evaluation
// passes (PyTorch autocast semantics): tensor.F32 (the default) computes in
// float32; tensor.BF16 or tensor.F16 keep the parameters, gradients and
// optimizer state in float32 (the masters) while matmul operands (linears,
// attention, the LM head) enter at half precision with float32
// accumulation, norms, softmax and losses stay float32, and the
// activations saved for backward are held in 16 bits. It re-plans the
// activations if a plan exists.
func (m *Transformer) SetPrecision(dt tensor.DType) error {
	switch dt {
	case tensor.F32, tensor.BF16, tensor.F16:
	default:
		return fmt.Errorf("precision %v: want fp32, bf16 or fp16", dt)
	}
	if dt != tensor.F32 && m.DType != tensor.F32 {
		return fmt.Errorf("precision %v needs float32 parameters, the model has %v", dt, m.DType)
	}
	m.precision = dt
	if m.acts != nil {
		return m.Plan(m.acts.B, m.acts.T)
	}
	return nil
}

// Precision returns the compute precision set by SetPrecision (F32 by default).
func (m *Transformer) Precision() tensor.DType {
	return m.precision // the zero DType is F32
}

// ParsePrecision maps a --precision value (fp32, bf16, fp16; also float32,
// bfloat16, float16) to its dtype.
func ParsePrecision(s string) (tensor.DType, error) {
	switch s {
	case "", "fp32", "float32", "f32":
		return tensor.F32, nil
	case "bf16", "bfloat16":
		return tensor.BF16, nil
	case "fp16", "float16", "f16":
		return tensor.F16, nil
	}
	return 0, fmt.Errorf("precision %q: want fp32, bf16 or fp16", s)
}

// computeSetter is a layer whose frozen weight has its own compute dtype
// (quant.Linear: bitsandbytes' bnb_4bit_compute_dtype); lora.Linear passes
// it on to its base.
type computeSetter interface{ SetComputeDType(tensor.DType) }

// syncCompute gives every block layer that has a compute dtype the model's
// precision. Forward calls it, so layers wrapped after SetPrecision (LoRA)
// follow too.
func (m *Transformer) syncCompute() {
	p := m.Precision()
	for _, blk := range m.Blocks {
		for _, l := range []nn.Layer{blk.Q, blk.K, blk.V, blk.O, blk.Fc, blk.Proj, blk.Gate, blk.Up, blk.Down} {
			if cs, ok := l.(computeSetter); ok {
				cs.SetComputeDType(p)
			}
		}
	}
}

// ActivationBytes returns the bytes of the planned training activations:
// saved, those kept from forward to backward (residual streams, every
// layer's saved tensors and statistics, the final norm's output), and
// total, saved plus the scratch shared by all layers (gradients and
// temporaries). It is zero before Plan. Under mixed precision the saved
// matmul inputs and outputs are 16-bit, so saved shrinks while the fp32
// residual streams, statistics and gradient scratch do not.
func (m *Transformer) ActivationBytes() (saved, total int64) {
	a := m.acts
	if a == nil {
		return 0, 0
	}
	size := func(ts ...*tensor.Tensor) int64 {
		var n int64
		for _, t := range ts {
			if t != nil {
				n += int64(t.Numel()) * int64(t.DType.Size())
			}
		}
		return n
	}
	saved = size(a.resid...)
	for i := range a.layers {
		la := &a.layers[i]
		saved += size(la.ln1, la.ln1Mean, la.ln1Rstd, la.q, la.k, la.v, la.att, la.lse, la.mid,
			la.ln2, la.ln2Mean, la.ln2Rstd, la.h1, la.h2, la.act, la.qp, la.kp, la.qRstd, la.kRstd)
	}
	saved += size(a.lnf, a.lnfMean, a.lnfRstd)
	total = saved + size(a.tmp, a.dres, a.dmid, a.dln, a.dhidden, a.datt, a.dq, a.dk, a.dv,
		a.dact, a.dh1, a.dh2, a.dqp, a.dkp)
	return saved, total
}
