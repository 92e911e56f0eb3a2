package train

import (
	"math/rand/v2"
	"testing"

	"github.com/shoggo/shoggo/backend/cpu"
	"github.com/shoggo/shoggo/model"
	"github.com/shoggo/shoggo/optim"
	"github.com/shoggo/shoggo/tensor"
)

func newTiny(t *testing.T, preset string, seed uint64) (*model.Transformer, *optim.AdamW) {
	t.Helper()
	cfg, err := model.LookupPreset(preset)
	if err != nil {
		t.Fatal(err)
	}
	m, err := model.New(cfg, cpu.New(), tensor.F32, true)
	if err != nil {
		t.Fatal(err)
	}
	m.InitWeights(rand.New(rand.NewPCG(seed, 1)))
	oc := optim.DefaultConfig()
	oc.WeightDecay = 0.1
	opt, err := optim.NewAdamW(Params(m), oc)
	if err != nil {
		t.Fatal(err)
	}
	return m, opt
}

// batchFor draws a deterministic batch for a step: the data "position" is
// the step number, so resuming only needs the step.
func batchFor(step, B, T, V int) *model.Batch {
	rng := rand.New(rand.NewPCG(uint64(step), 99))
	w := make([]int32, B*(T+1))
	for i := range w {
		w[i] = int32(rng.IntN(V))
	}
	b := &model.Batch{B: B, T: T, IDs: make([]int32, B*T), Targets: make([]int32, B*T)}
	for r := 0; r < B; r++ {
		copy(b.IDs[r*T:], w[r*(T+1):r*(T+1)+T])
		copy(b.Targets[r*T:], w[r*(T+1)+1:(r+1)*(T+1)])
	}
	return b
}

// A 2-layer model memorises one fixed batch: the loss must fall from about
// ln(101) = 4.6 to below 0.1 within 200 AdamW steps at lr 1e-2.
func TestOverfitOneBatch(t *testing.T) {
	for _, preset := range []string{"tiny-gpt2", "tiny-llama", "tiny-qwen2"} {
		m, opt := newTiny(t, preset, 7)
		b := batchFor(0, 2, 16, m.Cfg.VocabSize)
		var first, last float64
		for step := 0; step < 200; step++ {
			r, err := Step(m, opt, []*model.Batch{b}, 1e-2, 1.0)
			if err != nil {
				t.Fatal(err)
			}
			if step == 0 {
				first = r.Loss
			}
			last = r.Loss
			if last < 0.1 {
				break
			}
		}
		if last >= 0.1 {
			t.Errorf("%s: loss %.4f -> %.4f after 200 steps, want < 0.1", preset, first, last)
		}
	}
}

func run(t *testing.T, m *model.Transformer, opt *optim.AdamW, from, to int, sched optim.Schedule) []float64 {
	var losses []float64
	for s := from; s < to; s++ {
		micro := []*model.Batch{batchFor(2*s, 2, 8, m.Cfg.VocabSize), batchFor(2*s+1, 2, 8, m.Cfg.VocabSize)}
		r, err := Step(m, opt, micro, sched.LR(s), 1.0)
		if err != nil {
			t.Fatal(err)
		}
		losses = append(losses, r.Loss)
	}
	return losses
}

// Training N steps straight equals N/2 steps, a checkpoint save, a load into
// a fresh model and optimizer, and N/2 more: losses and weights bit for bit.
func TestResumeBitIdentical(t *testing.T) {
	const N = 10
	sched := optim.WarmupCosine{Peak: 3e-3, Min: 3e-4, Warmup: 3, Total: N}
	for _, preset := range []string{"tiny-gpt2", "tiny-llama"} {
		m1, o1 := newTiny(t, preset, 5)
		straight := run(t, m1, o1, 0, N, sched)

		m2, o2 := newTiny(t, preset, 5)
		half := run(t, m2, o2, 0, N/2, sched)
		dir := t.TempDir()
		rngState, _ := rand.NewPCG(1, 2).MarshalBinary()
		if _, err := SaveCheckpoint(dir, m2, o2, State{Step: N / 2, RNG: rngState}); err != nil {
			t.Fatal(err)
		}
		m3, o3 := newTiny(t, preset, 123) // different init: everything must come from the checkpoint
		path, err := LatestCheckpoint(dir)
		if err != nil {
			t.Fatal(err)
		}
		st, err := LoadCheckpoint(path, m3, o3)
		if err != nil {
			t.Fatal(err)
		}
		if st.Step != N/2 || string(st.RNG) != string(rngState) {
			t.Fatalf("state %+v", st)
		}
		rest := run(t, m3, o3, st.Step, N, sched)
		resumed := append(half, rest...)
		for i := range straight {
			if straight[i] != resumed[i] {
				t.Errorf("%s: step %d loss %v straight, %v resumed", preset, i, straight[i], resumed[i])
			}
		}
		a, b := m1.Params.Flat().F32, m3.Params.Flat().F32
		for i := range a {
			if a[i] != b[i] {
				t.Fatalf("%s: weight %d differs: %v vs %v", preset, i, a[i], b[i])
			}
		}
	}
}
