package dist

import (
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
)

func TestDDPPlanBuckets(t *testing.T) {
	// 4-byte elements; cap 40 bytes = 10 elements.
	sizes := []int{3, 4, 20, 2, 2, 6, 1}
	got := PlanBuckets(sizes, 40)
	want := []Bucket{
		{Grads: []int{6, 5, 4, 3}, Elems: 11}, // closes once >= 10 elements
		{Grads: []int{2}, Elems: 20},          // larger than the cap: alone
		{Grads: []int{1, 0}, Elems: 7},        // the rest
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("PlanBuckets = %+v\nwant %+v", got, want)
	}
	if b := PlanBuckets(nil, 0); len(b) != 0 {
		t.Fatalf("no gradients: %v", b)
	}
	// The default cap is 25 MiB.
	b := PlanBuckets([]int{DefaultBucketBytes / 4, 1, DefaultBucketBytes/4 - 1}, 0)
	if len(b) != 2 || len(b[0].Grads) != 2 || b[0].Elems != DefaultBucketBytes/4 {
		t.Fatalf("default cap: %+v", b)
	}
}

// arenaGrads lays tensors of the given sizes out like tensor.Arena: in order,
// each padded to 16 elements, padding zero.
func arenaGrads(sizes []int) (flat []float32, grads [][]float32) {
	total := 0
	offs := make([]int, len(sizes))
	for i, n := range sizes {
		offs[i] = total
		total += (n + 15) / 16 * 16
	}
	flat = make([]float32, total)
	grads = make([][]float32, len(sizes))
	for i, n := range sizes {
		grads[i] = flat[offs[i] : offs[i]+n : offs[i]+n]
	}
	return flat, grads
}

func fillGrads(grads [][]float32, rank, step int) {
	rng := rand.New(rand.NewPCG(uint64(rank), uint64(step)))
	for _, g := range grads {
		for j := range g {
			g[j] = float32(rng.NormFloat64())
		}
	}
}

// The bucketed, overlapped all-reduce gives the same bits as all-reducing
// every gradient on its own (both sum in rank order), for arena gradients
// (in place) and loose ones (staged), over several steps, whatever order a
// rank marks its gradients ready in.
func TestDDPBucketerMatchesAllReduce(t *testing.T) {
	sizes := []int{50, 7, 300, 1, 64, 64, 129, 3, 1000, 2}
	const n, steps, capBytes = 3, 3, 600
	for _, arena := range []bool{true, false} {
		cs := NewLocal(n)
		type result struct {
			bucketed, plain [][][]float32 // step -> grad -> values
			stats           BucketerStats
			inPlace         []bool
		}
		res := make([]result, n)
		noErrors(t, runRanks(cs, func(c Comm) error {
			var flat []float32
			var grads [][]float32
			if arena {
				flat, grads = arenaGrads(sizes)
			} else {
				for _, s := range sizes {
					grads = append(grads, make([]float32, s))
				}
			}
			bk, err := NewBucketer(c, grads, BucketOptions{CapBytes: capBytes, Op: Sum, Flat: flat})
			if err != nil {
				return err
			}
			r := &res[c.Rank()]
			for s := range steps {
				fillGrads(grads, c.Rank(), s)
				plain := make([][]float32, len(grads))
				for i, g := range grads {
					plain[i] = append([]float32(nil), g...)
				}
				// Backward: gradients become final last to first; rank 1
				// marks them in a scrambled order.
				order := make([]int, len(grads))
				for i := range order {
					order[i] = len(grads) - 1 - i
				}
				if c.Rank() == 1 {
					rand.New(rand.NewPCG(7, uint64(s))).Shuffle(len(order), func(a, b int) { order[a], order[b] = order[b], order[a] })
				}
				for _, i := range order[:len(order)-1] { // the first gradient is left to WaitAll
					if err := bk.Ready(i); err != nil {
						return err
					}
				}
				if err := bk.WaitAll(); err != nil {
					return err
				}
				for _, p := range plain {
					if err := c.AllReduce(p, Sum); err != nil {
						return err
					}
				}
				var got [][]float32
				for _, g := range grads {
					got = append(got, append([]float32(nil), g...))
				}
				r.bucketed = append(r.bucketed, got)
				r.plain = append(r.plain, plain)
			}
			r.stats = bk.Stats()
			for k := range bk.Buckets() {
				r.inPlace = append(r.inPlace, bk.InPlace(k))
			}
			return nil
		}))
		for rank, r := range res {
			for s := range steps {
				for i := range sizes {
					for j := range sizes[i] {
						a, b := r.bucketed[s][i][j], r.plain[s][i][j]
						if math.Float32bits(a) != math.Float32bits(b) {
							t.Fatalf("arena=%v rank %d step %d grad %d[%d]: bucketed %v, plain %v", arena, rank, s, i, j, a, b)
						}
					}
				}
			}
			nb := len(PlanBuckets(sizes, capBytes))
			if r.stats.Steps != steps || r.stats.Launched != steps*nb {
				t.Fatalf("arena=%v stats %+v", arena, r.stats)
			}
			for k, ip := range r.inPlace {
				if ip != arena {
					t.Fatalf("arena=%v: bucket %d in place = %v", arena, k, ip)
				}
			}
			if arena && r.stats.StagedElems != 0 || !arena && r.stats.InPlaceElems != 0 {
				t.Fatalf("arena=%v: %+v", arena, r.stats)
			}
		}
	}
}

// A bucket whose span in Flat would include another bucket's gradient is
// staged instead of all-reducing that gradient twice.
func TestDDPBucketerInPlaceSafety(t *testing.T) {
	flat, grads := arenaGrads([]int{16, 16, 16})
	// Buckets in reverse order with a 1-tensor cap: {2}, {1}, {0}: all
	// adjacent-free, so each is in place.
	c := Single()
	bk, err := NewBucketer(c, grads, BucketOptions{CapBytes: 64, Flat: flat})
	if err != nil {
		t.Fatal(err)
	}
	for k := range bk.Buckets() {
		if !bk.InPlace(k) {
			t.Fatalf("bucket %d not in place", k)
		}
	}
	// List [A, B, C] with C lying between A and B in memory, cap 12
	// elements: buckets {C} and {B, A}. The span of {B, A} passes the gap
	// rule (12 elements) but holds C, so {B, A} must be staged.
	mem := make([]float32, 24)
	a, cc, b := mem[0:6:6], mem[6:18:18], mem[18:24:24]
	bk, err = NewBucketer(c, [][]float32{a, b, cc}, BucketOptions{CapBytes: 48, Flat: mem})
	if err != nil {
		t.Fatal(err)
	}
	if got := bk.Buckets(); len(got) != 2 || !reflect.DeepEqual(got[1].Grads, []int{1, 0}) {
		t.Fatalf("plan %+v", got)
	}
	if !bk.InPlace(0) || bk.InPlace(1) {
		t.Fatalf("in place: {C} %v (want true), {B, A} %v (want false)", bk.InPlace(0), bk.InPlace(1))
	}
	// Overlapping gradients are refused.
	if _, err := NewBucketer(c, [][]float32{flat[0:10], flat[5:15]}, BucketOptions{Flat: flat}); err == nil || !strings.Contains(err.Error(), "overlap") {
		t.Fatalf("overlap: %v", err)
	}
}

func TestDDPBucketerErrors(t *testing.T) {
	bk, err := NewBucketer(Single(), [][]float32{make([]float32, 4)}, BucketOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := bk.Ready(0); err != nil {
		t.Fatal(err)
	}
	if err := bk.Ready(0); err == nil {
		t.Fatal("Ready twice accepted")
	}
	if err := bk.Ready(5); err == nil {
		t.Fatal("Ready out of range accepted")
	}
	if err := bk.WaitAll(); err != nil {
		t.Fatal(err)
	}
	if err := bk.Ready(0); err != nil { // a new step
		t.Fatal(err)
	}
	// A failing collective surfaces through WaitAll with its bucket.
	cs := NewLocal(2)
	cs[1].Close()
	bk, _ = NewBucketer(cs[0], [][]float32{make([]float32, 4)}, BucketOptions{})
	if err := bk.WaitAll(); err == nil || !strings.Contains(err.Error(), "bucket 0 of 1") {
		t.Fatalf("WaitAll with a closed peer: %v", err)
	}
}

func TestDDPSharding(t *testing.T) {
	// N ranks × b per step read exactly the items one rank with N·b reads.
	for _, n := range []int{1, 2, 3, 8} {
		const b = 5
		for step := int64(0); step < 4; step++ {
			seen := map[int64]bool{}
			for r := range n {
				lo, hi := StepItems(step, b, r, n)
				for i := lo; i < hi; i++ {
					if seen[i] {
						t.Fatalf("item %d read twice", i)
					}
					seen[i] = true
				}
			}
			lo1, hi1 := StepItems(step, n*b, 0, 1)
			for i := lo1; i < hi1; i++ {
				if !seen[i] {
					t.Fatalf("n=%d step %d: item %d not read", n, step, i)
				}
			}
			if int64(len(seen)) != hi1-lo1 {
				t.Fatalf("n=%d: %d items read, want %d", n, len(seen), hi1-lo1)
			}
		}
	}
	if lo, hi, err := BatchRows(12, 2, 4); err != nil || lo != 6 || hi != 9 {
		t.Fatalf("BatchRows(12, 2, 4) = %d %d %v", lo, hi, err)
	}
	if _, _, err := BatchRows(10, 0, 4); err == nil {
		t.Fatal("uneven global batch accepted")
	}
	for _, n := range []int{0, 1, 7, 10, 11} {
		next := 0
		for r := range 4 {
			lo, hi := ShardRange(n, r, 4)
			if lo != next || hi < lo || hi-lo > n/4+1 || hi-lo < n/4 {
				t.Fatalf("ShardRange(%d, %d, 4) = %d %d", n, r, lo, hi)
			}
			next = hi
		}
		if next != max(n, 0) {
			t.Fatalf("ShardRange(%d): covered %d", n, next)
		}
	}
	order := []int{10, 11, 12, 13, 14, 15, 16}
	if got := Strided(order, 1, 3); !reflect.DeepEqual(got, []int{11, 14}) {
		t.Fatalf("Strided = %v", got)
	}
}
