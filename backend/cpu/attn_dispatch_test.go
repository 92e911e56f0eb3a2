package cpu

import (
	"math"
	"math/rand"
	"testing"

	"github.com/shoggo/shoggo/backend"
	"github.com/shoggo/shoggo/tensor"
)

func randPos(r *rand.Rand, B, T int) []int32 {
	pos := make([]int32, B*T)
	for b := 0; b < B; b++ {
		start := r.Intn(20)
		for t := 0; t < T; t++ {
			pos[b*T+t] = int32(start + t)
		}
	}
	return pos
}

// Gradient check of RoPE through the CPU methods: forward y = RoPE(x),
// backward dx += RoPE^-1(dy) (inverse = transpose). eps=1e-6, atol=1e-8,
// rtol=1e-6 (linear in x).
func TestRoPEGrad(t *testing.T) {
	r := rand.New(rand.NewSource(60))
	for _, s := range []struct{ B, T, H, HS int }{{1, 1, 1, 2}, {2, 3, 2, 4}, {1, 5, 3, 6}, {3, 2, 1, 8}} {
		x := randT(r, s.B, s.T, s.H, s.HS)
		pos := randPos(r, s.B, s.T)
		y, tmp, dy := zerosLike(x), zerosLike(x), randT(r, s.B, s.T, s.H, s.HS)
		op := gradOp{
			names:  []string{"x"},
			inputs: []*tensor.Tensor{x},
			loss: func() float64 {
				be.Copy(y, x)
				be.RoPE(y, pos, 10000, false)
				return dot(dy, y)
			},
			backward: func(g []*tensor.Tensor) {
				if g[0] == nil {
					return
				}
				be.Copy(tmp, dy)
				be.RoPE(tmp, pos, 10000, true)
				be.AddInto(g[0], tmp)
			},
		}
		checkGrads(t, "rope", op, 1e-6, 1e-8, 1e-6)
	}
}

// The HF rotate-half formula, in float64, to 1e-12.
func TestRoPEForward(t *testing.T) {
	r := rand.New(rand.NewSource(61))
	B, T, H, HS := 2, 3, 2, 6
	const theta = 500000.0
	x := randT(r, B, T, H, HS)
	pos := randPos(r, B, T)
	y := x.Clone()
	be.RoPE(y, pos, theta, false)
	half := HS / 2
	for bt := 0; bt < B*T; bt++ {
		for h := 0; h < H; h++ {
			base := (bt*H + h) * HS
			for i := 0; i < half; i++ {
				f := float64(pos[bt]) * math.Pow(theta, -2*float64(i)/float64(HS))
				a, b := x.F64[base+i], x.F64[base+i+half]
				wa, wb := a*math.Cos(f)-b*math.Sin(f), b*math.Cos(f)+a*math.Sin(f)
				if math.Abs(y.F64[base+i]-wa) > 1e-12 || math.Abs(y.F64[base+i+half]-wb) > 1e-12 {
					t.Fatalf("bt %d h %d i %d: (%g, %g), want (%g, %g)", bt, h, i, y.F64[base+i], y.F64[base+i+half], wa, wb)
				}
			}
		}
	}
	mustPanic(t, func() { be.RoPE(tensor.New(tensor.F64, 6, 2, 6), pos, theta, false) }, "[6, 2, 6]", "(B, T, H, HS)")
	mustPanic(t, func() { be.RoPE(x, pos[:5], theta, false) }, "5 positions", "[2, 3, 2, 6]")
}

func TestRoPEF32(t *testing.T) {
	r := rand.New(rand.NewSource(62))
	x := randT(r, 2, 5, 3, 8)
	pos := randPos(r, 2, 5)
	checkF32(t, "rope", 1e-5, func(dt tensor.DType) []*tensor.Tensor {
		y := conv(x, dt)
		be.RoPE(y, pos, 10000, false)
		z := y.Clone()
		be.RoPE(z, pos, 10000, true)
		return []*tensor.Tensor{y, z}
	})
}

type attnCase struct {
	B, T, NH, KVH, HS int
	keyMask, segments bool
}

func makeAttnParams(r *rand.Rand, c attnCase) backend.AttnParams {
	p := backend.AttnParams{B: c.B, T: c.T, NH: c.NH, KVH: c.KVH, HS: c.HS}
	if c.keyMask {
		p.KeyMask = make([]int32, c.B*c.T)
		for i := range p.KeyMask {
			if r.Intn(4) != 0 {
				p.KeyMask[i] = 1
			}
		}
		p.KeyMask[0] = 0 // query 0 of batch 0 sees nothing: out = 0, lse = -Inf
	}
	if c.segments {
		p.Segments = make([]int32, c.B*c.T)
		for b := 0; b < c.B; b++ {
			seg := int32(0)
			for t := 0; t < c.T; t++ {
				if t > 0 && r.Intn(3) == 0 {
					seg++
				}
				p.Segments[b*c.T+t] = seg
			}
		}
	}
	return p
}

// Gradient check of attention through the CPU methods, with GQA, padding
// and packed-sequence masks. eps=1e-6, atol=1e-7, rtol=1e-5.
func TestAttentionGrad(t *testing.T) {
	r := rand.New(rand.NewSource(63))
	for _, c := range []attnCase{
		{1, 1, 1, 1, 1, false, false},
		{2, 5, 4, 2, 3, false, false},
		{1, 7, 3, 1, 2, true, false},
		{2, 6, 2, 2, 4, false, true},
		{2, 9, 6, 3, 5, true, true},
	} {
		p := makeAttnParams(r, c)
		q := randT(r, c.B, c.T, c.NH, c.HS)
		k, v := randT(r, c.B, c.T, c.KVH, c.HS), randT(r, c.B, c.T, c.KVH, c.HS)
		out, lse := zerosLike(q), tensor.New(tensor.F64, c.B, c.NH, c.T)
		dout := randT(r, c.B, c.T, c.NH, c.HS)
		op := gradOp{
			names:  []string{"q", "k", "v"},
			inputs: []*tensor.Tensor{q, k, v},
			loss: func() float64 {
				be.AttentionForward(out, lse, q, k, v, p)
				return dot(dout, out)
			},
			backward: func(g []*tensor.Tensor) {
				be.AttentionForward(out, lse, q, k, v, p)
				be.AttentionBackward(g[0], g[1], g[2], dout, q, k, v, out, lse, p)
			},
		}
		checkGrads(t, "attention", op, 1e-6, 1e-7, 1e-5)
		if c.keyMask {
			be.AttentionForward(out, lse, q, k, v, p)
			if !math.IsInf(lse.F64[0], -1) {
				t.Errorf("%+v: fully masked query has lse %g, want -Inf", c, lse.F64[0])
			}
			for i := 0; i < c.HS*c.NH; i++ {
				if out.F64[i] != 0 {
					t.Fatalf("%+v: fully masked query has out %g", c, out.F64[i])
				}
			}
		}
	}
}

func TestAttentionF32(t *testing.T) {
	r := rand.New(rand.NewSource(64))
	c := attnCase{2, 11, 4, 2, 8, false, true}
	p := makeAttnParams(r, c)
	q := randT(r, c.B, c.T, c.NH, c.HS)
	k, v := randT(r, c.B, c.T, c.KVH, c.HS), randT(r, c.B, c.T, c.KVH, c.HS)
	dout := randT(r, c.B, c.T, c.NH, c.HS)
	checkF32(t, "attention", 1e-5, func(dt tensor.DType) []*tensor.Tensor {
		qq, kk, vv := conv(q, dt), conv(k, dt), conv(v, dt)
		out, lse := tensor.New(dt, c.B, c.T, c.NH, c.HS), tensor.New(dt, c.B, c.NH, c.T)
		be.AttentionForward(out, lse, qq, kk, vv, p)
		dq, dk, dv := zerosLike(qq), zerosLike(kk), zerosLike(vv)
		be.AttentionBackward(dq, dk, dv, conv(dout, dt), qq, kk, vv, out, lse, p)
		return []*tensor.Tensor{out, lse, dq, dk, dv}
	})
}

func TestAttentionShapePanic(t *testing.T) {
	p := backend.AttnParams{B: 1, T: 4, NH: 4, KVH: 2, HS: 3}
	q := tensor.New(tensor.F64, 1, 4, 4, 3)
	kv := tensor.New(tensor.F64, 1, 4, 2, 3)
	lse := tensor.New(tensor.F64, 1, 4, 4)
	mustPanic(t, func() { be.AttentionForward(zerosLike(q), lse, q, q, kv, p) }, "k", "[1, 4, 4, 3]", "KVH")
	mustPanic(t, func() { be.AttentionForward(zerosLike(q), tensor.New(tensor.F64, 4), q, kv, kv, p) }, "lse", "[4]")
	p.KVH = 3
	mustPanic(t, func() { be.AttentionForward(zerosLike(q), lse, q, kv, kv, p) }, "KVH=3")
}
