package dist

import (
	"errors"
	"fmt"
	"sort"
	"unsafe"
)

// DefaultBucketBytes is the gradient bucket size: 25 MiB, PyTorch DDP's
// bucket_cap_mb default.
const DefaultBucketBytes = 25 << 20

// Bucket is a group of gradient tensors all-reduced together.
type Bucket struct {
	// Grads are indices into the gradient list, in the order the tensors'
	// gradients become final (reverse list order: backward runs from the
	// last layer to the first).
	Grads []int
	// Elems is the number of float32 gradient elements in the bucket.
	Elems int
}

// PlanBuckets splits gradient tensors of the given element counts, taken in
// reverse order, into buckets of about capBytes: a bucket closes as soon as
// it holds capBytes or more, so a bucket exceeds the cap by less than one
// tensor and a tensor larger than the cap is a bucket of its own. The plan
// depends only on the sizes, so every rank makes the same one.
func PlanBuckets(sizes []int, capBytes int) []Bucket {
	if capBytes <= 0 {
		capBytes = DefaultBucketBytes
	}
	var out []Bucket
	var cur Bucket
	for i := len(sizes) - 1; i >= 0; i-- {
		cur.Grads = append(cur.Grads, i)
		cur.Elems += sizes[i]
		if cur.Elems*4 >= capBytes {
			out = append(out, cur)
			cur = Bucket{}
		}
	}
	if len(cur.Grads) > 0 {
		out = append(out, cur)
	}
	return out
}

// BucketOptions configures a Bucketer.
type BucketOptions struct {
	// CapBytes is the bucket size (0: DefaultBucketBytes).
	CapBytes int
	// Op is the reduction (Sum when the loss is already normalised by the
	// global token count; Avg for a per-rank mean loss).
	Op Op
	// Flat, when set, is the gradient arena the tensors are views of. A
	// bucket whose tensors are adjacent in Flat (gaps of fewer than 16
	// elements, an arena's alignment padding, are included and must hold
	// zeros, as arena padding does) is all-reduced in place, without a copy.
	// Other buckets are packed into a staging buffer and unpacked by WaitAll.
	Flat []float32
}

// maxGap is the largest gap (in elements) between two gradients of a bucket
// that is all-reduced in place: the tensor arena pads each tensor to 16
// elements.
const maxGap = 15

// Bucketer all-reduces gradients in buckets while backward runs. Each step
// the trainer calls Ready(i) as gradient i becomes final (in any order),
// and WaitAll once backward is done. Buckets are launched strictly in plan
// order (bucket k after bucket k-1), each as a non-blocking IAllReduce as
// soon as all its gradients are ready, so every rank issues the same
// collectives in the same order whatever order its Ready calls come in.
type Bucketer struct {
	c       Comm
	op      Op
	grads   [][]float32
	buckets []Bucket
	of      []int         // gradient -> bucket
	span    [][]float32   // per bucket: the in-place view of Flat, or nil
	stage   [][]float32   // per bucket: the staging buffer when not in place
	left    []int         // per bucket: gradients not yet ready this step
	ready   []bool        // per gradient, this step
	reqs    []Request     // per bucket, this step
	next    int           // next bucket to launch
	stats   BucketerStats // totals since creation
}

// BucketerStats counts a Bucketer's work.
type BucketerStats struct {
	Steps        int   // WaitAll calls
	Launched     int   // buckets launched
	InPlaceElems int64 // elements all-reduced in place
	StagedElems  int64 // elements copied through staging buffers
}

// NewBucketer plans buckets over grads (the order in which a forward pass
// uses them; their gradients become final in reverse order).
func NewBucketer(c Comm, grads [][]float32, opt BucketOptions) (*Bucketer, error) {
	if err := checkOp("Bucketer", opt.Op); err != nil {
		return nil, err
	}
	sizes := make([]int, len(grads))
	for i, g := range grads {
		sizes[i] = len(g)
	}
	b := &Bucketer{c: c, op: opt.Op, grads: grads, buckets: PlanBuckets(sizes, opt.CapBytes),
		of: make([]int, len(grads)), ready: make([]bool, len(grads))}
	nb := len(b.buckets)
	b.span, b.stage, b.left, b.reqs = make([][]float32, nb), make([][]float32, nb), make([]int, nb), make([]Request, nb)
	for k, bk := range b.buckets {
		for _, i := range bk.Grads {
			b.of[i] = k
		}
	}
	spans, err := inPlaceSpans(grads, b.buckets, opt.Flat)
	if err != nil {
		return nil, err
	}
	for k, bk := range b.buckets {
		if spans[k] != nil {
			b.span[k] = spans[k]
		} else {
			b.stage[k] = make([]float32, bk.Elems)
		}
	}
	b.reset()
	return b, nil
}

// Buckets returns the plan.
func (b *Bucketer) Buckets() []Bucket { return b.buckets }

// InPlace reports whether bucket k is all-reduced in place in Flat.
func (b *Bucketer) InPlace(k int) bool { return b.span[k] != nil }

// Stats returns the counters.
func (b *Bucketer) Stats() BucketerStats { return b.stats }

func (b *Bucketer) reset() {
	for k, bk := range b.buckets {
		b.left[k] = len(bk.Grads)
		b.reqs[k] = nil
	}
	clear(b.ready)
	b.next = 0
}

// Ready marks gradient i final for this step and launches every bucket
// that is now complete and next in order. Calling it twice for one
// gradient in a step is an error.
func (b *Bucketer) Ready(i int) error {
	if i < 0 || i >= len(b.grads) {
		return fmt.Errorf("dist: Bucketer.Ready(%d): %d gradients", i, len(b.grads))
	}
	if b.ready[i] {
		return fmt.Errorf("dist: Bucketer.Ready(%d) called twice in one step", i)
	}
	b.ready[i] = true
	b.left[b.of[i]]--
	for b.next < len(b.buckets) && b.left[b.next] == 0 {
		b.launch(b.next)
		b.next++
	}
	return nil
}

func (b *Bucketer) launch(k int) {
	buf := b.span[k]
	if buf == nil {
		buf = b.stage[k]
		off := 0
		for _, i := range b.buckets[k].Grads {
			off += copy(buf[off:], b.grads[i])
		}
		b.stats.StagedElems += int64(len(buf))
	} else {
		b.stats.InPlaceElems += int64(len(buf))
	}
	b.reqs[k] = b.c.IAllReduce(buf, b.op)
	b.stats.Launched++
}

// WaitAll launches the buckets not launched yet (gradients never marked
// ready count as final: a parameter unused this step keeps its zero
// gradient, which still takes part in the sum), waits for every bucket,
// copies staged results back into the gradients and prepares the next step.
// It waits for all buckets even after an error and returns the errors.
func (b *Bucketer) WaitAll() error {
	for ; b.next < len(b.buckets); b.next++ {
		b.launch(b.next)
	}
	var errs []error
	for k, r := range b.reqs {
		if err := r.Wait(); err != nil {
			errs = append(errs, fmt.Errorf("bucket %d of %d: %w", k, len(b.buckets), err))
			continue
		}
		if b.span[k] == nil {
			off := 0
			for _, i := range b.buckets[k].Grads {
				off += copy(b.grads[i], b.stage[k][off:])
			}
		}
	}
	b.stats.Steps++
	b.reset()
	return errors.Join(errs...)
}

// inPlaceSpans finds, for each bucket, the view of flat that covers exactly
// its gradients (plus small padding gaps), or nil.
func inPlaceSpans(grads [][]float32, buckets []Bucket, flat []float32) ([][]float32, error) {
	spans := make([][]float32, len(buckets))
	if len(flat) == 0 {
		return spans, nil
	}
	base := uintptr(unsafe.Pointer(&flat[0]))
	type iv struct{ lo, hi, bucket int }
	offs := make([]iv, len(grads))
	var all []iv
	for i, g := range grads {
		offs[i] = iv{-1, -1, -1}
		if len(g) == 0 {
			continue
		}
		p := uintptr(unsafe.Pointer(&g[0]))
		if p < base || (p-base)%4 != 0 {
			continue
		}
		lo := int((p - base) / 4)
		if lo+len(g) > len(flat) {
			continue
		}
		offs[i] = iv{lo, lo + len(g), -1}
		all = append(all, offs[i])
	}
	for k, bk := range buckets {
		for _, i := range bk.Grads {
			if offs[i].lo >= 0 {
				offs[i].bucket = k
			}
		}
	}
	sort.Slice(all, func(a, b int) bool { return all[a].lo < all[b].lo })
	for a := 1; a < len(all); a++ {
		if all[a].lo < all[a-1].hi {
			return nil, fmt.Errorf("dist: NewBucketer: gradients overlap in Flat at element %d", all[a].lo)
		}
	}
	for k, bk := range buckets {
		var mine []iv
		ok := true
		for _, i := range bk.Grads {
			if len(grads[i]) == 0 {
				continue
			}
			if offs[i].lo < 0 {
				ok = false
				break
			}
			mine = append(mine, offs[i])
		}
		if !ok || len(mine) == 0 {
			continue
		}
		sort.Slice(mine, func(a, b int) bool { return mine[a].lo < mine[b].lo })
		for a := 1; a < len(mine) && ok; a++ {
			ok = mine[a].lo-mine[a-1].hi <= maxGap
		}
		if !ok {
			continue
		}
		lo, hi := mine[0].lo, mine[len(mine)-1].hi
		// No other gradient may lie inside the span (gaps are checked to be
		// small; a tiny gradient of another bucket could still sit in one).
		for _, g := range all {
			if g.lo < hi && g.hi > lo {
				inBucket := false
				for _, m := range mine {
					if m.lo == g.lo {
						inBucket = true
						break
					}
				}
				if !inBucket {
					ok = false
					break
				}
			}
		}
		if ok {
			spans[k] = flat[lo:hi:hi]
		}
	}
	return spans, nil
}
