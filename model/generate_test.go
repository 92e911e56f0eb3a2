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
// on logits of magnitude ~1). Two rows decode together: the second is
// shorter, left padded in its first piece, and lives in another slot.
func TestForwardKVMatchesForward(t *testing.T) {
	for _, preset := range []string{"tiny-gpt2", "tiny-llama", "tiny-qwen2", "tiny-qwen3"} {
		cfg, _ := LookupPreset(preset)
		m, err := New(cfg, cpu.New(), tensor.F32, false)
		if err != nil {
			t.Fatal(err)
		}
		rng := rand.New(rand.NewPCG(9, 9))
		randomize(m, rng, 0.2)
		const T, short = 11, 7
		ids := make([]int32, 2*T)
		for i := range ids {
			ids[i] = int32(rng.IntN(cfg.VocabSize))
		}
		V := cfg.VocabSize
		fullLogits := func(seq []int32) []float32 {
			if err := m.Forward(&Batch{B: 1, T: len(seq), IDs: seq}); err != nil {
				t.Fatal(err)
			}
			return m.Logits().F32
		}
		full0 := fullLogits(ids[:T])
		seq1 := ids[T : T+short]
		m.Plan(1, short)
		full1 := fullLogits(seq1)
		kc, err := m.NewKVCache(3, 32)
		if err != nil {
			t.Fatal(err)
		}
		logits := tensor.New(tensor.F32, 2, V)
		// piece boundaries in row 0; row 1 has 4 fewer tokens, all in the
		// first piece's padding
		check := func(row int, pos int, want []float32) {
			got := logits.F32[row*V : (row+1)*V]
			for j := range got {
				if math.Abs(float64(got[j]-want[pos*V+j])) > 2e-5 {
					t.Fatalf("%s: row %d position %d logit %d: cache %v, full %v", preset, row, pos, j, got[j], want[pos*V+j])
				}
			}
		}
		slots := []int32{2, 0}
		for _, piece := range [][2]int{{0, 5}, {5, 6}, {6, 9}, {9, 10}, {10, 11}} {
			n := piece[1] - piece[0]
			in := make([]int32, 2*n)
			copy(in, ids[piece[0]:piece[1]])
			var pad []int32
			if piece[0] == 0 {
				pad = []int32{0, int32(T - short)}
				copy(in[n+T-short:], seq1[:n-(T-short)])
			} else {
				copy(in[n:], seq1[piece[0]-(T-short):piece[1]-(T-short)])
			}
			if err := m.ForwardKV(kc, slots, in, n, pad, logits); err != nil {
				t.Fatal(err)
			}
			check(0, piece[1]-1, full0)
			check(1, piece[1]-1-(T-short), full1)
		}
		if kc.Len[2] != T || kc.Real[0] != short || kc.Len[0] != T {
			t.Fatalf("%s: cache lengths %v real %v", preset, kc.Len, kc.Real)
		}
		if err := m.ForwardKV(kc, []int32{2}, make([]int32, 32), 32, nil, logits.View(0, 1, V)); err == nil {
			t.Errorf("%s: overfilling the cache gave no error", preset)
		}
		kc.Free(2)
		if err := m.ForwardKV(kc, []int32{2}, ids[:T], T, nil, logits.View(0, 1, V)); err != nil {
			t.Fatal(err)
		}
		check(0, T-1, full0)
	}
}

func nil2rng() *rand.Rand { return rand.New(rand.NewPCG(42, 42)) }
