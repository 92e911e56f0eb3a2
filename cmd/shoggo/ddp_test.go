package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shoggo/shoggo/dist"
	"github.com/shoggo/shoggo/safetensors"
)

// The multi-process data-parallel tests: the CLI (this test binary
// re-executed, see TestMain) launched by `mpirun --oversubscribe -np 2`.
// They skip, naming what is missing, without mpirun or libmpi.

// mpirunCLI returns the command running shoggo args on np ranks.
func mpirunCLI(t *testing.T, ctx context.Context, np int, args ...string) *exec.Cmd {
	t.Helper()
	path, err := exec.LookPath("mpirun")
	if err != nil {
		t.Skipf("mpirun not found (install %s): %v", dist.MPIPackage, err)
	}
	if err := dist.MPIAvailable(); err != nil {
		t.Skipf("Open MPI library not available: %v", err)
	}
	a := append([]string{"--oversubscribe", "-np", strconv.Itoa(np), "-x", "SHOGGO_CLI=1", os.Args[0], "-test.run=^$", "--"}, args...)
	cmd := exec.CommandContext(ctx, path, a...)
	cmd.Env = append(os.Environ(), "SHOGGO_CLI=1", "OMPI_ALLOW_RUN_AS_ROOT=1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1")
	return cmd
}

// ddpPretrain is a tiny pretrain run (batch is the per-rank batch).
func ddpPretrain(out string, batch, steps int, extra ...string) []string {
	return append([]string{"pretrain", "--out", out, "--batch", strconv.Itoa(batch), "--steps", strconv.Itoa(steps),
		"--seq", "16", "--eval-every", "10", "--eval-batches", "2", "--sample-every", "1000", "--save-every", "10",
		"--warmup", "2", "--vocab-size", "300", "--preset", "tiny-llama", "--grad-accum", "2"}, extra...)
}

func runOK(t *testing.T, cmd *exec.Cmd) string {
	t.Helper()
	t0 := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %v\n%s", cmd.Args, err, out)
	}
	t.Logf("%s (%.1fs)", strings.Join(cmd.Args[min(len(cmd.Args), 8):], " "), time.Since(t0).Seconds())
	return string(out)
}

// weights reads every tensor of an HF directory's model.safetensors.
func weights(t *testing.T, dir string) map[string][]float32 {
	t.Helper()
	f, err := safetensors.Open(filepath.Join(dir, "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string][]float32{}
	for _, name := range f.Names() {
		x, err := f.Tensor(name)
		if err != nil {
			t.Fatal(err)
		}
		out[name] = append([]float32(nil), x.F32...)
	}
	return out
}

// 2 ranks × batch 2 (mpirun) train like 1 process × batch 4: the same
// losses and weights up to float rounding (each rank's gradient is a
// partial sum over its rows; the all-reduce adds the two partial sums,
// another order than one GEMM over all rows). Measured after 20 steps of
// tiny-llama: losses within ~1e-7 relative, weights within ~1e-6; the
// test allows 1e-5 (relative loss) and 1e-4 (absolute weight, lr 3e-3).
// ZeRO-1 gives plain DDP's bits (the final model and the checkpoint's
// optimizer moments are byte-identical).
func TestDDPMPIPretrain(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	one, two, zero := filepath.Join(dir, "one"), filepath.Join(dir, "two"), filepath.Join(dir, "zero")
	c2 := mpirunCLI(t, ctx, 2, ddpPretrain(two, 2, 20)...)
	runOK(t, c2)
	runOK(t, cliCommand(ddpPretrain(one, 4, 20, "--threads", "1")...))
	runOK(t, mpirunCLI(t, ctx, 2, ddpPretrain(zero, 2, 20, "--zero", "1")...))

	la, lb := ddpLosses(t, filepath.Join(one, "metrics.jsonl")), ddpLosses(t, filepath.Join(two, "metrics.jsonl"))
	worst := 0.0
	for s, v := range la {
		worst = max(worst, math.Abs(v-lb[s])/v)
	}
	wa, wb := weights(t, filepath.Join(one, "model")), weights(t, filepath.Join(two, "model"))
	maxW := 0.0
	for name, a := range wa {
		for i := range a {
			maxW = max(maxW, math.Abs(float64(a[i])-float64(wb[name][i])))
		}
	}
	t.Logf("1 process × batch 4 vs mpirun -np 2 × batch 2, 20 steps: max relative loss difference %.3g, max |Δw| %.3g", worst, maxW)
	if len(la) != 20 || len(lb) != 20 || worst > 1e-5 || maxW > 1e-4 {
		t.Errorf("%d and %d losses; relative difference %.3g (allowed 1e-5), weights %.3g (allowed 1e-4)", len(la), len(lb), worst, maxW)
	}
	for _, f := range []string{"model/model.safetensors", "checkpoints/step-00000020/optimizer.safetensors"} {
		a, err := os.ReadFile(filepath.Join(two, f))
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(zero, f))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a, b) {
			t.Errorf("%s: ZeRO-1 differs from plain DDP", f)
		}
	}
	s := readSummaryCLI(t, two)
	if s["world_size"] != 2.0 {
		t.Errorf("summary world_size %v", s["world_size"])
	}
}

func readSummaryCLI(t *testing.T, out string) map[string]any {
	t.Helper()
	var m map[string]any
	b, err := os.ReadFile(filepath.Join(out, "summary.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// rankPID finds the pid of rank among mpirun's children.
func rankPID(mpirun int, rank int) int {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
		if err != nil || !bytes.Contains(env, []byte("SHOGGO_CLI=1")) {
			continue
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// the parent pid is the 4th field after the command in parentheses
		fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
		if len(fields) < 2 || fields[1] != strconv.Itoa(mpirun) {
			continue
		}
		if bytes.Contains(env, []byte(fmt.Sprintf("OMPI_COMM_WORLD_RANK=%d\x00", rank))) {
			return pid
		}
	}
	return 0
}

// A rank killed mid-run (SIGKILL, as the OOM killer does) ends the job
// within 60 s with an error naming the dead rank; the last checkpoint stays
// intact, and the run resumed from it on 2 ranks continues exactly as an
// uninterrupted run does (the same losses, bit for bit, and the same
// final weights).
func TestDDPMPIKilledRankResume(t *testing.T) {
	const steps = 500
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	ref, run := filepath.Join(dir, "ref"), filepath.Join(dir, "run")
	args := func(out string) []string {
		return ddpPretrain(out, 2, steps, "--save-every", "50", "--eval-every", "250")
	}
	runOK(t, mpirunCLI(t, ctx, 2, args(ref)...))

	cmd := mpirunCLI(t, ctx, 2, args(run)...)
	var outBuf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &outBuf, &outBuf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var victim int
	for victim == 0 {
		select {
		case err := <-done:
			t.Fatalf("the run ended before a rank could be killed: %v\n%s", err, outBuf.String())
		case <-time.After(5 * time.Millisecond):
		}
		if _, err := os.Stat(filepath.Join(run, "checkpoints", "latest")); err == nil {
			victim = rankPID(cmd.Process.Pid, 1)
		}
	}
	if err := syscall.Kill(victim, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	var err error
	select {
	case err = <-done:
	case <-time.After(60 * time.Second):
		t.Fatalf("the job still runs 60 s after rank 1 was killed\n%s", outBuf.String())
	}
	out := outBuf.String()
	t.Logf("rank 1 (pid %d) killed; mpirun ended %.1fs later: %v\n%s", victim, time.Since(killed).Seconds(), err, lastLines(out, 12))
	if err == nil {
		t.Fatal("mpirun succeeded although a rank was killed")
	}
	if !strings.Contains(out, "rank 1") || !strings.Contains(out, "signal 9") {
		t.Errorf("mpirun's message does not name the killed rank")
	}
	sum := ddpLosses(t, filepath.Join(run, "metrics.jsonl"))
	if len(sum) >= steps {
		t.Skipf("the run finished (%d steps) before the kill took effect", len(sum))
	}
	runOK(t, mpirunCLI(t, ctx, 2, append(args(run), "--resume")...))
	la, lb := ddpLosses(t, filepath.Join(ref, "metrics.jsonl")), ddpLosses(t, filepath.Join(run, "metrics.jsonl"))
	if len(la) != steps || len(lb) != steps {
		t.Fatalf("%d and %d steps logged", len(la), len(lb))
	}
	for s, v := range la {
		if lb[s] != v {
			t.Fatalf("step %d: loss %v uninterrupted, %v resumed after the crash", s, v, lb[s])
		}
	}
	a, _ := os.ReadFile(filepath.Join(ref, "model", "model.safetensors"))
	b, _ := os.ReadFile(filepath.Join(run, "model", "model.safetensors"))
	if len(a) == 0 || !bytes.Equal(a, b) {
		t.Error("final weights differ between the uninterrupted and the resumed run")
	}
}

// ddpLosses reads the training losses of a metrics.jsonl by step.
func ddpLosses(t *testing.T, path string) map[int]float64 {
	t.Helper()
	out := map[int]float64{}
	for _, m := range readMetrics(t, path) {
		if m.Loss != 0 {
			out[m.Step] = m.Loss
		}
	}
	return out
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// Ranks requested (mpirun's variables) but no Open MPI library: the
// command fails at once, naming the library and the package.
func TestDDPMissingLibrary(t *testing.T) {
	cmd := cliCommand(ddpPretrain(filepath.Join(t.TempDir(), "run"), 2, 2)...)
	cmd.Env = append(cmd.Env, "SHOGGO_MPI_LIB=libmpi-missing.so.40", "OMPI_COMM_WORLD_SIZE=2", "OMPI_COMM_WORLD_RANK=0",
		"OMPI_COMM_WORLD_LOCAL_RANK=0", "OMPI_COMM_WORLD_LOCAL_SIZE=2")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "mpirun asked for 2 ranks but Open MPI cannot be used") || !strings.Contains(string(out), "openmpi-bin") {
		t.Fatalf("err %v, output:\n%s", err, out)
	}
	t.Log(strings.TrimSpace(string(out)))
}
