// Package dist is shoggo's data-parallel layer: a communicator interface
// (Comm) with three implementations — Open MPI (CPU processes and machines,
// libmpi.so.40 opened at run time through purego, no cgo), an in-process one
// (goroutine ranks, for unit tests and the scaling simulation), and NCCL
// bindings for GPUs (libnccl.so.2, bootstrap through MPI or a small TCP
// rendezvous) — plus launch detection (mpirun, srun, torchrun-style
// environments), gradient buckets and deterministic data sharding.
//
// Collective calls follow MPI's rule: every rank calls the same collectives
// in the same order with matching lengths. A Comm is not meant to be used
// from several goroutines at once (the order of concurrent calls would
// differ between ranks); one goroutine per rank issues its collectives, and
// the non-blocking IAllReduce lets communication run while it computes.
package dist

import (
	"fmt"
)

// Op is a reduction.
type Op int

const (
	// Sum adds the ranks' values.
	Sum Op = iota
	// Avg is Sum followed by a scale by 1/Size() on every rank (the same
	// float32/float64 multiply in every implementation, so results agree).
	Avg
	// Max takes the element-wise maximum.
	Max
	// Min takes the element-wise minimum.
	Min
)

func (o Op) String() string {
	switch o {
	case Sum:
		return "sum"
	case Avg:
		return "avg"
	case Max:
		return "max"
	case Min:
		return "min"
	}
	return fmt.Sprintf("Op(%d)", int(o))
}

// Comm is a communicator over Size() ranks. All methods except Rank, Size,
// LocalRank and LocalSize are collective: every rank must call them in the
// same order. Buffers are reduced in place.
type Comm interface {
	// Rank is this process's index in [0, Size()).
	Rank() int
	// Size is the number of ranks.
	Size() int
	// LocalRank is the index among the ranks on this machine (selects the
	// GPU; decides which rank prints per node).
	LocalRank() int
	// LocalSize is the number of ranks on this machine.
	LocalSize() int

	// AllReduce reduces buf over all ranks; every rank gets the result.
	AllReduce(buf []float32, op Op) error
	// AllReduceF64 is AllReduce on float64 (token counts, checksums, losses).
	AllReduceF64(buf []float64, op Op) error
	// Broadcast copies root's buf into every rank's buf.
	Broadcast(buf []float32, root int) error
	// BroadcastBytes copies root's buf into every rank's buf (ids, configs).
	BroadcastBytes(buf []byte, root int) error
	// Barrier returns when every rank has entered it.
	Barrier() error
	// AllGather writes rank r's send into recv[r*len(send):(r+1)*len(send)]
	// on every rank; len(recv) must be Size()*len(send).
	AllGather(send, recv []float32) error
	// ReduceScatter reduces send (Size()*len(recv) elements) over the ranks
	// and writes block Rank() of the result into recv.
	ReduceScatter(send, recv []float32, op Op) error
	// IAllReduce starts AllReduce(buf, op) and returns at once. buf must not
	// be touched until the request's Wait returns. Requests complete in any
	// order; the collective's position in the rank's call order is fixed
	// when IAllReduce is called.
	IAllReduce(buf []float32, op Op) Request
	// Close releases the communicator (MPI_Finalize for Open MPI, which
	// cannot be initialised again in the same process). Pending requests
	// fail.
	Close() error
}

// Request is a pending non-blocking operation.
type Request interface {
	// Wait blocks until the operation completes and returns its error.
	// Calling it again returns the same error.
	Wait() error
}

// Error is a failed communicator call: which call, in which library, and
// the library's own code and message.
type Error struct {
	Lib  string // "MPI", "NCCL", "local", "rendezvous"
	Call string // e.g. "MPI_Allreduce", "ncclCommInitRank", "AllGather"
	Code int    // the library's error code (0 when none)
	Msg  string // the library's error string, or a description
}

func (e *Error) Error() string {
	if e.Code != 0 {
		return fmt.Sprintf("dist: %s: %s (%s error %d)", e.Call, e.Msg, e.Lib, e.Code)
	}
	return fmt.Sprintf("dist: %s: %s", e.Call, e.Msg)
}

// errRequest is a Request that failed (or succeeded) before it started.
type doneRequest struct{ err error }

func (r doneRequest) Wait() error { return r.err }

// scale32 multiplies buf by 1/n (the Avg step shared by every implementation).
func scale32(buf []float32, n int) {
	if n == 1 {
		return
	}
	s := 1 / float32(n)
	for i := range buf {
		buf[i] *= s
	}
}

func scale64(buf []float64, n int) {
	if n == 1 {
		return
	}
	s := 1 / float64(n)
	for i := range buf {
		buf[i] *= s
	}
}

func checkOp(call string, op Op) error {
	if op < Sum || op > Min {
		return &Error{Lib: "dist", Call: call, Msg: fmt.Sprintf("unknown reduction %v", op)}
	}
	return nil
}

func checkRoot(call string, root, size int) error {
	if root < 0 || root >= size {
		return &Error{Lib: "dist", Call: call, Msg: fmt.Sprintf("root %d outside [0, %d)", root, size)}
	}
	return nil
}

func checkGather(call string, send, recv, size int) error {
	if recv != send*size {
		return &Error{Lib: "dist", Call: call, Msg: fmt.Sprintf("%d elements received for %d sent by %d ranks (want %d)", recv, send, size, send*size)}
	}
	return nil
}
