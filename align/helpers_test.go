package align

import (
	"math/rand/v2"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/shoggo/shoggo/backend/cpu"
	"github.com/shoggo/shoggo/model"
	"github.com/shoggo/shoggo/sft/tasks"
	"github.com/shoggo/shoggo/tensor"
	"github.com/shoggo/shoggo/tokenizer"
)

// tinyModel is the 2-layer fixture config of testdata/models/<family>
// with random weights in dtype dt.
func tinyModel(t testing.TB, family string, dt tensor.DType, seed uint64) *model.Transformer {
	t.Helper()
	cfg, err := model.LoadConfig(filepath.Join("../testdata/models", family, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := model.New(cfg, cpu.New(), dt, true)
	if err != nil {
		t.Fatal(err)
	}
	m.InitWeights(rand.New(rand.NewPCG(seed, 1)))
	return m
}

// rowsBatch builds a right-padded batch from rows of ids; targets are the
// next ids from position start[r] on (the "completion").
func rowsBatch(rows [][]int32, start []int, T int, pad int32) *model.Batch {
	B := len(rows)
	b := &model.Batch{B: B, T: T, IDs: make([]int32, B*T), KeyMask: make([]int32, B*T), Targets: make([]int32, B*T)}
	for r, row := range rows {
		for t := range T {
			b.IDs[r*T+t] = pad
			b.Targets[r*T+t] = -100
			if t < len(row) {
				b.IDs[r*T+t] = row[t]
				b.KeyMask[r*T+t] = 1
				if t+1 < len(row) && t+1 >= start[r] {
					b.Targets[r*T+t] = row[t+1]
				}
			}
		}
	}
	return b
}

var (
	tokOnce sync.Once
	tokVal  *tokenizer.Tokenizer
	tokErr  error
)

// testTokenizer is a small BPE trained on the tasks' questions and a
// ramble, with the ChatML specials.
func testTokenizer(t testing.TB) *tokenizer.Tokenizer {
	t.Helper()
	tokOnce.Do(func() {
		texts := []string{"Let me think about this step by step. Great question! I hope this helps."}
		tr, _, err := tasks.Generate(tasks.Config{Seed: 1, Train: 300})
		if err != nil {
			tokErr = err
			return
		}
		for _, ex := range tr {
			texts = append(texts, ex.Instruction+"\n"+ex.Output+"<|endoftext|>")
		}
		tokVal, tokErr = tokenizer.Train(slices.Values(texts), 300, []string{"<|endoftext|>", "<|im_start|>", "<|im_end|>"})
	})
	if tokErr != nil {
		t.Fatal(tokErr)
	}
	return tokVal
}
