//go:build darwin || freebsd || linux || netbsd

package dist

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strings"
	"time"
	"unsafe"

	"github.com/ebitengine/purego"
)

// NCCL through purego (libnccl.so.2). The functions take device pointers
// and a CUDA stream (uintptr: CUDA memory is not Go memory) and only enqueue
// work on the stream, like NCCL itself; the CUDA backend owns memory,
// streams and synchronisation. ncclCommInitRank takes the 128-byte
// ncclUniqueId BY VALUE: on amd64 and arm64 a struct that large is passed
// in memory (amd64: on the stack after the register arguments; arm64: as a
// pointer to a caller copy), so the call is made with purego.SyscallN with
// the id laid out exactly as the C ABI wants it (nccl_abi_*.go).

// NCCLLibraries are the names tried when opening NCCL; SHOGGO_NCCL_LIB,
// when set, is tried alone.
var NCCLLibraries = []string{"libnccl.so.2", "libnccl.so"}

// NCCLPackage names where libnccl.so.2 comes from (named in errors).
const NCCLPackage = "NVIDIA's libnccl2 package (CUDA apt repository) or the nvidia-nccl-cu12 wheel's lib/ directory on LD_LIBRARY_PATH"

// NCCLUniqueID is ncclUniqueId (NCCL_UNIQUE_ID_BYTES = 128).
type NCCLUniqueID [128]byte

// NCCLDataType is ncclDataType_t.
type NCCLDataType int32

const (
	NCCLInt8     NCCLDataType = 0
	NCCLUint8    NCCLDataType = 1
	NCCLInt32    NCCLDataType = 2
	NCCLUint32   NCCLDataType = 3
	NCCLInt64    NCCLDataType = 4
	NCCLUint64   NCCLDataType = 5
	NCCLFloat16  NCCLDataType = 6
	NCCLFloat32  NCCLDataType = 7
	NCCLFloat64  NCCLDataType = 8
	NCCLBfloat16 NCCLDataType = 9
)

// NCCLRedOp is ncclRedOp_t.
type NCCLRedOp int32

const (
	NCCLSum  NCCLRedOp = 0
	NCCLProd NCCLRedOp = 1
	NCCLMax  NCCLRedOp = 2
	NCCLMin  NCCLRedOp = 3
	NCCLAvg  NCCLRedOp = 4 // NCCL >= 2.10
)

// NCCLRedOpOf maps a dist Op to NCCL's (Avg is NCCL's own average).
func NCCLRedOpOf(op Op) NCCLRedOp {
	switch op {
	case Avg:
		return NCCLAvg
	case Max:
		return NCCLMax
	case Min:
		return NCCLMin
	}
	return NCCLSum
}

// NCCL is an opened libnccl.
type NCCL struct {
	Path    string
	Version int // ncclGetVersion: e.g. 22105 for 2.21.5

	getUniqueID    func(id *NCCLUniqueID) int32
	commInitRank   uintptr // called through SyscallN (struct by value)
	allReduce      func(send, recv, count uintptr, dt, op int32, comm, stream uintptr) int32
	broadcast      func(send, recv, count uintptr, dt, root int32, comm, stream uintptr) int32
	allGather      func(send, recv, count uintptr, dt int32, comm, stream uintptr) int32
	reduceScatter  func(send, recv, count uintptr, dt, op int32, comm, stream uintptr) int32
	commDestroy    func(comm uintptr) int32
	commAbort      func(comm uintptr) int32
	groupStart     func() int32
	groupEnd       func() int32
	getErrorString func(code int32) string
	getLastError   func(comm uintptr) string // nil before NCCL 2.13
	getVersion     func(v *int32) int32
}

// LoadNCCL opens NCCL: path, or SHOGGO_NCCL_LIB, or NCCLLibraries. The
// error names the library and where it comes from.
func LoadNCCL(path string) (*NCCL, error) {
	names := NCCLLibraries
	if path != "" {
		names = []string{path}
	} else if p := os.Getenv("SHOGGO_NCCL_LIB"); p != "" {
		names = []string{p}
	}
	var h uintptr
	var errs []string
	for _, n := range names {
		var err error
		if h, err = purego.Dlopen(n, purego.RTLD_NOW|purego.RTLD_GLOBAL); err == nil {
			path = n
			break
		}
		errs = append(errs, err.Error())
	}
	if h == 0 {
		return nil, &Error{Lib: "NCCL", Call: "dlopen", Msg: fmt.Sprintf("cannot open NCCL (%s): %s; install %s",
			strings.Join(names, ", "), strings.Join(errs, "; "), NCCLPackage)}
	}
	l := &NCCL{Path: path}
	var missing []string
	sym := func(name string, required bool) uintptr {
		s, err := purego.Dlsym(h, name)
		if err != nil || s == 0 {
			if required {
				missing = append(missing, name)
			}
			return 0
		}
		return s
	}
	fn := func(ptr any, name string, required bool) {
		if s := sym(name, required); s != 0 {
			purego.RegisterFunc(ptr, s)
		}
	}
	fn(&l.getUniqueID, "ncclGetUniqueId", true)
	l.commInitRank = sym("ncclCommInitRank", true)
	fn(&l.allReduce, "ncclAllReduce", true)
	fn(&l.broadcast, "ncclBroadcast", true)
	fn(&l.allGather, "ncclAllGather", true)
	fn(&l.reduceScatter, "ncclReduceScatter", true)
	fn(&l.commDestroy, "ncclCommDestroy", true)
	fn(&l.commAbort, "ncclCommAbort", false)
	fn(&l.groupStart, "ncclGroupStart", false)
	fn(&l.groupEnd, "ncclGroupEnd", false)
	fn(&l.getErrorString, "ncclGetErrorString", true)
	fn(&l.getLastError, "ncclGetLastError", false)
	fn(&l.getVersion, "ncclGetVersion", true)
	if len(missing) > 0 {
		return nil, &Error{Lib: "NCCL", Call: "dlsym", Msg: fmt.Sprintf("%s lacks %s", path, strings.Join(missing, ", "))}
	}
	var v int32
	if l.getVersion(&v) == 0 {
		l.Version = int(v)
	}
	return l, nil
}

func (l *NCCL) err(call string, code int32, comm uintptr) error {
	if code == 0 {
		return nil
	}
	msg := l.getErrorString(code)
	if l.getLastError != nil {
		if last := l.getLastError(comm); last != "" {
			msg += ": " + last
		}
	}
	return &Error{Lib: "NCCL", Call: call, Code: int(code), Msg: msg}
}

// UniqueID is ncclGetUniqueId (rank 0 calls it and shares the result).
func (l *NCCL) UniqueID() (NCCLUniqueID, error) {
	var id NCCLUniqueID
	code := l.getUniqueID(&id)
	return id, l.err("ncclGetUniqueId", code, 0)
}

// NCCLComm is one rank's NCCL communicator.
type NCCLComm struct {
	lib        *NCCL
	comm       uintptr
	rank, size int
}

// InitRank is ncclCommInitRank. It uses the calling OS thread's current
// CUDA device, so it runs locked to the thread: before, it calls
// beforeInit (e.g. cudaSetDevice(localRank)) on that same thread when not nil.
func (l *NCCL) InitRank(size int, id NCCLUniqueID, rank int, beforeInit func() error) (*NCCLComm, error) {
	if size < 1 || rank < 0 || rank >= size {
		return nil, &Error{Lib: "NCCL", Call: "ncclCommInitRank", Msg: fmt.Sprintf("rank %d of %d", rank, size)}
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if beforeInit != nil {
		if err := beforeInit(); err != nil {
			return nil, err
		}
	}
	var comm uintptr
	code := initRankCall(l.commInitRank, &comm, int32(size), &id, int32(rank))
	runtime.KeepAlive(&comm)
	if code != 0 {
		return nil, l.err("ncclCommInitRank", code, 0)
	}
	return &NCCLComm{lib: l, comm: comm, rank: rank, size: size}, nil
}

// Rank and Size of the communicator.
func (c *NCCLComm) Rank() int { return c.rank }
func (c *NCCLComm) Size() int { return c.size }

// Handle is the ncclComm_t.
func (c *NCCLComm) Handle() uintptr { return c.comm }

// AllReduce enqueues ncclAllReduce of count elements (send may equal recv).
func (c *NCCLComm) AllReduce(send, recv uintptr, count int, dt NCCLDataType, op NCCLRedOp, stream uintptr) error {
	return c.lib.err("ncclAllReduce", c.lib.allReduce(send, recv, uintptr(count), int32(dt), int32(op), c.comm, stream), c.comm)
}

// Broadcast enqueues ncclBroadcast from root.
func (c *NCCLComm) Broadcast(send, recv uintptr, count int, dt NCCLDataType, root int, stream uintptr) error {
	return c.lib.err("ncclBroadcast", c.lib.broadcast(send, recv, uintptr(count), int32(dt), int32(root), c.comm, stream), c.comm)
}

// AllGather enqueues ncclAllGather: sendCount elements per rank, recv holds
// Size()·sendCount.
func (c *NCCLComm) AllGather(send, recv uintptr, sendCount int, dt NCCLDataType, stream uintptr) error {
	return c.lib.err("ncclAllGather", c.lib.allGather(send, recv, uintptr(sendCount), int32(dt), c.comm, stream), c.comm)
}

// ReduceScatter enqueues ncclReduceScatter: send holds Size()·recvCount.
func (c *NCCLComm) ReduceScatter(send, recv uintptr, recvCount int, dt NCCLDataType, op NCCLRedOp, stream uintptr) error {
	return c.lib.err("ncclReduceScatter", c.lib.reduceScatter(send, recv, uintptr(recvCount), int32(dt), int32(op), c.comm, stream), c.comm)
}

// GroupStart and GroupEnd bracket several calls into one launch.
func (c *NCCLComm) GroupStart() error {
	if c.lib.groupStart == nil {
		return &Error{Lib: "NCCL", Call: "ncclGroupStart", Msg: "not in " + c.lib.Path}
	}
	return c.lib.err("ncclGroupStart", c.lib.groupStart(), c.comm)
}

func (c *NCCLComm) GroupEnd() error {
	if c.lib.groupEnd == nil {
		return &Error{Lib: "NCCL", Call: "ncclGroupEnd", Msg: "not in " + c.lib.Path}
	}
	return c.lib.err("ncclGroupEnd", c.lib.groupEnd(), c.comm)
}

// Close is ncclCommDestroy (waits for pending work).
func (c *NCCLComm) Close() error {
	if c.comm == 0 {
		return nil
	}
	err := c.lib.err("ncclCommDestroy", c.lib.commDestroy(c.comm), 0)
	c.comm = 0
	return err
}

// Abort is ncclCommAbort: frees the communicator without waiting (after a
// peer failed).
func (c *NCCLComm) Abort() error {
	if c.comm == 0 || c.lib.commAbort == nil {
		return c.Close()
	}
	err := c.lib.err("ncclCommAbort", c.lib.commAbort(c.comm), 0)
	c.comm = 0
	return err
}

// NCCLOptions configures NewNCCL.
type NCCLOptions struct {
	// Lib is the opened NCCL (nil: LoadNCCL("")).
	Lib *NCCL
	// Comm, when it has more than one rank (Open MPI is up), shares the
	// unique id with BroadcastBytes from rank 0; ranks and size are its own.
	Comm Comm
	// Launch is used when Comm is nil or has one rank: the ranks come from
	// it (torchrun-style RANK/WORLD_SIZE) and the id travels through the
	// TCP rendezvous at RendezvousAddr(Launch). Zero value: DetectLaunch().
	Launch *Launch
	// Timeout bounds the rendezvous (0: 5 minutes).
	Timeout time.Duration
	// BeforeInit runs on the OS thread that calls ncclCommInitRank, right
	// before it (select the CUDA device there).
	BeforeInit func() error
}

// NewNCCL bootstraps one NCCL communicator per rank: rank 0 creates the
// unique id, every rank gets it (MPI_Bcast through opt.Comm when MPI runs
// the job, else the TCP rendezvous on MASTER_ADDR:MASTER_PORT), then
// ncclCommInitRank.
func NewNCCL(ctx context.Context, opt NCCLOptions) (*NCCLComm, error) {
	lib := opt.Lib
	if lib == nil {
		var err error
		if lib, err = LoadNCCL(""); err != nil {
			return nil, err
		}
	}
	var rank, size int
	share := func(id []byte) error { return nil }
	if opt.Comm != nil && opt.Comm.Size() > 1 {
		rank, size = opt.Comm.Rank(), opt.Comm.Size()
		share = func(id []byte) error { return opt.Comm.BroadcastBytes(id, 0) }
	} else {
		l := DetectLaunch()
		if opt.Launch != nil {
			l = *opt.Launch
		}
		rank, size = l.Rank, l.Size
		if l.Size > 1 {
			addr, err := RendezvousAddr(l)
			if err != nil {
				return nil, err
			}
			share = func(id []byte) error { return ExchangeID(ctx, addr, l.Rank, l.Size, id, opt.Timeout) }
		}
	}
	if size < 1 || rank < 0 || rank >= size {
		return nil, &Error{Lib: "NCCL", Call: "NewNCCL", Msg: fmt.Sprintf("rank %d of %d", rank, size)}
	}
	var id NCCLUniqueID
	if rank == 0 {
		var err error
		if id, err = lib.UniqueID(); err != nil {
			return nil, err
		}
	}
	if err := share(id[:]); err != nil {
		return nil, err
	}
	return lib.InitRank(size, id, rank, opt.BeforeInit)
}

// bytesOf views the id as uintptr words for the by-value call.
func idWords(id *NCCLUniqueID) *[16]uintptr {
	return (*[16]uintptr)(unsafe.Pointer(id))
}
