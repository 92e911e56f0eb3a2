package dist

import "fmt"

// Data sharding.
//
// The rule: every rank builds the same global order of training items (the
// same seeded shuffle of windows, examples or pairs: identical on every rank
// because it depends only on the seed), and every optimizer step consumes
// the next Size×b items of that order, where b is the per-rank batch; rank r
// takes the r-th block of b. So a step of N ranks × batch b sees exactly the
// items a single rank with batch N·b sees, in the same rows order
// (rank-major), and the data position stays one global counter (items
// consumed so far), which a checkpoint stores and a resume restores. The
// global order does not depend on the world size: a run may resume on a
// different number of ranks as long as the global batch N·b is the same.

// BatchRows returns rank's rows [lo, hi) of a global batch of global rows
// split into Size equal blocks. The global batch must divide evenly.
func BatchRows(global, rank, size int) (lo, hi int, err error) {
	if size < 1 || rank < 0 || rank >= size {
		return 0, 0, fmt.Errorf("dist: BatchRows: rank %d of %d", rank, size)
	}
	if global%size != 0 {
		return 0, 0, fmt.Errorf("dist: a global batch of %d rows does not split evenly over %d ranks", global, size)
	}
	b := global / size
	return rank * b, (rank + 1) * b, nil
}

// StepItems returns the positions [lo, hi) in the global item order that
// rank reads at optimizer step step (counting from 0) with perRank items per
// rank per step: lo = (step·size + rank)·perRank.
func StepItems(step int64, perRank, rank, size int) (lo, hi int64) {
	lo = (step*int64(size) + int64(rank)) * int64(perRank)
	return lo, lo + int64(perRank)
}

// ShardRange splits n items into size contiguous, nearly equal parts (the
// first n mod size parts one item longer) and returns rank's [lo, hi): for
// work split once, such as evaluation prompts or a rollout batch.
func ShardRange(n, rank, size int) (lo, hi int) {
	if size < 1 || rank < 0 || rank >= size || n <= 0 {
		return 0, 0
	}
	q, r := n/size, n%size
	lo = rank*q + min(rank, r)
	hi = lo + q
	if rank < r {
		hi++
	}
	return lo, hi
}

// Strided returns order[rank], order[rank+size], ... truncated so every
// rank gets len(order)/size items (the tail that does not divide is dropped,
// as torch's DistributedSampler with drop_last): for item lists dealt out
// round-robin.
func Strided[T any](order []T, rank, size int) []T {
	if size < 1 || rank < 0 || rank >= size {
		return nil
	}
	per := len(order) / size
	out := make([]T, per)
	for i := range out {
		out[i] = order[i*size+rank]
	}
	return out
}
