package recipe

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"time"

	"github.com/shoggo/shoggo/backend/device"
	"github.com/shoggo/shoggo/internal/sysinfo"
	"github.com/shoggo/shoggo/model"
	"github.com/shoggo/shoggo/optim"
	"github.com/shoggo/shoggo/tensor"
	"github.com/shoggo/shoggo/tokenizer"
	"github.com/shoggo/shoggo/train"
)

// SFTBenchResult is the one-line JSON summary `shoggo sft --bench-steps`
// prints last (keys are stable; bench/lora_step.sh reads them).
type SFTBenchResult struct {
	Impl              string    `json:"impl"`
	Preset            string    `json:"preset,omitempty"`
	Model             string    `json:"model,omitempty"`
	Params            int64     `json:"params"`
	Trainable         int64     `json:"trainable_params"`
	Mode              string    `json:"mode"` // lora | full
	BaseDType         string    `json:"base_dtype"`
	Precision         string    `json:"precision"` // compute: fp32 | bf16 | fp16 (with loss scaling)
	LoraR             int       `json:"lora_r,omitempty"`
	LoraAlpha         float64   `json:"lora_alpha,omitempty"`
	LoraDropout       float64   `json:"lora_dropout,omitempty"`
	LoraTargets       string    `json:"lora_targets,omitempty"`
	GradCheckpointing bool      `json:"gradient_checkpointing"`
	Batch             int       `json:"batch"`
	SeqLen            int       `json:"seq_len"`
	GradAccum         int       `json:"grad_accum"`
	Threads           int       `json:"threads"`
	WarmupSteps       int       `json:"warmup_steps"`
	Steps             int       `json:"steps"`
	TokensPerStep     int       `json:"tokens_per_step"`
	TokensPerSec      float64   `json:"tokens_per_s"`
	StepS             float64   `json:"step_s"`     // median timed step
	StepMinS          float64   `json:"step_min_s"` // fastest timed step
	FwdBwdS           float64   `json:"fwd_bwd_s"`  // step_s - optimizer_s
	OptimizerS        float64   `json:"optimizer_s"`
	WarmupS           float64   `json:"warmup_s"`
	StepTimesS        []float64 `json:"step_times_s"`
	StepCPUS          float64   `json:"step_cpu_s"`       // median CPU seconds (all threads) per timed step
	TokensPerCPUS     float64   `json:"tokens_per_cpu_s"` // less sensitive to a busy machine than tokens/s
	BuildS            float64   `json:"build_s"`
	RSSAfterBuildMiB  float64   `json:"rss_after_build_mib"`
	PeakAfterBuildMiB float64   `json:"peak_rss_build_mib"`
	PeakTrainOnlyMiB  float64   `json:"peak_rss_train_mib,omitempty"` // peak since the build (0: kernel cannot reset VmHWM)
	PeakRSSMiB        float64   `json:"peak_rss_mib"`                 // whole process (VmHWM)
	Loss              float64   `json:"loss"`
	LoadAvg1          float64   `json:"loadavg_1m"`
	CPU               string    `json:"cpu"`
	GOGC              string    `json:"gogc,omitempty"`
	GoMemLimit        string    `json:"gomemlimit,omitempty"`
	ModelGFLOPPerStep float64   `json:"model_gflop_per_step"`
	ModelGFLOPPerSec  float64   `json:"model_gflop_per_s"`
	ModelFLOPsFormula string    `json:"model_flops_formula"`
}

// SFTBench measures LoRA/full fine-tuning speed and memory at a model's full
// shape on random data: the model comes from --preset (random weights) or
// --model through LoadBase, the same path training takes (so a bf16/fp16
// base is built layer by layer through the linear factory and never exists
// in fp32), adapters come from lora.Apply, and each step is
// train.StepWith the LM objective (gradient accumulation over --grad-accum micro-batches
// of --batch x --max-len uniformly random tokens, every position trained,
// gradient clipping, AdamW over the adapters or, with --lora-r 0, the whole
// model; train.StepScaled with fp16, i.e. with the harness's loss scaling).
// One warmup step runs first, then --bench-steps timed ones.
//
// The optimizer's share (global-norm clip + AdamW step) is timed separately
// after the timed steps, on the gradients the last step left, and
// subtracted from the step time to give forward+backward.
//
// Memory: VmRSS right after the model (and adapters) are built, VmHWM at
// that point, and VmHWM at the end (the whole process's peak resident set).
// Where the kernel allows, VmHWM is reset after the build (clear_refs 5) so
// the training-only peak is reported too.
//
// SHOGGO_CPUPROFILE=file writes a pprof CPU profile of the timed steps.
// The progress lines and, last, the JSON summary go to out.
func SFTBench(r SFTConfig, out io.Writer) (SFTBenchResult, error) {
	res, err := sftBench(r, out)
	if err != nil {
		return res, err
	}
	j, err := json.Marshal(res)
	if err != nil {
		return res, err
	}
	fmt.Fprintf(out, "%s\n", j)
	return res, nil
}

func sftBench(r SFTConfig, out io.Writer) (SFTBenchResult, error) {
	var res SFTBenchResult
	if r.Model == "" && r.Preset == "" {
		return res, fmt.Errorf("--bench-steps needs --preset NAME (random weights) or --model DIR")
	}
	if r.Batch < 1 || r.MaxLen < 2 {
		return res, fmt.Errorf("--bench-steps: --batch %d and --max-len %d must be >= 1 and >= 2", r.Batch, r.MaxLen)
	}
	accum := max(r.Accum, 1)
	prec, err := r.PrecisionConfig.DType()
	if err != nil {
		return res, err
	}
	nt := runtime.GOMAXPROCS(0)
	res = SFTBenchResult{Impl: "shoggo", Preset: r.Preset, Model: r.Model, Batch: r.Batch, SeqLen: r.MaxLen,
		GradAccum: accum, Threads: nt, WarmupSteps: 1, Precision: train.PrecisionName(prec), Steps: r.BenchSteps, GradCheckpointing: r.GradCheckpointing,
		CPU: sysinfo.CPUName(), GOGC: os.Getenv("GOGC"), GoMemLimit: os.Getenv("GOMEMLIMIT"), LoadAvg1: sysinfo.LoadAvg1()}

	// Model: the same LoadBase as training. A preset needs no tokenizer
	// here (the vocabulary is the preset's unless --tokenizer widens it).
	tok := &tokenizer.Tokenizer{}
	if r.Tokenizer != "" {
		if tok, err = tokenizer.Load(r.Tokenizer); err != nil {
			return res, err
		}
	}
	t0 := time.Now()
	be, err := device.Open(r.Device)
	if err != nil {
		return res, err
	}
	m, err := LoadBase(r.BaseConfig, r.LoraR > 0, tok.VocabSize(), r.Seed, be, os.Stderr)
	if err != nil {
		return res, err
	}
	var tr train.Trainable
	res.Mode, res.BaseDType = "full", "fp32"
	if r.LoraR > 0 {
		adapters, err := ApplyLoRA(m, &r)
		if err != nil {
			return res, err
		}
		tr = train.LoRA(m, adapters)
		res.Mode, res.Trainable = "lora", adapters.NumTrainable()
		res.LoraR, res.LoraAlpha, res.LoraDropout, res.LoraTargets = r.LoraR, r.LoraAlpha, r.LoraDropout, r.LoraTargets
		res.BaseDType = r.BaseDType
		if r.QLoRA {
			res.BaseDType = "nf4"
		}
		fmt.Fprintln(out, adapters.Report(m))
	} else {
		tr = train.FullTrainable(m)
		res.Trainable = m.NumParams()
	}
	res.Params = model.ParamCount(&m.Cfg)
	if err := train.SetPrecision(prec, m); err != nil {
		return res, err
	}
	var scaler *train.GradScaler // fp16: the harness's loss scaling
	if prec == tensor.F16 {
		scaler = train.NewGradScaler()
	}
	if r.GradCheckpointing {
		if err := m.SetCheckpointing(true); err != nil {
			return res, err
		}
	}
	cfg := &m.Cfg
	B, T := r.Batch, r.MaxLen
	if T > cfg.MaxPositionEmbeddings {
		return res, fmt.Errorf("--max-len %d exceeds the model's max_position_embeddings %d", T, cfg.MaxPositionEmbeddings)
	}
	if err := m.Plan(B, T); err != nil {
		return res, err
	}
	res.BuildS = time.Since(t0).Seconds()
	res.RSSAfterBuildMiB = sysinfo.MiB(sysinfo.ProcStatus("VmRSS"))
	res.PeakAfterBuildMiB = sysinfo.MiB(sysinfo.ProcStatus("VmHWM"))
	resetOK := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil

	name := r.Preset
	if name == "" {
		name = r.Model
	}
	fmt.Fprintf(out, "shoggo sft bench: %s (%d parameters), %s, base %s, precision %s, gradient checkpointing %v\n",
		name, res.Params, res.Mode, res.BaseDType, res.Precision, r.GradCheckpointing)
	fmt.Fprintf(out, "batch %d x %d tokens x %d micro-batches per step, %d threads, %s, load average %.2f\n",
		B, T, accum, nt, res.CPU, res.LoadAvg1)
	fmt.Fprintf(out, "built in %.1f s: RSS %.0f MiB (peak so far %.0f MiB)\n", res.BuildS, res.RSSAfterBuildMiB, res.PeakAfterBuildMiB)

	// Random micro-batches: ids uniform over the vocabulary, labels = ids
	// (shifted inside), so every position but each row's last is trained.
	rng := rand.New(rand.NewPCG(r.Seed, 0xbe4c))
	micro := make([]*model.Batch, accum)
	for i := range micro {
		ids := make([]int32, B*T)
		for j := range ids {
			ids[j] = int32(rng.IntN(cfg.VocabSize))
		}
		micro[i] = &model.Batch{B: B, T: T, IDs: ids, Targets: model.ShiftLabels(ids, B, T)}
	}
	oc := optim.DefaultConfig()
	oc.WeightDecay = r.WeightDecay
	if r.Beta2 != 0 {
		oc.Beta2 = r.Beta2
	}
	opt, err := optim.NewAdamWOn(m.BE, tr.Params, oc)
	if err != nil {
		return res, err
	}
	lr, clip := r.LR, r.Clip
	if clip == 0 {
		clip = 1
	}
	var cpuTimes []float64
	step := func() (float64, float64, error) {
		c, t := sysinfo.CPUTime(), time.Now()
		sr, err := train.StepScaled(m, tr, train.LM{}, opt, micro, lr, clip, scaler)
		cpuTimes = append(cpuTimes, (sysinfo.CPUTime() - c).Seconds())
		return time.Since(t).Seconds(), sr.Loss, err
	}
	w, loss, err := step()
	if err != nil {
		return res, fmt.Errorf("warmup step: %w", err)
	}
	res.WarmupS = w
	fmt.Fprintf(out, "warmup step: %.2f s, loss %.4f (random tokens: ln V = %.4f)\n", w, loss, math.Log(float64(cfg.VocabSize)))
	if p := os.Getenv("SHOGGO_CPUPROFILE"); p != "" {
		f, err := os.Create(p)
		if err != nil {
			return res, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return res, err
		}
		defer pprof.StopCPUProfile()
	}
	for i := 0; i < r.BenchSteps; i++ {
		s, l, err := step()
		if err != nil {
			return res, fmt.Errorf("step %d: %w", i+1, err)
		}
		res.StepTimesS = append(res.StepTimesS, s)
		loss = l
		fmt.Fprintf(out, "step %d: %.2f s, loss %.4f, %.1f tokens/s\n", i+1, s, l, float64(B*T*accum)/s)
	}
	pprof.StopCPUProfile()
	res.Loss = loss

	// The optimizer's share, timed on its own.
	var ot []float64
	for i := 0; i < 5; i++ {
		t := time.Now()
		optim.ClipGradNormOn(m.BE, tr.Grads, clip)
		opt.Step(lr)
		ot = append(ot, time.Since(t).Seconds())
	}
	res.OptimizerS = sysinfo.Median(ot)
	res.StepS = sysinfo.Median(res.StepTimesS)
	res.StepCPUS = sysinfo.Median(cpuTimes[1:])
	res.StepMinS = slices.Min(res.StepTimesS)
	res.FwdBwdS = res.StepS - res.OptimizerS
	res.TokensPerStep = B * T * accum
	res.TokensPerSec = float64(res.TokensPerStep) / res.StepS
	res.TokensPerCPUS = float64(res.TokensPerStep) / res.StepCPUS
	hwm := sysinfo.MiB(sysinfo.ProcStatus("VmHWM"))
	res.PeakRSSMiB = math.Max(hwm, res.PeakAfterBuildMiB)
	if resetOK {
		res.PeakTrainOnlyMiB = hwm
	}
	fl, formula := sftStepFLOPs(cfg, res.Mode == "lora", r.GradCheckpointing, B, T)
	res.ModelGFLOPPerStep = fl * float64(accum) / 1e9
	res.ModelGFLOPPerSec = res.ModelGFLOPPerStep / res.StepS
	res.ModelFLOPsFormula = formula
	res.LoadAvg1 = math.Max(res.LoadAvg1, sysinfo.LoadAvg1())

	fmt.Fprintf(out, "\n%d warmup + %d timed steps (median): %.2f s/step = %.2f s forward+backward + %.4f s optimizer (clip + AdamW over %d parameters)\n",
		res.WarmupSteps, res.Steps, res.StepS, res.FwdBwdS, res.OptimizerS, res.Trainable)
	fmt.Fprintf(out, "tokens/s %.1f (%d tokens/step; fastest step %.2f s); %.1f tokens per CPU second (%.1f CPU s/step)\n",
		res.TokensPerSec, res.TokensPerStep, res.StepMinS, res.TokensPerCPUS, res.StepCPUS)
	fmt.Fprintf(out, "model FLOPs %.1f GFLOP/step, %.1f GFLOP/s (%s)\n", res.ModelGFLOPPerStep, res.ModelGFLOPPerSec, formula)
	fmt.Fprintf(out, "RSS after build %.0f MiB; peak RSS (VmHWM) %.0f MiB", res.RSSAfterBuildMiB, res.PeakRSSMiB)
	if resetOK {
		fmt.Fprintf(out, " (build %.0f MiB, training %.0f MiB)", res.PeakAfterBuildMiB, res.PeakTrainOnlyMiB)
	}
	fmt.Fprintln(out)
	return res, nil
}

// sftStepFLOPs counts the model FLOPs of one micro-batch step. Every
// parameter matmul costs 2 FLOPs per parameter and token forward and 2 for
// the input gradient; full fine-tuning adds 2 more for the weight gradient
// (6·N), LoRA does not (4·N, the adapters' own cost is negligible);
// gradient checkpointing adds one more forward of the blocks (2·N_blocks).
// Attention's QKᵀ and PV add 4·L·T·C forward and 8·L·T·C backward per
// token (not halved for the causal mask), plus one forward again with
// checkpointing.
func sftStepFLOPs(c *model.Config, lora, ckpt bool, B, T int) (float64, string) {
	n := float64(model.ParamCount(c))
	emb := float64(c.VocabSize * c.HiddenSize) // the input embedding is a lookup, not a matmul
	head := emb                                // LM head (tied or not)
	lin := n - emb - boolf(!c.TieWordEmbeddings)*head
	L, C, tok := float64(c.NumHiddenLayers), float64(c.HiddenSize), float64(B*T)
	perParam, attn, f := 6.0, 12.0, "6"
	if lora {
		perParam, f = 4, "4"
	}
	blocks := lin // the block parameters (norms included; negligible)
	total := tok * (perParam*(blocks+head) + attn*L*float64(T)*C)
	formula := fmt.Sprintf("B·T·(%s·(N_blocks+N_head) + 12·L·T·C)", f)
	if ckpt {
		total += tok * (2*blocks + 4*L*float64(T)*C)
		formula += " + checkpointing B·T·(2·N_blocks + 4·L·T·C)"
	}
	return total, formula
}

func boolf(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
