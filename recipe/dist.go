package recipe

import (
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"

	"github.com/shoggo/shoggo/dist"
	"github.com/shoggo/shoggo/model"
	"github.com/shoggo/shoggo/train"
)

// Data-parallel runs. Every training recipe takes the communicator from
// its config (train.Options.Comm; `shoggo CMD` under mpirun sets it from
// dist.FromEnv). With several ranks, every rank runs the recipe with the
// same config: each builds the same seeded data and wraps it in
// train.ShardRows (the batch setting is per rank: N ranks × --batch b
// train like one process with --batch N·b), rank 0 alone claims and writes
// the output folder (tokenizer, data, metrics, checkpoints, models) while
// the others wait at a barrier and read what it wrote, and evaluation is
// split over the ranks and reduced (held-out losses by rows, exact-match
// questions by contiguous blocks).

// DistHelp is the flag help of the data-parallel settings, by yaml key.
var DistHelp = map[string]string{
	"zero":       "ZeRO stage under mpirun: 1 shards the AdamW moments over the ranks (0: every rank holds all)",
	"bucket_mb":  "gradient all-reduce bucket size in MiB under mpirun (0: 25, PyTorch's)",
	"no_overlap": "under mpirun, all-reduce the gradients after backward instead of while it runs",
}

// DistFlags defines --zero, --bucket-mb and --no-overlap over o.
func DistFlags(fs *flag.FlagSet, o *train.Options) {
	fs.IntVar(&o.Zero, "zero", o.Zero, DistHelp["zero"])
	fs.Float64Var(&o.BucketMB, "bucket-mb", o.BucketMB, DistHelp["bucket_mb"])
	fs.BoolVar(&o.NoOverlap, "no-overlap", o.NoOverlap, DistHelp["no_overlap"])
}

func init() {
	for k, v := range DistHelp {
		AlignHelp[k], DPOHelp[k], RLHelp[k] = v, v, v
	}
}

// ranks returns the rank and world size of c (0 and 1 without one).
func ranks(c dist.Comm) (rank, size int) {
	if c == nil {
		return 0, 1
	}
	return c.Rank(), c.Size()
}

// lead reports whether this process writes the run's files.
func lead(c dist.Comm) bool { r, _ := ranks(c); return r == 0 }

// rankLog is log on rank 0 and io.Discard elsewhere.
func rankLog(c dist.Comm, log io.Writer) io.Writer {
	if lead(c) {
		return log
	}
	return io.Discard
}

// claimRun takes out's run lock on rank 0 (nil elsewhere: only rank 0
// writes into out).
func claimRun(c dist.Comm, out string, resume, overwrite bool, extra ...string) (*train.RunLock, error) {
	if !lead(c) {
		return nil, nil
	}
	return train.ClaimRun(out, resume, overwrite, extra...)
}

// rank0First runs f on rank 0, then on the other ranks once rank 0 is done
// (it writes a file the others read). An error on rank 0 is returned
// there; the others then fail in the barrier (or are ended by mpirun).
func rank0First(c dist.Comm, f func() error) error {
	if _, n := ranks(c); n <= 1 {
		return f()
	}
	if lead(c) {
		if err := f(); err != nil {
			return err
		}
		return c.Barrier()
	}
	if err := c.Barrier(); err != nil {
		return fmt.Errorf("waiting for rank 0: %w", err)
	}
	return f()
}

// perRank checks that a global count splits evenly over the ranks.
func perRank(c dist.Comm, what string, global int) error {
	if _, n := ranks(c); n > 1 && global%n != 0 {
		return fmt.Errorf("%s %d does not split evenly over %d ranks", what, global, n)
	}
	return nil
}

// rankSeed is seed on rank 0 and a different seed on every other rank (for
// per-rank random streams such as dropout masks).
func rankSeed(c dist.Comm, seed uint64) uint64 {
	r, _ := ranks(c)
	if r == 0 {
		return seed
	}
	return seed ^ uint64(r)*0x9e3779b97f4a7c15
}

// exactMatchOn scores set split over the ranks in contiguous blocks
// (dist.ShardRange) with score (the fraction right of its part) and
// returns the fraction right over the whole set on every rank.
func exactMatchOn[T any](c dist.Comm, set []T, score func([]T) (float64, error)) (float64, error) {
	r, n := ranks(c)
	if n <= 1 {
		return score(set)
	}
	lo, hi := dist.ShardRange(len(set), r, n)
	var right float64
	if hi > lo {
		f, err := score(set[lo:hi])
		if err != nil {
			return 0, err
		}
		right = math.Round(f * float64(hi-lo))
	}
	v := []float64{right, float64(hi - lo)}
	if err := c.AllReduceF64(v, dist.Sum); err != nil {
		return 0, err
	}
	if v[1] == 0 {
		return 0, nil
	}
	return v[0] / v[1], nil
}

// JoinRanks is how a command joins its job: when a launcher (mpirun, srun)
// started this process as one of several ranks it opens the communicator
// (nil for a single process; an error naming the library when ranks were
// requested but Open MPI is missing), sets the compute threads (threads >
// 0: those; under a launcher the cores per local rank,
// dist.DefaultThreads; else all), and returns where the command prints
// (stderr on rank 0, nowhere on the other ranks).
func JoinRanks(threads int) (dist.Comm, io.Writer, error) {
	var c dist.Comm
	if dist.DetectLaunch().Distributed() {
		var err error
		if c, err = dist.FromEnv(); err != nil {
			return nil, nil, err
		}
		if threads <= 0 {
			threads = dist.DefaultThreads(c.LocalSize())
		}
	}
	if threads > 0 {
		runtime.GOMAXPROCS(threads)
	}
	if c != nil && c.Rank() != 0 {
		return c, io.Discard, nil
	}
	return c, os.Stderr, nil
}

// Join is JoinRanks setting o.Comm (the recipe's communicator).
func Join(o *train.Options, threads int) (io.Writer, error) {
	c, log, err := JoinRanks(threads)
	o.Comm = c
	return log, err
}

// LeaveRanks closes c (MPI_Finalize) after a command that succeeded and
// returns err. After an error it leaves c open: the process exits non-zero
// and the launcher ends the other ranks (finalising could wait for them
// forever).
func LeaveRanks(c dist.Comm, err error) error {
	if c == nil || err != nil {
		return err
	}
	return c.Close()
}

// localRows returns this rank's block of rows of each batch
// (train.BatchRows: global batches of Batch·N rows split evenly); all of
// them for a single process.
func localRows(c dist.Comm, batches []*model.Batch) ([]*model.Batch, error) {
	r, n := ranks(c)
	if n <= 1 {
		return batches, nil
	}
	out := make([]*model.Batch, len(batches))
	for i, b := range batches {
		var err error
		if out[i], err = train.BatchRows(b, r, n); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// sumOn all-reduces v (Sum) over c's ranks (v itself for one process).
func sumOn(c dist.Comm, v ...float64) ([]float64, error) {
	if _, n := ranks(c); n <= 1 {
		return v, nil
	}
	return v, c.AllReduceF64(v, dist.Sum)
}

// mkOut creates out on rank 0.
func mkOut(c dist.Comm, out string) error {
	if !lead(c) {
		return nil
	}
	return os.MkdirAll(out, 0o755)
}
