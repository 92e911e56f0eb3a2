package attn

import (
	"fmt"
	"math"
	"runtime"
	"sync"

	"github.com/shoggo/shoggo/backend/cpu/gemm"
)

// RoPE rotates x (B, T_, H, HS) in place by rotary position embeddings in
// the Hugging Face rotate-half convention: for i < HS/2, with angle
// f = pos[b,t] * inv_freq[i], inv_freq[i] = theta^(-2i/HS),
//
//	x[i]      -> x[i] cos f - x[i+HS/2] sin f
//	x[i+HS/2] -> x[i+HS/2] cos f + x[i] sin f
//
// inverse rotates by -f instead; it is the transpose (and the inverse) of
// the forward map, so it is also the backward pass: dx = RoPE^-1(dy).
//
// Precision. For float32, cos and sin are the values transformers'
// LlamaRotaryEmbedding (default rope type) hands to apply_rotary_pos_emb:
// inv_freq = 1/theta^(float32(2i)/HS) computed and rounded in float32, the
// angle rounded to float32 (HF's float32 inv_freq @ position_ids), cos and
// sin of that float32 angle rounded to float32; the products x*cos and
// x*sin are rounded before they are added, as in PyTorch. The only expected
// difference from PyTorch is the last bit of an occasional cos, sin or pow
// (PyTorch's vectorised float32 versions are not always correctly
// rounded). For float64 everything is float64: inv_freq = 1/theta^(2i/HS),
// angle = pos*inv_freq.
//
// cos/sin tables are cached per (theta, HS, precision) for positions
// 0..max(pos) (up to a size limit; beyond it, and for negative positions,
// they are computed per row).
func RoPE[T gemm.Float](x []T, B, T_, H, HS int, pos []int32, theta float64, inverse bool) {
	if B < 0 || T_ < 0 || H < 0 || HS <= 0 || HS%2 != 0 {
		panic(fmt.Sprintf("attn: RoPE: bad shape B=%d T=%d H=%d HS=%d (HS must be even and positive)", B, T_, H, HS))
	}
	checkLen("x", len(x), B*T_*H*HS)
	checkLen("pos", len(pos), B*T_)
	if len(x) == 0 {
		return
	}
	half := HS / 2
	f32 := is32[T]()
	lo, hi := pos[0], pos[0]
	for _, p := range pos {
		lo, hi = min(lo, p), max(hi, p)
	}
	var tab *ropeTable
	if lo >= 0 && (int(hi)+1)*half <= ropeCacheMaxEntries {
		tab = ropeTableFor(ropeKey{theta, HS, f32}, int(hi)+1)
	}
	var inv []float64
	if tab == nil {
		inv = ropeInvFreq(theta, HS, f32)
	}
	rows := B * T_
	run := func(r0, r1 int) {
		var cbuf, sbuf []float64
		if tab == nil {
			cbuf, sbuf = make([]float64, half), make([]float64, half)
		}
		for r := r0; r < r1; r++ {
			p := pos[r]
			var cs, sn []float64
			if tab != nil {
				cs, sn = tab.cos[int(p)*half:(int(p)+1)*half], tab.sin[int(p)*half:(int(p)+1)*half]
			} else {
				for i := range half {
					cbuf[i], sbuf[i] = ropeCosSin(inv[i], p, f32)
				}
				cs, sn = cbuf, sbuf
			}
			for h := 0; h < H; h++ {
				off := (r*H + h) * HS
				rotate(x[off:off+half], x[off+half:off+HS], cs, sn, inverse)
			}
		}
	}
	// Elementwise and memory-bound: split across goroutines only when there
	// is enough of it to pay for them.
	const minPerWorker = 1 << 15
	w := min(runtime.GOMAXPROCS(0), len(x)/minPerWorker, rows)
	if w <= 1 {
		run(0, rows)
		return
	}
	var wg sync.WaitGroup
	for t := range w {
		wg.Go(func() { run(t*rows/w, (t+1)*rows/w) })
	}
	wg.Wait()
}

// rotate applies one rotation to the halves x1, x2 of a head vector. The
// explicit conversions keep each product rounded on its own (no fused
// multiply-add), as PyTorch computes q*cos + rotate_half(q)*sin.
func rotate[T gemm.Float](x1, x2 []T, cs, sn []float64, inverse bool) {
	x2 = x2[:len(x1)]
	cs = cs[:len(x1)]
	sn = sn[:len(x1)]
	if inverse {
		for i, a := range x1 {
			c, s, b := T(cs[i]), T(sn[i]), x2[i]
			x1[i] = T(a*c) + T(b*s)
			x2[i] = T(b*c) - T(a*s)
		}
		return
	}
	for i, a := range x1 {
		c, s, b := T(cs[i]), T(sn[i]), x2[i]
		x1[i] = T(a*c) - T(b*s)
		x2[i] = T(b*c) + T(a*s)
	}
}

// ropeInvFreq returns inv_freq[i] for i < HS/2 (float32-rounded values
// when f32, as transformers computes them).
func ropeInvFreq(theta float64, HS int, f32 bool) []float64 {
	inv := make([]float64, HS/2)
	for i := range inv {
		if f32 {
			// HF: 1.0 / (base ** (torch.arange(0, dim, 2).float() / dim)),
			// all in float32 (base becomes a float32 scalar).
			e := float32(2*i) / float32(HS)
			pw := float32(math.Pow(float64(float32(theta)), float64(e)))
			inv[i] = float64(float32(1 / float64(pw)))
		} else {
			inv[i] = 1 / math.Pow(theta, float64(2*i)/float64(HS))
		}
	}
	return inv
}

// ropeCosSin returns cos and sin of the angle p*inv (angle rounded to
// float32 and results rounded to float32 when f32).
func ropeCosSin(inv float64, p int32, f32 bool) (c, s float64) {
	if f32 {
		ang := float32(inv) * float32(p)
		s, c = math.Sincos(float64(ang))
		return float64(float32(c)), float64(float32(s))
	}
	s, c = math.Sincos(float64(p) * inv)
	return c, s
}

// ropeCacheMaxEntries bounds one table: positions*HS/2 entries, 16 bytes
// each (cos and sin), so 32 MiB.
const ropeCacheMaxEntries = 1 << 21

type ropeKey struct {
	theta float64
	hs    int
	f32   bool
}

// ropeTable holds cos and sin for positions 0..n-1, row p at [p*HS/2, (p+1)*HS/2).
// Tables are immutable once published.
type ropeTable struct {
	n        int
	cos, sin []float64
}

var ropeCache struct {
	sync.Mutex
	m map[ropeKey]*ropeTable
}

// ropeTableFor returns a table covering at least positions 0..need-1.
func ropeTableFor(key ropeKey, need int) *ropeTable {
	ropeCache.Lock()
	defer ropeCache.Unlock()
	if ropeCache.m == nil {
		ropeCache.m = make(map[ropeKey]*ropeTable)
	}
	if t := ropeCache.m[key]; t != nil && t.n >= need {
		return t
	}
	half := key.hs / 2
	n := max(need, 256)
	if t := ropeCache.m[key]; t != nil {
		n = max(n, 2*t.n) // grow geometrically
	}
	n = max(need, min(n, ropeCacheMaxEntries/half))
	inv := ropeInvFreq(key.theta, key.hs, key.f32)
	t := &ropeTable{n: n, cos: make([]float64, n*half), sin: make([]float64, n*half)}
	for p := 0; p < n; p++ {
		for i, f := range inv {
			t.cos[p*half+i], t.sin[p*half+i] = ropeCosSin(f, int32(p), key.f32)
		}
	}
	ropeCache.m[key] = t
	return t
}
