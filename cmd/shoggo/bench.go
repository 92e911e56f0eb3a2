package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"

	"github.com/shoggo/shoggo/backend/cpu/gemm"
	"github.com/shoggo/shoggo/backend/device"
	"github.com/shoggo/shoggo/internal/parallel"
	"github.com/shoggo/shoggo/internal/sysinfo"
	"github.com/shoggo/shoggo/model"
	"github.com/shoggo/shoggo/recipe"
)

func init() {
	register("bench", "benchmark GEMM and a training step of a preset (tokens/s, ms/step, GFLOP/s, peak memory)", runBench)
}

// defaultPeakPerCore is the nominal fp32 peak of one core of the reference
// machine (AMD EPYC, AVX2/FMA): 2 FMA pipes x 8 lanes x 2 flops x ~2.45 GHz
// base clock. Boost clocks run above it (see --peak-per-core).
const defaultPeakPerCore = 78.0

func runBench(args []string) error {
	o := recipe.BenchOptions{Preset: "gpt2", Batch: 4, Seq: 64, Steps: 5, Warmup: 2, GemmSecs: 0.3, Seed: 1}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.StringVar(&o.Preset, "preset", o.Preset, "model preset (see: shoggo presets)")
	fs.IntVar(&o.Batch, "batch", o.Batch, "batch size (sequences)")
	fs.IntVar(&o.Seq, "seq", o.Seq, "sequence length")
	fs.IntVar(&o.Steps, "steps", o.Steps, "timed training steps")
	fs.IntVar(&o.Warmup, "warmup", o.Warmup, "untimed training steps first")
	threads := fs.Int("threads", 0, "CPU threads (default: all)")
	fs.StringVar(&o.CPUProfile, "cpuprofile", "", "write a pprof CPU profile of the timed training steps to this file")
	fs.Float64Var(&o.GemmSecs, "gemm-time", o.GemmSecs, "seconds to time each GEMM shape for")
	noGemm := fs.Bool("no-gemm", false, "skip the GEMM table")
	noStep := fs.Bool("no-step", false, "skip the training-step benchmark")
	fs.Uint64Var(&o.Seed, "seed", o.Seed, "random seed for weights and tokens")
	fs.Float64Var(&o.PeakPerCore, "peak-per-core", defaultPeakPerCore, "fp32 GFLOP/s of one core, for the % of peak")
	fs.StringVar(&o.Device, "device", "", "compute device: "+device.Names)
	recipe.PrecisionFlags(fs, &o.PrecisionConfig)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %v", fs.Args())
	}
	if err := checkBounds(fs, atLeast("batch", 1), atLeast("seq", 1), atLeast("steps", 1), atLeast("warmup", 0), atLeast("threads", 0, "0: all cores"),
		above("gemm-time", 0), above("peak-per-core", 0)); err != nil {
		return err
	}
	if _, err := o.PrecisionConfig.DType(); err != nil {
		return err
	}
	if *threads > 0 {
		runtime.GOMAXPROCS(*threads)
	}
	nt := runtime.GOMAXPROCS(0)
	gemm.SetThreads(nt)
	parallel.SetThreads(nt)
	cfg, err := model.LookupPreset(o.Preset)
	if err != nil {
		return err
	}
	w := os.Stdout
	fmt.Fprintf(w, "shoggo bench: preset %s, batch %d, seq %d, %d threads, %s/%s, %s\n",
		o.Preset, o.Batch, o.Seq, nt, runtime.GOOS, runtime.GOARCH, sysinfo.CPUName())
	fmt.Fprintf(w, "peak assumption: %d threads x %.0f GFLOP/s fp32 per core (--peak-per-core; default: 2 FMA x 8 lanes x 2 flops x ~2.45 GHz base clock, boost runs higher) = %.0f GFLOP/s\n",
		nt, o.PeakPerCore, float64(nt)*o.PeakPerCore)
	// The step runs first so that peak RSS is the training step's.
	if !*noStep {
		if err := recipe.BenchStep(w, cfg, o, nt); err != nil {
			return err
		}
	}
	if !*noGemm {
		recipe.BenchGemm(w, cfg, o, nt)
	}
	return nil
}
