package attn

import (
	"math"

	"github.com/shoggo/shoggo/backend"
	"github.com/shoggo/shoggo/backend/cpu/gemm"
)

// ReferenceForward is the plain attention forward pass: for each (batch,
// head) it materialises the T x T scaled, masked score matrix, takes a
// row softmax and multiplies by v, all accumulated in float64. Same
// contract as Forward; meant for tests (of this package and of other
// backends), not for speed.
func ReferenceForward[T gemm.Float](out, lse, q, k, v []T, p backend.AttnParams) {
	s := forwardShape(out, lse, q, k, v, p)
	T_, HS := s.T, s.HS
	P := make([]float64, T_*T_)
	L := make([]float64, T_)
	for b := 0; b < s.B; b++ {
		for h := 0; h < s.NH; h++ {
			g := h / s.group
			refProbs(&s, P, L, q, k, b, h)
			for i := 0; i < T_; i++ {
				qo := ((b*T_+i)*s.NH + h) * HS
				row := P[i*T_ : (i+1)*T_]
				lse[(b*s.NH+h)*T_+i] = T(L[i])
				for d := 0; d < HS; d++ {
					var acc float64
					for j, pj := range row {
						if pj != 0 {
							acc += pj * float64(v[((b*T_+j)*s.KVH+g)*HS+d])
						}
					}
					out[qo+d] = T(acc)
				}
			}
		}
	}
}

// refAllowed reports whether query i may attend key j in batch b.
func refAllowed(s *shape, b, i, j int) bool {
	if j > i {
		return false
	}
	if s.km != nil && s.km[b*s.T+j] == 0 {
		return false
	}
	if s.seg != nil && s.seg[b*s.T+j] != s.seg[b*s.T+i] {
		return false
	}
	return true
}

// refScores fills S (T x T) with the scaled scores of head h, batch b, and
// -Inf where masked.
func refScores[T gemm.Float](s *shape, S []float64, q, k []T, b, h int) {
	T_, HS := s.T, s.HS
	g := h / s.group
	for i := 0; i < T_; i++ {
		for j := 0; j < T_; j++ {
			if !refAllowed(s, b, i, j) {
				S[i*T_+j] = math.Inf(-1)
				continue
			}
			var dot float64
			for d := 0; d < HS; d++ {
				dot += float64(q[((b*T_+i)*s.NH+h)*HS+d]) * float64(k[((b*T_+j)*s.KVH+g)*HS+d])
			}
			S[i*T_+j] = dot * s.scale
		}
	}
}

// refProbs fills P (T x T) with the attention probabilities of head h,
// batch b (rows with nothing attendable are all zero) and L (T) with each
// row's log-sum-exp of scaled scores (-Inf for such rows).
func refProbs[T gemm.Float](s *shape, P, L []float64, q, k []T, b, h int) {
	T_ := s.T
	refScores(s, P, q, k, b, h)
	for i := 0; i < T_; i++ {
		row := P[i*T_ : (i+1)*T_]
		mx := math.Inf(-1)
		for _, x := range row {
			mx = math.Max(mx, x)
		}
		if math.IsInf(mx, -1) {
			clear(row)
			L[i] = mx
			continue
		}
		var sum float64
		for j, x := range row {
			row[j] = math.Exp(x - mx)
			sum += row[j]
		}
		for j := range row {
			row[j] /= sum
		}
		L[i] = mx + math.Log(sum)
	}
}

// ReferenceBackward is the plain attention backward pass: it recomputes
// the full probability matrix of each (batch, head) from q and k (it does
// not use out or lse) and accumulates, in float64,
//
//	dv_j += sum_i P_ij dout_i
//	dS_ij = P_ij (dout_i . v_j - sum_l P_il dout_i . v_l)
//	dq_i += scale sum_j dS_ij k_j,   dk_j += scale sum_i dS_ij q_i
//
// then adds the results into dq, dk, dv (any may be nil).
func ReferenceBackward[T gemm.Float](dq, dk, dv, dout, q, k, v []T, p backend.AttnParams) {
	s := newShape(p)
	T_, HS := s.T, s.HS
	nq, nk := s.B*T_*s.qs, s.B*T_*s.ks
	checkLen("dout", len(dout), nq)
	checkLen("q", len(q), nq)
	checkLen("k", len(k), nk)
	checkLen("v", len(v), nk)
	gq := make([]float64, nq)
	gk := make([]float64, nk)
	gv := make([]float64, nk)
	P := make([]float64, T_*T_)
	L := make([]float64, T_)
	dP := make([]float64, T_)
	for b := 0; b < s.B; b++ {
		for h := 0; h < s.NH; h++ {
			g := h / s.group
			refProbs(&s, P, L, q, k, b, h)
			for i := 0; i < T_; i++ {
				qo := ((b*T_+i)*s.NH + h) * HS
				row := P[i*T_ : (i+1)*T_]
				var D float64
				for j, pj := range row {
					var dot float64
					for d := 0; d < HS; d++ {
						dot += float64(dout[qo+d]) * float64(v[((b*T_+j)*s.KVH+g)*HS+d])
					}
					dP[j] = dot
					D += pj * dot
				}
				for j, pj := range row {
					if pj == 0 {
						continue
					}
					ko := ((b*T_+j)*s.KVH + g) * HS
					ds := pj * (dP[j] - D) * s.scale
					for d := 0; d < HS; d++ {
						gv[ko+d] += pj * float64(dout[qo+d])
						gq[qo+d] += ds * float64(k[ko+d])
						gk[ko+d] += ds * float64(q[qo+d])
					}
				}
			}
		}
	}
	for _, x := range []struct {
		dst []T
		src []float64
	}{{dq, gq}, {dk, gk}, {dv, gv}} {
		if x.dst == nil {
			continue
		}
		checkLen("gradient", len(x.dst), len(x.src))
		for i, g := range x.src {
			x.dst[i] += T(g)
		}
	}
}
