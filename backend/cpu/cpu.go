// Package cpu is shoggo's CPU compute backend: Go (and Go assembly) kernels for
// every op of backend.Backend, each written once as a generic function over
// float32 and float64 slices. The CPU methods check shapes and dtypes, then
// dispatch on the tensors' DType (F32 -> .F32 storage, F64 -> .F64 storage),
// so gradient checks in float64 exercise exactly the code that trains in
// float32. Calls with BF16/F16 activations (mixed precision, PyTorch
// autocast semantics) take the paths described in autocast.go: matmuls
// through gemm.GemmMixed with half-precision operands and float32
// accumulation, the other kernels in float32 on widened values; the F32
// and F64 paths are unaffected.
//
// Every matrix product goes through gemm.Gemm, so a faster GEMM drops in
// without touching the kernels here. The float32 inner loops of the other
// ops are internal/vec kernels (AVX2 assembly where the CPU has it), and
// the ops run on internal/parallel's worker pool: in parallel over rows,
// or, for reductions over rows (norm weight and bias gradients, the linear
// bias gradient, embedding backward), over blocks of columns, each column
// summing its rows in order. Every output element is computed the same way
// whichever thread takes it, so results are identical for any thread count.
//
// A CPU value is safe for concurrent use: its only state is a cache of
// scratch buffers, guarded by a mutex (a caller that finds the cache empty
// allocates its own buffer).
package cpu

import (
	"fmt"
	"sync"

	"github.com/shoggo/shoggo/backend/cpu/gemm"
	"github.com/shoggo/shoggo/tensor"
)

// CPU implements backend.Backend with reference kernels.
type CPU struct {
	mu    sync.Mutex
	buf32 [][]float32 // cached scratch buffers (logits blocks, widened activations), not the ones lent out
	buf64 [][]float64
}

// maxCachedBufs is how many scratch buffers of each type the cache keeps
// (an autocast call may hold a few at once: widened q, k, v and out).
const maxCachedBufs = 6

// New returns a CPU backend.
func New() *CPU { return &CPU{} }

// Name returns "cpu".
func (c *CPU) Name() string { return "cpu" }

// ReleaseScratch drops the cached scratch buffers (the cross-entropy logits
// block can be large when V is large, and autocast calls widen 16-bit
// activations into scratch), letting the garbage collector reclaim them.
// The next call that needs scratch allocates afresh.
func (c *CPU) ReleaseScratch() {
	c.mu.Lock()
	c.buf32, c.buf64 = nil, nil
	c.mu.Unlock()
}

// getBuf returns a scratch slice of length n (contents undefined): the
// smallest cached buffer large enough, taken out of the cache, or a new one.
func getBuf[T gemm.Float](c *CPU, n int) []T {
	c.mu.Lock()
	defer c.mu.Unlock()
	var z T
	switch any(z).(type) {
	case float32:
		if b, ok := takeBuf(&c.buf32, n); ok {
			return any(b).([]T)
		}
	case float64:
		if b, ok := takeBuf(&c.buf64, n); ok {
			return any(b).([]T)
		}
	}
	return make([]T, n)
}

func takeBuf[E any](list *[][]E, n int) ([]E, bool) {
	best := -1
	for i, b := range *list {
		if cap(b) >= n && (best < 0 || cap(b) < cap((*list)[best])) {
			best = i
		}
	}
	if best < 0 {
		return nil, false
	}
	b := (*list)[best]
	l := *list
	l[best] = l[len(l)-1]
	l[len(l)-1] = nil
	*list = l[:len(l)-1]
	return b[:n], true
}

// putBuf returns a scratch slice to the cache, which keeps the
// maxCachedBufs largest buffers.
func putBuf[T gemm.Float](c *CPU, b []T) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch b := any(b).(type) {
	case []float32:
		keepBuf(&c.buf32, b)
	case []float64:
		keepBuf(&c.buf64, b)
	}
}

func keepBuf[E any](list *[][]E, b []E) {
	if cap(b) == 0 {
		return
	}
	*list = append(*list, b)
	if len(*list) <= maxCachedBufs {
		return
	}
	small := 0
	for i, x := range *list {
		if cap(x) < cap((*list)[small]) {
			small = i
		}
	}
	l := *list
	l[small] = l[len(l)-1]
	l[len(l)-1] = nil
	*list = l[:len(l)-1]
}

// dtypeOf returns the dtype shared by the non-nil tensors, panicking if they
// disagree or if it is not a compute dtype (F32 or F64).
func dtypeOf(op string, ts ...*tensor.Tensor) tensor.DType {
	var dt tensor.DType
	var first *tensor.Tensor
	for _, t := range ts {
		if t == nil {
			continue
		}
		if first == nil {
			first, dt = t, t.DType
			if dt != tensor.F32 && dt != tensor.F64 {
				panic(fmt.Sprintf("cpu.%s: tensor %s: compute dtype must be F32 or F64", op, t))
			}
			continue
		}
		if t.DType != dt {
			panic(fmt.Sprintf("cpu.%s: mixed dtypes: %s and %s", op, first, t))
		}
	}
	if first == nil {
		panic(fmt.Sprintf("cpu.%s: no tensors", op))
	}
	return dt
}

// s32 and s64 return a tensor's storage, exactly Numel long (nil for nil).
func s32(t *tensor.Tensor) []float32 {
	if t == nil {
		return nil
	}
	return t.F32[:t.Numel()]
}

func s64(t *tensor.Tensor) []float64 {
	if t == nil {
		return nil
	}
	return t.F64[:t.Numel()]
}

// rc returns (product of all dims but the last, last dim); a scalar is (1, 1).
func rc(t *tensor.Tensor) (rows, cols int) {
	if len(t.Shape) == 0 {
		return 1, 1
	}
	rows = 1
	for _, d := range t.Shape[:len(t.Shape)-1] {
		rows *= d
	}
	return rows, t.Shape[len(t.Shape)-1]
}

// checkRC panics unless t (if non-nil) has last dim cols and rows*cols
// elements, i.e. can be read as a (rows, cols) matrix.
func checkRC(op, name string, t *tensor.Tensor, rows, cols int) {
	if t == nil {
		return
	}
	r, c := rc(t)
	if r != rows || c != cols {
		panic(fmt.Sprintf("cpu.%s: %s has shape %v, want (%d, %d)", op, label(name, t), t.Shape, rows, cols))
	}
}

// checkNumel panics unless t (if non-nil) has n elements.
func checkNumel(op, name string, t *tensor.Tensor, n int, like *tensor.Tensor) {
	if t == nil {
		return
	}
	if t.Numel() != n {
		panic(fmt.Sprintf("cpu.%s: %s has shape %v (%d elements), want %d elements (shape %v)", op, label(name, t), t.Shape, t.Numel(), n, like.Shape))
	}
}

// label names an argument in a panic message: the parameter name, plus the
// tensor's own name when it has one.
func label(name string, t *tensor.Tensor) string {
	if t.Name == "" {
		return name
	}
	return fmt.Sprintf("%s (%q)", name, t.Name)
}
