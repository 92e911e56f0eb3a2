package decode

import (
	"fmt"
	"math/rand/v2"
	"syscall"
	"testing"

	"github.com/shoggo/shoggo/backend/cpu"
	"github.com/shoggo/shoggo/model"
	"github.com/shoggo/shoggo/tensor"
)

// BenchmarkDecode: greedy decoding after a 32-token prompt with shoggo-4m
// (96 new tokens) and GPT-2 124M (32 new tokens), B rows at once; reports
// generated tokens/s over all rows (prefill included). B=1 is the shape of
// the old one-sequence model.Generator (measured with the same loop before
// it was removed).
func BenchmarkDecode(b *testing.B) {
	for _, c := range []struct {
		preset string
		n      int
		bs     []int
	}{{"shoggo-4m", 96, []int{1, 8}}, {"gpt2", 32, []int{1, 4}}} {
		cfg, _ := model.LookupPreset(c.preset)
		m, err := model.New(cfg, cpu.New(), tensor.F32, false)
		if err != nil {
			b.Fatal(err)
		}
		m.InitWeights(rand.New(rand.NewPCG(1, 1)))
		for _, B := range c.bs {
			b.Run(fmt.Sprintf("%s/B=%d", c.preset, B), func(b *testing.B) {
				prompts := make([][]int32, B)
				for r := range prompts {
					prompts[r] = make([]int32, 32)
					for i := range prompts[r] {
						prompts[r][i] = int32((i*7 + r) % cfg.VocabSize)
					}
				}
				c0 := cpuNow()
				toks := 0
				for i := 0; i < b.N; i++ {
					res, err := Generate(m, prompts, Options{MaxNewTokens: c.n})
					if err != nil {
						b.Fatal(err)
					}
					for _, r := range res {
						toks += len(r.Tokens)
					}
				}
				b.ReportMetric(float64(toks)/b.Elapsed().Seconds(), "tok/s")
				b.ReportMetric(float64(cpuNow()-c0)/1e6/float64(toks), "cpu-ms/tok")
			})
		}
	}
}

// cpuNow is this process's user+system CPU time in ns (CPU time per token
// is steadier than wall time on a shared machine).
func cpuNow() int64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}
