package main

import (
	"math"

	"github.com/shoggo/shoggo/dist"
)

// link is a network: per-message latency alpha (s) and per-worker
// bandwidth bw (bytes/s).
type link struct {
	name  string
	alpha float64
	bw    float64
}

// ringAllReduce is the ring all-reduce of b bytes over n workers:
// 2(n-1)/n·b/bw + 2(n-1)·alpha — the same expression as dist.LocalOptions'
// 2(n-1)·(alpha + b/n/bw).
func ringAllReduce(n int, b float64, l link) float64 {
	if n <= 1 {
		return 0
	}
	return 2 * float64(n-1) * (l.alpha + b/float64(n)/l.bw)
}

// ringAllGather is a ring all-gather whose result is b bytes (each worker
// contributes b/n): (n-1)·(alpha + b/n/bw). A reduce-scatter of a b-byte
// vector costs the same.
func ringAllGather(n int, b float64, l link) float64 {
	if n <= 1 {
		return 0
	}
	return float64(n-1) * (l.alpha + b/float64(n)/l.bw)
}

// treeLatency is the latency term of a tree (or recursive halving/doubling)
// all-reduce, 2·⌈log2 n⌉·alpha, for comparison with the ring's 2(n-1)·alpha.
func treeLatency(n int, l link) float64 {
	if n <= 1 {
		return 0
	}
	return 2 * math.Ceil(math.Log2(float64(n))) * l.alpha
}

// bucketBytes returns each bucket's size in bytes.
func bucketBytes(plan []dist.Bucket) []float64 {
	out := make([]float64, len(plan))
	for k, b := range plan {
		out[k] = 4 * float64(b.Elems)
	}
	return out
}

// overlap is the event model of the bucketed, overlapped all-reduce:
// bucket k is ready when its last gradient is final (ready[k], seconds from
// the start of backward); buckets launch in plan order; they share one link,
// so bucket k starts when it is launched and bucket k-1 has finished
// (exactly how dist's simulated link and a single ring behave); it takes
// cost[k]. It returns the time the last bucket finishes.
func overlap(ready, cost []float64) float64 {
	var launch, end float64
	for k := range ready {
		launch = math.Max(launch, ready[k])
		start := math.Max(launch, end)
		end = start + cost[k]
	}
	return end
}

// bucketReady is, per bucket, the fraction of backward after which all its
// gradients are final.
func bucketReady(w *workload, plan []dist.Bucket) []float64 {
	ends := w.stageEnds()
	out := make([]float64, len(plan))
	for k, b := range plan {
		for _, i := range b.Grads {
			out[k] = math.Max(out[k], ends[w.grads[i].stage])
		}
	}
	return out
}

// compute is the compute time of one training step on one worker.
type compute struct {
	name          string
	tokens        int     // tokens per worker per step
	fwd, bwd, opt float64 // seconds
	source        string  // measured / derived / assumed, and from what
}

func (c compute) total() float64 { return c.fwd + c.bwd + c.opt }

// stepResult is the modelled step on n workers.
type stepResult struct {
	comm     float64 // total all-reduce time of the step (all buckets)
	bwTerm   float64 // its bandwidth part
	latTerm  float64 // its latency part
	exposed  float64 // all-reduce time not hidden behind backward
	step     float64 // overlapped step time
	stepNoOv float64 // step time when the all-reduce starts after backward
}

// modelStep applies the ring model and the overlap event model to one
// setup.
func modelStep(w *workload, plan []dist.Bucket, c compute, n int, l link) stepResult {
	var r stepResult
	bb := bucketBytes(plan)
	cost := make([]float64, len(bb))
	for k, b := range bb {
		cost[k] = ringAllReduce(n, b, l)
		r.comm += cost[k]
		if n > 1 {
			r.bwTerm += 2 * float64(n-1) / float64(n) * b / l.bw
			r.latTerm += 2 * float64(n-1) * l.alpha
		}
	}
	ready := bucketReady(w, plan)
	for k := range ready {
		ready[k] *= c.bwd
	}
	end := overlap(ready, cost)
	r.exposed = math.Max(0, end-c.bwd)
	r.step = c.total() + r.exposed
	r.stepNoOv = c.total() + r.comm
	return r
}
