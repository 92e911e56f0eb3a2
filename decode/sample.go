package decode

import (
	"math"
	"math/rand/v2"
	"sort"
)

// Sampling controls how the next token is chosen from logits.
type Sampling struct {
	Temperature       float64 // 0: greedy
	TopK              int     // 0: off
	TopP              float64 // 0 or 1: off
	RepetitionPenalty float64 // 1 or 0: off; as in transformers (CTRL): positive logits divided, negative multiplied
}

// Sample picks a token id from logits (modified in place by the
// repetition penalty) given the tokens seen so far (prompt and generated).
// Greedy (Temperature 0) takes the first largest logit and draws nothing
// from rng. It is the one sampling helper: the Decoder and every caller
// use it.
func Sample(logits []float32, history []int32, opt Sampling, rng *rand.Rand) int32 {
	if opt.RepetitionPenalty > 0 && opt.RepetitionPenalty != 1 {
		seen := map[int32]bool{}
		for _, t := range history {
			if seen[t] || int(t) >= len(logits) || t < 0 {
				continue
			}
			seen[t] = true
			if logits[t] > 0 {
				logits[t] /= float32(opt.RepetitionPenalty)
			} else {
				logits[t] *= float32(opt.RepetitionPenalty)
			}
		}
	}
	if opt.Temperature <= 0 {
		best := 0
		for i, v := range logits {
			if v > logits[best] {
				best = i
			}
		}
		return int32(best)
	}
	mx := math.Inf(-1)
	for _, v := range logits {
		mx = math.Max(mx, float64(v)/opt.Temperature)
	}
	// Candidates in order of decreasing logit, ties by increasing id (a
	// stable sort); with top-k only the k best are selected (a heap) and
	// sorted, which gives the same list.
	var cands []cand
	if opt.TopK > 0 && opt.TopK < len(logits) {
		cands = topK(logits, opt.TopK)
	} else {
		cands = make([]cand, len(logits))
		for i, v := range logits {
			cands[i] = cand{i, float64(v)}
		}
	}
	sort.Slice(cands, func(a, b int) bool { return better(cands[a], cands[b]) })
	for i := range cands {
		cands[i].p = cands[i].p/opt.Temperature - mx
	}
	var sum float64
	for i := range cands {
		cands[i].p = math.Exp(cands[i].p)
		sum += cands[i].p
	}
	if opt.TopP > 0 && opt.TopP < 1 {
		var acc float64
		for i := range cands {
			acc += cands[i].p / sum
			if acc >= opt.TopP {
				cands = cands[:i+1]
				break
			}
		}
		sum = 0
		for _, c := range cands {
			sum += c.p
		}
	}
	r := rng.Float64() * sum
	for _, c := range cands {
		r -= c.p
		if r <= 0 {
			return int32(c.id)
		}
	}
	return int32(cands[len(cands)-1].id)
}

// cand is a token id and its logit (later its probability weight).
type cand struct {
	id int
	p  float64
}

// better orders candidates: larger logit first, then smaller id.
func better(a, b cand) bool { return a.p > b.p || (a.p == b.p && a.id < b.id) }

// topK returns the k best candidates of logits (unordered), through a
// min-heap whose root is the worst kept.
func topK(logits []float32, k int) []cand {
	h := make([]cand, 0, k)
	down := func(i int) {
		for {
			w, l, r := i, 2*i+1, 2*i+2
			if l < len(h) && better(h[w], h[l]) {
				w = l
			}
			if r < len(h) && better(h[w], h[r]) {
				w = r
			}
			if w == i {
				return
			}
			h[i], h[w] = h[w], h[i]
			i = w
		}
	}
	for i, v := range logits {
		c := cand{i, float64(v)}
		if len(h) < k {
			h = append(h, c)
			for j := len(h) - 1; j > 0; {
				p := (j - 1) / 2
				if !better(h[p], h[j]) {
					break
				}
				h[p], h[j] = h[j], h[p]
				j = p
			}
			continue
		}
		if better(c, h[0]) {
			h[0] = c
			down(0)
		}
	}
	return h
}
