package train

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestMain lets tests re-exec this binary as a helper process.
func TestMain(m *testing.M) {
	if dir := os.Getenv("SHOGGO_HOLD_LOCK"); dir != "" {
		if _, err := LockRun(dir); err != nil {
			os.Stderr.WriteString(err.Error())
			os.Exit(3)
		}
		os.Stdout.WriteString("locked\n")
		time.Sleep(time.Minute)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// A run folder's lock: a second taker fails at once naming the holder;
// the lock of a killed process is stale and taken over; Release frees it.
func TestRunLockAcrossProcesses(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "SHOGGO_HOLD_LOCK="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 7)
	if _, err := out.Read(buf); err != nil || string(buf) != "locked\n" {
		t.Fatalf("helper: %q %v", buf, err)
	}
	t0 := time.Now()
	_, err = LockRun(dir)
	if err == nil || !strings.Contains(err.Error(), "in use") || !strings.Contains(err.Error(), "pid") {
		t.Fatalf("second taker: %v", err)
	}
	if time.Since(t0) > time.Second {
		t.Errorf("second taker waited %v instead of failing at once", time.Since(t0))
	}
	cmd.Process.Kill()
	cmd.Wait()
	l, err := LockRun(dir)
	if err != nil {
		t.Fatalf("after the holder was killed: %v", err)
	}
	if _, err := LockRun(dir); err == nil {
		t.Fatal("second lock in the same process accepted")
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, LockFile)); !os.IsNotExist(err) {
		t.Fatalf("lock file left after Release: %v", err)
	}
}

// ClaimRun: an empty folder or one with unrelated files is taken; a run
// folder needs --resume (kept) or --overwrite (outputs removed, unrelated
// files kept); both flags at once are an error.
func TestClaimRun(t *testing.T) {
	mk := func(t *testing.T, run bool) string {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("mine"), 0o644)
		if run {
			os.MkdirAll(filepath.Join(dir, "checkpoints", "step-00000003"), 0o755)
			os.MkdirAll(filepath.Join(dir, "final"), 0o755)
			os.WriteFile(filepath.Join(dir, "metrics.jsonl"), []byte(`{"step":1}`+"\n"), 0o644)
		}
		return dir
	}
	for _, tc := range []struct {
		name                   string
		run, resume, overwrite bool
		wantErr                string
		gone, kept             []string
	}{
		{"empty", false, false, false, "", nil, []string{"notes.txt"}},
		{"run refused", true, false, false, "--resume to continue it or --overwrite", nil, []string{"checkpoints", "metrics.jsonl"}},
		{"resume", true, true, false, "", nil, []string{"checkpoints", "metrics.jsonl", "final"}},
		{"overwrite", true, false, true, "", []string{"checkpoints", "metrics.jsonl", "final"}, []string{"notes.txt"}},
		{"both", true, true, true, "exclude each other", nil, []string{"checkpoints"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := mk(t, tc.run)
			l, err := ClaimRun(dir, tc.resume, tc.overwrite, "final", "../escape")
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %v, want %q", err, tc.wantErr)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			l.Release()
			for _, n := range tc.gone {
				if _, err := os.Stat(filepath.Join(dir, n)); !os.IsNotExist(err) {
					t.Errorf("%s still there", n)
				}
			}
			for _, n := range tc.kept {
				if _, err := os.Stat(filepath.Join(dir, n)); err != nil {
					t.Errorf("%s removed: %v", n, err)
				}
			}
			if _, err := os.Stat(filepath.Join(dir, LockFile)); !os.IsNotExist(err) {
				t.Errorf("lock left behind")
			}
		})
	}
}
