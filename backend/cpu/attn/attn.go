// Package attn holds the CPU attention kernels: rotary position embeddings
// (RoPE) and causal grouped-query attention, forward and backward, generic
// over float32 and float64 (see backend.Backend for the semantics).
//
// Forward and Backward are blocked in the style of FlashAttention-2: the
// T x T score matrix of a head is never formed. Queries and keys are cut
// into tiles of `tile` rows; a (query tile, key tile) pair forms a small
// score block S = scale * Q_i K_j^T, the forward folds it into a running
// (online) softmax, and the backward recomputes the probabilities from the
// saved log-sum-exp. Extra memory is O(tile^2 + tile*HS) per goroutine,
// plus O(B*NH*T) in the backward for D = rowsum(dout .* out).
//
// Tile products go through gemm.Gemm (plain loops when tiny, e.g. HS <= 8);
// the float32 exp of the softmax is internal/vec's, an AVX2/FMA assembly
// loop where the CPU has it (SHOGGO_NOASM=1 forces the portable Go
// version), since a scalar exp would cost more than the matmuls.
//
// Work is spread over runtime.GOMAXPROCS goroutines. Every output element
// is written by exactly one goroutine in a fixed order, so results do not
// depend on scheduling, nor on the number of goroutines (nor on which
// backward schedule runs). Forward items are (batch, head, query tile);
// backward items are (batch, kv head), so the dk/dv of a kv head shared by
// several query heads have a single writer, or, when that leaves cores
// idle, a dk/dv pass over (batch, kv head, key tile) and a dq pass over
// (batch, head, query tile).
//
// ReferenceForward and ReferenceBackward are the plain versions (full score
// matrix per head, float64 accumulation) that the tests hold the blocked
// kernels to.
package attn

import (
	"math"
	"runtime"

	"github.com/shoggo/shoggo/backend"
	"github.com/shoggo/shoggo/backend/cpu/gemm"
)

// defaultTile is the query/key tile size. 48 is a multiple of the packed
// GEMM's 6x16 micro-tile (no ragged edge panels), a 48x48 score block is
// 9 KiB in float32, and at HS = 64 a tile product (48*48*64) stays under
// the size at which gemm.Sgemm hands work to its thread pool. Measured on
// the 2-core Zen3 dev machine, single thread, GPT-2 shapes (NH 12, HS 64):
// tiles 32/48/64/96/128 gave forward 30/38/31/32/37 and backward
// 44/56/41/50/53 GFLOP/s at T = 1024.
const defaultTile = 48

// shape is an AttnParams with the derived quantities the kernels need.
type shape struct {
	B, T, NH, KVH, HS int
	group             int // NH / KVH: query heads per kv head
	qs, ks            int // row strides (between consecutive t) of q/out and k/v
	km, seg           []int32
	masked            bool // km or seg present
	scale             float64
}

func newShape(p backend.AttnParams) shape {
	if p.B < 0 || p.T < 0 || p.NH <= 0 || p.KVH <= 0 || p.HS <= 0 || p.NH%p.KVH != 0 {
		panic("attn: bad AttnParams: need B, T >= 0, NH, KVH, HS > 0 and NH a multiple of KVH")
	}
	if p.KeyMask != nil {
		checkLen("KeyMask", len(p.KeyMask), p.B*p.T)
	}
	if p.Segments != nil {
		checkLen("Segments", len(p.Segments), p.B*p.T)
	}
	return shape{
		B: p.B, T: p.T, NH: p.NH, KVH: p.KVH, HS: p.HS,
		group: p.NH / p.KVH,
		qs:    p.NH * p.HS, ks: p.KVH * p.HS,
		km: p.KeyMask, seg: p.Segments,
		masked: p.KeyMask != nil || p.Segments != nil,
		scale:  1 / math.Sqrt(float64(p.HS)),
	}
}

// anyAllowed reports whether some query i in [i0, i1) may attend some key
// j in [j0, j1) of batch b (causality included).
func (s *shape) anyAllowed(b, i0, i1, j0, j1 int) bool {
	base := b * s.T
	for i := i0; i < i1; i++ {
		for j := j0; j < min(j1, i+1); j++ {
			if s.km != nil && s.km[base+j] == 0 {
				continue
			}
			if s.seg != nil && s.seg[base+j] != s.seg[base+i] {
				continue
			}
			return true
		}
	}
	return false
}

// maskRow sets row[c] = -Inf for every key j0+c that query i of batch b
// may not attend (causal, KeyMask, Segments).
func maskRow[T gemm.Float](s *shape, row []T, b, i, j0 int) {
	ninf := T(math.Inf(-1))
	lim := max(0, min(len(row), i-j0+1)) // causal: keys j <= i
	for c := lim; c < len(row); c++ {
		row[c] = ninf
	}
	if !s.masked {
		return
	}
	base := b * s.T
	if s.km != nil {
		km := s.km[base+j0 : base+j0+lim]
		for c, m := range km {
			if m == 0 {
				row[c] = ninf
			}
		}
	}
	if s.seg != nil {
		si := s.seg[base+i]
		seg := s.seg[base+j0 : base+j0+lim]
		for c, sj := range seg {
			if sj != si {
				row[c] = ninf
			}
		}
	}
}

// Forward computes out (B,T,NH,HS) = softmax(q k^T / sqrt(HS) + mask) v and
// lse (B,NH,T), the log-sum-exp of each query's scaled, masked scores. A
// query with no attendable key gets out = 0 and lse = -Inf.
func Forward[T gemm.Float](out, lse, q, k, v []T, p backend.AttnParams) {
	forward(out, lse, q, k, v, p, defaultTile, runtime.GOMAXPROCS(0))
}

// forwardShape returns p's shape after checking the lengths of the slices
// of a forward pass (Forward, ReferenceForward).
func forwardShape[T gemm.Float](out, lse, q, k, v []T, p backend.AttnParams) shape {
	s := newShape(p)
	checkLen("q", len(q), s.B*s.T*s.qs)
	checkLen("out", len(out), s.B*s.T*s.qs)
	checkLen("k", len(k), s.B*s.T*s.ks)
	checkLen("v", len(v), s.B*s.T*s.ks)
	checkLen("lse", len(lse), s.B*s.NH*s.T)
	return s
}

type fwdScratch[T gemm.Float] struct {
	s, o, m, l []T
}

func forward[T gemm.Float](out, lse, q, k, v []T, p backend.AttnParams, tile, procs int) {
	s := forwardShape(out, lse, q, k, v, p)
	nt := (s.T + tile - 1) / tile
	nbh := s.B * s.NH
	newScratch := func() *fwdScratch[T] {
		return &fwdScratch[T]{
			s: make([]T, tile*tile), o: make([]T, tile*s.HS),
			m: make([]T, tile), l: make([]T, tile),
		}
	}
	// Items run from the last query tile (the most keys) to the first, so
	// the long ones start early and the short ones fill the gaps.
	parallelFor(nbh*nt, procs, newScratch, func(sc *fwdScratch[T], idx int) {
		it := nt - 1 - idx/nbh
		bh := idx % nbh
		i0 := it * tile
		fwdTile(&s, sc, out, lse, q, k, v, bh/s.NH, bh%s.NH, i0, min(i0+tile, s.T), tile)
	})
}

// fwdTile computes out and lse for queries [i0, i1) of head h, batch b.
func fwdTile[T gemm.Float](s *shape, sc *fwdScratch[T], out, lse, q, k, v []T, b, h, i0, i1, tile int) {
	HS := s.HS
	g := h / s.group
	nr := i1 - i0
	O := sc.o[:nr*HS]
	clear(O)
	m, l := sc.m[:nr], sc.l[:nr]
	ninf := T(math.Inf(-1))
	for r := range m {
		m[r], l[r] = ninf, 0
	}
	qoff := ((b*s.T+i0)*s.NH + h) * HS
	for j0 := 0; j0 < i1; j0 += tile {
		j1 := min(j0+tile, i1)
		nc := j1 - j0
		if s.masked && !s.anyAllowed(b, i0, i1, j0, j1) {
			continue
		}
		koff := ((b*s.T+j0)*s.KVH + g) * HS
		S := sc.s
		mm(false, true, nr, nc, HS, T(s.scale), q[qoff:], s.qs, k[koff:], s.ks, 0, S, tile)
		for r := 0; r < nr; r++ {
			row := S[r*tile : r*tile+nc]
			maskRow(s, row, b, i0+r, j0)
			mx := ninf
			for _, x := range row {
				if x > mx { // not max(): its NaN and -0 handling costs branches
					mx = x
				}
			}
			if mx == ninf { // nothing attendable in this block
				clear(row)
				continue
			}
			mnew := max(m[r], mx)
			sum := expSub(row, mnew)
			if m[r] != mnew {
				alpha := T(math.Exp(float64(m[r] - mnew))) // 0 when m[r] = -Inf
				l[r] *= alpha
				for d := range O[r*HS : (r+1)*HS] {
					O[r*HS+d] *= alpha
				}
				m[r] = mnew
			}
			l[r] += sum
		}
		mm(false, false, nr, HS, nc, 1, S, tile, v[koff:], s.ks, 1, O, HS)
	}
	lrow := lse[(b*s.NH+h)*s.T+i0 : (b*s.NH+h)*s.T+i1]
	for r := 0; r < nr; r++ {
		dst := out[qoff+r*s.qs : qoff+r*s.qs+HS]
		if l[r] == 0 {
			clear(dst)
			lrow[r] = ninf
			continue
		}
		inv := 1 / l[r]
		for d, o := range O[r*HS : (r+1)*HS] {
			dst[d] = o * inv
		}
		lrow[r] = m[r] + T(math.Log(float64(l[r])))
	}
}

// Backward accumulates into dq (B,T,NH,HS), dk and dv (B,T,KVH,HS) the
// gradients of the attention output given dout, recomputing the
// probabilities from q, k and lse. Any of dq, dk, dv may be nil. Queries
// with lse = -Inf (nothing attendable) contribute nothing.
func Backward[T gemm.Float](dq, dk, dv, dout, q, k, v, out, lse []T, p backend.AttnParams) {
	backward(dq, dk, dv, dout, q, k, v, out, lse, p, defaultTile, runtime.GOMAXPROCS(0), modeAuto)
}

// Backward modes. onePass walks, per (batch, kv head), the key tiles and for
// each the query tiles below it, updating dq, dk and dv from one
// recomputation of each block: least arithmetic, but only B*KVH parallel
// items. twoPass runs a dk/dv pass over (batch, kv head, key tile) and a dq
// pass over (batch, head, query tile): it recomputes the probability block
// twice but has many more items. Both add the same terms in the same order,
// so they give bit-identical results.
const (
	modeAuto = iota
	modeOnePass
	modeTwoPass
)

type bwdScratch[T gemm.Float] struct {
	s, dp []T
}

type bwdArgs[T gemm.Float] struct {
	dq, dk, dv, dout, q, k, v, lse, D []T
}

func backward[T gemm.Float](dq, dk, dv, dout, q, k, v, out, lse []T, p backend.AttnParams, tile, procs, mode int) {
	s := newShape(p)
	nq, nk := s.B*s.T*s.qs, s.B*s.T*s.ks
	checkLen("dout", len(dout), nq)
	checkLen("q", len(q), nq)
	checkLen("out", len(out), nq)
	checkLen("k", len(k), nk)
	checkLen("v", len(v), nk)
	checkLen("lse", len(lse), s.B*s.NH*s.T)
	if dq != nil {
		checkLen("dq", len(dq), nq)
	}
	if dk != nil {
		checkLen("dk", len(dk), nk)
	}
	if dv != nil {
		checkLen("dv", len(dv), nk)
	}
	if dq == nil && dk == nil && dv == nil || s.B*s.T == 0 {
		return
	}
	a := bwdArgs[T]{dq: dq, dk: dk, dv: dv, dout: dout, q: q, k: k, v: v, lse: lse}
	HS := s.HS
	nbh := s.B * s.NH
	if dq != nil || dk != nil {
		// D[b,h,i] = dout_i . out_i = sum_j P_ij dP_ij, laid out like lse.
		a.D = make([]T, nbh*s.T)
		parallelFor(nbh, procs, func() struct{} { return struct{}{} }, func(_ struct{}, bh int) {
			b, h := bh/s.NH, bh%s.NH
			for i := 0; i < s.T; i++ {
				off := ((b*s.T+i)*s.NH + h) * HS
				o, d := out[off:off+HS], dout[off:off+HS]
				var sum T
				for c, x := range o {
					sum += x * d[c]
				}
				a.D[bh*s.T+i] = sum
			}
		})
	}
	nt := (s.T + tile - 1) / tile
	newScratch := func() *bwdScratch[T] {
		return &bwdScratch[T]{s: make([]T, tile*tile), dp: make([]T, tile*tile)}
	}
	nbg := s.B * s.KVH
	if mode == modeAuto {
		mode = modeOnePass
		// Fraction of the workers busy on average in the one-pass schedule.
		w := min(procs, nbg)
		rounds := (nbg + w - 1) / w
		if float64(nbg)/float64(rounds*procs) < 0.7 && nt > 1 {
			mode = modeTwoPass
		}
	}
	if mode == modeOnePass {
		parallelFor(nbg, procs, newScratch, func(sc *bwdScratch[T], bg int) {
			b, g := bg/s.KVH, bg%s.KVH
			for jt := 0; jt < nt; jt++ {
				j0 := jt * tile
				j1 := min(j0+tile, s.T)
				for hh := 0; hh < s.group; hh++ {
					for it := jt; it < nt; it++ {
						i0 := it * tile
						bwdBlock(&s, sc, &a, b, g*s.group+hh, i0, min(i0+tile, s.T), j0, j1, tile, true, true)
					}
				}
			}
		})
		return
	}
	if dk != nil || dv != nil {
		// Key tile 0 sees every query tile, the last only one: largest first.
		parallelFor(nbg*nt, procs, newScratch, func(sc *bwdScratch[T], idx int) {
			jt := idx / nbg
			b, g := (idx%nbg)/s.KVH, (idx%nbg)%s.KVH
			j0 := jt * tile
			j1 := min(j0+tile, s.T)
			for hh := 0; hh < s.group; hh++ {
				for it := jt; it < nt; it++ {
					i0 := it * tile
					bwdBlock(&s, sc, &a, b, g*s.group+hh, i0, min(i0+tile, s.T), j0, j1, tile, false, true)
				}
			}
		})
	}
	if dq != nil {
		parallelFor(nbh*nt, procs, newScratch, func(sc *bwdScratch[T], idx int) {
			it := nt - 1 - idx/nbh
			b, h := (idx%nbh)/s.NH, (idx%nbh)%s.NH
			i0 := it * tile
			i1 := min(i0+tile, s.T)
			for jt := 0; jt <= it; jt++ {
				j0 := jt * tile
				bwdBlock(&s, sc, &a, b, h, i0, i1, j0, min(j0+tile, s.T), tile, true, false)
			}
		})
	}
}

// bwdBlock adds the contributions of the block (queries [i0,i1), keys
// [j0,j1)) of head h, batch b: to dq if doQ, to dk and dv if doKV.
func bwdBlock[T gemm.Float](s *shape, sc *bwdScratch[T], a *bwdArgs[T], b, h, i0, i1, j0, j1, tile int, doQ, doKV bool) {
	if j0 >= i1 || s.masked && !s.anyAllowed(b, i0, i1, j0, j1) {
		return // entirely above the diagonal, or masked out
	}
	HS := s.HS
	g := h / s.group
	nr, nc := i1-i0, j1-j0
	qoff := ((b*s.T+i0)*s.NH + h) * HS
	koff := ((b*s.T+j0)*s.KVH + g) * HS
	lrow := a.lse[(b*s.NH+h)*s.T+i0 : (b*s.NH+h)*s.T+i1]
	ninf := T(math.Inf(-1))

	P := sc.s
	mm(false, true, nr, nc, HS, T(s.scale), a.q[qoff:], s.qs, a.k[koff:], s.ks, 0, P, tile)
	live := false
	for r := 0; r < nr; r++ {
		row := P[r*tile : r*tile+nc]
		if lrow[r] == ninf {
			clear(row)
			continue
		}
		maskRow(s, row, b, i0+r, j0)
		expSub(row, lrow[r])
		live = true
	}
	if !live {
		return
	}
	if doKV && a.dv != nil {
		// dV_j += P^T dO_i
		mm(true, false, nc, HS, nr, 1, P, tile, a.dout[qoff:], s.qs, 1, a.dv[koff:], s.ks)
	}
	wantQ, wantK := doQ && a.dq != nil, doKV && a.dk != nil
	if !wantQ && !wantK {
		return
	}
	// dP = dO_i V_j^T, then dS = P .* (dP - D_i) in place.
	dS := sc.dp
	mm(false, true, nr, nc, HS, 1, a.dout[qoff:], s.qs, a.v[koff:], s.ks, 0, dS, tile)
	D := a.D[(b*s.NH+h)*s.T+i0:]
	for r := 0; r < nr; r++ {
		pr := P[r*tile : r*tile+nc]
		dr := dS[r*tile : r*tile+nc]
		dd := D[r]
		for c, pv := range pr {
			dr[c] = pv * (dr[c] - dd)
		}
	}
	if wantQ {
		// dQ_i += scale * dS K_j
		mm(false, false, nr, HS, nc, T(s.scale), dS, tile, a.k[koff:], s.ks, 1, a.dq[qoff:], s.qs)
	}
	if wantK {
		// dK_j += scale * dS^T Q_i
		mm(true, false, nc, HS, nr, T(s.scale), dS, tile, a.q[qoff:], s.qs, 1, a.dk[koff:], s.ks)
	}
}
