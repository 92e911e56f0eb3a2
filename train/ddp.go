package train

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"github.com/shoggo/shoggo/backend"
	"github.com/shoggo/shoggo/dist"
	"github.com/shoggo/shoggo/model"
	"github.com/shoggo/shoggo/tensor"
)

// Data parallelism (DDP) in the harness.
//
// With a Trainer.Comm of N > 1 ranks every rank runs the same loop on its
// own rows of each global batch (see ShardRows), and the ranks stay in
// collective lock-step:
//
//	start       rank 0 resumes (if asked) and broadcasts the trainer state
//	            (step, data position, RNG, loss scaler, before-figures),
//	            the parameters and, when resumed, the optimizer moments;
//	            a checksum of every parameter is compared across ranks
//	per step    AllReduceF64 of the objective's count (the loss is
//	            normalised by the GLOBAL count, so N ranks × batch b step
//	            like 1 rank × batch N·b); forward/backward of every
//	            micro-batch with no communication until the last one,
//	            whose backward launches the gradient buckets (reverse
//	            layer order, ~25 MB, all-reduced in place with Sum while
//	            backward goes on); WaitAll before the loss-scaler check and
//	            clipping, which therefore see the global gradient on every
//	            rank (same skip decision, same norm, same AdamW update);
//	            AllReduceF64 of [loss sum, stop flag]: the reported loss is
//	            global, and the run stops at the same step on every rank
//	            (Ctrl-C/SIGTERM on any rank, rank 0's time limit)
//	evaluation  the Eval hook runs on every rank (it may shard its work and
//	            reduce through the Comm, as the recipes do: EvaluateOn);
//	            rank 0's figures are the ones logged
//	samples     rank 0 only (no collectives inside Sample)
//	checkpoint  every rank takes part (per-rank Trainable.State is gathered,
//	            parameters are checksummed again); rank 0 alone writes, as
//	            it alone writes metrics.jsonl, loss.png, summary.json and
//	            the final model, prints and holds the run lock
//
// Gradients are reduced with Sum: each rank's loss gradient is already
// scaled by 1/(global count).

// ddp is the data-parallel state of a run on several ranks.
type ddp struct {
	c          dist.Comm
	rank, size int
	m          *model.Transformer
	tr         *Trainable
	bk         *dist.Bucketer // nil: gradients are not host tensors (reduced one by one)
	grads      [][]float32
	// stage[l+1] lists the gradients final after BackwardHook(l); l = -1
	// (the embeddings) is left to WaitAll.
	stage   [][]int
	overlap bool
	hookErr error
	marked  []bool
	zero    *zero1 // ZeRO-1 (Options.Zero = 1): sharded AdamW moments

	wantStop func() bool // this rank wants to stop (asked after each backward)
	stopAll  bool        // the ranks agreed to stop after the step
	waitTime time.Duration
	reduces  int
	armedAt  int // buckets launched when the hook was armed
	// early counts the buckets launched by the backward hook (before
	// WaitAll), buckets the buckets launched in all.
	early, buckets int
}

// layerOf returns the block index in a tensor name ("...layers.3..." or
// GPT-2's "...h.3..."), or -1.
func layerOf(name string) int {
	parts := strings.Split(name, ".")
	for i := 0; i+1 < len(parts); i++ {
		if parts[i] == "layers" || parts[i] == "h" || parts[i] == "blocks" {
			if n, err := strconv.Atoi(parts[i+1]); err == nil && n >= 0 {
				return n
			}
		}
	}
	return -1
}

// sameStorage reports whether a and b are host tensors starting at the same
// element.
func sameStorage(a, b *tensor.Tensor) bool {
	if a == nil || b == nil || !a.IsHost() || !b.IsHost() || len(a.F32) == 0 || len(b.F32) == 0 {
		return false
	}
	return &a.F32[0] == &b.F32[0]
}

// inArena reports whether host tensor t lies inside arena a's block.
func inArena(t *tensor.Tensor, a *tensor.Arena) bool {
	if a == nil || t == nil || !t.IsHost() || len(t.F32) == 0 {
		return false
	}
	f := a.Flat()
	if !f.IsHost() || len(f.F32) == 0 {
		return false
	}
	lo := uintptr(unsafe.Pointer(&f.F32[0]))
	p := uintptr(unsafe.Pointer(&t.F32[0]))
	return p >= lo && p < lo+uintptr(len(f.F32))*4
}

func newDDP(c dist.Comm, m *model.Transformer, tr *Trainable, o *Options) (*ddp, error) {
	d := &ddp{c: c, rank: c.Rank(), size: c.Size(), m: m, tr: tr, overlap: !o.NoOverlap}
	host := true
	d.grads = make([][]float32, len(tr.Grads))
	for i, g := range tr.Grads {
		if !g.IsHost() || g.DType != tensor.F32 || len(g.F32) < g.Numel() {
			host = false
			break
		}
		d.grads[i] = g.F32[:g.Numel():g.Numel()]
	}
	if !host {
		d.grads, d.overlap = nil, false
		return d, nil
	}
	var flat []float32
	if a := tr.GradArena; a != nil && a.Flat().IsHost() {
		flat = a.Flat().F32
	}
	capBytes := dist.DefaultBucketBytes
	if o.BucketMB > 0 {
		capBytes = max(1, int(o.BucketMB*(1<<20)))
	}
	var err error
	if d.bk, err = dist.NewBucketer(c, d.grads, dist.BucketOptions{CapBytes: capBytes, Op: dist.Sum, Flat: flat}); err != nil {
		return nil, err
	}
	L := len(m.Blocks)
	d.stage = make([][]int, L+2)
	d.marked = make([]bool, len(tr.Grads))
	var headGrads []*tensor.Tensor
	if m.NormF != nil {
		headGrads = append(headGrads, m.NormF.DW, m.NormF.DB)
	}
	if !sameStorage(m.DLMHead, m.DEmbed) {
		headGrads = append(headGrads, m.DLMHead)
	}
	for i, g := range tr.Grads {
		switch {
		case sameStorage(g, m.DEmbed) || sameStorage(g, m.DPosEmbed):
			// final after the embeddings' backward: WaitAll
		case !inArena(g, tr.GradArena):
			// a head's gradient outside the arena: written before Backward
			d.stage[L+1] = append(d.stage[L+1], i)
		default:
			l := layerOf(g.Name)
			isHead := false
			for _, h := range headGrads {
				isHead = isHead || sameStorage(g, h)
			}
			switch {
			case isHead:
				d.stage[L+1] = append(d.stage[L+1], i)
			case l >= 0 && l < L:
				d.stage[l+1] = append(d.stage[l+1], i)
			}
			// anything else: left to WaitAll
		}
	}
	return d, nil
}

// arm installs the backward hook for the last micro-batch of a step.
func (d *ddp) arm() {
	if d.bk == nil || !d.overlap {
		return
	}
	clear(d.marked)
	d.armedAt = d.bk.Stats().Launched
	d.m.BackwardHook = d.onLayer
}

func (d *ddp) disarm() { d.m.BackwardHook = nil }

func (d *ddp) onLayer(l int) {
	for _, i := range d.stage[l+1] {
		if d.marked[i] {
			if d.hookErr == nil {
				d.hookErr = fmt.Errorf("ddp: gradient %q became final twice in one backward pass (an objective that runs Backward more than once per micro-batch needs no_overlap)", d.tr.Grads[i].Name)
			}
			continue
		}
		d.marked[i] = true
		if err := d.bk.Ready(i); err != nil && d.hookErr == nil {
			d.hookErr = err
		}
	}
}

// reduceGrads sums the gradients over the ranks (finishing the buckets the
// backward hook launched).
func (d *ddp) reduceGrads() error {
	t0 := time.Now()
	defer func() { d.waitTime += time.Since(t0); d.reduces++ }()
	if d.bk != nil {
		if d.overlap {
			d.early += d.bk.Stats().Launched - d.armedAt
		}
		err := d.bk.WaitAll()
		d.buckets = d.bk.Stats().Launched
		if herr := d.hookErr; herr != nil {
			d.hookErr = nil
			return errors.Join(herr, err)
		}
		return err
	}
	be := d.tr.BE
	for _, g := range d.tr.Grads {
		var err error
		h := toHost(be, g)
		if err = d.c.AllReduce(h.F32[:h.Numel()], dist.Sum); err != nil {
			return err
		}
		if !g.IsHost() {
			be.Upload(g, h)
		}
	}
	return nil
}

func toHost(be backend.Backend, t *tensor.Tensor) *tensor.Tensor {
	if be == nil || t.IsHost() {
		return t
	}
	return backend.ToHost(be, t)
}

// sumF64 all-reduces v (Sum) and returns it.
func (d *ddp) sumF64(v ...float64) ([]float64, error) {
	err := d.c.AllReduceF64(v, dist.Sum)
	return v, err
}

// endStep reduces the step's loss sum and the stop flags: it returns the
// global loss sum, and records whether any rank asked to stop.
func (d *ddp) endStep(lossSum float64) (float64, error) {
	stop := 0.0
	if d.wantStop != nil && d.wantStop() {
		stop = 1
	}
	v, err := d.sumF64(lossSum, stop)
	if err != nil {
		return 0, err
	}
	d.stopAll = v[1] > 0
	return v[0], nil
}

// broadcastTensors copies rank 0's tensors into every rank's.
func (d *ddp) broadcastTensors(be backend.Backend, ts []*tensor.Tensor) error {
	for _, t := range ts {
		h := toHost(be, t)
		if err := d.c.Broadcast(h.F32[:h.Numel()], 0); err != nil {
			return fmt.Errorf("ddp: broadcasting %s: %w", t.Name, err)
		}
		if !t.IsHost() {
			be.Upload(t, h)
		}
	}
	return nil
}

// checksum compares a hash of every tensor across the ranks and names the
// first that differs.
func (d *ddp) checksum(be backend.Backend, ts []*tensor.Tensor, what string) error {
	hi := make([]float64, 2*len(ts))
	for i, t := range ts {
		h := toHost(be, t)
		f := fnv.New64a()
		var b [4]byte
		for _, v := range h.F32[:h.Numel()] {
			binary.LittleEndian.PutUint32(b[:], math.Float32bits(v))
			f.Write(b[:])
		}
		s := f.Sum64()
		hi[2*i], hi[2*i+1] = float64(s>>32), float64(s&0xffffffff)
	}
	lo := append([]float64(nil), hi...)
	if err := d.c.AllReduceF64(hi, dist.Max); err != nil {
		return err
	}
	if err := d.c.AllReduceF64(lo, dist.Min); err != nil {
		return err
	}
	for i, t := range ts {
		if hi[2*i] != lo[2*i] || hi[2*i+1] != lo[2*i+1] {
			return fmt.Errorf("ddp: %s: tensor %q differs between ranks (checksum)", what, t.Name)
		}
	}
	return nil
}

// broadcastBytes sends root's b to every rank (other ranks' b is replaced).
func (d *ddp) broadcastBytes(b []byte, root int) ([]byte, error) {
	n := []float64{0}
	if d.rank == root {
		n[0] = float64(len(b))
	}
	if err := d.c.AllReduceF64(n, dist.Sum); err != nil {
		return nil, err
	}
	if d.rank != root {
		b = make([]byte, int(n[0]))
	}
	if len(b) == 0 {
		return b, nil
	}
	return b, d.c.BroadcastBytes(b, root)
}

// paramTensors lists the Trainable's weights.
func (tr *Trainable) paramTensors() []*tensor.Tensor {
	ts := make([]*tensor.Tensor, len(tr.Params))
	for i, p := range tr.Params {
		ts[i] = p.W
	}
	return ts
}

// ShardRows returns a Source serving rank c.Rank()'s rows of each global
// micro-batch src serves: every rank builds the same seeded global order,
// and a global batch of N·b rows gives rank r rows [r·b, (r+1)·b)
// (dist.BatchRows), so N ranks with per-rank batch b consume what one rank
// with batch N·b does, in the same order, and the position (src's) is the
// same on every rank. src must serve global batches (N·b rows; for pairs,
// N·b must keep each rank's rows whole pairs). With no Comm or one rank it
// returns src.
func ShardRows(src Source, c dist.Comm) Source {
	if c == nil || c.Size() <= 1 {
		return src
	}
	return &shardSource{inner: src, rank: c.Rank(), size: c.Size()}
}

type shardSource struct {
	inner      Source
	rank, size int
	global     []*model.Batch
}

func (s *shardSource) Fill(micro []*model.Batch) error {
	if len(s.global) != len(micro) {
		s.global = make([]*model.Batch, len(micro))
	}
	if err := s.inner.Fill(s.global); err != nil {
		return err
	}
	for i, g := range s.global {
		b, err := BatchRows(g, s.rank, s.size)
		if err != nil {
			return err
		}
		micro[i] = b
	}
	return nil
}

func (s *shardSource) MarshalState() ([]byte, error) { return s.inner.MarshalState() }
func (s *shardSource) RestoreState(b []byte) error   { return s.inner.RestoreState(b) }

// BatchRows returns rank's block of g's rows (views of g's arrays).
func BatchRows(g *model.Batch, rank, size int) (*model.Batch, error) {
	lo, hi, err := dist.BatchRows(g.B, rank, size)
	if err != nil {
		return nil, err
	}
	return rowsView(g, lo, hi), nil
}

// EvaluateOn is Evaluate with the rows of every batch split over c's ranks
// (contiguous blocks, dist.ShardRange) and the loss sums and counts reduced:
// every rank returns the mean loss over all the batches' tokens. With no
// Comm or one rank it is Evaluate.
func EvaluateOn(c dist.Comm, m *model.Transformer, batches []*model.Batch) (float64, error) {
	if c == nil || c.Size() <= 1 {
		return Evaluate(m, batches)
	}
	var sum, n float64
	for _, b := range batches {
		lo, hi := dist.ShardRange(b.B, c.Rank(), c.Size())
		if hi == lo {
			continue
		}
		part := rowsView(b, lo, hi)
		if err := ensurePlan(m, part); err != nil {
			return 0, err
		}
		if err := m.Forward(part); err != nil {
			return 0, err
		}
		s, k, err := m.Loss(part, 0, false)
		if err != nil {
			return 0, err
		}
		sum += s
		n += float64(k)
	}
	v := []float64{sum, n}
	if err := c.AllReduceF64(v, dist.Sum); err != nil {
		return 0, err
	}
	if v[1] == 0 {
		return 0, fmt.Errorf("evaluate: no target tokens")
	}
	return v[0] / v[1], nil
}

func rowsView(g *model.Batch, lo, hi int) *model.Batch {
	T := g.T
	cut := func(a []int32) []int32 {
		if a == nil {
			return nil
		}
		return a[lo*T : hi*T : hi*T]
	}
	return &model.Batch{B: hi - lo, T: T, IDs: cut(g.IDs), Pos: cut(g.Pos), KeyMask: cut(g.KeyMask),
		Segments: cut(g.Segments), Targets: cut(g.Targets)}
}

// announceSignals prints, on rank 0, what a SIGINT/SIGTERM does to a
// data-parallel run, at once (the stop itself waits for the end of the
// step). It never starts a collective: under mpirun a SIGTERM usually means
// another rank died, and the survivors are then killed a second later
// whatever they do. It returns the function that stops listening.
func (t *Trainer) announceSignals() func() {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case s := <-sig:
			signal.Stop(sig) // a second Ctrl-C kills, as in a single process
			last, err := LatestCheckpoint(t.ckpt)
			if err != nil {
				last = "none yet"
			}
			fmt.Fprintf(t.Log, "\nrank %d: %v: all ranks stop after this step and rank 0 saves a checkpoint; if a rank died, mpirun ends the job instead (last checkpoint: %s)\n", t.Comm.Rank(), s, last)
		case <-done:
		}
	}()
	return func() { signal.Stop(sig); close(done) }
}
