package train

import (
	"fmt"
	"path/filepath"
	"sort"

	"github.com/shoggo/shoggo/dist"
	"github.com/shoggo/shoggo/optim"
	"github.com/shoggo/shoggo/safetensors"
	"github.com/shoggo/shoggo/tensor"
)

// ZeRO-1: the AdamW moments sharded over the ranks.
//
// The trainable parameters, taken in order, form one logical vector of P
// elements. Rank r owns the contiguous slice [r·S, min((r+1)·S, P)) with
// S = ceil(P/N): its optimizer (an ordinary AdamW) is built over views of
// the pieces of the parameters (and their gradients) that fall in the
// slice, so its two moment arenas hold about 2P/N floats instead of 2P.
// A step is the plain DDP step up to the update (the gradients are
// all-reduced in full, clipping sees the global norm); each rank then
// updates its slice, and the slices are all-gathered into every rank's
// parameters (in chunks of zeroChunk elements per rank through a small
// staging buffer). AdamW is elementwise, so every element gets exactly
// the update plain DDP gives it: ZeRO-1 and DDP weights are the same bits.
// Communication per step is the gradient all-reduce plus an all-gather of
// the parameters (1.5× DDP's bytes; a reduce-scatter of the gradients
// would bring it back to 1×, at the price of giving up the bucketed
// overlap, which all-reduces whole buckets).
//
// Checkpoints hold the full moments, as a single-process run writes them:
// they are gathered to rank 0 when it saves, and scattered from rank 0's
// copy (read from the checkpoint's memory-mapped file) on resume.

// zeroChunk is the all-gather chunk per rank, in elements (4 MiB).
const zeroChunk = 1 << 20

// space is a logical vector laid over a list of float32 segments.
type space struct {
	segs [][]float32
	base []int // base[i] = offset of segs[i]; base[len] = total
}

func newSpace(segs [][]float32) space {
	s := space{segs: segs, base: make([]int, len(segs)+1)}
	for i, g := range segs {
		s.base[i+1] = s.base[i] + len(g)
	}
	return s
}

func (s space) total() int { return s.base[len(s.segs)] }

// walk calls fn for the pieces of [lo, lo+n): segment i, its [a, b), and the
// offset of the piece within [lo, lo+n).
func (s space) walk(lo, n int, fn func(seg []float32, at int)) {
	hi := min(lo+n, s.total())
	i := sort.Search(len(s.segs), func(i int) bool { return s.base[i+1] > lo })
	for x := lo; x < hi && i < len(s.segs); i++ {
		a := x - s.base[i]
		b := min(len(s.segs[i]), hi-s.base[i])
		if b > a {
			fn(s.segs[i][a:b], x-lo)
			x += b - a
		}
	}
}

// read copies [lo, lo+len(dst)) into dst (zeros past the end).
func (s space) read(lo int, dst []float32) {
	clear(dst)
	s.walk(lo, len(dst), func(seg []float32, at int) { copy(dst[at:], seg) })
}

// write copies src into [lo, lo+len(src)) (what lies past the end is dropped).
func (s space) write(lo int, src []float32) {
	s.walk(lo, len(src), func(seg []float32, at int) { copy(seg, src[at:at+len(seg)]) })
}

type zero1 struct {
	d       *ddp
	params  space // the full parameters
	S       int   // elements per rank's slice
	lo, hi  int   // this rank's slice
	opt     *optim.AdamW
	names   []string // full parameter names
	shapes  []tensor.Shape
	offsets []int // parameter i starts at offsets[i] in the logical vector
	stage   []float32
	send    []float32
}

// newZero1 builds the sharded optimizer over tr's parameters (host F32
// tensors).
func newZero1(d *ddp, tr *Trainable, cfg optim.Config) (*zero1, error) {
	z := &zero1{d: d}
	segs := make([][]float32, len(tr.Params))
	for i, p := range tr.Params {
		if !p.W.IsHost() || !p.G.IsHost() || p.W.DType != tensor.F32 {
			return nil, fmt.Errorf("zero 1: parameter %s is not in host memory (ZeRO-1 runs on the CPU backend)", p.Name)
		}
		segs[i] = p.W.F32[:p.W.Numel()]
		z.names = append(z.names, p.Name)
		z.shapes = append(z.shapes, p.W.Shape.Clone())
	}
	z.params = newSpace(segs)
	z.offsets = z.params.base[:len(segs)]
	P, N := z.params.total(), d.size
	z.S = (P + N - 1) / N
	z.lo, z.hi = min(d.rank*z.S, P), min((d.rank+1)*z.S, P)
	var pieces []optim.Param
	for i, p := range tr.Params {
		a, b := max(z.lo, z.offsets[i]), min(z.hi, z.offsets[i]+len(segs[i]))
		if b <= a {
			continue
		}
		off, n := a-z.offsets[i], b-a
		pieces = append(pieces, optim.Param{Name: fmt.Sprintf("%s[%d:%d]", p.Name, off, off+n),
			W: p.W.View(off, n), G: p.G.View(off, n), Decay: p.Decay})
	}
	var err error
	if z.opt, err = optim.NewAdamWOn(d.tr.BE, pieces, cfg); err != nil {
		return nil, err
	}
	k := min(zeroChunk, max(z.S, 1))
	z.stage, z.send = make([]float32, N*k), make([]float32, k)
	return z, nil
}

// mine is this rank's moments (first or second) as a logical vector over
// [lo, hi).
func (z *zero1) mine(second bool) space {
	m, v := z.opt.Moments()
	a := m
	if second {
		a = v
	}
	var segs [][]float32
	for _, t := range a.Tensors() {
		segs = append(segs, t.F32[:t.Numel()])
	}
	return newSpace(segs)
}

// step updates this rank's slice and all-gathers the parameters.
func (z *zero1) step(lr float64) error {
	z.opt.Step(lr)
	return z.allGather(func(lo int, dst []float32) { z.params.read(lo, dst) }, z.params)
}

// allGather gathers every rank's slice [r·S, (r+1)·S) — read(x, dst) fills
// dst with this rank's elements starting at logical x — into dst (nil:
// discard, the rank only helps).
func (z *zero1) allGather(read func(lo int, dst []float32), dst space) error {
	N, P := z.d.size, z.params.total()
	k := len(z.send)
	for c := 0; c < z.S; c += k {
		n := min(k, z.S-c)
		send, recv := z.send[:n], z.stage[:N*n]
		clear(send)
		if x := z.lo + c; x < z.hi {
			read(x, send[:min(n, z.hi-x)])
		}
		if err := z.d.c.AllGather(send, recv); err != nil {
			return fmt.Errorf("zero 1: all-gather: %w", err)
		}
		if dst.segs == nil {
			continue
		}
		for q := range N {
			x := q*z.S + c
			if x >= P {
				break
			}
			dst.write(x, recv[q*n:q*n+min(n, P-x)])
		}
	}
	return nil
}

// fullMoments gathers the moments to rank 0 as host tensors named as a
// single-process optimizer's State (nil on other ranks).
func (z *zero1) fullMoments() ([]*tensor.Tensor, error) {
	var out []*tensor.Tensor
	for _, second := range []bool{false, true} {
		prefix := "exp_avg."
		if second {
			prefix = "exp_avg_sq."
		}
		var full space
		var ts []*tensor.Tensor
		if z.d.rank == 0 {
			segs := make([][]float32, len(z.names))
			for i, name := range z.names {
				t := tensor.New(tensor.F32, z.shapes[i]...)
				t.Name = prefix + name
				ts = append(ts, t)
				segs[i] = t.F32
			}
			full = newSpace(segs)
		}
		mine := z.mine(second)
		if err := z.allGather(func(lo int, dst []float32) { mine.read(lo-z.lo, dst) }, full); err != nil {
			return nil, err
		}
		out = append(out, ts...)
	}
	return out, nil
}

// loadMoments scatters the moments of the checkpoint at path (read on rank
// 0; path is ignored elsewhere) into every rank's slice, and sets the step
// count (broadcast).
func (z *zero1) loadMoments(path string) error {
	var f *safetensors.File
	step := []float64{0}
	var err error
	if z.d.rank == 0 {
		of := filepath.Join(path, optFile)
		if f, err = safetensors.Open(of); err != nil {
			return err
		}
		defer f.Close()
		var n int
		if _, err := fmt.Sscan(f.Metadata()["step"], &n); err != nil || n < 0 {
			return fmt.Errorf("%s: bad optimizer step %q in metadata", of, f.Metadata()["step"])
		}
		step[0] = float64(n)
	}
	if err := z.d.c.AllReduceF64(step, dist.Max); err != nil {
		return err
	}
	z.opt.SetStepCount(int(step[0]))
	P := z.params.total()
	buf := make([]float32, min(zeroChunk, max(P, 1)))
	for _, second := range []bool{false, true} {
		prefix := "exp_avg."
		if second {
			prefix = "exp_avg_sq."
		}
		var full space
		if z.d.rank == 0 {
			segs := make([][]float32, len(z.names))
			for i, name := range z.names {
				t, err := f.Tensor(prefix + name)
				if err != nil {
					return fmt.Errorf("%s: %w", path, err)
				}
				if t.DType != tensor.F32 || !t.Shape.Equal(z.shapes[i]) {
					return fmt.Errorf("%s: optimizer state %s: %s %v, want F32 %v", path, prefix+name, t.DType, t.Shape, z.shapes[i])
				}
				segs[i] = t.F32
			}
			full = newSpace(segs)
		}
		mine := z.mine(second)
		for c := 0; c < P; c += len(buf) {
			n := min(len(buf), P-c)
			if z.d.rank == 0 {
				full.read(c, buf[:n])
			}
			if err := z.d.c.Broadcast(buf[:n], 0); err != nil {
				return err
			}
			if a, b := max(c, z.lo), min(c+n, z.hi); b > a {
				mine.write(a-z.lo, buf[a-c:b-c])
			}
		}
	}
	return nil
}
