package dist

import (
	"runtime"
	"strings"
	"testing"
)

func TestDistDetectLaunch(t *testing.T) {
	cases := []struct {
		name string
		env  map[string]string
		want Launch
	}{
		{"none", map[string]string{"SLURM_PROCID": "0", "SLURM_NTASKS": "1"},
			Launch{Launcher: NoLauncher, Rank: 0, Size: 1, LocalRank: 0, LocalSize: 1, MasterPort: -1}},
		{"mpirun", map[string]string{"OMPI_COMM_WORLD_RANK": "3", "OMPI_COMM_WORLD_SIZE": "4",
			"OMPI_COMM_WORLD_LOCAL_RANK": "1", "OMPI_COMM_WORLD_LOCAL_SIZE": "2", "RANK": "9", "WORLD_SIZE": "10"},
			Launch{Launcher: MPIRun, Rank: 3, Size: 4, LocalRank: 1, LocalSize: 2, MasterPort: -1}},
		{"srun-pmix", map[string]string{"PMIX_RANK": "5", "SLURM_PROCID": "5", "SLURM_NTASKS": "8", "SLURM_LOCALID": "1"},
			Launch{Launcher: SRun, Rank: 5, Size: 8, LocalRank: 1, LocalSize: -1, MasterPort: -1}},
		{"srun-step", map[string]string{"SLURM_STEP_ID": "0", "SLURM_PROCID": "2", "SLURM_NTASKS": "4", "SLURM_LOCALID": "0"},
			Launch{Launcher: SRun, Rank: 2, Size: 4, LocalRank: 0, LocalSize: -1, MasterPort: -1}},
		{"torchrun", map[string]string{"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2",
			"MASTER_ADDR": "10.0.0.1", "MASTER_PORT": "29500"},
			Launch{Launcher: TorchRun, Rank: 1, Size: 2, LocalRank: 1, LocalSize: 2, MasterAddr: "10.0.0.1", MasterPort: 29500}},
	}
	for _, c := range cases {
		got := detectLaunch(func(k string) string { return c.env[k] })
		if got != c.want {
			t.Errorf("%s: %+v, want %+v", c.name, got, c.want)
		}
	}
}

func TestDistFromEnv(t *testing.T) {
	for _, k := range []string{"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "SLURM_STEP_ID", "WORLD_SIZE", "RANK"} {
		t.Setenv(k, "")
	}
	c, err := FromEnv()
	if err != nil || c.Size() != 1 {
		t.Fatalf("no launcher: %v, %v", c, err)
	}
	t.Setenv("RANK", "0")
	t.Setenv("WORLD_SIZE", "2")
	if _, err := FromEnv(); err == nil || !strings.Contains(err.Error(), "mpirun -np 2") {
		t.Fatalf("torchrun with 2 ranks: %v", err)
	}
	// Ranks requested while libmpi is missing: TestDistMPIMissingLibrary.
}

func TestDistDefaultThreads(t *testing.T) {
	n := runtime.NumCPU()
	if got := DefaultThreads(1); got != min(n, onlineCPUs()) && got != n {
		t.Fatalf("DefaultThreads(1) = %d with %d CPUs", got, n)
	}
	if got := DefaultThreads(1 << 20); got != 1 {
		t.Fatalf("DefaultThreads(huge) = %d", got)
	}
	for _, c := range []struct {
		s string
		n int
	}{{"0-3", 4}, {"0", 1}, {"0-3,8-11", 8}, {"0,2,4", 3}} {
		if got, ok := countCPUList(c.s); !ok || got != c.n {
			t.Fatalf("countCPUList(%q) = %d %v", c.s, got, ok)
		}
	}
	if _, ok := countCPUList("x"); ok {
		t.Fatal("bad list accepted")
	}
}
