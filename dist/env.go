package dist

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
)

// MPIPackage is the Debian/Ubuntu package set that provides libmpi.so.40 and
// mpirun (named in errors).
const MPIPackage = "the apt package openmpi-bin (apt-get install openmpi-bin; it pulls in libopenmpi3, which holds libmpi.so.40 on Debian 12)"

// Launcher names how the process was started.
type Launcher string

const (
	// NoLauncher: a plain process, one rank.
	NoLauncher Launcher = "none"
	// MPIRun: Open MPI's mpirun/mpiexec/prterun (OMPI_COMM_WORLD_*).
	MPIRun Launcher = "mpirun"
	// SRun: Slurm's srun (with --mpi=pmix Open MPI wires up through PMIx).
	SRun Launcher = "srun"
	// TorchRun: a torchrun-style environment (RANK, WORLD_SIZE, LOCAL_RANK,
	// MASTER_ADDR, MASTER_PORT), used by the NCCL path.
	TorchRun Launcher = "torchrun"
)

// Launch is what the environment says about this process's place in a job.
// Fields the launcher does not provide are -1 (sizes, ranks) or empty.
type Launch struct {
	Launcher             Launcher
	Rank, Size           int
	LocalRank, LocalSize int
	MasterAddr           string // torchrun: the rendezvous host
	MasterPort           int    // torchrun: the rendezvous port
}

// Distributed reports whether more than one rank was requested.
func (l Launch) Distributed() bool { return l.Size > 1 }

// DetectLaunch reads the launcher's environment variables:
//   - mpirun (Open MPI): OMPI_COMM_WORLD_RANK, OMPI_COMM_WORLD_SIZE,
//     OMPI_COMM_WORLD_LOCAL_RANK, OMPI_COMM_WORLD_LOCAL_SIZE;
//   - srun: PMIX_RANK (srun --mpi=pmix) or a job step's SLURM_PROCID with
//     SLURM_STEP_ID; SLURM_NTASKS, SLURM_LOCALID; Open MPI itself takes its
//     ranks from PMIx at MPI_Init;
//   - torchrun: RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR,
//     MASTER_PORT.
//
// The first launcher found in that order wins.
func DetectLaunch() Launch { return detectLaunch(os.Getenv) }

func detectLaunch(getenv func(string) string) Launch {
	num := func(name string) int {
		v, err := strconv.Atoi(strings.TrimSpace(getenv(name)))
		if err != nil {
			return -1
		}
		return v
	}
	l := Launch{Launcher: NoLauncher, Rank: 0, Size: 1, LocalRank: 0, LocalSize: 1, MasterPort: -1}
	switch {
	case getenv("OMPI_COMM_WORLD_SIZE") != "":
		l = Launch{Launcher: MPIRun, Rank: num("OMPI_COMM_WORLD_RANK"), Size: num("OMPI_COMM_WORLD_SIZE"),
			LocalRank: num("OMPI_COMM_WORLD_LOCAL_RANK"), LocalSize: num("OMPI_COMM_WORLD_LOCAL_SIZE"), MasterPort: -1}
	case getenv("PMIX_RANK") != "" || (getenv("SLURM_STEP_ID") != "" && getenv("SLURM_PROCID") != "" && num("SLURM_NTASKS") > 1):
		r := num("PMIX_RANK")
		if r < 0 {
			r = num("SLURM_PROCID")
		}
		l = Launch{Launcher: SRun, Rank: r, Size: num("SLURM_NTASKS"), LocalRank: num("SLURM_LOCALID"), LocalSize: -1, MasterPort: -1}
	case getenv("WORLD_SIZE") != "" && getenv("RANK") != "":
		l = Launch{Launcher: TorchRun, Rank: num("RANK"), Size: num("WORLD_SIZE"), LocalRank: num("LOCAL_RANK"),
			LocalSize: num("LOCAL_WORLD_SIZE"), MasterAddr: getenv("MASTER_ADDR"), MasterPort: num("MASTER_PORT")}
	}
	return l
}

// FromEnv returns the communicator the launcher asked for: a single-process
// Comm when there is no launcher (or a world of one), Open MPI's world under
// mpirun or srun. When ranks were requested but Open MPI cannot be opened,
// the error names the library and the package to install; a torchrun-style
// environment with several ranks is an error too (CPU data parallelism
// runs on Open MPI: launch with mpirun; torchrun-style variables serve
// the NCCL bootstrap, NewNCCL).
func FromEnv() (Comm, error) {
	l := DetectLaunch()
	switch l.Launcher {
	case NoLauncher:
		return Single(), nil
	case TorchRun:
		if l.Size == 1 {
			return Single(), nil
		}
		return nil, fmt.Errorf("dist: a torchrun-style launch asked for %d ranks (WORLD_SIZE), but shoggo's CPU data parallelism runs on Open MPI: start the ranks with mpirun -np %d (torchrun-style variables are read by the NCCL bootstrap)", l.Size, l.Size)
	}
	c, err := OpenMPI()
	if err != nil {
		return nil, fmt.Errorf("dist: %s asked for %d ranks but Open MPI cannot be used: %w", l.Launcher, l.Size, err)
	}
	if l.Size > 0 && c.Size() != l.Size {
		n := c.Size()
		c.Close()
		hint := ""
		if l.Launcher == SRun {
			hint = " (run srun --mpi=pmix so that Open MPI finds its peers)"
		}
		return nil, fmt.Errorf("dist: %s started %d ranks but MPI_COMM_WORLD has %d%s", l.Launcher, l.Size, n, hint)
	}
	return c, nil
}

// DefaultThreads is the compute thread count for one of localSize ranks on
// this machine: the online cores divided among the local ranks, and no more
// than the cores this process may run on (mpirun binds each of 2 ranks to
// one core by default; pass --bind-to none to let the ranks share). At
// least 1.
func DefaultThreads(localSize int) int {
	if localSize < 1 {
		localSize = 1
	}
	aff := runtime.NumCPU() // the affinity mask at start-up
	online := onlineCPUs()
	if online < aff {
		online = aff
	}
	return max(1, min(aff, online/localSize))
}

// onlineCPUs counts /sys/devices/system/cpu/online ("0-3,8-11"), or returns
// runtime.NumCPU() where that file does not exist.
func onlineCPUs() int {
	b, err := os.ReadFile("/sys/devices/system/cpu/online")
	if err != nil {
		return runtime.NumCPU()
	}
	n, ok := countCPUList(strings.TrimSpace(string(b)))
	if !ok {
		return runtime.NumCPU()
	}
	return n
}

func countCPUList(s string) (int, bool) {
	n := 0
	for _, part := range strings.Split(s, ",") {
		if part == "" {
			continue
		}
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil {
			return 0, false
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil || b < a {
				return 0, false
			}
		}
		n += b - a + 1
	}
	return n, n > 0
}
