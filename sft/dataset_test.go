package sft

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"

	"github.com/shoggo/shoggo/model"
)

// testExamples returns n examples with distinct first ids (1000+i), lengths
// 2..maxLen and a random prompt.
func testExamples(n, maxLen int, seed uint64) []Encoded {
	rng := rand.New(rand.NewPCG(seed, 0))
	out := make([]Encoded, n)
	for i := range out {
		l := 2 + rng.IntN(maxLen-1)
		ids := randomIDs(rng, l, 100)
		ids[0] = int32(1000 + i)
		labels := slices.Clone(ids)
		for k := range 1 + rng.IntN(l-1) {
			labels[k] = IgnoreIndex
		}
		out[i] = Encoded{IDs: ids, Labels: labels}
	}
	return out
}

// served lists the examples of a batch (by their first id), in row order,
// and checks that each appears whole.
func served(t *testing.T, b *model.Batch, ex []Encoded) []int {
	t.Helper()
	var got []int
	for r := 0; r < b.B; r++ {
		row := b.IDs[r*b.T : (r+1)*b.T]
		for p := 0; p < b.T; {
			if b.KeyMask[r*b.T+p] == 0 {
				p++
				continue
			}
			e := int(row[p]) - 1000
			if e < 0 || e >= len(ex) || !slices.Equal(row[p:p+len(ex[e].IDs)], ex[e].IDs) {
				t.Fatalf("row %d position %d: not the start of an example", r, p)
			}
			got = append(got, e)
			p += len(ex[e].IDs)
		}
	}
	return got
}

func TestDataset(t *testing.T) {
	ex := testExamples(37, 9, 1)
	for _, pack := range []bool{false, true} {
		t.Run(fmt.Sprintf("pack=%v", pack), func(t *testing.T) {
			cfg := DatasetConfig{B: 4, T: 12, PadID: 0, Pack: pack, Seed: 7}
			d, err := NewDataset(ex, cfg)
			if err != nil {
				t.Fatal(err)
			}
			// Every epoch serves every example once, in a fresh order.
			var orders [][]int
			for e := range 3 {
				var order []int
				for range d.NumBatches(e) {
					b, epoch := d.Next()
					if epoch != e {
						t.Fatalf("batch of epoch %d, want %d", epoch, e)
					}
					order = append(order, served(t, b, ex)...)
				}
				sorted := slices.Sorted(slices.Values(order))
				for i, v := range sorted {
					if v != i {
						t.Fatalf("epoch %d serves %v", e, sorted)
					}
				}
				if len(sorted) != len(ex) {
					t.Fatalf("epoch %d serves %d examples, want %d", e, len(sorted), len(ex))
				}
				orders = append(orders, order)
			}
			if slices.Equal(orders[0], orders[1]) || slices.Equal(orders[1], orders[2]) {
				t.Fatal("two epochs in the same order")
			}
			if !pack && d.NumBatches(0) != 10 {
				t.Fatalf("%d padded batches, want ceil(37/4) = 10", d.NumBatches(0))
			}
			// Same seed, same batches (Epoch equals what Next served).
			d2, _ := NewDataset(ex, cfg)
			var again []int
			for _, b := range d2.Epoch(1) {
				again = append(again, served(t, b, ex)...)
			}
			if !slices.Equal(again, orders[1]) {
				t.Fatal("Epoch(1) differs from the batches Next served")
			}

			// Resume mid-epoch and at an epoch's end.
			for _, skip := range []int{3, d.NumBatches(0)} {
				a, _ := NewDataset(ex, cfg)
				for range skip {
					a.Next()
				}
				st := a.Position()
				b, _ := NewDataset(ex, cfg)
				if err := b.Restore(st); err != nil {
					t.Fatal(err)
				}
				for range 12 {
					x, ex1 := a.Next()
					y, ex2 := b.Next()
					if ex1 != ex2 || !reflect.DeepEqual(x, y) {
						t.Fatalf("resumed after %d batches: batches differ", skip)
					}
				}
			}
			// A state from another configuration is refused.
			other := cfg
			other.Seed++
			o, _ := NewDataset(ex, other)
			if err := o.Restore(d.Position()); err == nil {
				t.Fatal("restore with another seed: no error")
			}
			o, _ = NewDataset(ex[1:], cfg)
			if err := o.Restore(d.Position()); err == nil {
				t.Fatal("restore with other data: no error")
			}
		})
	}
	if _, err := NewDataset(ex, DatasetConfig{B: 2, T: 5}); err == nil {
		t.Fatal("examples longer than T: no error")
	}
	if _, err := NewDataset(nil, DatasetConfig{B: 2, T: 5}); err == nil {
		t.Fatal("no examples: no error")
	}
}

func TestBatchesInOrder(t *testing.T) {
	ex := testExamples(9, 6, 2)
	for _, pack := range []bool{false, true} {
		var order []int
		bs := Batches(ex, 2, 8, 0, pack)
		for _, b := range bs {
			order = append(order, served(t, b, ex)...)
		}
		if len(order) != len(ex) {
			t.Fatalf("pack=%v: %d examples served", pack, len(order))
		}
		if !pack && !slices.IsSorted(order) {
			t.Fatalf("padded batches out of order: %v", order)
		}
	}
}
