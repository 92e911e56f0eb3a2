package cpu

import (
	"fmt"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/shoggo/shoggo/backend"
	"github.com/shoggo/shoggo/internal/parallel"
	"github.com/shoggo/shoggo/internal/vec"
	"github.com/shoggo/shoggo/tensor"
)

// optimChunk is the number of elements one goroutine task of AdamW,
// SumSquares and ScaleAll handles. It also fixes the summation blocks of
// SumSquares, so sums do not depend on the number of workers.
const optimChunk = 1 << 14

// Zero clears t (any dtype); float tensors in parallel over blocks (a
// gradient arena is as large as the model).
func (c *CPU) Zero(t *tensor.Tensor) {
	mustHost("Zero", "t", t)
	n := t.Numel()
	switch t.DType {
	case tensor.F32:
		f := t.F32[:n]
		parallel.For(n, 1<<18, func(lo, hi int) { clear(f[lo:hi]) })
	case tensor.F64:
		f := t.F64[:n]
		parallel.For(n, 1<<17, func(lo, hi int) { clear(f[lo:hi]) })
	case tensor.F16, tensor.BF16:
		clear(t.U16[:n])
	default:
		clear(t.Bytes[:n*t.DType.Size()])
	}
}

// chunks splits tensors into optimChunk pieces: prefix[i] is the index of
// tensor i's first chunk, prefix[len(ts)] the total.
func chunkPrefix(op string, ts []*tensor.Tensor) (prefix []int, total int) {
	prefix = make([]int, len(ts)+1)
	for i, t := range ts {
		if t.DType != tensor.F32 {
			panic(fmt.Sprintf("cpu.%s: %s is %s, want F32", op, label("tensor", t), t.DType))
		}
		mustHost(op, "tensor", t)
		n := t.Numel()
		if len(t.F32) < n {
			panic(fmt.Sprintf("cpu.%s: %s holds %d values for shape %v", op, label("tensor", t), len(t.F32), t.Shape))
		}
		total += n
		prefix[i+1] = prefix[i] + (n+optimChunk-1)/optimChunk
	}
	return prefix, total
}

// chunkAt maps global chunk k to (tensor, lo, hi).
func chunkAt(prefix []int, ts []*tensor.Tensor, k int) (i, lo, hi int) {
	i = sort.SearchInts(prefix, k+1) - 1
	lo = (k - prefix[i]) * optimChunk
	return i, lo, min(lo+optimChunk, ts[i].Numel())
}

// AdamW applies one AdamW update (see backend.OptimOps) with internal/vec's
// kernel, over chunks of optimChunk elements on up to workers goroutines.
func (c *CPU) AdamW(w, g, m, v []*tensor.Tensor, decay []bool, u backend.AdamWUpdate, workers int) {
	const op = "AdamW"
	if len(g) != len(w) || len(m) != len(w) || len(v) != len(w) || len(decay) != len(w) {
		panic(fmt.Sprintf("cpu.AdamW: %d weights, %d gradients, %d and %d moments, %d decay flags", len(w), len(g), len(m), len(v), len(decay)))
	}
	prefix, total := chunkPrefix(op, w)
	for i, t := range w {
		for _, o := range []*tensor.Tensor{g[i], m[i], v[i]} {
			checkNumel(op, "state", o, t.Numel(), t)
		}
	}
	chunkPrefix(op, g)
	chunkPrefix(op, m)
	chunkPrefix(op, v)
	k := vec.AdamW{
		Decay: u.Decay, LerpW: u.LerpW, LerpSmall: u.LerpSmall, LerpWc: u.LerpWc,
		Beta2: u.Beta2, OneMinusB2: u.OneMinusB2, Bc2Sqrt: u.Bc2Sqrt, Eps: u.Eps, NegStep: u.NegStep,
	}
	noDecay := k
	noDecay.Decay = 1 // p*1 is exact: the same as skipping the multiply
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	if total < 2*optimChunk {
		workers = 1
	}
	parallelTasks(prefix[len(w)], workers, func(ch int) {
		i, lo, hi := chunkAt(prefix, w, ch)
		kk := &noDecay
		if decay[i] {
			kk = &k
		}
		kk.Update(w[i].F32[lo:hi], g[i].F32[lo:hi], m[i].F32[lo:hi], v[i].F32[lo:hi])
	})
}

// SumSquares sums x² over all tensors: vec.SumSquares per chunk of
// optimChunk elements (in parallel), the partial sums added in order.
func (c *CPU) SumSquares(ts []*tensor.Tensor) float64 {
	prefix, total := chunkPrefix("SumSquares", ts)
	n := prefix[len(ts)]
	partial := make([]float64, n)
	parallelTasks(n, optimWorkers(total), func(ch int) {
		i, lo, hi := chunkAt(prefix, ts, ch)
		partial[ch] = vec.SumSquares(ts[i].F32[lo:hi])
	})
	sum := 0.0
	for _, s := range partial {
		sum += s
	}
	return sum
}

// ScaleAll multiplies every tensor by float32(s), in parallel over chunks.
func (c *CPU) ScaleAll(ts []*tensor.Tensor, s float64) {
	prefix, total := chunkPrefix("ScaleAll", ts)
	s32 := float32(s)
	parallelTasks(prefix[len(ts)], optimWorkers(total), func(ch int) {
		i, lo, hi := chunkAt(prefix, ts, ch)
		vec.Scale(ts[i].F32[lo:hi], s32)
	})
}

func optimWorkers(total int) int {
	if total < 4*optimChunk {
		return 1
	}
	return runtime.GOMAXPROCS(0)
}

// parallelTasks calls fn(i) for i in [0, n) on up to workers goroutines
// (inline when workers <= 1). Tasks are handed out dynamically, so fn must
// make its result independent of which goroutine runs it.
func parallelTasks(n, workers int, fn func(i int)) {
	workers = min(workers, n)
	if workers <= 1 {
		for i := range n {
			fn(i)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				fn(i)
			}
		})
	}
	wg.Wait()
}
