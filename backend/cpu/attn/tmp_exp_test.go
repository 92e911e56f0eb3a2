package attn

import (
	"math/rand/v2"
	"runtime"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/shoggo/shoggo/backend"
)

func threadCPU() time.Duration {
	var ts syscall.Timespec
	syscall.Syscall(syscall.SYS_CLOCK_GETTIME, 3 /* CLOCK_THREAD_CPUTIME_ID */, uintptr(unsafe.Pointer(&ts)), 0)
	return time.Duration(ts.Nano())
}

func cpuTime(n int, f func()) time.Duration {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	f()
	best := time.Duration(1 << 62)
	for range n {
		t0 := threadCPU()
		f()
		best = min(best, threadCPU()-t0)
	}
	return best
}

func TestTmpTiming(t *testing.T) {
	row := make([]float32, 1<<16)
	src := make([]float32, 1<<16)
	for i := range src {
		src[i] = -float32(i%300) * 0.05
	}
	d := cpuTime(20, func() { copy(row, src); expSub32(row, 0.5) })
	t.Logf("expSub32: %.2f ns/elem", float64(d.Nanoseconds())/float64(len(row)))
	row64 := make([]float64, 1<<16)
	d = cpuTime(20, func() {
		for i := range row64 {
			row64[i] = float64(src[i])
		}
		expSub(row64, 0.5)
	})
	t.Logf("expSub64: %.2f ns/elem", float64(d.Nanoseconds())/float64(len(row)))
	rng := rand.New(rand.NewPCG(1, 1))
	for _, sh := range [][5]int{{4, 64, 12, 12, 64}, {1, 1024, 12, 12, 64}, {1, 512, 14, 2, 64}} {
		p := backend.AttnParams{B: sh[0], T: sh[1], NH: sh[2], KVH: sh[3], HS: sh[4]}
		c := newCase[float32](rng, p)
		out := make([]float32, len(c.q))
		lse := make([]float32, p.B*p.NH*p.T)
		flops := 2.0 * float64(p.B*p.NH) * float64(p.T) * float64(p.T) * float64(p.HS)
		for _, tile := range []int{48} {
		df := cpuTime(5, func() { forward(out, lse, c.q, c.k, c.v, p, tile, 1) })
		db := cpuTime(5, func() {
			backward(c.dq0, c.dk0, c.dv0, c.dout, c.q, c.k, c.v, out, lse, p, tile, 1, modeOnePass)
		})
		t.Logf("%v tile %d: fwd %v (%.1f GFLOP/s)  bwd %v (%.1f GFLOP/s)", sh, tile, df, flops/df.Seconds()/1e9, db, 2.5*flops/db.Seconds()/1e9)
		}
	}
}
