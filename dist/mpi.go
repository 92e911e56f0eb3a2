//go:build darwin || freebsd || linux || netbsd

package dist

import (
	"errors"
	"fmt"
	"math"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/ebitengine/purego"
)

// Open MPI through purego.
//
// The library is opened at run time (dlopen with RTLD_GLOBAL, because Open
// MPI loads its own components, which resolve symbols of libmpi and
// libopen-pal), so the binary builds and runs without it. The binding
// targets Open MPI's ABI (libmpi.so.40: Open MPI 3.x, 4.x and 5.x): handles
// are pointers, and MPI_COMM_WORLD, MPI_FLOAT, MPI_SUM, ... are the addresses
// of the library's global objects ompi_mpi_comm_world, ompi_mpi_float,
// ompi_mpi_op_sum, ... (dlsym returns exactly those addresses);
// MPI_IN_PLACE is (void*)1. MPICH's ABI (integer handles) is not supported.
//
// Threads. Goroutines move between OS threads, so calling MPI from whatever
// goroutine happens to call a Comm method would need MPI_THREAD_MULTIPLE,
// which Open MPI supports only on some transports and pays for with locks on
// every call. Instead every MPI call, MPI_Init_thread and MPI_Finalize
// included, runs on one dedicated goroutine locked to its OS thread
// (runtime.LockOSThread), and MPI is initialised with MPI_THREAD_FUNNELED.
// Callers hand that goroutine closures through a channel and wait for the
// answer (a few microseconds per call, measured in bench_test.go).
//
// Non-blocking collectives (MPIAsync). The commands form one FIFO queue, so
// IAllReduce returns as soon as its command is queued, and collectives reach
// MPI in the order the rank issued them. Two ways to run an IAllReduce:
//
//   - AsyncThread (the default): the MPI goroutine runs the blocking
//     MPI_Allreduce; the caller goes on computing while the dedicated thread
//     communicates. It uses Open MPI's tuned blocking algorithms, which on
//     this machine are 2-8x faster than libnbc's MPI_Iallreduce for 256 KiB
//     and more (bench/allreduce).
//   - AsyncIallreduce: MPI_Iallreduce, then the MPI goroutine progresses the
//     pending requests with MPI_Test (Open MPI has no progress thread: a
//     non-blocking collective moves only inside MPI calls): continuously
//     while some goroutine is blocked in Wait, as MPI_Wait would, otherwise
//     every ProgressInterval, sleeping in between.
//
// Either way the MPI thread busy-polls while a collective is in flight (as
// Open MPI always does), so it wants a core beside the compute threads.

// MPILibraries are the names tried, in order, when opening Open MPI; the
// SHOGGO_MPI_LIB environment variable, when set, is tried alone.
var MPILibraries = []string{"libmpi.so.40", "libmpi.so", "libmpi.40.dylib", "libmpi.dylib"}

// MPIAsync selects how IAllReduce runs (see above): AsyncThread or
// AsyncIallreduce; the SHOGGO_MPI_ASYNC environment variable ("thread",
// "iallreduce") overrides it when OpenMPI is called.
var MPIAsync = AsyncThread

const (
	AsyncThread     = "thread"
	AsyncIallreduce = "iallreduce"
)

// ProgressInterval is how often the MPI goroutine polls pending non-blocking
// requests when nobody is waiting on them.
var ProgressInterval = 50 * time.Microsecond

const (
	mpiThreadFunneled = 1
	mpiCommTypeShared = 0 // Open MPI's MPI_COMM_TYPE_SHARED
	mpiMaxErrorString = 256
	mpiInPlace        = uintptr(1)
	// mpiChunk bounds one MPI call's element count (MPI counts are C ints).
	mpiChunk = 1 << 30
)

type mpiLib struct {
	path    string
	version string

	initThread         func(argc, argv uintptr, required int32, provided *int32) int32
	initialized        func(flag *int32) int32
	finalized          func(flag *int32) int32
	finalize           func() int32
	abort              func(comm uintptr, code int32) int32
	commRank           func(comm uintptr, rank *int32) int32
	commSize           func(comm uintptr, size *int32) int32
	commSplitType      func(comm uintptr, typ, key int32, info uintptr, newcomm *uintptr) int32
	commFree           func(comm *uintptr) int32
	commSetErrhandler  func(comm, errh uintptr) int32
	allreduce          func(send, recv uintptr, count int32, dt, op, comm uintptr) int32
	iallreduce         func(send, recv uintptr, count int32, dt, op, comm uintptr, req *uintptr) int32
	bcast              func(buf uintptr, count int32, dt uintptr, root int32, comm uintptr) int32
	barrier            func(comm uintptr) int32
	allgather          func(send uintptr, scount int32, sdt, recv uintptr, rcount int32, rdt, comm uintptr) int32
	reduceScatterBlock func(send, recv uintptr, rcount int32, dt, op, comm uintptr) int32
	wait               func(req *uintptr, status uintptr) int32
	test               func(req *uintptr, flag *int32, status uintptr) int32
	errorString        func(code int32, buf *byte, n *int32) int32
	getLibraryVersion  func(buf *byte, n *int32) int32

	commWorld, float, double, byteT, opSum, opMax, opMin, errorsReturn, infoNull uintptr
}

var (
	mpiLoadOnce sync.Once
	mpiLoaded   *mpiLib
	mpiLoadErr  error
)

// loadMPI opens libmpi and resolves every function and handle.
func loadMPI() (*mpiLib, error) {
	mpiLoadOnce.Do(func() { mpiLoaded, mpiLoadErr = openMPILib() })
	return mpiLoaded, mpiLoadErr
}

func openMPILib() (*mpiLib, error) {
	names := MPILibraries
	if p := os.Getenv("SHOGGO_MPI_LIB"); p != "" {
		names = []string{p}
	}
	var h uintptr
	var errs []string
	var path string
	for _, n := range names {
		var err error
		h, err = purego.Dlopen(n, purego.RTLD_NOW|purego.RTLD_GLOBAL)
		if err == nil {
			path = n
			break
		}
		errs = append(errs, err.Error())
	}
	if h == 0 {
		return nil, &Error{Lib: "MPI", Call: "dlopen", Msg: fmt.Sprintf("cannot open Open MPI (%s): %s; install %s",
			strings.Join(names, ", "), strings.Join(errs, "; "), MPIPackage)}
	}
	l := &mpiLib{path: path}
	var missing []string
	fn := func(ptr any, name string) {
		sym, err := purego.Dlsym(h, name)
		if err != nil || sym == 0 {
			missing = append(missing, name)
			return
		}
		purego.RegisterFunc(ptr, sym)
	}
	addr := func(p *uintptr, name string) {
		sym, err := purego.Dlsym(h, name)
		if err != nil || sym == 0 {
			missing = append(missing, name)
			return
		}
		*p = sym
	}
	fn(&l.initThread, "MPI_Init_thread")
	fn(&l.initialized, "MPI_Initialized")
	fn(&l.finalized, "MPI_Finalized")
	fn(&l.finalize, "MPI_Finalize")
	fn(&l.abort, "MPI_Abort")
	fn(&l.commRank, "MPI_Comm_rank")
	fn(&l.commSize, "MPI_Comm_size")
	fn(&l.commSplitType, "MPI_Comm_split_type")
	fn(&l.commFree, "MPI_Comm_free")
	fn(&l.commSetErrhandler, "MPI_Comm_set_errhandler")
	fn(&l.allreduce, "MPI_Allreduce")
	fn(&l.iallreduce, "MPI_Iallreduce")
	fn(&l.bcast, "MPI_Bcast")
	fn(&l.barrier, "MPI_Barrier")
	fn(&l.allgather, "MPI_Allgather")
	fn(&l.reduceScatterBlock, "MPI_Reduce_scatter_block")
	fn(&l.wait, "MPI_Wait")
	fn(&l.test, "MPI_Test")
	fn(&l.errorString, "MPI_Error_string")
	fn(&l.getLibraryVersion, "MPI_Get_library_version")
	addr(&l.commWorld, "ompi_mpi_comm_world")
	addr(&l.float, "ompi_mpi_float")
	addr(&l.double, "ompi_mpi_double")
	addr(&l.byteT, "ompi_mpi_byte")
	addr(&l.opSum, "ompi_mpi_op_sum")
	addr(&l.opMax, "ompi_mpi_op_max")
	addr(&l.opMin, "ompi_mpi_op_min")
	addr(&l.errorsReturn, "ompi_mpi_errors_return")
	addr(&l.infoNull, "ompi_mpi_info_null")
	if len(missing) > 0 {
		return nil, &Error{Lib: "MPI", Call: "dlsym", Msg: fmt.Sprintf("%s is not Open MPI (missing %s); shoggo needs Open MPI's libmpi.so.40 (%s)",
			path, strings.Join(missing, ", "), MPIPackage)}
	}
	buf := make([]byte, 512) // MPI_MAX_LIBRARY_VERSION_STRING is 256 in Open MPI
	var n int32
	if l.getLibraryVersion(&buf[0], &n) == 0 && n > 0 && int(n) <= len(buf) {
		l.version = strings.TrimSpace(strings.TrimRight(string(buf[:n]), "\x00"))
	}
	return l, nil
}

// MPIAvailable reports whether Open MPI's library can be opened, and if not,
// why (the error names the library and the package to install).
func MPIAvailable() error {
	_, err := loadMPI()
	return err
}

func (l *mpiLib) err(call string, code int32) error {
	if code == 0 {
		return nil
	}
	msg := "unknown error"
	buf := make([]byte, mpiMaxErrorString+1)
	var n int32
	if l.errorString(code, &buf[0], &n) == 0 && n > 0 && int(n) <= len(buf) {
		msg = string(buf[:n])
	}
	return &Error{Lib: "MPI", Call: call, Code: int(code), Msg: strings.TrimRight(msg, "\x00")}
}

func (l *mpiLib) opHandle(op Op) uintptr {
	switch op {
	case Max:
		return l.opMax
	case Min:
		return l.opMin
	}
	return l.opSum // Sum, and Avg (Sum then a scale)
}

// mpiComm is MPI_COMM_WORLD served by one locked OS thread.
type mpiComm struct {
	lib                              *mpiLib
	rank, size, localRank, localSize int
	async                            string
	cmds                             chan func() // the FIFO of MPI work
	waiters                          atomic.Int32
	closing                          atomic.Bool
	finished                         chan struct{}
	pending                          []*mpiRequest // owned by the MPI goroutine
	closeErr                         error
	stop                             bool // set by Close's command: the loop returns
	threadProvided                   int
	ownInit                          bool
}

var (
	mpiMu    sync.Mutex
	mpiWorld *mpiComm
	mpiDone  bool
)

// OpenMPI initialises Open MPI (once per process) and returns
// MPI_COMM_WORLD. Under mpirun or srun the ranks come from the launcher;
// run directly it is a world of one rank. After Close, MPI cannot be
// initialised again in the same process and OpenMPI returns an error.
func OpenMPI() (Comm, error) {
	mpiMu.Lock()
	defer mpiMu.Unlock()
	if mpiWorld != nil {
		return mpiWorld, nil
	}
	if mpiDone {
		return nil, &Error{Lib: "MPI", Call: "MPI_Init_thread", Msg: "MPI was finalized in this process and cannot be initialised again"}
	}
	lib, err := loadMPI()
	if err != nil {
		return nil, err
	}
	async := MPIAsync
	if v := os.Getenv("SHOGGO_MPI_ASYNC"); v != "" {
		async = v
	}
	if async != AsyncThread && async != AsyncIallreduce {
		return nil, &Error{Lib: "MPI", Call: "OpenMPI", Msg: fmt.Sprintf("SHOGGO_MPI_ASYNC=%q: want %q or %q", async, AsyncThread, AsyncIallreduce)}
	}
	c := &mpiComm{lib: lib, async: async, cmds: make(chan func(), 4096), finished: make(chan struct{})}
	ready := make(chan error, 1)
	go c.loop(ready)
	if err := <-ready; err != nil {
		return nil, err
	}
	mpiWorld = c
	return c, nil
}

// loop is the MPI goroutine: it owns the OS thread MPI was initialised on.
func (c *mpiComm) loop(ready chan<- error) {
	runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
	defer close(c.finished)
	if err := c.init(); err != nil {
		ready <- err
		return
	}
	ready <- nil
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		if len(c.pending) == 0 {
			(<-c.cmds)()
			if c.stop {
				return
			}
			continue
		}
		select {
		case f := <-c.cmds:
			f()
			if c.stop {
				return
			}
			continue
		default:
		}
		c.progress()
		if len(c.pending) == 0 || c.waiters.Load() > 0 {
			continue
		}
		timer.Reset(ProgressInterval)
		select {
		case f := <-c.cmds:
			timer.Stop()
			f()
			if c.stop {
				return
			}
		case <-timer.C:
		}
	}
}

func (c *mpiComm) init() error {
	l := c.lib
	var flag int32
	if code := l.initialized(&flag); code != 0 {
		return l.err("MPI_Initialized", code)
	}
	if flag == 0 {
		var provided int32
		if code := l.initThread(0, 0, mpiThreadFunneled, &provided); code != 0 {
			return &Error{Lib: "MPI", Call: "MPI_Init_thread", Code: int(code), Msg: "initialisation failed"}
		}
		c.threadProvided = int(provided)
		c.ownInit = true
	}
	if code := l.commSetErrhandler(l.commWorld, l.errorsReturn); code != 0 {
		return l.err("MPI_Comm_set_errhandler", code)
	}
	var r, s int32
	if code := l.commRank(l.commWorld, &r); code != 0 {
		return l.err("MPI_Comm_rank", code)
	}
	if code := l.commSize(l.commWorld, &s); code != 0 {
		return l.err("MPI_Comm_size", code)
	}
	c.rank, c.size = int(r), int(s)
	// The ranks sharing this machine: MPI_Comm_split_type(SHARED) works
	// under any launcher (mpirun, srun/PMIx, singleton).
	var local uintptr
	if code := l.commSplitType(l.commWorld, mpiCommTypeShared, r, l.infoNull, &local); code != 0 {
		return l.err("MPI_Comm_split_type", code)
	}
	var lr, ls int32
	code := l.commRank(local, &lr)
	if code == 0 {
		code = l.commSize(local, &ls)
	}
	l.commFree(&local)
	if code != 0 {
		return l.err("MPI_Comm_rank(shared)", code)
	}
	c.localRank, c.localSize = int(lr), int(ls)
	return nil
}

// do runs f on the MPI goroutine and returns its error.
func (c *mpiComm) do(call string, f func() error) error {
	if c.closing.Load() {
		return &Error{Lib: "MPI", Call: call, Msg: "communicator closed"}
	}
	errc := make(chan error, 1)
	closed := &Error{Lib: "MPI", Call: call, Msg: "communicator closed"}
	select {
	case c.cmds <- func() { errc <- f() }:
	case <-c.finished:
		return closed
	}
	select {
	case err := <-errc:
		return err
	case <-c.finished: // queued after Close's command: it never runs
		select {
		case err := <-errc:
			return err
		default:
			return closed
		}
	}
}

func (c *mpiComm) Rank() int      { return c.rank }
func (c *mpiComm) Size() int      { return c.size }
func (c *mpiComm) LocalRank() int { return c.localRank }
func (c *mpiComm) LocalSize() int { return c.localSize }

// Library is the opened library's path and MPI_Get_library_version string.
func (c *mpiComm) Library() string { return c.lib.path + ": " + c.lib.version }

// ptrOf is the address of b's first element (0 for an empty slice).
func ptrOf[T any](b []T) uintptr {
	if len(b) == 0 {
		return 0
	}
	return uintptr(unsafe.Pointer(&b[0]))
}

// chunked runs call on buf in pieces of at most mpiChunk elements (MPI
// counts are C ints), keeping each piece alive through its call; the
// first non-zero code is returned as call's error.
func chunked[T any](l *mpiLib, call string, buf []T, f func(p uintptr, n int32) int32) error {
	for off := 0; off < len(buf); off += mpiChunk {
		part := buf[off:min(off+mpiChunk, len(buf))]
		code := f(ptrOf(part), int32(len(part)))
		runtime.KeepAlive(part)
		if code != 0 {
			return l.err(call, code)
		}
	}
	return nil
}

// Buffers handed to MPI are Go heap memory (they reach the MPI goroutine
// through closures, so they escape) and the Go heap does not move; every
// call keeps its buffer alive until it returns (runtime.KeepAlive), and a
// pending IAllReduce keeps its buffer in its request.

func (c *mpiComm) AllReduce(buf []float32, op Op) error {
	if err := checkOp("MPI_Allreduce", op); err != nil {
		return err
	}
	return c.do("MPI_Allreduce", func() error {
		l := c.lib
		if err := chunked(l, "MPI_Allreduce", buf, func(p uintptr, n int32) int32 {
			return l.allreduce(mpiInPlace, p, n, l.float, l.opHandle(op), l.commWorld)
		}); err != nil {
			return err
		}
		if op == Avg {
			scale32(buf, c.size)
		}
		return nil
	})
}

func (c *mpiComm) AllReduceF64(buf []float64, op Op) error {
	if err := checkOp("MPI_Allreduce", op); err != nil {
		return err
	}
	return c.do("MPI_Allreduce", func() error {
		l := c.lib
		if err := chunked(l, "MPI_Allreduce(double)", buf, func(p uintptr, n int32) int32 {
			return l.allreduce(mpiInPlace, p, n, l.double, l.opHandle(op), l.commWorld)
		}); err != nil {
			return err
		}
		if op == Avg {
			scale64(buf, c.size)
		}
		return nil
	})
}

func (c *mpiComm) Broadcast(buf []float32, root int) error {
	if err := checkRoot("MPI_Bcast", root, c.size); err != nil {
		return err
	}
	return c.do("MPI_Bcast", func() error {
		l := c.lib
		return chunked(l, "MPI_Bcast", buf, func(p uintptr, n int32) int32 {
			return l.bcast(p, n, l.float, int32(root), l.commWorld)
		})
	})
}

func (c *mpiComm) BroadcastBytes(buf []byte, root int) error {
	if err := checkRoot("MPI_Bcast", root, c.size); err != nil {
		return err
	}
	return c.do("MPI_Bcast", func() error {
		l := c.lib
		return chunked(l, "MPI_Bcast(byte)", buf, func(p uintptr, n int32) int32 {
			return l.bcast(p, n, l.byteT, int32(root), l.commWorld)
		})
	})
}

func (c *mpiComm) Barrier() error {
	return c.do("MPI_Barrier", func() error {
		return c.lib.err("MPI_Barrier", c.lib.barrier(c.lib.commWorld))
	})
}

func (c *mpiComm) AllGather(send, recv []float32) error {
	if err := checkGather("MPI_Allgather", len(send), len(recv), c.size); err != nil {
		return err
	}
	if len(send) > math.MaxInt32 {
		return &Error{Lib: "MPI", Call: "MPI_Allgather", Msg: fmt.Sprintf("%d elements per rank exceed MPI's int count", len(send))}
	}
	return c.do("MPI_Allgather", func() error {
		l := c.lib
		code := l.allgather(ptrOf(send), int32(len(send)), l.float, ptrOf(recv), int32(len(send)), l.float, l.commWorld)
		runtime.KeepAlive(send)
		runtime.KeepAlive(recv)
		return l.err("MPI_Allgather", code)
	})
}

func (c *mpiComm) ReduceScatter(send, recv []float32, op Op) error {
	if err := checkOp("MPI_Reduce_scatter_block", op); err != nil {
		return err
	}
	if err := checkGather("MPI_Reduce_scatter_block", len(recv), len(send), c.size); err != nil {
		return err
	}
	if len(recv) > math.MaxInt32 {
		return &Error{Lib: "MPI", Call: "MPI_Reduce_scatter_block", Msg: fmt.Sprintf("%d elements per rank exceed MPI's int count", len(recv))}
	}
	return c.do("MPI_Reduce_scatter_block", func() error {
		l := c.lib
		code := l.reduceScatterBlock(ptrOf(send), ptrOf(recv), int32(len(recv)), l.float, l.opHandle(op), l.commWorld)
		runtime.KeepAlive(send)
		runtime.KeepAlive(recv)
		if code != 0 {
			return l.err("MPI_Reduce_scatter_block", code)
		}
		if op == Avg {
			scale32(recv, c.size)
		}
		return nil
	})
}

// mpiRequest is one IAllReduce: one or more MPI requests (one per chunk).
type mpiRequest struct {
	c     *mpiComm
	buf   []float32 // kept alive (and unscaled) until completion
	op    Op
	reqs  []uintptr // MPI_Request handles still pending; 0 once complete
	left  int
	err   error
	done  chan struct{}
	fired bool
}

func (c *mpiComm) IAllReduce(buf []float32, op Op) Request {
	if err := checkOp("MPI_Iallreduce", op); err != nil {
		return doneRequest{err}
	}
	r := &mpiRequest{c: c, buf: buf, op: op, done: make(chan struct{})}
	if c.async == AsyncThread {
		f := func() {
			l := c.lib
			r.finish(chunked(l, "MPI_Allreduce(IAllReduce)", buf, func(p uintptr, n int32) int32 {
				return l.allreduce(mpiInPlace, p, n, l.float, l.opHandle(op), l.commWorld)
			}))
		}
		if c.closing.Load() {
			return doneRequest{&Error{Lib: "MPI", Call: "IAllReduce", Msg: "communicator closed"}}
		}
		select {
		case c.cmds <- f: // queued: returns while the MPI thread works
		case <-c.finished:
			return doneRequest{&Error{Lib: "MPI", Call: "IAllReduce", Msg: "communicator closed"}}
		}
		return r
	}
	if len(buf) == 0 { // every rank passes the same length: all skip it
		close(r.done)
		return r
	}
	err := c.do("MPI_Iallreduce", func() error {
		l := c.lib
		for off := 0; off < len(buf); off += mpiChunk {
			part := buf[off:min(off+mpiChunk, len(buf))]
			var h uintptr
			code := l.iallreduce(mpiInPlace, ptrOf(part), int32(len(part)), l.float, l.opHandle(op), l.commWorld, &h)
			if code != 0 {
				// Chunks already started complete in Close or later tests;
				// the request reports the failure.
				r.finish(l.err("MPI_Iallreduce", code))
				return nil
			}
			r.reqs = append(r.reqs, h)
			r.left++
		}
		c.pending = append(c.pending, r)
		return nil
	})
	if err != nil {
		return doneRequest{err}
	}
	return r
}

// finish completes the request (on the MPI goroutine).
func (r *mpiRequest) finish(err error) {
	if r.fired {
		return
	}
	r.fired = true
	if err == nil && r.op == Avg {
		scale32(r.buf, r.c.size)
	}
	r.err = err
	r.buf = nil
	close(r.done)
}

// progress tests every pending request once (on the MPI goroutine).
func (c *mpiComm) progress() {
	l := c.lib
	keep := c.pending[:0]
	for _, r := range c.pending {
		for i, h := range r.reqs {
			if h == 0 {
				continue
			}
			var flag int32
			code := l.test(&r.reqs[i], &flag, 0)
			if code != 0 {
				r.reqs[i] = 0
				r.left = 0
				r.finish(l.err("MPI_Test(Iallreduce)", code))
				break
			}
			if flag != 0 {
				r.reqs[i] = 0 // MPI_Test set it to MPI_REQUEST_NULL
				r.left--
			}
		}
		if r.left == 0 {
			r.finish(nil)
			continue
		}
		keep = append(keep, r)
	}
	clear(c.pending[len(keep):])
	c.pending = keep
}

// Wait blocks until the all-reduce completes. While it waits, the MPI
// goroutine polls without sleeping.
func (r *mpiRequest) Wait() error {
	select {
	case <-r.done:
		return r.err
	default:
	}
	if r.c.async == AsyncIallreduce {
		r.c.waiters.Add(1)
		defer r.c.waiters.Add(-1)
		// Wake the MPI goroutine if it sleeps between polls.
		select {
		case r.c.cmds <- func() {}:
		case <-r.done:
		case <-r.c.finished:
		}
	}
	select {
	case <-r.done:
	case <-r.c.finished:
		select {
		case <-r.done:
		default:
			return &Error{Lib: "MPI", Call: "MPI_Wait", Msg: "communicator closed with the request pending"}
		}
	}
	return r.err
}

// Close waits for pending requests (MPI_Wait), then calls MPI_Finalize (when
// this package initialised MPI) on the thread that initialised it. MPI
// cannot be initialised again in this process.
func (c *mpiComm) Close() error {
	if c.closing.Swap(true) {
		<-c.finished
		return c.closeErr
	}
	errc := make(chan error, 1)
	c.cmds <- func() {
		l := c.lib
		var errs []error
		for _, r := range c.pending {
			var rerr error
			for i, h := range r.reqs {
				if h != 0 {
					if code := l.wait(&r.reqs[i], 0); code != 0 && rerr == nil {
						rerr = l.err("MPI_Wait", code)
					}
				}
			}
			r.finish(rerr)
			errs = append(errs, rerr)
		}
		c.pending = nil
		if c.ownInit {
			if code := l.finalize(); code != 0 {
				errs = append(errs, l.err("MPI_Finalize", code))
			}
		}
		c.stop = true
		errc <- errors.Join(errs...)
	}
	c.closeErr = <-errc
	<-c.finished
	mpiMu.Lock()
	mpiWorld, mpiDone = nil, true
	mpiMu.Unlock()
	return c.closeErr
}

// Abort calls MPI_Abort on the world: every rank of the job is terminated
// by the launcher with the given exit code.
func (c *mpiComm) Abort(code int) {
	_ = c.do("MPI_Abort", func() error {
		c.lib.abort(c.lib.commWorld, int32(code))
		return nil
	})
}
