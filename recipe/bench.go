package recipe

import (
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/shoggo/shoggo/backend/cpu/gemm"
	"github.com/shoggo/shoggo/backend/device"
	"github.com/shoggo/shoggo/internal/sysinfo"
	"github.com/shoggo/shoggo/model"
	"github.com/shoggo/shoggo/optim"
	"github.com/shoggo/shoggo/tensor"
	"github.com/shoggo/shoggo/train"
)

// BenchOptions configures BenchStep and BenchGemm (`shoggo bench`).
type BenchOptions struct {
	Preset        string
	Batch, Seq    int
	Steps, Warmup int
	CPUProfile    string  // pprof CPU profile of the timed steps
	GemmSecs      float64 // seconds per GEMM shape and thread count
	Seed          uint64
	PeakPerCore   float64 // fp32 GFLOP/s of one core, for the % of peak
	Device        string
	// Precision of the step: fp32, bf16 or fp16 (with the harness's loss
	// scaling).
	train.PrecisionConfig
}

// StepFLOPs is the model-FLOPs count of one training step (forward and
// backward): 6·N per token for the parameter matmuls (N all parameters,
// tied LM head counted once) plus 12·L·T·C per token for attention's
// QK^T and PV products (forward 4·L·T·C, backward twice that; the causal
// mask is not discounted), times B·T tokens.
func StepFLOPs(cfg *model.Config, B, T int) (total float64, formula string) {
	n := float64(model.ParamCount(cfg))
	L, C := float64(cfg.NumHiddenLayers), float64(cfg.HiddenSize)
	tok := float64(B * T)
	total = tok * (6*n + 12*L*float64(T)*C)
	formula = fmt.Sprintf("FLOPs/step = B·T·(6·N + 12·L·T·C) = %d·(6·%d + 12·%d·%d·%d) = %.1f GFLOP",
		B*T, int64(n), int(L), T, int(C), total/1e9)
	return total, formula
}

// BenchStep times o.Steps training steps (after o.Warmup untimed ones) of
// a randomly initialised cfg on random tokens at (o.Batch, o.Seq) with nt
// threads: forward, backward+loss and optimizer separately, wall and CPU
// time, and prints the table, the FLOP rate against o.PeakPerCore and a
// RESULT line to w. The step is the harness's step spelled out (Forward,
// LM loss, Backward, clip, AdamW, zero) so each phase can be timed; with
// fp16 the loss scaling's check and unscaling count as optimizer time. The
// RESULT line adds the precision and the activation memory (saved for
// backward, and in all) of the plan.
func BenchStep(w io.Writer, cfg *model.Config, o BenchOptions, nt int) error {
	prec, err := o.PrecisionConfig.DType()
	if err != nil {
		return err
	}
	be, err := device.Open(o.Device)
	if err != nil {
		return err
	}
	m, err := model.New(cfg, be, tensor.F32, true)
	if err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(o.Seed, 0x5eed))
	m.InitWeights(rng)
	if err := train.SetPrecision(prec, m); err != nil {
		return err
	}
	if err := m.Plan(o.Batch, o.Seq); err != nil {
		return err
	}
	var sc *train.GradScaler
	if prec == tensor.F16 {
		sc = train.NewGradScaler()
	}
	opt, err := optim.NewAdamWOn(m.BE, train.Params(m), optim.DefaultConfig())
	if err != nil {
		return err
	}
	N := o.Batch * o.Seq
	ids := make([]int32, N)
	for i := range ids {
		ids[i] = int32(rng.IntN(cfg.VocabSize))
	}
	b := &model.Batch{B: o.Batch, T: o.Seq, IDs: ids, Targets: model.ShiftLabels(ids, o.Batch, o.Seq)}
	count := train.CountTargets([]*model.Batch{b})
	scale := 1 / float64(count)
	grads := m.Grads.Tensors()

	type times struct{ fwd, bwd, opt, cfwd, cbwd, copt time.Duration }
	var all []times
	var loss float64
	step := func() (times, error) {
		var t times
		c0, t0 := sysinfo.CPUTime(), time.Now()
		if err := m.Forward(b); err != nil {
			return t, err
		}
		c1, t1 := sysinfo.CPUTime(), time.Now()
		gs := scale
		if sc != nil {
			gs *= sc.Scale
		}
		s, _, err := m.Loss(b, gs, true)
		if err != nil {
			return t, err
		}
		m.Backward(b)
		c2, t2 := sysinfo.CPUTime(), time.Now()
		if sc == nil {
			optim.ClipGradNormOn(m.BE, grads, 1)
			opt.Step(1e-4)
		} else if ss := m.BE.SumSquares(grads); math.IsNaN(ss) || math.IsInf(ss, 0) {
			sc.Update(true) // train.StepScaled's order: check, unscale, clip, update
		} else {
			m.BE.ScaleAll(grads, 1/sc.Scale)
			optim.ClipGradNormOn(m.BE, grads, 1)
			opt.Step(1e-4)
			sc.Update(false)
		}
		m.ZeroGrad() // for the next step (train.Step zeroes first)
		c3, t3 := sysinfo.CPUTime(), time.Now()
		loss = s * scale
		t.fwd, t.bwd, t.opt = t1.Sub(t0), t2.Sub(t1), t3.Sub(t2)
		t.cfwd, t.cbwd, t.copt = c1-c0, c2-c1, c3-c2
		return t, nil
	}
	m.ZeroGrad()
	for i := 0; i < o.Warmup; i++ {
		if _, err := step(); err != nil {
			return err
		}
	}
	if o.CPUProfile != "" {
		f, err := os.Create(o.CPUProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	for i := 0; i < o.Steps; i++ {
		t, err := step()
		if err != nil {
			return err
		}
		all = append(all, t)
	}
	if o.CPUProfile != "" {
		pprof.StopCPUProfile()
	}
	med := func(f func(times) time.Duration) float64 {
		v := make([]float64, len(all))
		for i, t := range all {
			v[i] = f(t).Seconds() * 1e3
		}
		slices.Sort(v)
		if len(v)%2 == 1 {
			return v[len(v)/2]
		}
		return (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	fwd := med(func(t times) time.Duration { return t.fwd })
	bwd := med(func(t times) time.Duration { return t.bwd })
	opm := med(func(t times) time.Duration { return t.opt })
	tot := med(func(t times) time.Duration { return t.fwd + t.bwd + t.opt })
	minTot := slices.MinFunc(all, func(a, b times) int {
		return int((a.fwd + a.bwd + a.opt) - (b.fwd + b.bwd + b.opt))
	})
	flops, formula := StepFLOPs(cfg, o.Batch, o.Seq)
	gflops := flops / (tot / 1e3) / 1e9
	peak := float64(nt) * o.PeakPerCore

	pname := train.PrecisionName(prec)
	fmt.Fprintf(w, "\n## training step (%s, %d parameters, B=%d, T=%d, %s, AdamW, grad clip 1.0)\n", o.Preset, m.NumParams(), o.Batch, o.Seq, pname)
	fmt.Fprintf(w, "%d warmup + %d timed steps; medians (ms):\n", o.Warmup, o.Steps)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "forward\tbackward+loss\toptimizer\tstep\tmin step\ttokens/s\tGFLOP/s\t% peak\t")
	fmt.Fprintf(tw, "%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t(wall ms)\n", fwd, bwd, opm, tot,
		(minTot.fwd+minTot.bwd+minTot.opt).Seconds()*1e3, float64(N)/(tot/1e3), gflops, 100*gflops/peak)
	cf := med(func(t times) time.Duration { return t.cfwd })
	cb := med(func(t times) time.Duration { return t.cbwd })
	co := med(func(t times) time.Duration { return t.copt })
	ct := med(func(t times) time.Duration { return t.cfwd + t.cbwd + t.copt })
	fmt.Fprintf(tw, "%.1f\t%.1f\t%.1f\t%.1f\t\t\t\t\t(CPU ms, all threads; %.0f%% of %d threads busy)\n", cf, cb, co, ct, 100*ct/tot/float64(nt), nt)
	tw.Flush()
	fmt.Fprintf(w, "optimizer = grad-norm clip + AdamW step + zeroing the gradients\n")
	fmt.Fprintf(w, "%s (N = parameters, tied LM head once; attention term not halved for the causal mask)\n", formula)
	fmt.Fprintf(w, "final loss %.4f (random tokens: ln V = %.4f)\n", loss, logf(cfg.VocabSize))
	fmt.Fprintf(w, "peak RSS (VmHWM) %.0f MiB\n", float64(sysinfo.VmHWM())/(1<<20))
	act := activationMiB(m)
	fmt.Fprintf(w, "activations: %s MiB saved for backward, %s MiB in all (%s)\n", act[0], act[1], pname)
	if sc != nil {
		fmt.Fprintf(w, "fp16 loss scale %g after %d steps, %d skipped for overflow\n", sc.Scale, o.Warmup+o.Steps, sc.Skipped)
	}
	fmt.Fprintf(w, "per-step times (ms, fwd/bwd/opt):")
	for _, t := range all {
		fmt.Fprintf(w, " %.0f/%.0f/%.0f", t.fwd.Seconds()*1e3, t.bwd.Seconds()*1e3, t.opt.Seconds()*1e3)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "RESULT impl=shoggo step_ms=%.1f cpu_ms=%.1f tokens_per_s=%.2f rss_mib=%.0f precision=%s act_saved_mib=%s act_total_mib=%s\n",
		tot, ct, float64(N)/(tot/1e3), float64(sysinfo.VmHWM())/(1<<20), pname, act[0], act[1])
	return nil
}

// activationMiB formats m's planned activation memory in MiB: saved for
// backward and in all (model.Transformer.ActivationBytes), "na" where the
// model has no such method.
func activationMiB(m *model.Transformer) [2]string {
	ab, ok := any(m).(interface{ ActivationBytes() (saved, total int64) })
	if !ok {
		return [2]string{"na", "na"}
	}
	saved, total := ab.ActivationBytes()
	return [2]string{fmt.Sprintf("%.1f", float64(saved)/(1<<20)), fmt.Sprintf("%.1f", float64(total)/(1<<20))}
}

func logf(v int) float64 { return math.Log(float64(v)) }

// GemmShape is one GEMM call of a training step, with how many times a
// step makes it.
type GemmShape struct {
	name           string
	transA, transB bool
	m, n, k        int
	beta           float32
	perStep        int
}

// StepGemms lists the distinct GEMMs of a training step of cfg at (B, T):
// for each linear (out, in), forward y = x W^T (NT), dx = dy W (NN) and
// dW = dy^T x (TN); and the LM-head cross-entropy chunk's three products.
func StepGemms(cfg *model.Config, B, T, chunk int) []GemmShape {
	N, C, I, L := B*T, cfg.HiddenSize, cfg.IntermediateSize, cfg.NumHiddenLayers
	hs := cfg.HeadDim()
	Q, KV := cfg.NumAttentionHeads*hs, cfg.NumKeyValueHeads*hs
	type lin struct {
		name    string
		out, in int
		count   int
	}
	var lins []lin
	fam := cfg.Spec()
	if fam.MLP == model.GELUMLP {
		lins = []lin{{"qkv", C, C, 3 * L}, {"attn.o", C, C, L}, {"mlp.fc", I, C, L}, {"mlp.proj", C, I, L}}
	} else {
		lins = []lin{{"q", Q, C, L}, {"k/v", KV, C, 2 * L}, {"o", C, Q, L}, {"gate/up", I, C, 2 * L}, {"down", C, I, L}}
	}
	var out []GemmShape
	add := func(g GemmShape) {
		for i := range out {
			o := &out[i]
			if o.transA == g.transA && o.transB == g.transB && o.m == g.m && o.n == g.n && o.k == g.k && o.beta == g.beta {
				o.perStep += g.perStep
				o.name += "," + g.name
				return
			}
		}
		out = append(out, g)
	}
	for _, l := range lins {
		beta := float32(0)
		if cfg.MLPBiases() {
			beta = 1 // bias copied into y first
		}
		add(GemmShape{l.name + " fwd", false, true, N, l.out, l.in, beta, l.count})
		add(GemmShape{l.name + " dx", false, false, N, l.in, l.out, 1, l.count})
		add(GemmShape{l.name + " dW", true, false, l.out, l.in, N, 1, l.count})
	}
	rows := min(chunk, B*(T-1))
	chunks := (B*(T-1) + rows - 1) / rows
	V := cfg.VocabSize
	add(GemmShape{"lm-head logits", false, true, rows, V, C, 0, chunks})
	add(GemmShape{"lm-head dh", false, false, rows, C, V, 1, chunks})
	add(GemmShape{"lm-head dW", true, false, V, C, rows, 1, chunks})
	return out
}

// BenchGemm times gemm.Sgemm on every distinct GEMM shape of a training
// step of cfg, at 1 and nt threads, and prints GFLOP/s to w.
func BenchGemm(w io.Writer, cfg *model.Config, o BenchOptions, nt int) {
	shapes := StepGemms(cfg, o.Batch, o.Seq, model.DefaultChunkRows)
	fmt.Fprintf(w, "\n## GEMM (gemm.Sgemm) on the step's shapes, GFLOP/s (median call), %.1f s per shape and thread count\n", o.GemmSecs)
	fmt.Fprintf(w, "1 thread: timed by the thread's CPU clock (time the OS gave to other processes left out); %d threads: wall clock\n", nt)
	threadSet := []int{1}
	if nt > 1 {
		threadSet = append(threadSet, nt)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	hdr := "shape\tlayout\tm\tn\tk\tcalls/step"
	for _, t := range threadSet {
		hdr += fmt.Sprintf("\t%d thr", t)
	}
	fmt.Fprintln(tw, hdr+"\t")
	rng := rand.New(rand.NewPCG(2, 2))
	stepTime := make([]float64, len(threadSet))
	var stepFlops float64
	for _, s := range shapes {
		lda, ldb := s.k, s.n
		if s.transA {
			lda = s.m
		}
		if s.transB {
			ldb = s.k
		}
		a, bm, c := randF32(rng, s.m*s.k), randF32(rng, s.k*s.n), randF32(rng, s.m*s.n)
		fl := 2 * float64(s.m) * float64(s.n) * float64(s.k)
		stepFlops += fl * float64(s.perStep)
		lay := map[bool]string{false: "N", true: "T"}
		line := fmt.Sprintf("%s\t%s%s\t%d\t%d\t%d\t%d", s.name, lay[s.transA], lay[s.transB], s.m, s.n, s.k, s.perStep)
		for i, t := range threadSet {
			gemm.SetThreads(t)
			call := func() { gemm.Sgemm(s.transA, s.transB, s.m, s.n, s.k, 1, a, lda, bm, ldb, s.beta, c, s.n) }
			now := sysinfo.WallSeconds
			if t == 1 {
				runtime.LockOSThread()
				now = sysinfo.ThreadSeconds
			}
			call()
			var ts []float64
			start := now()
			for len(ts) < 3 || now()-start < o.GemmSecs {
				t0 := now()
				call()
				ts = append(ts, now()-t0)
			}
			if t == 1 {
				runtime.UnlockOSThread()
			}
			slices.Sort(ts)
			sec := ts[len(ts)/2]
			stepTime[i] += sec * float64(s.perStep)
			line += fmt.Sprintf("\t%.1f", fl/sec/1e9)
		}
		fmt.Fprintln(tw, line+"\t")
	}
	gemm.SetThreads(nt)
	tw.Flush()
	for i, t := range threadSet {
		fmt.Fprintf(w, "all step GEMMs at %d thread(s): %.1f GFLOP in %.0f ms = %.1f GFLOP/s (%.0f%% of %d x %.0f)\n",
			t, stepFlops/1e9, stepTime[i]*1e3, stepFlops/stepTime[i]/1e9, 100*stepFlops/stepTime[i]/1e9/(float64(t)*o.PeakPerCore), t, o.PeakPerCore)
	}
}

func randF32(rng *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = rng.Float32()*2 - 1
	}
	return v
}
