package cpu

import (
	"fmt"
	"math"

	"github.com/shoggo/shoggo/backend"
	"github.com/shoggo/shoggo/internal/parallel"
	"github.com/shoggo/shoggo/internal/vec"
	"github.com/shoggo/shoggo/tensor"
)

// KVAttention appends the new keys and values to the cache and attends
// each new query to its slot's cached keys (see backend.Backend.KVAttention).
//
// Work items are (query row, kv head, query heads) run in parallel (see
// kvAttention32); each handles the row's Tn queries in order. The float32
// path scores the unmasked keys one dot product at a time (vec.Dot), packs
// them from index 0 of a per-goroutine buffer (so a row's result does not depend on how much left
// padding its slot has), takes the softmax with vec.Max/vec.ExpSubSum32 and
// sums the values with vec.Axpy. Results are the same bits for any thread
// count and any batch composition. F64 tensors run kvAttentionRef.
func (c *CPU) KVAttention(out, q, k, v, kc, vc *tensor.Tensor, p backend.KVParams) {
	const op = "KVAttention"
	checkKV(op, p, out, q, k, v, kc, vc)
	switch dtypeOf(op, out, q, k, v, kc, vc) {
	case tensor.F32:
		kvAppend(s32(k), s32(v), s32(kc), s32(vc), p)
		kvAttention32(s32(out), s32(q), s32(kc), s32(vc), p)
	case tensor.F64:
		kvAppend(s64(k), s64(v), s64(kc), s64(vc), p)
		kvAttentionRef(s64(out), s64(q), s64(kc), s64(vc), p)
	}
}

// checkKV panics, naming the shapes, unless the tensors and index slices
// have the sizes p implies and every new token fits its slot.
func checkKV(op string, p backend.KVParams, out, q, k, v, kc, vc *tensor.Tensor) {
	if p.B < 0 || p.Tn < 0 || p.NH <= 0 || p.KVH <= 0 || p.HS <= 0 || p.NH%p.KVH != 0 || p.S <= 0 || p.MaxT <= 0 {
		panic(fmt.Sprintf("cpu.%s: bad KVParams B=%d Tn=%d NH=%d KVH=%d HS=%d S=%d MaxT=%d", op, p.B, p.Tn, p.NH, p.KVH, p.HS, p.S, p.MaxT))
	}
	nq, nk, nc := p.B*p.Tn*p.NH*p.HS, p.B*p.Tn*p.KVH*p.HS, p.S*p.MaxT*p.KVH*p.HS
	for _, a := range []struct {
		name string
		t    *tensor.Tensor
		n    int
	}{{"out", out, nq}, {"q", q, nq}, {"k", k, nk}, {"v", v, nk}, {"kc", kc, nc}, {"vc", vc, nc}} {
		if a.t.Numel() != a.n {
			panic(fmt.Sprintf("cpu.%s: %s has shape %v, want %d elements for %+v", op, label(a.name, a.t), a.t.Shape, a.n, p))
		}
	}
	if len(p.Start) != p.B || (p.Slots != nil && len(p.Slots) != p.B) || (p.KeyMask != nil && len(p.KeyMask) != p.S*p.MaxT) {
		panic(fmt.Sprintf("cpu.%s: len(Start) %d, len(Slots) %d, len(KeyMask) %d for B=%d S=%d MaxT=%d", op, len(p.Start), len(p.Slots), len(p.KeyMask), p.B, p.S, p.MaxT))
	}
	seen := make([]bool, p.S)
	for b := 0; b < p.B; b++ {
		s := kvSlot(p, b)
		if s < 0 || s >= p.S || seen[s] {
			panic(fmt.Sprintf("cpu.%s: row %d: slot %d out of [0, %d) or repeated", op, b, s, p.S))
		}
		seen[s] = true
		if st := int(p.Start[b]); st < 0 || st+p.Tn > p.MaxT {
			panic(fmt.Sprintf("cpu.%s: row %d: %d cached + %d new positions exceed MaxT %d", op, b, st, p.Tn, p.MaxT))
		}
	}
}

func kvSlot(p backend.KVParams, b int) int {
	if p.Slots == nil {
		return b
	}
	return int(p.Slots[b])
}

// kvAppend copies the new keys and values into their slots.
func kvAppend[T float32 | float64](k, v, kc, vc []T, p backend.KVParams) {
	row := p.KVH * p.HS
	for b := 0; b < p.B; b++ {
		dst := (kvSlot(p, b)*p.MaxT + int(p.Start[b])) * row
		src := b * p.Tn * row
		copy(kc[dst:dst+p.Tn*row], k[src:src+p.Tn*row])
		copy(vc[dst:dst+p.Tn*row], v[src:src+p.Tn*row])
	}
}

// kvAttention32 is the float32 attention over the cache. A work item is
// (row, kv head, group of query heads): the heads of a group share each
// key and value as it is read. Items hold whole kv-head groups when there
// are enough of them to keep every thread busy, else one query head each;
// every head's arithmetic is the same either way.
func kvAttention32(out, q, kc, vc []float32, p backend.KVParams) {
	HS, KV := p.HS, p.KVH*p.HS
	Q := p.NH * HS
	group := p.NH / p.KVH
	per := group // query heads per item
	if p.B*p.KVH < parallel.Threads() {
		per = 1
	}
	split := group / per
	scale := float32(1 / math.Sqrt(float64(HS)))
	parallel.For(p.B*p.KVH*split, 1, func(lo, hi int) {
		scores := make([]float32, per*p.MaxT)
		keys := make([]int32, p.MaxT)
		for it := lo; it < hi; it++ {
			b, kvh, part := it/(p.KVH*split), it/split%p.KVH, it%split
			h0 := kvh*group + part*per
			s := kvSlot(p, b)
			base := s * p.MaxT
			// keys of this slot that are attendable, in order
			nk := 0
			st := int(p.Start[b])
			for j := 0; j < st; j++ {
				if p.KeyMask == nil || p.KeyMask[base+j] != 0 {
					keys[nk] = int32(j)
					nk++
				}
			}
			for t := 0; t < p.Tn; t++ {
				if j := st + t; p.KeyMask == nil || p.KeyMask[base+j] != 0 {
					keys[nk] = int32(j)
					nk++
				}
				row := (b*p.Tn + t) * Q
				for h := h0; h < h0+per; h++ {
					clear(out[row+h*HS : row+(h+1)*HS])
				}
				if nk == 0 {
					continue
				}
				for i, j := range keys[:nk] {
					kv := kc[(base+int(j))*KV+kvh*HS:][:HS]
					for g := 0; g < per; g++ {
						h := h0 + g
						scores[g*nk+i] = vec.Dot(q[row+h*HS:row+(h+1)*HS], kv) * scale
					}
				}
				for g := 0; g < per; g++ {
					sc := scores[g*nk : (g+1)*nk]
					inv := 1 / vec.ExpSubSum32(sc, vec.Max(sc))
					vec.Scale(sc, inv)
				}
				for i, j := range keys[:nk] {
					vv := vc[(base+int(j))*KV+kvh*HS:][:HS]
					for g := 0; g < per; g++ {
						h := h0 + g
						vec.Axpy(out[row+h*HS:row+(h+1)*HS], scores[g*nk+i], vv)
					}
				}
			}
		}
	})
}

// kvAttentionRef is the plain version: scores and softmax in float64, one
// query at a time. It runs F64 tensors and is the tests' reference.
func kvAttentionRef[T float32 | float64](out, q, kc, vc []T, p backend.KVParams) {
	HS, KV := p.HS, p.KVH*p.HS
	Q := p.NH * HS
	group := p.NH / p.KVH
	scale := 1 / math.Sqrt(float64(HS))
	w := make([]float64, p.MaxT)
	for b := 0; b < p.B; b++ {
		s := kvSlot(p, b)
		for t := 0; t < p.Tn; t++ {
			last := int(p.Start[b]) + t
			for h := 0; h < p.NH; h++ {
				kvh := h / group
				qv := q[(b*p.Tn+t)*Q+h*HS : (b*p.Tn+t)*Q+(h+1)*HS]
				mx := math.Inf(-1)
				for j := 0; j <= last; j++ {
					w[j] = math.Inf(-1)
					if p.KeyMask != nil && p.KeyMask[s*p.MaxT+j] == 0 {
						continue
					}
					kv := kc[(s*p.MaxT+j)*KV+kvh*HS:]
					var d float64
					for i := range qv {
						d += float64(qv[i]) * float64(kv[i])
					}
					w[j] = d * scale
					mx = math.Max(mx, w[j])
				}
				o := out[(b*p.Tn+t)*Q+h*HS : (b*p.Tn+t)*Q+(h+1)*HS]
				clear(o)
				if math.IsInf(mx, -1) {
					continue
				}
				var sum float64
				for j := 0; j <= last; j++ {
					w[j] = math.Exp(w[j] - mx)
					sum += w[j]
				}
				acc := make([]float64, HS)
				for j := 0; j <= last; j++ {
					if w[j] == 0 {
						continue
					}
					vv := vc[(s*p.MaxT+j)*KV+kvh*HS:]
					for i := range acc {
						acc[i] += w[j] / sum * float64(vv[i])
					}
				}
				for i := range o {
					o[i] = T(acc[i])
				}
			}
		}
	}
}
