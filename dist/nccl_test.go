//go:build darwin || freebsd || linux || netbsd

package dist

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"
)

// The real NCCL: without libnccl.so.2 (no GPU here) the test skips naming
// the library. With it, ncclGetUniqueId runs (no device needed); the
// collectives need device memory from the CUDA backend.
func TestDistNCCL(t *testing.T) {
	lib, err := LoadNCCL("")
	if err != nil {
		t.Skipf("NCCL not available: %v", err)
	}
	t.Logf("%s: NCCL version code %d", lib.Path, lib.Version)
	id, err := lib.UniqueID()
	if err != nil {
		t.Fatal(err)
	}
	if id == (NCCLUniqueID{}) {
		t.Fatal("ncclGetUniqueId returned a zero id")
	}
	t.Skip("ncclGetUniqueId works; collectives need CUDA device memory (the CUDA backend's tests)")
}

// stubNCCL builds testdata/nccl_stub.c (same symbols and signatures as NCCL,
// host memory) with gcc and opens it.
func stubNCCL(t *testing.T) *NCCL {
	t.Helper()
	if runtime.GOARCH != "amd64" && runtime.GOARCH != "arm64" {
		t.Skipf("ncclUniqueId by value is written for amd64 and arm64, not %s", runtime.GOARCH)
	}
	cc, err := exec.LookPath("gcc")
	if err != nil {
		if cc, err = exec.LookPath("cc"); err != nil {
			t.Skip("no C compiler (gcc) to build the NCCL stand-in")
		}
	}
	so := filepath.Join(t.TempDir(), "libnccl-stub.so")
	if out, err := exec.Command(cc, "-shared", "-fPIC", "-O1", "-o", so, "testdata/nccl_stub.c").CombinedOutput(); err != nil {
		t.Fatalf("building the stub: %v\n%s", err, out)
	}
	lib, err := LoadNCCL(so)
	if err != nil {
		t.Fatal(err)
	}
	return lib
}

func addr32(b []float32) uintptr { return uintptr(unsafe.Pointer(&b[0])) }

// The bindings against the stand-in: the by-value id reaches
// ncclCommInitRank intact, every collective's arguments arrive in the right
// registers (counts, types, ops, root, stream), errors carry NCCL's string
// and last error.
func TestDistNCCLStub(t *testing.T) {
	lib := stubNCCL(t)
	if lib.Version != 22105 {
		t.Fatalf("version %d", lib.Version)
	}
	id, err := lib.UniqueID()
	if err != nil {
		t.Fatal(err)
	}
	hooked := false
	c, err := lib.InitRank(4, id, 2, func() error { hooked = true; return nil })
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if !hooked || c.Rank() != 2 || c.Size() != 4 {
		t.Fatalf("InitRank: hook %v rank %d size %d", hooked, c.Rank(), c.Size())
	}
	const stream = uintptr(0xabc0)
	lastStream := func() uintptr {
		var f func() uintptr
		sym := mustSym(t, lib.Path, "stubLastStream")
		registerFunc(&f, sym)
		return f()
	}
	send := []float32{1, 2, 3, 4, 5, 6, 7, 8}
	recv := make([]float32, 8)
	if err := c.AllReduce(addr32(send), addr32(recv), 8, NCCLFloat32, NCCLRedOpOf(Sum), stream); err != nil {
		t.Fatal(err)
	}
	if recv[7] != 32 || lastStream() != stream {
		t.Fatalf("AllReduce: %v stream %#x", recv, lastStream())
	}
	if err := c.AllReduce(addr32(send), addr32(recv), 8, NCCLFloat32, NCCLRedOpOf(Avg), 0); err != nil || recv[7] != 8 {
		t.Fatalf("AllReduce avg: %v %v", recv, err)
	}
	if err := c.Broadcast(addr32(send), addr32(recv), 3, NCCLFloat32, 3, stream); err != nil || recv[2] != 3 {
		t.Fatalf("Broadcast: %v %v", recv, err)
	}
	gathered := make([]float32, 8)
	if err := c.AllGather(addr32(send), addr32(gathered), 2, NCCLFloat32, stream); err != nil || gathered[6] != 1 || gathered[7] != 2 {
		t.Fatalf("AllGather: %v %v", gathered, err)
	}
	rs := make([]float32, 2)
	if err := c.ReduceScatter(addr32(send), addr32(rs), 2, NCCLFloat32, NCCLSum, stream); err != nil || rs[0] != 20 || rs[1] != 24 {
		t.Fatalf("ReduceScatter (rank 2's block ×4): %v %v", rs, err)
	}
	if err := c.GroupStart(); err != nil {
		t.Fatal(err)
	}
	if err := c.GroupEnd(); err != nil {
		t.Fatal(err)
	}
	// Errors: NCCL's string plus ncclGetLastError.
	err = c.AllReduce(addr32(send), addr32(recv), 8, NCCLFloat64, NCCLSum, stream)
	var de *Error
	if !errors.As(err, &de) || de.Code != 4 || !strings.Contains(err.Error(), "ncclAllReduce: invalid argument") ||
		!strings.Contains(err.Error(), "stub supports ncclFloat32 only, got 8") {
		t.Fatalf("error: %v", err)
	}
	bad := id
	bad[77]++
	if _, err := lib.InitRank(2, bad, 0, nil); err == nil || !strings.Contains(err.Error(), "id mismatch at byte 77") {
		t.Fatalf("corrupted id: %v", err)
	}
	if _, err := lib.InitRank(2, id, 2, nil); err == nil {
		t.Fatal("rank 2 of 2 accepted")
	}
	runtime.KeepAlive(send)
	runtime.KeepAlive(recv)
}

// NewNCCL's bootstrap: the id from rank 0 reaches every rank through a
// Comm's BroadcastBytes (as with MPI) and through the TCP rendezvous (as
// with torchrun), and each rank's ncclCommInitRank accepts it.
func TestDistNCCLBootstrap(t *testing.T) {
	lib := stubNCCL(t)
	const n = 3
	cs := NewLocal(n)
	noErrors(t, runRanks(cs, func(c Comm) error {
		nc, err := NewNCCL(context.Background(), NCCLOptions{Lib: lib, Comm: c})
		if err != nil {
			return err
		}
		if nc.Rank() != c.Rank() || nc.Size() != n {
			return fmt.Errorf("rank %d/%d", nc.Rank(), nc.Size())
		}
		return nc.Close()
	}))
	port := freePort(t)
	var wg sync.WaitGroup
	errs := make([]error, n)
	t.Setenv("SHOGGO_RENDEZVOUS_PORT", "")
	t.Setenv("TORCHELASTIC_RUN_ID", "")
	for r := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l := Launch{Launcher: TorchRun, Rank: r, Size: n, LocalRank: r, LocalSize: n, MasterAddr: "127.0.0.1", MasterPort: port}
			nc, err := NewNCCL(context.Background(), NCCLOptions{Lib: lib, Launch: &l, Timeout: 20 * time.Second})
			if err == nil {
				err = nc.Close()
			}
			errs[r] = err
		}()
	}
	wg.Wait()
	noErrors(t, errs)
}
