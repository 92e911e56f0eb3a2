package model

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/shoggo/shoggo/backend/cpu"
	"github.com/shoggo/shoggo/tensor"
)

// Logits from the KV cache, fed in uneven pieces, equal the logits of a
// full forward pass at the same positions (float32; tolerance 2e-5 absolute
// on logits of magnitude ~1).
func TestGeneratorMatchesForward(t *testing.T) {
	for _, preset := range []string{"tiny-gpt2", "tiny-llama", "tiny-qwen2", "tiny-qwen3"} {
		cfg, _ := LookupPreset(preset)
		m, err := New(cfg, cpu.New(), tensor.F32, false)
		if err != nil {
			t.Fatal(err)
		}
		rng := rand.New(rand.NewPCG(9, 9))
		randomize(m, rng, 0.2)
		const T = 11
		ids := make([]int32, T)
		for i := range ids {
			ids[i] = int32(rng.IntN(cfg.VocabSize))
		}
		if err := m.Forward(&Batch{B: 1, T: T, IDs: ids}); err != nil {
			t.Fatal(err)
		}
		full := m.Logits()
		g, err := m.NewGenerator(32)
		if err != nil {
			t.Fatal(err)
		}
		V := cfg.VocabSize
		for _, piece := range [][2]int{{0, 4}, {4, 5}, {5, 9}, {9, 10}, {10, 11}} {
			logits, err := g.Feed(ids[piece[0]:piece[1]])
			if err != nil {
				t.Fatal(err)
			}
			row := full.F32[(piece[1]-1)*V : piece[1]*V]
			for j := range logits {
				if math.Abs(float64(logits[j]-row[j])) > 2e-5 {
					t.Fatalf("%s: position %d logit %d: cache %v, full %v", preset, piece[1]-1, j, logits[j], row[j])
				}
			}
		}
		if _, err := g.Feed(make([]int32, 32)); err == nil {
			t.Errorf("%s: overfilling the cache gave no error", preset)
		}
	}
}

func TestSample(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	logits := []float32{0, 5, 1, -2}
	if got := Sample(append([]float32(nil), logits...), nil, SampleOptions{}, rng); got != 1 {
		t.Fatalf("greedy picked %d", got)
	}
	// top-k 1 is greedy even with temperature.
	for i := 0; i < 20; i++ {
		if got := Sample(append([]float32(nil), logits...), nil, SampleOptions{Temperature: 1, TopK: 1}, rng); got != 1 {
			t.Fatalf("top-k 1 picked %d", got)
		}
	}
	// A strong repetition penalty moves greedy off the repeated token.
	if got := Sample(append([]float32(nil), logits...), []int32{1}, SampleOptions{RepetitionPenalty: 10}, rng); got != 2 {
		t.Fatalf("repetition penalty: picked %d", got)
	}
	// top-p keeps only the smallest set reaching p: with p=0.5 only token 1.
	for i := 0; i < 20; i++ {
		if got := Sample(append([]float32(nil), logits...), nil, SampleOptions{Temperature: 1, TopP: 0.5}, rng); got != 1 {
			t.Fatalf("top-p picked %d", got)
		}
	}
	// Sampling at temperature 1 follows the softmax: token 2 appears ~1.8% of the time.
	counts := make([]int, 4)
	for i := 0; i < 20000; i++ {
		counts[Sample(append([]float32(nil), logits...), nil, SampleOptions{Temperature: 1}, rng)]++
	}
	if p := float64(counts[2]) / 20000; math.Abs(p-0.0179) > 0.005 {
		t.Fatalf("token 2 frequency %v, want ~0.018", p)
	}
}

func nil2rng() *rand.Rand { return rand.New(rand.NewPCG(42, 42)) }
