package align

import "math"

// GAE computes generalised advantage estimates and returns over B rows of
// T positions: along each row's masked positions (the completion tokens,
// in order) delta_t = r_t + gamma·V_{t+1} - V_t (V after the last token is
// 0) and A_t = delta_t + gamma·lambda·A_{t+1}; returns = A + V. Unmasked
// positions get 0. This is TRL's PPOTrainer.compute_advantages per row.
func GAE(rewards, values, mask []float64, B, T int, gamma, lambda float64) (adv, ret []float64) {
	adv, ret = make([]float64, B*T), make([]float64, B*T)
	for b := 0; b < B; b++ {
		var last, nextV float64
		for t := T - 1; t >= 0; t-- {
			i := b*T + t
			if mask[i] == 0 {
				continue
			}
			delta := rewards[i] + gamma*nextV - values[i]
			last = delta + gamma*lambda*last
			adv[i] = last
			ret[i] = last + values[i]
			nextV = values[i]
		}
	}
	return adv, ret
}

// Whiten returns (x - mean)/sqrt(var + 1e-8) over the masked entries, var
// the unbiased variance (TRL's masked_whiten with shift_mean); with
// shiftMean false the mean is added back. Unmasked entries stay 0.
func Whiten(x, mask []float64, shiftMean bool) []float64 {
	var n, s float64
	for i, v := range x {
		if mask[i] != 0 {
			n++
			s += v
		}
	}
	out := make([]float64, len(x))
	if n == 0 {
		return out
	}
	mean := s / n
	var ss float64
	for i, v := range x {
		if mask[i] != 0 {
			ss += (v - mean) * (v - mean)
		}
	}
	variance := ss / n
	if n > 1 {
		variance *= n / (n - 1)
	}
	inv := 1 / math.Sqrt(variance+1e-8)
	for i, v := range x {
		if mask[i] == 0 {
			continue
		}
		out[i] = (v - mean) * inv
		if !shiftMean {
			out[i] += mean
		}
	}
	return out
}
