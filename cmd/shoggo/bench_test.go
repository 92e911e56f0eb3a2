package main

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/shoggo/shoggo/backend/cpu/gemm"
	"github.com/shoggo/shoggo/internal/parallel"
)

// The bench command runs end to end on a small preset and writes a profile.
func TestBenchSmall(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	defer gemm.SetThreads(0)
	defer parallel.SetThreads(0)
	prof := filepath.Join(t.TempDir(), "cpu.prof")
	err := runBench([]string{"--preset", "shoggo-4m", "--batch", "2", "--seq", "16", "--steps", "2", "--warmup", "1",
		"--threads", "2", "--gemm-time", "0.001", "--cpuprofile", prof})
	if err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(prof); err != nil || st.Size() == 0 {
		t.Errorf("no profile written: %v", err)
	}
	if err := runBench([]string{"--preset", "nope"}); err == nil {
		t.Error("unknown preset accepted")
	}
}
