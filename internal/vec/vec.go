// Package vec holds float32 vector kernels for the CPU backend and the
// optimizer: AVX2/FMA assembly on amd64 CPUs that have it, portable Go
// elsewhere (and when SHOGGO_NOASM=1; tests toggle UseAsm).
//
// Every kernel is elementwise or a per-call reduction, and processes the
// elements of a slice in the same way wherever the slice starts: the
// assembly takes whole blocks of 8 from the front and the Go code the
// remaining tail. So a caller that splits work across threads gets the
// same bits for any split whose pieces start at multiples of 8 from the
// same origin (see internal/parallel).
//
// Results of the assembly and Go versions agree to rounding, not bit for
// bit (the assembly fuses multiply-adds and sums reductions in lanes),
// except where a function says it is exact.
package vec

import (
	"math"

	"github.com/shoggo/shoggo/internal/cpu"
)

// hasAVX2FMA reports whether the assembly kernels can run here.
var hasAVX2FMA = cpu.HasAVX2FMA()

// UseAsm selects the assembly kernels. It is false where the CPU lacks
// AVX2 or FMA, on other architectures, and when SHOGGO_NOASM=1.
var UseAsm = hasAVX2FMA && !cpu.NoAsm

// blocks returns the length of the prefix of an n-element slice that the
// assembly handles (a multiple of 8), or 0 without assembly.
func blocks(n int) int {
	if !UseAsm {
		return 0
	}
	return n &^ 7
}

// Expf is exp for float32: Cody-Waite range reduction x = k ln2 + r and
// Cephes' degree-7 polynomial for e^r (relative error about 1e-7), the
// method of the assembly kernels. Arguments below -87.33654 (and -Inf)
// give 0; above 88 the result is computed at 88 (1.65e38) so that later
// arithmetic stays finite; NaN gives NaN.
func Expf(x float32) float32 {
	const (
		log2e = 1.44269504088896341
		c1    = 0.693359375
		c2    = -2.12194440e-4
	)
	if x < -87.33654 {
		return 0
	}
	if x > 88 {
		x = 88
	}
	if x != x {
		return x
	}
	z := x * log2e
	var n int32
	if z >= 0 {
		n = int32(z + 0.5)
	} else {
		n = int32(z - 0.5)
	}
	fn := float32(n)
	r := x - fn*c1
	r -= fn * c2
	r2 := r * r
	p := float32(1.9875691500e-4)
	p = p*r + 1.3981999507e-3
	p = p*r + 8.3334519073e-3
	p = p*r + 4.1665795894e-2
	p = p*r + 1.6666665459e-1
	p = p*r + 5.0000001201e-1
	y := p*r2 + r + 1
	return y * math.Float32frombits(uint32(n+127)<<23)
}

// Max returns the largest element of x (len(x) > 0). NaNs are not
// reliably reported.
func Max(x []float32) float32 {
	m := x[0]
	n8 := blocks(len(x))
	if n8 > 0 {
		m = maxAVX2(&x[0], n8)
	}
	for _, v := range x[n8:] {
		if v > m {
			m = v
		}
	}
	return m
}

// ExpSubSum sets x[i] = Expf(x[i] - m) and returns the sum of the new
// values, accumulated in float64.
func ExpSubSum(x []float32, m float32) float64 {
	var s float64
	n8 := blocks(len(x))
	if n8 > 0 {
		s = expSubSumAVX2(&x[0], n8, m)
	}
	for i := n8; i < len(x); i++ {
		e := Expf(x[i] - m)
		x[i] = e
		s += float64(e)
	}
	return s
}

// ExpSubSum32 is ExpSubSum with the sum accumulated in float32: the
// assembly keeps one partial sum in each of 8 lanes and adds the lanes
// pairwise at the end, the Go code adds the rest in order. The attention
// softmax (backend/cpu/attn) uses it on score rows of one tile.
func ExpSubSum32(x []float32, m float32) float32 {
	var s float32
	n8 := blocks(len(x))
	if n8 > 0 {
		s = expSubSum32AVX2(&x[0], n8, m)
	}
	for i := n8; i < len(x); i++ {
		e := Expf(x[i] - m)
		x[i] = e
		s += e
	}
	return s
}

// Scale sets x[i] *= k (exact: one rounding either way).
func Scale(x []float32, k float32) {
	n8 := blocks(len(x))
	if n8 > 0 {
		scaleAVX2(&x[0], n8, k)
	}
	for i := n8; i < len(x); i++ {
		x[i] *= k
	}
}

// Add sets y = a + b (exact; y may alias a or b).
func Add(y, a, b []float32) {
	n := len(y)
	a, b = a[:n], b[:n]
	n8 := blocks(n)
	if n8 > 0 {
		addAVX2(&y[0], &a[0], &b[0], n8)
	}
	for i := n8; i < n; i++ {
		y[i] = a[i] + b[i]
	}
}

// AddInto sets dst += src (exact).
func AddInto(dst, src []float32) {
	n := len(dst)
	src = src[:n]
	n8 := blocks(n)
	if n8 > 0 {
		addAVX2(&dst[0], &dst[0], &src[0], n8)
	}
	for i := n8; i < n; i++ {
		dst[i] += src[i]
	}
}

// AccumF64 sets acc[i] += float64(x[i]) (exact: the same bits as the
// plain loop).
func AccumF64(acc []float64, x []float32) {
	n := len(acc)
	x = x[:n]
	n8 := blocks(n)
	if n8 > 0 {
		accumF64AVX2(&acc[0], &x[0], n8)
	}
	for i := n8; i < n; i++ {
		acc[i] += float64(x[i])
	}
}

// SumSquares returns the sum of float64(x[i])^2, accumulated in float64.
func SumSquares(x []float32) float64 {
	var s float64
	n8 := blocks(len(x))
	if n8 > 0 {
		s = sumSquaresAVX2(&x[0], n8)
	}
	for _, v := range x[n8:] {
		d := float64(v)
		s += d * d
	}
	return s
}

// GELU constants: gelu(x) = x * sigmoid(2u), u = sqrt(2/pi) (x + 0.044715 x^3),
// which is 0.5 x (1 + tanh u). With z = -2u = x (geluA + geluB x^2),
// gelu(x) = x / (1 + exp(z)).
const (
	geluS = float32(0.7978845608028654)      // sqrt(2/pi)
	geluA = float32(-2 * 0.7978845608028654) // -2 sqrt(2/pi)
	geluB = float32(-2 * 0.7978845608028654 * 0.044715)
	geluQ = float32(3 * 0.044715 * 0.7978845608028654)
)

// GELU sets y = gelu_tanh(x) (y may alias x), as x / (1 + exp(-2u)): no
// tanh, no cancellation, finite for every finite x.
func GELU(y, x []float32) {
	n := len(y)
	x = x[:n]
	n8 := blocks(n)
	if n8 > 0 {
		geluAVX2(&y[0], &x[0], n8)
	}
	for i := n8; i < n; i++ {
		v := x[i]
		e := Expf(v * (geluA + geluB*v*v))
		y[i] = v / (1 + e)
	}
}

// GELUBackward sets dx += dy * gelu'(x). With s = sigmoid(2u) and
// q = du/dx = sqrt(2/pi)(1 + 3*0.044715 x^2), gelu'(x) = s + 2 x q s (1-s),
// computed as s + 2 (s * (e s)) (x q) with e = exp(-2u), 1 - s = e s, so
// that no intermediate overflows.
func GELUBackward(dx, dy, x []float32) {
	n := len(dx)
	dy, x = dy[:n], x[:n]
	n8 := blocks(n)
	if n8 > 0 {
		geluBwdAVX2(&dx[0], &dy[0], &x[0], n8)
	}
	for i := n8; i < n; i++ {
		v := x[i]
		x2 := v * v
		e := Expf(v * (geluA + geluB*x2))
		s := 1 / (1 + e)
		t1 := s * (e * s)
		t2 := v * (geluS + geluQ*x2)
		d := s + 2*t1*t2
		dx[i] += dy[i] * d
	}
}

// SwiGLU sets y = silu(g) * u = g / (1 + exp(-g)) * u (y may alias g or u).
func SwiGLU(y, g, u []float32) {
	n := len(y)
	g, u = g[:n], u[:n]
	n8 := blocks(n)
	if n8 > 0 {
		swigluAVX2(&y[0], &g[0], &u[0], n8)
	}
	for i := n8; i < n; i++ {
		gv := g[i]
		e := Expf(-gv)
		y[i] = gv / (1 + e) * u[i]
	}
}

// SwiGLUBackward sets dg += dy * u * silu'(g) and du += dy * silu(g), with
// s = sigmoid(g), silu'(g) = s (1 + g (1 - s)) and 1 - s = exp(-g) s.
// Either of dg, du may be nil.
func SwiGLUBackward(dg, du, dy, g, u []float32) {
	n := len(dy)
	g, u = g[:n], u[:n]
	n8 := 0
	if dg != nil && du != nil {
		dg, du = dg[:n], du[:n]
		n8 = blocks(n)
		if n8 > 0 {
			swigluBwdAVX2(&dg[0], &du[0], &dy[0], &g[0], &u[0], n8)
		}
	}
	for i := n8; i < n; i++ {
		gv := g[i]
		e := Expf(-gv)
		s := 1 / (1 + e)
		d := dy[i]
		if dg != nil {
			dg[i] += d * u[i] * (s * (1 + gv*(e*s)))
		}
		if du != nil {
			du[i] += d * (gv * s)
		}
	}
}

// AdamW holds one step's float32 scalars of the AdamW update (see
// optim.AdamW for the formula and its order of operations).
type AdamW struct {
	Decay      float32 // 1 - lr*wd, or 1 for no decay (p*1 is exact)
	LerpW      float32 // 1 - beta1
	LerpWc     float32 // 1 - LerpW
	Beta2      float32
	OneMinusB2 float32
	Bc2Sqrt    float32
	Eps        float32
	NegStep    float32 // -lr/(1 - beta1^t)
	LerpSmall  bool    // |LerpW| < 0.5: m + LerpW*(g-m), else g - (g-m)*LerpWc
}

// Update applies one AdamW step to w, m, v from g, elementwise in float32
// with no fused multiply-adds: the assembly and Go versions give the same
// bits.
func (k *AdamW) Update(w, g, m, v []float32) {
	n := len(w)
	g, m, v = g[:n], m[:n], v[:n]
	n8 := blocks(n)
	if n8 > 0 {
		small := 0
		if k.LerpSmall {
			small = 1
		}
		adamwAVX2(&w[0], &g[0], &m[0], &v[0], n8, k, small)
	}
	for i := n8; i < n; i++ {
		p := float32(w[i] * k.Decay)
		gi, mi := g[i], m[i]
		if k.LerpSmall {
			mi = mi + float32(k.LerpW*(gi-mi))
		} else {
			mi = gi - float32((gi-mi)*k.LerpWc)
		}
		vi := float32(v[i] * k.Beta2)
		vi = vi + float32(float32(k.OneMinusB2*gi)*gi)
		d := float32(math.Sqrt(float64(vi)))/k.Bc2Sqrt + k.Eps
		p = p + float32(k.NegStep*mi)/d
		w[i], m[i], v[i] = p, mi, vi
	}
}
