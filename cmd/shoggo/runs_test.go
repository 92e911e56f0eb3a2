package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shoggo/shoggo/train"
)

// TestMain lets a test re-exec this binary as the shoggo CLI: with
// SHOGGO_CLI set, the arguments after "--" are a shoggo command line.
func TestMain(m *testing.M) {
	if os.Getenv("SHOGGO_CLI") != "" {
		args := os.Args
		for i, a := range args {
			if a == "--" {
				args = args[i+1:]
				break
			}
		}
		c, ok := commands[args[0]]
		if !ok {
			fmt.Fprintln(os.Stderr, "unknown command", args[0])
			os.Exit(2)
		}
		os.Exit(exitCode(args[0], c.run(args[1:])))
	}
	os.Exit(m.Run())
}

// cliCommand is the shoggo CLI (this test binary re-executed) with args.
func cliCommand(args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], append([]string{"-test.run=^$", "--"}, args...)...)
	cmd.Env = append(os.Environ(), "SHOGGO_CLI=1")
	return cmd
}

var tinyPretrain = []string{"--batch", "2", "--seq", "16", "--eval-every", "1000", "--eval-batches", "1", "--sample-every", "1000",
	"--save-every", "1000", "--warmup", "1", "--vocab-size", "300", "--threads", "1", "--preset", "tiny-llama"}

// An output folder belongs to one run: rerunning into a finished run
// without a flag is refused naming --resume and --overwrite and changes
// nothing; --overwrite replaces it; a run holding the lock makes a second
// one fail at once.
func TestRunFolderBelongsToOneRun(t *testing.T) {
	out := filepath.Join(t.TempDir(), "run")
	args := append([]string{"--out", out, "--steps", "2"}, tinyPretrain...)
	if err := runPretrain(args); err != nil {
		t.Fatal(err)
	}
	metrics, _ := os.ReadFile(filepath.Join(out, "metrics.jsonl"))
	// every output is readable by others (0644), as files written by tools should be
	filepath.WalkDir(out, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if info, err := d.Info(); err == nil && info.Mode().Perm()&0o044 != 0o044 && d.Name() != train.LockFile {
				t.Errorf("%s has mode %v", p, info.Mode().Perm())
			}
		}
		return nil
	})
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"pretrain again", args, "--overwrite"},
		{"pretrain resume+overwrite", append([]string{"--resume", "--overwrite"}, args...), "exclude"},
		{"sft into a pretrain run", []string{"--out", out, "--preset", "tiny-llama", "--steps", "1"}, "--resume to continue"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			run := runPretrain
			if strings.HasPrefix(tc.name, "sft") {
				run = runSFT
			}
			err := run(tc.args)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error mentioning %q", err, tc.want)
			}
			if now, _ := os.ReadFile(filepath.Join(out, "metrics.jsonl")); string(now) != string(metrics) {
				t.Fatal("refused run changed metrics.jsonl")
			}
		})
	}
	if err := runPretrain(append([]string{"--overwrite"}, args...)); err != nil {
		t.Fatal(err)
	}
	again := readMetrics(t, filepath.Join(out, "metrics.jsonl"))
	if n := strings.Count(string(metrics), "\n"); len(again) != n {
		t.Errorf("--overwrite: %d metrics lines, the first run wrote %d", len(again), n)
	}
	l, err := train.LockRun(out)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	t0 := time.Now()
	err = runPretrain(append([]string{"--resume"}, args...))
	if err == nil || !strings.Contains(err.Error(), "in use") || time.Since(t0) > 2*time.Second {
		t.Fatalf("concurrent run: %v after %v", err, time.Since(t0))
	}
}

// SIGTERM (what job schedulers send) and SIGINT stop a training process
// cleanly: exit 0, a checkpoint, summary.json marked interrupted, the lock
// released; --resume then finishes the run.
func TestSignalSavesCheckpoint(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "run")
			args := append([]string{"pretrain", "--out", out, "--steps", "100000"}, tinyPretrain...)
			cmd := cliCommand(args...)
			var stderr strings.Builder
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(60 * time.Second)
			for {
				if b, _ := os.ReadFile(filepath.Join(out, "metrics.jsonl")); strings.Count(string(b), "\n") >= 3 {
					break
				}
				if time.Now().After(deadline) {
					cmd.Process.Kill()
					t.Fatalf("no progress: %s", stderr.String())
				}
				time.Sleep(20 * time.Millisecond)
			}
			cmd.Process.Signal(sig)
			if err := cmd.Wait(); err != nil {
				t.Fatalf("after %v: %v\n%s", sig, err, stderr.String())
			}
			b, err := os.ReadFile(filepath.Join(out, "summary.json"))
			if err != nil {
				t.Fatal(err)
			}
			var s train.Summary
			if err := json.Unmarshal(b, &s); err != nil {
				t.Fatal(err)
			}
			if !s.Interrupted || s.Steps < 3 || s.Checkpoint == "" {
				t.Fatalf("summary after %v: %+v", sig, s)
			}
			if _, err := os.Stat(s.Checkpoint); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(filepath.Join(out, train.LockFile)); !os.IsNotExist(err) {
				t.Fatalf("lock left behind: %v", err)
			}
			more := fmt.Sprint(s.Steps + 2)
			if err := runPretrain(append([]string{"--out", out, "--resume", "--steps", more}, tinyPretrain...)); err != nil {
				t.Fatal(err)
			}
		})
	}
}
