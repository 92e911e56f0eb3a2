package decode

import (
	"math"
	"math/rand/v2"
	"sort"
	"testing"
)

func TestSample(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	logits := []float32{0, 5, 1, -2}
	if got := Sample(append([]float32(nil), logits...), nil, Sampling{}, rng); got != 1 {
		t.Fatalf("greedy picked %d", got)
	}
	// top-k 1 is greedy even with temperature.
	for i := 0; i < 20; i++ {
		if got := Sample(append([]float32(nil), logits...), nil, Sampling{Temperature: 1, TopK: 1}, rng); got != 1 {
			t.Fatalf("top-k 1 picked %d", got)
		}
	}
	// A strong repetition penalty moves greedy off the repeated token.
	if got := Sample(append([]float32(nil), logits...), []int32{1}, Sampling{RepetitionPenalty: 10}, rng); got != 2 {
		t.Fatalf("repetition penalty: picked %d", got)
	}
	// top-p keeps only the smallest set reaching p: with p=0.5 only token 1.
	for i := 0; i < 20; i++ {
		if got := Sample(append([]float32(nil), logits...), nil, Sampling{Temperature: 1, TopP: 0.5}, rng); got != 1 {
			t.Fatalf("top-p picked %d", got)
		}
	}
	// Sampling at temperature 1 follows the softmax: token 2 appears ~1.8% of the time.
	counts := make([]int, 4)
	for i := 0; i < 20000; i++ {
		counts[Sample(append([]float32(nil), logits...), nil, Sampling{Temperature: 1}, rng)]++
	}
	if p := float64(counts[2]) / 20000; math.Abs(p-0.0179) > 0.005 {
		t.Fatalf("token 2 frequency %v, want ~0.018", p)
	}
}

// The top-k selection keeps the same candidates, in the same order, as a
// stable sort of all logits cut to k (ties included).
func TestTopKMatchesSort(t *testing.T) {
	rng := rand.New(rand.NewPCG(2, 2))
	logits := make([]float32, 1000)
	for i := range logits {
		logits[i] = float32(rng.IntN(50)) // many ties
	}
	all := make([]cand, len(logits))
	for i, v := range logits {
		all[i] = cand{i, float64(v)}
	}
	sort.SliceStable(all, func(a, b int) bool { return all[a].p > all[b].p })
	for _, k := range []int{1, 7, 40, 999} {
		got := topK(logits, k)
		sort.Slice(got, func(a, b int) bool { return better(got[a], got[b]) })
		for i := range got {
			if got[i] != all[i] {
				t.Fatalf("k %d: candidate %d = %+v, sort gives %+v", k, i, got[i], all[i])
			}
		}
	}
}
