package cpu

import (
	"fmt"
	"math"
	"math/rand"
	"testing"

	"github.com/shoggo/shoggo/backend"
	"github.com/shoggo/shoggo/internal/parallel"
	"github.com/shoggo/shoggo/tensor"
)

// KVAttention over a cache filled in chunks (the whole prompt at once,
// one token at a time, uneven pieces) gives the outputs of the full causal
// AttentionForward on the same sequence, with left padding masked through
// the cache's KeyMask, rows mapped to other slots, grouped-query heads and
// odd head sizes. Tolerances: float64 1e-12; float32 (vec kernels, float32
// softmax) 3e-6 on outputs of magnitude ~1.
func TestKVAttentionMatchesFull(t *testing.T) {
	cases := []struct {
		name              string
		B, T, NH, KVH, HS int
		pads              []int
	}{
		{"mha", 2, 9, 4, 4, 16, []int{0, 3}},
		{"gqa-odd-hs", 3, 7, 6, 2, 5, []int{2, 0, 6}},
		{"mqa", 1, 12, 3, 1, 24, []int{0}},
		{"long-hs", 2, 5, 2, 1, 67, []int{4, 1}},
	}
	r := rand.New(rand.NewSource(5))
	for _, c := range cases {
		for _, chunks := range [][]int{{c.T}, ones(c.T), {3, 1, c.T - 4}} {
			for _, dt := range []tensor.DType{tensor.F64, tensor.F32} {
				q := conv(randT(r, c.B, c.T, c.NH, c.HS), dt)
				k := conv(randT(r, c.B, c.T, c.KVH, c.HS), dt)
				v := conv(randT(r, c.B, c.T, c.KVH, c.HS), dt)
				km := make([]int32, c.B*c.T)
				for b := 0; b < c.B; b++ {
					for t := c.pads[b]; t < c.T; t++ {
						km[b*c.T+t] = 1
					}
				}
				full := tensor.New(dt, c.B, c.T, c.NH, c.HS)
				be.AttentionForward(full, tensor.New(dt, c.B*c.NH*c.T), q, k, v,
					backend.AttnParams{B: c.B, T: c.T, NH: c.NH, KVH: c.KVH, HS: c.HS, KeyMask: km})

				S, MaxT := c.B+2, c.T+3
				kc, vc := tensor.New(dt, S, MaxT, c.KVH, c.HS), tensor.New(dt, S, MaxT, c.KVH, c.HS)
				slots := make([]int32, c.B)
				mask := make([]int32, S*MaxT)
				for b := range slots {
					slots[b] = int32(S - 1 - b)
					for t := 0; t < c.T; t++ {
						mask[int(slots[b])*MaxT+t] = km[b*c.T+t]
					}
				}
				got := tensor.New(dt, c.B, c.T, c.NH, c.HS)
				t0 := 0
				for _, tn := range chunks {
					p := backend.KVParams{B: c.B, Tn: tn, NH: c.NH, KVH: c.KVH, HS: c.HS, S: S, MaxT: MaxT,
						Slots: slots, Start: make([]int32, c.B), KeyMask: mask}
					for b := range p.Start {
						p.Start[b] = int32(t0)
					}
					out := tensor.New(dt, c.B, tn, c.NH, c.HS)
					be.KVAttention(out, cut(q, t0, tn), cut(k, t0, tn), cut(v, t0, tn), kc, vc, p)
					paste(got, out, t0)
					t0 += tn
				}
				tol := 1e-12
				if dt == tensor.F32 {
					tol = 3e-6
				}
				for i := 0; i < full.Numel(); i++ {
					if d := math.Abs(got.At(i) - full.At(i)); d > tol {
						t.Fatalf("%s %v chunks %v: element %d: kv %v, full %v (diff %g)", c.name, dt, chunks, i, got.At(i), full.At(i), d)
					}
				}
			}
		}
	}
}

// A row's result does not depend on the other rows, on its slot or on how
// much left padding its slot holds (bit for bit, float32).
func TestKVAttentionRowIndependent(t *testing.T) {
	r := rand.New(rand.NewSource(8))
	const NH, KVH, HS, T = 4, 2, 19, 6
	q := conv(randT(r, 1, T, NH, HS), tensor.F32)
	k := conv(randT(r, 1, T, KVH, HS), tensor.F32)
	v := conv(randT(r, 1, T, KVH, HS), tensor.F32)
	run := func(pad, slot, S int) []float32 {
		MaxT := T + pad
		kc, vc := tensor.New(tensor.F32, S, MaxT, KVH, HS), tensor.New(tensor.F32, S, MaxT, KVH, HS)
		for i := range kc.F32 { // garbage in the padding must not matter
			kc.F32[i], vc.F32[i] = float32(i%7), float32(i%5)
		}
		mask := make([]int32, S*MaxT)
		for j := pad; j < MaxT; j++ {
			mask[slot*MaxT+j] = 1
		}
		out := tensor.New(tensor.F32, 1, T, NH, HS)
		be.KVAttention(out, q, k, v, kc, vc, backend.KVParams{B: 1, Tn: T, NH: NH, KVH: KVH, HS: HS, S: S, MaxT: MaxT,
			Slots: []int32{int32(slot)}, Start: []int32{int32(pad)}, KeyMask: mask})
		return out.F32
	}
	want := run(0, 0, 1)
	for _, c := range [][3]int{{3, 1, 2}, {11, 4, 5}} {
		got := run(c[0], c[1], c[2])
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("pad %d slot %d: element %d = %v, unpadded %v", c[0], c[1], i, got[i], want[i])
			}
		}
	}
}

func TestKVAttentionShapePanic(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("no panic for a token past MaxT")
		}
	}()
	x := tensor.New(tensor.F32, 1, 1, 1, 4)
	c := tensor.New(tensor.F32, 1, 2, 1, 4)
	be.KVAttention(x, x, x, x, c, c, backend.KVParams{B: 1, Tn: 1, NH: 1, KVH: 1, HS: 4, S: 1, MaxT: 2, Start: []int32{2}})
}

func ones(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = 1
	}
	return s
}

// cut returns positions [t0, t0+n) of x (B, T, H, HS) as a new (B, n, H, HS).
func cut(x *tensor.Tensor, t0, n int) *tensor.Tensor {
	B, T, H, HS := x.Shape[0], x.Shape[1], x.Shape[2], x.Shape[3]
	out := tensor.New(x.DType, B, n, H, HS)
	row := H * HS
	for b := 0; b < B; b++ {
		for t := 0; t < n; t++ {
			for i := 0; i < row; i++ {
				out.Set((b*n+t)*row+i, x.At((b*T+t0+t)*row+i))
			}
		}
	}
	return out
}

// paste writes part (B, n, H, HS) into x at positions t0.
func paste(x, part *tensor.Tensor, t0 int) {
	B, T, H, HS := x.Shape[0], x.Shape[1], x.Shape[2], x.Shape[3]
	n, row := part.Shape[1], H*HS
	for b := 0; b < B; b++ {
		for t := 0; t < n; t++ {
			for i := 0; i < row; i++ {
				x.Set((b*T+t0+t)*row+i, part.At((b*n+t)*row+i))
			}
		}
	}
}

// BenchmarkKVAttention: one decoding step (Tn = 1) over 1024 cached
// positions, B rows, GPT-2 heads (NH 12, HS 64) and Qwen2-0.5B heads (NH 14,
// KVH 2, HS 64); "scalar" is the plain float32 loop the old model.Generator
// ran per row and head.
func BenchmarkKVAttention(b *testing.B) {
	const HS, T = 64, 1024
	r := rand.New(rand.NewSource(1))
	for _, c := range []struct{ NH, KVH int }{{12, 12}, {14, 2}} {
		NH, KVH := c.NH, c.KVH
		for _, B := range []int{1, 8} {
			q := conv(randT(r, B, 1, NH, HS), tensor.F32)
			k := conv(randT(r, B, 1, KVH, HS), tensor.F32)
			v := conv(randT(r, B, 1, KVH, HS), tensor.F32)
			kc, vc := conv(randT(r, B, T+1, KVH, HS), tensor.F32), conv(randT(r, B, T+1, KVH, HS), tensor.F32)
			out := tensor.New(tensor.F32, B, 1, NH, HS)
			p := backend.KVParams{B: B, Tn: 1, NH: NH, KVH: KVH, HS: HS, S: B, MaxT: T + 1, Start: make([]int32, B)}
			for i := range p.Start {
				p.Start[i] = T
			}
			name := fmt.Sprintf("NH=%d,KVH=%d,B=%d", NH, KVH, B)
			b.Run("kv/"+name, func(b *testing.B) {
				for i := 0; i < b.N; i++ {
					be.KVAttention(out, q, k, v, kc, vc, p)
				}
			})
			b.Run("scalar/"+name, func(b *testing.B) {
				scores := make([]float32, T+1)
				Q, KV := NH*HS, KVH*HS
				for i := 0; i < b.N; i++ {
					for row := 0; row < B; row++ {
						scalarAttention(out.F32[row*Q:], q.F32[row*Q:], kc.F32[row*(T+1)*KV:], vc.F32[row*(T+1)*KV:], scores, T, NH, KVH, HS)
					}
				}
			})
		}
	}
}

// scalarAttention is the old model.Generator's attention loop for one
// query at position p.
func scalarAttention(att, q, kc, vc, scores []float32, p, NH, KVH, hs int) {
	KV := KVH * hs
	group := NH / KVH
	scale := float32(1 / math.Sqrt(float64(hs)))
	for hd := 0; hd < NH; hd++ {
		kvh := hd / group
		qv := q[hd*hs : (hd+1)*hs]
		mx := float32(math.Inf(-1))
		for j := 0; j <= p; j++ {
			kv := kc[j*KV+kvh*hs : j*KV+(kvh+1)*hs]
			var s float32
			for d := range qv {
				s += qv[d] * kv[d]
			}
			s *= scale
			scores[j] = s
			mx = max(mx, s)
		}
		var sum float32
		for j := 0; j <= p; j++ {
			e := float32(math.Exp(float64(scores[j] - mx)))
			scores[j] = e
			sum += e
		}
		o := att[hd*hs : (hd+1)*hs]
		clear(o)
		for j := 0; j <= p; j++ {
			w := scores[j] / sum
			vv := vc[j*KV+kvh*hs : j*KV+(kvh+1)*hs]
			for d := range o {
				o[d] += w * vv[d]
			}
		}
	}
}

// The float32 kernel gives the same bits with 1 thread (whole kv-head
// groups per item) and with many (one query head per item).
func TestKVAttentionThreads(t *testing.T) {
	r := rand.New(rand.NewSource(9))
	const B, Tn, NH, KVH, HS, MaxT = 1, 3, 6, 2, 20, 9
	q := conv(randT(r, B, Tn, NH, HS), tensor.F32)
	k := conv(randT(r, B, Tn, KVH, HS), tensor.F32)
	v := conv(randT(r, B, Tn, KVH, HS), tensor.F32)
	kc0, vc0 := conv(randT(r, B, MaxT, KVH, HS), tensor.F32), conv(randT(r, B, MaxT, KVH, HS), tensor.F32)
	run := func(threads int) []float32 {
		parallel.SetThreads(threads)
		defer parallel.SetThreads(0)
		out := tensor.New(tensor.F32, B, Tn, NH, HS)
		be.KVAttention(out, q, k, v, kc0.Clone(), vc0.Clone(), backend.KVParams{B: B, Tn: Tn, NH: NH, KVH: KVH, HS: HS,
			S: B, MaxT: MaxT, Start: []int32{4}})
		return out.F32
	}
	one, many := run(1), run(8)
	for i := range one {
		if one[i] != many[i] {
			t.Fatalf("element %d: 1 thread %v, 8 threads %v", i, one[i], many[i])
		}
	}
}
