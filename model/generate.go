package model

import (
	"fmt"
	"math"

	"github.com/shoggo/shoggo/tensor"
)

// Generator runs a Transformer incrementally with a key/value cache, for
// one sequence at a time: Feed appends tokens and returns the logits of the
// last one. Matmuls go through the backend; attention over the cache is a
// plain float32 loop (decoding is memory-bound, one query row at a time).
type Generator struct {
	m      *Transformer
	maxT   int
	n      int         // tokens in the cache
	kc, vc [][]float32 // per layer (maxT, KVH*HS), k after RoPE
}

// NewGenerator prepares a cache for up to maxT tokens (at most
// max_position_embeddings). The model must hold F32 parameters.
func (m *Transformer) NewGenerator(maxT int) (*Generator, error) {
	if m.DType != tensor.F32 {
		return nil, fmt.Errorf("generate: model dtype %s, want F32", m.DType)
	}
	if maxT <= 0 || maxT > m.Cfg.MaxPositionEmbeddings {
		maxT = m.Cfg.MaxPositionEmbeddings
	}
	g := &Generator{m: m, maxT: maxT}
	kv := m.Cfg.NumKeyValueHeads * m.Cfg.HeadDim()
	for range m.Blocks {
		g.kc = append(g.kc, make([]float32, maxT*kv))
		g.vc = append(g.vc, make([]float32, maxT*kv))
	}
	return g, nil
}

// Len is the number of tokens in the cache.
func (g *Generator) Len() int { return g.n }

// Cap is the cache capacity.
func (g *Generator) Cap() int { return g.maxT }

// Reset empties the cache.
func (g *Generator) Reset() { g.n = 0 }

// Feed runs ids through the model after the cached tokens and returns the
// logits (V) that follow the last of them.
func (g *Generator) Feed(ids []int32) ([]float32, error) {
	m, c := g.m, &g.m.Cfg
	n := len(ids)
	if n == 0 {
		return nil, fmt.Errorf("generate: no tokens to feed")
	}
	if g.n+n > g.maxT {
		return nil, fmt.Errorf("generate: %d cached + %d new tokens exceed the context of %d", g.n, n, g.maxT)
	}
	be := m.BE
	C, I := c.HiddenSize, c.IntermediateSize
	hs := c.HeadDim()
	NH, KVH := c.NumAttentionHeads, c.NumKeyValueHeads
	Q, KV := NH*hs, KVH*hs
	nt := func(shape ...int) *tensor.Tensor { return tensor.New(tensor.F32, shape...) }
	x, h, tmp := nt(n, C), nt(n, C), nt(n, C)
	mean, rstd := nt(n), nt(n)
	q, k, v, att := nt(n, Q), nt(n, KV), nt(n, KV), nt(n, Q)
	h1, h2, act := nt(n, I), nt(n, I), nt(n, I)
	pos := make([]int32, n)
	for i := range pos {
		pos[i] = int32(g.n + i)
	}
	if err := be.EmbeddingForward(x, m.Embed, ids, false); err != nil {
		return nil, err
	}
	if m.PosEmbed != nil {
		if err := be.EmbeddingForward(x, m.PosEmbed, pos, true); err != nil {
			return nil, err
		}
	}
	scores := make([]float32, g.n+n)
	scale := float32(1 / math.Sqrt(float64(hs)))
	group := NH / KVH
	for l, blk := range m.Blocks {
		blk.Norm1.Forward(h, mean, rstd, x)
		blk.Q.Forward(q, h)
		blk.K.Forward(k, h)
		blk.V.Forward(v, h)
		if blk.QNorm != nil { // per-head q/k norms (Qwen3), before RoPE
			qn, kn := nt(n*NH, hs), nt(n*KVH, hs)
			blk.QNorm.Forward(qn, nil, nt(n*NH), q.Reshape(n*NH, hs))
			blk.KNorm.Forward(kn, nil, nt(n*KVH), k.Reshape(n*KVH, hs))
			copy(q.F32, qn.F32)
			copy(k.F32, kn.F32)
		}
		if c.Family() != GPT2 {
			be.RoPE(q.Reshape(1, n, NH, hs), pos, c.RopeTheta, false)
			be.RoPE(k.Reshape(1, n, KVH, hs), pos, c.RopeTheta, false)
		}
		copy(g.kc[l][g.n*KV:], k.F32)
		copy(g.vc[l][g.n*KV:], v.F32)
		kc, vc := g.kc[l], g.vc[l]
		for i := 0; i < n; i++ {
			p := g.n + i
			for hd := 0; hd < NH; hd++ {
				kvh := hd / group
				qv := q.F32[i*Q+hd*hs : i*Q+(hd+1)*hs]
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
				o := att.F32[i*Q+hd*hs : i*Q+(hd+1)*hs]
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
		blk.O.Forward(tmp, att)
		be.Add(x, x, tmp)
		blk.Norm2.Forward(h, mean, rstd, x)
		if c.Family() == GPT2 {
			blk.Fc.Forward(h1, h)
			be.GELUForward(act, h1)
			blk.Proj.Forward(tmp, act)
		} else {
			blk.Gate.Forward(h1, h)
			blk.Up.Forward(h2, h)
			be.SwiGLUForward(act, h1, h2)
			blk.Down.Forward(tmp, act)
		}
		be.Add(x, x, tmp)
	}
	last := x.Slice(n-1, n)
	hl := nt(1, C)
	m.NormF.Forward(hl, nt(1), nt(1), last)
	logits := nt(1, c.VocabSize)
	be.LinearForward(logits, hl, m.LMHead, nil)
	g.n += n
	return logits.F32, nil
}
