package main

import (
	"fmt"
	"math"
	"strings"

	"github.com/shoggo/shoggo/dist"
)

// Networks of the paper model (alpha at the high end of the brief's ranges;
// the low end is a separate table).
var (
	ethHi = link{name: "eth25", alpha: 50e-6, bw: 25e9 / 8}
	ethLo = link{name: "eth25", alpha: 20e-6, bw: 25e9 / 8}
	ibHi  = link{name: "ib400", alpha: 5e-6, bw: 400e9 / 8}
	ibLo  = link{name: "ib400", alpha: 2e-6, bw: 400e9 / 8}
)

// H100-class assumption: dense bf16 peak of an H100 SXM, model FLOPs
// utilisation, HBM bandwidth for the optimizer pass, tokens per worker.
const (
	h100Peak   = 989.4e12
	h100MFU    = 0.40
	h100HBM    = 3.35e12
	h100Tokens = 16384
	adamBytes  = 28 // fp32 AdamW: read p, g, m, v; write p, m, v
)

// The CPU figures (docs/BENCHMARKS.md).
const (
	// GPT-2 124M, 1 rank × 2 threads, seq 64, batch 4 (256 tokens):
	// 93.6 tokens/s in the data-parallel section (Xeon VM).
	cpuGPT2Step = 256 / 93.6
	// Phase split of the GPT-2 step by CPU time (training-step section,
	// "after" row: forward 472, backward 1509, optimizer 115 ms).
	cpuFwdFrac, cpuBwdFrac, cpuOptFrac = 472.0 / 2096, 1509.0 / 2096, 115.0 / 2096
	// Qwen1.5-1.8B LoRA r=8 q,v, fp32 base, 2×512 tokens: 33.7 s/step, at
	// 195 model GFLOP/s (LoRA section, AMD EPYC VM).
	cpuQwenLoRAStep = 33.7
	cpuGFLOPs       = 195e9
)

type setup struct {
	w    *workload
	plan []dist.Bucket
	c    compute
}

func h100(w *workload, lora bool) compute {
	flops := 6 * float64(w.params()) * h100Tokens
	total := flops / (h100Peak * h100MFU)
	c := compute{name: "H100-class", tokens: h100Tokens, fwd: total / 3, bwd: 2 * total / 3,
		opt:    float64(w.params()) * adamBytes / h100HBM,
		source: fmt.Sprintf("assumed: 6·P·tokens = %.1f TFLOP at %.0f%% MFU of %.0f TFLOP/s; AdamW %d B/param at %.2f TB/s", flops/1e12, h100MFU*100, h100Peak/1e12, adamBytes, h100HBM/1e12)}
	return c
}

func h100LoRA(base *workload, w *workload) compute {
	flops := 4 * float64(base.params()) * h100Tokens
	total := flops / (h100Peak * h100MFU)
	return compute{name: "H100-class", tokens: h100Tokens, fwd: total / 2, bwd: total / 2,
		opt:    float64(w.params()) * adamBytes / h100HBM,
		source: fmt.Sprintf("assumed: 4·P_base·tokens = %.1f TFLOP (frozen base: forward + input gradients) at %.0f%% MFU", flops/1e12, h100MFU*100)}
}

func setups() []setup {
	g, gl := fullWorkload("gpt2"), loraWorkload("gpt2", 8)
	q, ql := fullWorkload("qwen1.5-1.8b"), loraWorkload("qwen1.5-1.8b", 8)
	cpuG := compute{name: "CPU VM", tokens: 256, fwd: cpuGPT2Step * cpuFwdFrac, bwd: cpuGPT2Step * cpuBwdFrac, opt: cpuGPT2Step * cpuOptFrac,
		source: "measured: 2.735 s/step (93.6 tok/s, B=4 T=64, 1 rank × 2 threads), split by the measured CPU-time phase shares"}
	cpuGL := compute{name: "CPU VM", tokens: 256, fwd: cpuG.fwd, bwd: cpuG.bwd / 2, opt: 0,
		source: "derived: forward as measured for full training, backward half of it (input gradients only), optimizer ~0"}
	qFlops := 6 * float64(q.params()) * 1024
	qT := qFlops / cpuGFLOPs
	cpuQ := compute{name: "CPU VM", tokens: 1024, fwd: qT / 3, bwd: 2 * qT / 3, opt: cpuG.opt * float64(q.params()) / float64(g.params()),
		source: fmt.Sprintf("derived, not measured: 6·P·1024 = %.1f TFLOP at the measured 195 GFLOP/s; AdamW scaled from GPT-2's by P", qFlops/1e12)}
	cpuQL := compute{name: "CPU VM", tokens: 1024, fwd: cpuQwenLoRAStep / 2, bwd: cpuQwenLoRAStep / 2, opt: 0,
		source: "measured: 33.7 s/step (2×512 tokens, fp32 base); split 1:1 assumed (2·P forward, 2·P input gradients)"}
	mk := func(w *workload, c compute) setup {
		return setup{w: w, plan: dist.PlanBuckets(w.sizes(), dist.DefaultBucketBytes), c: c}
	}
	return []setup{
		mk(g, cpuG), mk(g, h100(g, false)),
		mk(gl, cpuGL), mk(gl, h100LoRA(g, gl)),
		mk(q, cpuQ), mk(q, h100(q, false)),
		mk(ql, cpuQL), mk(ql, h100LoRA(q, ql)),
	}
}

var paperN = []int{2, 8, 64, 512}

func ms(x float64) string {
	switch {
	case x >= 100e-3:
		return fmt.Sprintf("%.0f", x*1e3)
	case x >= 10e-3:
		return fmt.Sprintf("%.1f", x*1e3)
	case x >= 1e-3:
		return fmt.Sprintf("%.2f", x*1e3)
	}
	return fmt.Sprintf("%.3f", x*1e3)
}

func header(first string, cols ...string) {
	fmt.Println("| " + first + " | " + strings.Join(cols, " | ") + " |")
	fmt.Println("|" + strings.Repeat("---|", len(cols)+1))
}

func paper() {
	ss := setups()
	seen := map[string]bool{}
	fmt.Println("### Gradients and buckets (25 MiB cap, dist.PlanBuckets)")
	fmt.Println()
	header("workload", "trainable params", "fp32 gradient bytes / step", "buckets", "largest bucket", "last bucket (launched by WaitAll)")
	for _, s := range ss {
		if seen[s.w.name] {
			continue
		}
		seen[s.w.name] = true
		bb := bucketBytes(s.plan)
		fmt.Printf("| %s | %s | %.2f MB (%.1f MiB) | %d | %.1f MiB | %.1f MiB |\n", s.w.name, commas(s.w.params()), float64(s.w.bytes())/1e6,
			float64(s.w.bytes())/(1<<20), len(s.plan), maxOf(bb)/(1<<20), bb[len(bb)-1]/(1<<20))
	}
	fmt.Println()

	fmt.Println("### All-reduce time per step (ring, bucketed): bandwidth term + latency term = total, ms")
	fmt.Println()
	header("workload / link", colsN("N=")...)
	seen = map[string]bool{}
	for _, s := range ss {
		if seen[s.w.name] {
			continue
		}
		seen[s.w.name] = true
		for _, l := range []link{ethHi, ethLo, ibHi, ibLo} {
			var cells []string
			for _, n := range paperN {
				r := modelStep(s.w, s.plan, s.c, n, l)
				cells = append(cells, fmt.Sprintf("%s + %s = **%s**", ms(r.bwTerm), ms(r.latTerm), ms(r.comm)))
			}
			fmt.Printf("| %s, %s α=%.0f µs | %s |\n", s.w.name, l.name, l.alpha*1e6, strings.Join(cells, " | "))
		}
	}
	fmt.Println()

	fmt.Println("### Compute per step and worker")
	fmt.Println()
	header("workload", "compute", "tokens/worker", "forward ms", "backward ms", "optimizer ms", "step ms", "source")
	for _, s := range ss {
		c := s.c
		fmt.Printf("| %s | %s | %d | %s | %s | %s | %s | %s |\n", s.w.name, c.name, c.tokens, ms(c.fwd), ms(c.bwd), ms(c.opt), ms(c.total()), c.source)
	}
	fmt.Println()

	for _, lp := range [][2]link{{ethHi, ibHi}, {ethLo, ibLo}} {
		fmt.Printf("### Weak scaling (fixed batch per worker): step ms with overlap, efficiency T1/TN (without overlap) — α = %.0f µs / %.0f µs\n", lp[0].alpha*1e6, lp[1].alpha*1e6)
		fmt.Println()
		header("workload, compute, link", append([]string{"N=1"}, colsN("N=")...)...)
		for _, s := range ss {
			for _, l := range lp {
				cells := []string{ms(s.c.total())}
				for _, n := range paperN {
					r := modelStep(s.w, s.plan, s.c, n, l)
					cells = append(cells, fmt.Sprintf("%s, **%.0f%%** (%.0f%%)", ms(r.step), 100*s.c.total()/r.step, 100*s.c.total()/r.stepNoOv))
				}
				fmt.Printf("| %s, %s, %s | %s |\n", s.w.name, s.c.name, l.name, strings.Join(cells, " | "))
			}
		}
		fmt.Println()
	}

	zero(ss)
	strong(ss)
	latency(ss)
}

func colsN(p string) []string {
	var c []string
	for _, n := range paperN {
		c = append(c, fmt.Sprintf("%s%d", p, n))
	}
	return c
}

func maxOf(xs []float64) float64 {
	m := math.Inf(-1)
	for _, x := range xs {
		m = math.Max(m, x)
	}
	return m
}

// zero prints ZeRO-1's memory per worker and shoggo's ZeRO-1 step (the
// gradient all-reduce as in DDP, then an exposed all-gather of the
// parameters in 4 MiB-per-rank chunks, the optimizer on 1/N of the
// parameters), against the textbook reduce-scatter + all-gather.
func zero(ss []setup) {
	fmt.Println("### ZeRO-1: memory per worker (fp32 weights + gradients + AdamW moments)")
	fmt.Println()
	header("workload", append([]string{"weights", "gradients", "AdamW, DDP", "total DDP"}, colsN("total ZeRO-1 N=")...)...)
	seen := map[string]bool{}
	for _, s := range ss {
		if seen[s.w.name] || strings.Contains(s.w.name, "LoRA") {
			continue
		}
		seen[s.w.name] = true
		P := float64(s.w.params())
		gib := func(b float64) string { return fmt.Sprintf("%.2f GiB", b/(1<<30)) }
		cells := []string{gib(4 * P), gib(4 * P), gib(8 * P), gib(16 * P)}
		for _, n := range paperN {
			cells = append(cells, gib(8*P+8*P/float64(n)))
		}
		fmt.Printf("| %s | %s |\n", s.w.name, strings.Join(cells, " | "))
	}
	fmt.Println()
	fmt.Println("### ZeRO-1 step time (full models): DDP vs shoggo's ZeRO-1 (all-reduce + exposed all-gather, AdamW on 1/N) vs textbook ZeRO-1 (bucketed reduce-scatter overlapped with backward + exposed all-gather) — ms, efficiency")
	fmt.Println()
	header("workload, compute, link", colsN("N=")...)
	for _, s := range ss {
		if strings.Contains(s.w.name, "LoRA") {
			continue
		}
		for _, l := range []link{ethHi, ibHi} {
			var cells []string
			for _, n := range paperN {
				r := modelStep(s.w, s.plan, s.c, n, l)
				ag := zeroGather(s.w.params(), n, l)
				optSave := s.c.opt * (1 - 1/float64(n))
				z := r.step + ag - optSave
				// Textbook: the reduce-scatter costs half the all-reduce and
				// overlaps backward like it; the all-gather follows the
				// optimizer (exposed, unless prefetched into the next forward).
				rs := modelStepScaled(s, n, l, 0.5)
				tb := rs.step - optSave + ag
				T1 := s.c.total()
				cells = append(cells, fmt.Sprintf("%s %.0f%% / %s %.0f%% / %s %.0f%%", ms(r.step), 100*T1/r.step, ms(z), 100*T1/z, ms(tb), 100*T1/tb))
			}
			fmt.Printf("| %s, %s, %s | %s |\n", s.w.name, s.c.name, l.name, strings.Join(cells, " | "))
		}
	}
	fmt.Println()
}

// zeroGather is train/zero.go's all-gather: ceil(S/chunk) AllGathers of
// n·chunk elements, S = ceil(P/n).
func zeroGather(P int64, n int, l link) float64 {
	if n <= 1 {
		return 0
	}
	const chunk = 1 << 20
	S := (P + int64(n) - 1) / int64(n)
	var t float64
	for c := int64(0); c < S; c += chunk {
		m := min(chunk, S-c)
		t += ringAllGather(n, 4*float64(m)*float64(n), l)
	}
	return t
}

// modelStepScaled is modelStep with every bucket's cost multiplied by f
// (f = 0.5: a reduce-scatter instead of an all-reduce).
func modelStepScaled(s setup, n int, l link, f float64) stepResult {
	var r stepResult
	bb := bucketBytes(s.plan)
	cost := make([]float64, len(bb))
	for k, b := range bb {
		cost[k] = f * ringAllReduce(n, b, l)
		r.comm += cost[k]
	}
	ready := bucketReady(s.w, s.plan)
	for k := range ready {
		ready[k] *= s.c.bwd
	}
	end := overlap(ready, cost)
	r.exposed = math.Max(0, end-s.c.bwd)
	r.step = s.c.total() + r.exposed
	r.stepNoOv = s.c.total() + r.comm
	return r
}

// strong prints strong scaling at a fixed global batch for the H100-class
// setups: tokens per worker G/N, compute proportional to it, one all-reduce
// per step whatever the number of accumulation micro-steps.
func strong(ss []setup) {
	global := map[string]int{"gpt2": 1 << 19, "qwen1.5-1.8b": 1 << 20}
	fmt.Println("### Strong scaling at a fixed global batch (H100-class compute): tokens/worker, step ms, efficiency T1/(N·TN)")
	fmt.Println()
	header("workload (global batch), link", colsN("N=")...)
	for _, s := range ss {
		if s.c.name != "H100-class" {
			continue
		}
		G := global[strings.Fields(s.w.name)[0]]
		for _, l := range []link{ethHi, ibHi} {
			var cells []string
			for _, n := range paperN {
				f := float64(G) / float64(n) / float64(s.c.tokens)
				c := s.c
				c.fwd, c.bwd = c.fwd*f, c.bwd*f
				r := modelStep(s.w, s.plan, c, n, l)
				T1 := s.c.fwd*f*float64(n) + s.c.bwd*f*float64(n) + s.c.opt
				cells = append(cells, fmt.Sprintf("%d: %s, **%.0f%%**", G/n, ms(r.step), 100*T1/(float64(n)*r.step)))
			}
			fmt.Printf("| %s (%d tokens), %s | %s |\n", s.w.name, G, l.name, strings.Join(cells, " | "))
		}
	}
	fmt.Println()
}

// latency compares, at N = 512, the ring's latency term with one bucket and
// with a tree's 2·log2(N)·α.
func latency(ss []setup) {
	const n = 512
	fmt.Println("### Latency term at N = 512: ring with 25 MiB buckets vs ring with one bucket vs tree (2·⌈log2 N⌉·α per all-reduce), ms")
	fmt.Println()
	header("workload, link", "bandwidth term", "ring latency, 25 MiB buckets", "ring latency, 1 bucket", "tree latency, 25 MiB buckets")
	seen := map[string]bool{}
	for _, s := range ss {
		if seen[s.w.name] {
			continue
		}
		seen[s.w.name] = true
		for _, l := range []link{ethHi, ibHi} {
			r := modelStep(s.w, s.plan, s.c, n, l)
			nb := float64(len(s.plan))
			fmt.Printf("| %s, %s | %s | %s | %s | %s |\n", s.w.name, l.name, ms(r.bwTerm), ms(r.latTerm), ms(2*float64(n-1)*l.alpha), ms(nb*treeLatency(n, l)))
		}
	}
	fmt.Println()
}

// commas formats n with thousands separators.
func commas(n int64) string {
	s := fmt.Sprint(n)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}
