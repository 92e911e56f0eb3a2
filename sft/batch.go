package sft

import (
	"fmt"

	"github.com/shoggo/shoggo/model"
)

// PadBatch builds a (B, T) batch with one example per row, right-padded
// with padID: KeyMask is 1 on the examples' tokens and 0 on padding, Pos and
// Segments are nil (positions 0..T-1, one document per row), and Targets
// are the labels shifted by one (target[t] = labels[t+1]) with IgnoreIndex
// at each example's last token and on padding. Rows beyond len(ids) are all
// padding. More than B examples, an example longer than T, or ids and
// labels of different lengths are programmer errors and panic (encode with
// maxLen = T).
func PadBatch(ids, labels [][]int32, B, T int, padID int32) *model.Batch {
	checkExamples("PadBatch", ids, labels, T)
	if len(ids) > B {
		panic(fmt.Sprintf("sft: PadBatch: %d examples for %d rows", len(ids), B))
	}
	rows := make([][]int, len(ids))
	for i := range ids {
		rows[i] = []int{i}
	}
	return build(ids, labels, rows, B, T, padID, false)
}

// Pack packs the examples, in order, into (B, T) batches with several
// examples per row: each example goes into the first row of the batch being
// built that has room for it, and when none has, the batch is closed and a
// new one started. Position ids restart at 0 for every example, Segments
// number the examples of a row 1, 2, ... (padding at the end of a row is
// segment 0, KeyMask 0, id padID) so attention is block-diagonal, and the
// last token of every example has target IgnoreIndex, so it never predicts
// the first token of the next. Rows of the last batch that received no
// example are all padding. Panics as PadBatch.
func Pack(ids, labels [][]int32, B, T int, padID int32) []*model.Batch {
	checkExamples("Pack", ids, labels, T)
	lens := make([]int, len(ids))
	for i := range ids {
		lens[i] = len(ids[i])
	}
	var out []*model.Batch
	for _, rows := range plan(lens, nil, B, T, true) {
		out = append(out, build(ids, labels, rows, B, T, padID, true))
	}
	return out
}

func checkExamples(op string, ids, labels [][]int32, T int) {
	if len(ids) != len(labels) {
		panic(fmt.Sprintf("sft: %s: %d id sequences and %d label sequences", op, len(ids), len(labels)))
	}
	for i := range ids {
		switch {
		case len(ids[i]) != len(labels[i]):
			panic(fmt.Sprintf("sft: %s: example %d has %d ids and %d labels", op, i, len(ids[i]), len(labels[i])))
		case len(ids[i]) > T:
			panic(fmt.Sprintf("sft: %s: example %d has %d tokens, longer than T = %d", op, i, len(ids[i]), T))
		case len(ids[i]) == 0:
			panic(fmt.Sprintf("sft: %s: example %d is empty", op, i))
		}
	}
}

// plan lays out the examples order (all of them, in index order, when order
// is nil) into batches of B rows of T tokens: batch -> row -> example
// indices. Without pack every row holds one example.
func plan(lens []int, order []int, B, T int, pack bool) [][][]int {
	if B <= 0 || T <= 0 {
		panic(fmt.Sprintf("sft: batch %d x %d must be positive", B, T))
	}
	n := len(lens)
	if order != nil {
		n = len(order)
	}
	var batches [][][]int
	var rows [][]int
	var used []int
	for k := 0; k < n; k++ {
		i := k
		if order != nil {
			i = order[k]
		}
		if !pack {
			rows = append(rows, []int{i})
			if len(rows) == B {
				batches, rows = append(batches, rows), nil
			}
			continue
		}
		r := 0
		for r < len(rows) && used[r]+lens[i] > T {
			r++
		}
		if r == len(rows) {
			if len(rows) == B {
				batches, rows, used = append(batches, rows), nil, nil
				r = 0
			}
			rows, used = append(rows, nil), append(used, 0)
		}
		rows[r] = append(rows[r], i)
		used[r] += lens[i]
	}
	if len(rows) > 0 {
		batches = append(batches, rows)
	}
	return batches
}

// build materialises one planned batch. With packed, Pos and Segments are
// set; otherwise each row must hold one example and they stay nil.
func build(ids, labels [][]int32, rows [][]int, B, T int, padID int32, packed bool) *model.Batch {
	N := B * T
	b := &model.Batch{B: B, T: T, IDs: make([]int32, N), KeyMask: make([]int32, N), Targets: make([]int32, N)}
	if packed {
		b.Pos, b.Segments = make([]int32, N), make([]int32, N)
	}
	for i := range b.IDs {
		b.IDs[i] = padID
		b.Targets[i] = IgnoreIndex
	}
	for r, row := range rows {
		off := r * T
		for s, e := range row {
			x, l := ids[e], labels[e]
			for t := range x {
				b.IDs[off+t] = x[t]
				b.KeyMask[off+t] = 1
				if t+1 < len(x) {
					b.Targets[off+t] = l[t+1]
				}
				if packed {
					b.Pos[off+t] = int32(t)
					b.Segments[off+t] = int32(s + 1)
				}
			}
			off += len(x)
		}
		if packed {
			for t := off; t < (r+1)*T; t++ {
				b.Pos[t] = int32(t - off)
			}
		}
	}
	if packed {
		for r := len(rows); r < B; r++ {
			for t := 0; t < T; t++ {
				b.Pos[r*T+t] = int32(t)
			}
		}
	}
	return b
}

// CountTargets counts the targets of batches that contribute to the loss
// (as train.CountTargets): the divisor of a step's loss.
func CountTargets(batches []*model.Batch) int {
	return model.CountTargets(batches)
}
