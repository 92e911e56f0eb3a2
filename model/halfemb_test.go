package model

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/shoggo/shoggo/backend/cpu"
	"github.com/shoggo/shoggo/tensor"
)

// roundTables rounds m's token embedding and LM head to bf16 in place.
func roundTables(m *Transformer) {
	for _, t := range []*tensor.Tensor{m.Embed, m.LMHead} {
		for i := range t.F32 {
			t.F32[i] = tensor.BF16ToF32(tensor.F32ToBF16(t.F32[i]))
		}
	}
}

// A frozen model with HalfEmbeddings holds the token embedding and LM head
// in a BF16 arena, loads them rounded from the checkpoint, and computes the
// logits and loss of the fp32 model whose tables are rounded the same way.
func TestHalfEmbeddingsMatch(t *testing.T) {
	for _, dir := range []string{"../testdata/models/gpt2", "../testdata/models/llama", "../testdata/models/qwen2"} {
		ref, _, err := LoadHF(dir, cpu.New(), tensor.F32, false)
		if err != nil {
			t.Fatal(err)
		}
		roundTables(ref)
		hm, _, err := LoadHFFrozenOpts(dir, cpu.New(), tensor.F32, false, FrozenOptions{HalfEmbeddings: true})
		if err != nil {
			t.Fatal(err)
		}
		if hm.Tables == nil || hm.Embed.DType != tensor.BF16 || hm.LMHead.DType != tensor.BF16 {
			t.Fatalf("%s: tables not in bf16", dir)
		}
		if hm.Params.Get(hm.Embed.Name) != nil {
			t.Fatalf("%s: embedding still in the fp32 arena", dir)
		}
		if (hm.LMHead == hm.Embed) != (ref.LMHead == ref.Embed) {
			t.Fatalf("%s: tying changed", dir)
		}
		if hm.NumParams() != ref.NumParams() {
			t.Errorf("%s: NumParams %d, want %d", dir, hm.NumParams(), ref.NumParams())
		}
		for i := range ref.LMHead.F32 {
			if float32(hm.LMHead.At(i)) != ref.LMHead.F32[i] {
				t.Fatalf("%s: lm head %d: %v, want %v", dir, i, hm.LMHead.At(i), ref.LMHead.F32[i])
			}
		}
		rng := rand.New(rand.NewPCG(1, 2))
		B, T := 2, 6
		ids := make([]int32, B*T)
		for i := range ids {
			ids[i] = int32(rng.IntN(ref.Cfg.VocabSize))
		}
		b := &Batch{B: B, T: T, IDs: ids, Targets: ShiftLabels(ids, B, T)}
		for _, m := range []*Transformer{ref, hm} {
			m.ChunkRows = 5
		}
		if err := ref.Forward(b); err != nil {
			t.Fatal(err)
		}
		want := ref.Logits()
		wl, wn, err := ref.Loss(b, 1, false)
		if err != nil {
			t.Fatal(err)
		}
		if err := hm.Forward(b); err != nil {
			t.Fatal(err)
		}
		got := hm.Logits()
		gl, gn, err := hm.Loss(b, 1, false)
		if err != nil {
			t.Fatal(err)
		}
		for i := range want.F32 {
			if math.Abs(float64(want.F32[i]-got.F32[i])) > 1e-5*(1+math.Abs(float64(want.F32[i]))) {
				t.Fatalf("%s: logit %d: %v vs %v", dir, i, got.F32[i], want.F32[i])
			}
		}
		if gn != wn || math.Abs(gl-wl) > 1e-5*math.Abs(wl) {
			t.Fatalf("%s: loss %v (%d), want %v (%d)", dir, gl, gn, wl, wn)
		}
		// The tables save (widened) like any parameter.
		ts, err := hm.HFTensors(tensor.F32)
		if err != nil {
			t.Fatal(err)
		}
		rs, _ := ref.HFTensors(tensor.F32)
		if len(ts) != len(rs) {
			t.Fatalf("%s: %d tensors saved, want %d", dir, len(ts), len(rs))
		}
	}
	cfg, _ := LookupPreset("tiny-llama")
	if _, err := NewFrozenOpts(cfg, cpu.New(), tensor.F32, true, FrozenOptions{HalfEmbeddings: true}); err == nil {
		t.Error("half embeddings on a trainable model accepted")
	}
	// InitWeights draws the values of the fp32 model, rounded.
	ref, _ := New(cfg, cpu.New(), tensor.F32, false)
	ref.InitWeights(rand.New(rand.NewPCG(1, 1)))
	hm, err := NewFrozenOpts(cfg, cpu.New(), tensor.F32, false, FrozenOptions{HalfEmbeddings: true})
	if err != nil {
		t.Fatal(err)
	}
	hm.InitWeights(rand.New(rand.NewPCG(1, 1)))
	roundTables(ref)
	for i := range ref.Embed.F32 {
		if float32(hm.Embed.At(i)) != ref.Embed.F32[i] {
			t.Fatalf("init: embed %d: %v, want %v", i, hm.Embed.At(i), ref.Embed.F32[i])
		}
	}
	if err := hm.Forward(&Batch{B: 1, T: 3, IDs: []int32{1, 2, 3}}); err != nil {
		t.Fatal(err)
	}
}
