// Package backend defines the op set every shoggo compute backend provides.
//
// Each op is a forward/backward pair written out by hand (no autograd tape).
// Conventions, shared by every implementation:
//
//   - Tensors are row-major. Activations are (B, T, C) or, flattened, (N, C)
//     with N = B*T. A linear weight is (out, in), as in PyTorch.
//   - All tensors passed to one call share one compute dtype: F32 normally,
//     F64 in gradient checks (the CPU backend runs the same kernel code for
//     both, through Go generics).
//   - Mixed precision (PyTorch autocast) is carried by dtypes: a call whose
//     activation input is BF16 or F16 is an "autocast call" at that
//     precision P. It computes in float32 from the 16-bit values; every
//     matmul operand (activations, float32 weights, upstream gradients,
//     biases) enters rounded to P with float32 accumulation; norms,
//     softmax, losses and reductions stay float32; outputs stored in 16-bit
//     tensors are rounded to P (round to nearest even, ±Inf on F16
//     overflow), and a linear's output is rounded to P even into an F32
//     tensor. Statistics (mean, rstd, lse) and all gradients stay F32. Each
//     op's comment says which arguments may be 16-bit; Add, AddInto, Scale,
//     Copy, Zero and the dropout ops take any mix of F32 and one 16-bit
//     dtype. A dtype outside these rules panics, naming the op and argument.
//   - Forward ops overwrite their outputs.
//   - Backward ops ACCUMULATE into gradient tensors (dx += ..., dw += ...),
//     so residual branches and tied weights need no extra adds. Any gradient
//     argument may be nil, meaning "not needed": a frozen weight passes
//     dw == nil and its gradient is neither computed nor stored (LoRA, QLoRA).
//   - Token ids, position ids and segment ids are int32.
//   - Data-dependent problems (an out-of-range token id) are reported as
//     errors; shape mismatches are programmer errors and panic.
package backend

import (
	"github.com/shoggo/shoggo/tensor"
)

// IgnoreIndex marks a target position that contributes no loss (PyTorch's -100).
const IgnoreIndex = -100

// AttnParams describes one attention call. Q is (B, T, NH, HS); K and V are
// (B, T, KVH, HS) with NH a multiple of KVH (grouped-query attention: query
// head h uses key/value head h / (NH/KVH)). Attention is always causal.
type AttnParams struct {
	B, T, NH, KVH, HS int
	// KeyMask, if non-nil, is (B, T): key position j of batch b may be
	// attended only if KeyMask[b*T+j] != 0 (Hugging Face attention_mask).
	KeyMask []int32
	// Segments, if non-nil, is (B, T): query i attends key j only if
	// Segments[b*T+i] == Segments[b*T+j] (block-diagonal mask for packed
	// sequences).
	Segments []int32
}

// Backend is the op set. See the package comment for the conventions.
type Backend interface {
	Name() string
	Memory     // memory.go: Alloc, NewArena, Upload, Download, Adopt, Free
	OptimOps   // optim.go: Zero, AdamW, SumSquares, ScaleAll
	DropoutOps // dropout.go: DropoutMask, DropoutForward, DropoutBackward
	QuantOps   // quant.go: QuantLinearForward, QuantLinearBackward

	// EmbeddingForward: out[n,:] = w[ids[n],:] (or += when accumulate).
	// out is (N, C), w is (V, C). An id outside [0, V) is an error.
	EmbeddingForward(out, w *tensor.Tensor, ids []int32, accumulate bool) error
	// EmbeddingBackward: dw[ids[n],:] += dout[n,:].
	EmbeddingBackward(dw, dout *tensor.Tensor, ids []int32)

	// LinearForward: y = x W^T + b. x (N, in), w (out, in), b (out) or nil, y (N, out).
	// w may be BF16 or F16 (a frozen half-precision weight, computed in x's dtype).
	// Autocast: x BF16/F16 sets P; y F32 or P, always rounded to P; w, b F32
	// or 16-bit, rounded to P as operands.
	LinearForward(y, x, w, b *tensor.Tensor)
	// LinearBackward: dx += dy W; dw += dy^T x; db += sum_n dy. Any of dx, dw, db may be nil.
	// A BF16/F16 w (frozen) allows only dx. Autocast: x sets P; dy (F32)
	// and w enter rounded to P; dx, dw, db are F32 (db sums round_P(dy)).
	LinearBackward(dx, dw, db, dy, x, w *tensor.Tensor)

	// LayerNormForward: y = (x - mean) * rstd * w + b over the last dim of
	// x (N, C); saves mean and rstd (N). b may be nil. Autocast: x and/or
	// y 16-bit (y rounded); in the backward x may be 16-bit. Same for RMSNorm.
	LayerNormForward(y, mean, rstd, x, w, b *tensor.Tensor, eps float64)
	LayerNormBackward(dx, dw, db, dy, x, w, mean, rstd *tensor.Tensor)

	// RMSNormForward: y = x * rstd * w, rstd = 1/sqrt(mean(x^2) + eps); saves rstd (N).
	RMSNormForward(y, rstd, x, w *tensor.Tensor, eps float64)
	RMSNormBackward(dx, dw, dy, x, w, rstd *tensor.Tensor)

	// RoPE rotates x in place: x is (B, T, H, HS), pos is (B, T) position
	// ids. Hugging Face rotate-half convention: for i < HS/2, with
	// f = pos * theta^(-2i/HS), (x[i], x[i+HS/2]) -> (x[i] cos f - x[i+HS/2] sin f,
	// x[i+HS/2] cos f + x[i] sin f). inverse rotates by -f, which is the
	// backward pass (the map is orthogonal). A 16-bit x is rotated in
	// float32 and rounded back.
	RoPE(x *tensor.Tensor, pos []int32, theta float64, inverse bool)

	// AttentionForward: out (B, T, NH, HS) = softmax(q k^T / sqrt(HS) + mask) v,
	// saving lse (B, NH, T), the log-sum-exp of each query's scaled scores.
	// A query whose every key is masked gets out = 0 and lse = -Inf.
	// Autocast: q, k, v, out may be 16-bit (float32 math on their values,
	// out rounded); lse, and in the backward dq, dk, dv, dout, are F32.
	AttentionForward(out, lse, q, k, v *tensor.Tensor, p AttnParams)
	// AttentionBackward accumulates dq, dk, dv from dout, recomputing the
	// probabilities from q, k and lse.
	AttentionBackward(dq, dk, dv, dout, q, k, v, out, lse *tensor.Tensor, p AttnParams)

	// GELUForward: y = gelu_tanh(x) (GPT-2's "gelu_new"). Autocast: x and
	// y (SwiGLU: gate, up, y) may be 16-bit, y rounded; the backward takes
	// a 16-bit x (gate, up) with F32 dy and gradients.
	GELUForward(y, x *tensor.Tensor)
	GELUBackward(dx, dy, x *tensor.Tensor)

	// SwiGLUForward: y = silu(gate) * up, all (N, I).
	SwiGLUForward(y, gate, up *tensor.Tensor)
	SwiGLUBackward(dgate, dup, dy, gate, up *tensor.Tensor)

	// Add: y = a + b (y may alias a or b).
	Add(y, a, b *tensor.Tensor)
	// AddInto: dst += src.
	AddInto(dst, src *tensor.Tensor)
	// Scale: x *= s.
	Scale(x *tensor.Tensor, s float64)
	// Copy: dst = src (same numel).
	Copy(dst, src *tensor.Tensor)

	// CrossEntropy computes, from final hidden states h (N, C) and the LM
	// head w (V, C), the summed softmax cross-entropy of targets (N) over
	// positions whose target is not IgnoreIndex. Logits are formed a block of
	// rows at a time (at most chunkRows x V floats live at once), so a
	// (B, T, V) logits tensor never exists. If dh or dw is non-nil, the
	// gradient of gradScale * lossSum is accumulated into it (gradScale is
	// 1/number of unmasked tokens in the whole accumulated batch). Returns
	// the loss sum and the number of counted positions. A target outside
	// [0, V) that is not IgnoreIndex is an error. Autocast: a 16-bit h
	// sets P; logits = round_P(h round_P(W)ᵀ), softmax and loss in float32,
	// the logits' gradient rounded to P as a GEMM operand; dh, dw F32 (the
	// same holds for LogProber).
	CrossEntropy(h, w *tensor.Tensor, targets []int32, chunkRows int, gradScale float64, dh, dw *tensor.Tensor) (lossSum float64, count int, err error)

	// LogProber: per-sequence and per-token log-probabilities of targets
	// (backend/logprob.go).
	LogProber

	// KVAttention appends k and v (B, Tn, KVH, HS) to the caches kc and vc
	// (S, MaxT, KVH, HS) at positions Start[b]..Start[b]+Tn-1 of slot
	// Slots[b], then writes out (B, Tn, NH, HS) = softmax(q k^T / sqrt(HS)
	// + mask) v over each new token's cached keys (causal, p.KeyMask). It
	// is the decoding attention: forward only, no saved state (see KVParams).
	KVAttention(out, q, k, v, kc, vc *tensor.Tensor, p KVParams)
}
