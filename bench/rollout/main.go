// Command rollout measures what PPO/GRPO rollouts cost: B sampled
// completions decoded as one batch through decode.Generate (KV cache,
// per-row seeds) versus the same B completions decoded one sequence at a
// time, on a model with random weights. It prints one RESULT line:
//
//	go run ./bench/rollout -preset shoggo-1m -b 64 -new 16
package main

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"syscall"
	"time"

	"github.com/shoggo/shoggo/backend/cpu"
	"github.com/shoggo/shoggo/decode"
	"github.com/shoggo/shoggo/model"
	"github.com/shoggo/shoggo/tensor"
)

func cpuNow() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func main() {
	preset := flag.String("preset", "shoggo-1m", "model preset (random weights)")
	B := flag.Int("b", 64, "sequences")
	newTok := flag.Int("new", 16, "new tokens per sequence (no EOS: every row decodes all of them)")
	promptLen := flag.Int("prompt", 12, "prompt tokens")
	reps := flag.Int("reps", 3, "repetitions (best is reported)")
	temp := flag.Float64("temperature", 1, "sampling temperature (0: greedy)")
	topK := flag.Int("top-k", 0, "top-k (0: off)")
	flag.Parse()
	cfg, err := model.LookupPreset(*preset)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	m, err := model.New(cfg, cpu.New(), tensor.F32, false)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	m.InitWeights(rand.New(rand.NewPCG(1, 1)))
	prompts := make([][]int32, *B)
	seeds := make([]uint64, *B)
	for r := range prompts {
		prompts[r] = make([]int32, *promptLen)
		for i := range prompts[r] {
			prompts[r][i] = int32((i*7 + r*13) % cfg.VocabSize)
		}
		seeds[r] = uint64(r + 1)
	}
	opt := decode.Options{MaxNewTokens: *newTok, Sampling: decode.Sampling{Temperature: *temp, TopK: *topK}, Seeds: seeds}
	run := func(batched bool) (wall, cpuT time.Duration, toks int) {
		best := time.Duration(1 << 62)
		for k := 0; k < *reps; k++ {
			t0, c0, n := time.Now(), cpuNow(), 0
			if batched {
				res, err := decode.Generate(m, prompts, opt)
				if err != nil {
					panic(err)
				}
				for _, r := range res {
					n += len(r.Tokens)
				}
			} else {
				for i := range prompts {
					o := opt
					o.Seeds = seeds[i : i+1]
					res, err := decode.Generate(m, prompts[i:i+1], o)
					if err != nil {
						panic(err)
					}
					n += len(res[0].Tokens)
				}
			}
			if w := time.Since(t0); w < best {
				best, cpuT, toks = w, cpuNow()-c0, n
			}
		}
		return best, cpuT, toks
	}
	sw, sc, st := run(false)
	bw, bc, bt := run(true)
	seqTPS, batTPS := float64(st)/sw.Seconds(), float64(bt)/bw.Seconds()
	fmt.Printf("RESULT bench=rollout preset=%s params=%d B=%d prompt=%d new=%d temperature=%g top_k=%d threads=%d sequential_tok_s=%.0f batched_tok_s=%.0f speedup=%.2f sequential_cpu_ms_per_tok=%.3f batched_cpu_ms_per_tok=%.3f\n",
		*preset, m.NumParams(), *B, *promptLen, *newTok, *temp, *topK, runtime.GOMAXPROCS(0), seqTPS, batTPS, batTPS/seqTPS,
		float64(sc.Microseconds())/1e3/float64(st), float64(bc.Microseconds())/1e3/float64(bt))
}
