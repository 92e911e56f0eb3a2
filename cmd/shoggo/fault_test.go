package main

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// faultArgs is a tiny pretrain run that checkpoints every step, so kills
// land in checkpoint writes often.
func faultArgs(out string, steps int) []string {
	return append(append([]string{"pretrain"}, tinyPretrain...), "--out", out, "--steps", strconv.Itoa(steps), "--save-every", "1", "--seq", "16")
}

// hasCheckpoint reports whether out holds a complete checkpoint.
func hasCheckpoint(out string) bool {
	_, err := os.Stat(filepath.Join(out, "checkpoints", "latest"))
	return err == nil
}

// savingNow reports whether a checkpoint save is in progress in out.
func savingNow(out string) bool {
	ents, _ := os.ReadDir(filepath.Join(out, "checkpoints"))
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".step-") {
			return true
		}
	}
	return false
}

// A training process killed with SIGKILL at random points (half of them
// while a checkpoint is being written) and restarted with --resume each
// time ends with exactly the losses of an uninterrupted run, each step
// logged once, and no leftovers of the killed saves.
func TestFaultInjectionKillResume(t *testing.T) {
	const steps, kills = 300, 24
	ref := filepath.Join(t.TempDir(), "ref")
	if b, err := cliCommand(faultArgs(ref, steps)...).CombinedOutput(); err != nil {
		t.Fatalf("reference run: %v\n%s", err, b)
	}
	want := readMetrics(t, filepath.Join(ref, "metrics.jsonl"))

	out := filepath.Join(t.TempDir(), "run")
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	killed, inSave := 0, 0
	for attempt := 0; attempt < 200; attempt++ {
		args := faultArgs(out, steps)
		if hasCheckpoint(out) {
			args = append(args, "--resume")
		} else {
			args = append(args, "--overwrite")
		}
		cmd := cliCommand(args...)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		if killed >= kills {
			if err := <-done; err != nil {
				t.Fatalf("final run: %v\n%s", err, stderr.String())
			}
			break
		}
		target := killed%2 == 0 // every other kill waits for a save in progress
		deadline := time.After(time.Duration(50+rng.IntN(300)) * time.Millisecond)
		var exited error
		finished := false
	wait:
		for {
			select {
			case exited = <-done:
				finished = true
				break wait
			case <-deadline:
				if !target {
					break wait
				}
			default:
				if target && savingNow(out) {
					break wait
				}
				time.Sleep(time.Duration(rng.IntN(300)) * time.Microsecond)
			}
		}
		if finished {
			if exited != nil {
				t.Fatalf("run %d failed: %v\n%s", attempt, exited, stderr.String())
			}
			break // it finished before it was killed
		}
		if savingNow(out) {
			inSave++
		}
		cmd.Process.Signal(syscall.SIGKILL)
		<-done
		killed++
	}
	t.Logf("%d kills, %d of them during a checkpoint write", killed, inSave)
	if killed < 20 {
		t.Errorf("only %d kills before the run finished: make it longer", killed)
	}
	if inSave == 0 {
		t.Errorf("no kill landed in a checkpoint write")
	}
	got := readMetrics(t, filepath.Join(out, "metrics.jsonl"))
	if len(got) != len(want) {
		var steps []int
		for _, m := range got {
			steps = append(steps, m.Step)
		}
		t.Fatalf("%d metrics lines after the kills, %d in the straight run; steps %v", len(got), len(want), steps)
	}
	for i := range want {
		if got[i].Step != want[i].Step || got[i].Loss != want[i].Loss || got[i].ValLoss != want[i].ValLoss {
			t.Errorf("line %d: step %d loss %v val %v, straight run step %d loss %v val %v", i, got[i].Step, got[i].Loss, got[i].ValLoss,
				want[i].Step, want[i].Loss, want[i].ValLoss)
		}
	}
	if savingNow(out) {
		t.Error("leftovers of a killed save remain")
	}
	if _, err := os.Stat(filepath.Join(out, "model", "model.safetensors")); err != nil {
		t.Error(err)
	}
}
