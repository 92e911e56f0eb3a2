package attn

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"testing"

	"github.com/shoggo/shoggo/internal/gradcheck"
)

// TestRoPEHandComputed: theta = 10000, HS = 4, so inv_freq = [1, 0.01].
// x = [1, 2, 3, 4] at position 1 (angles 1 and 0.01) and position 3
// (angles 3 and 0.03):
//
//	x'[0] = 1 cos a0 - 3 sin a0, x'[2] = 3 cos a0 + 1 sin a0
//	x'[1] = 2 cos a1 - 4 sin a1, x'[3] = 4 cos a1 + 2 sin a1
//
// Expected values worked out in float64 (Python's math.cos/sin). Tolerance
// 1e-15 absolute (a few ulp of O(1) values) in float64; 2 ulp of each
// value in float32 (4e-7 relative).
func TestRoPEHandComputed(t *testing.T) {
	want := []float64{
		-1.9841106485555495, 1.959900667496664, 2.4623779024123156, 4.019799668334994, // pos 1
		-1.413352520780047, 1.8791180666879925, -2.828857481741469, 4.058191135400942, // pos 3
	}
	pos := []int32{1, 3}
	x := []float64{1, 2, 3, 4, 1, 2, 3, 4}
	RoPE(x, 1, 2, 1, 4, pos, 10000, false)
	for i := range want {
		if math.Abs(x[i]-want[i]) > 1e-15 {
			t.Errorf("float64 x'[%d] = %.17g, want %.17g", i, x[i], want[i])
		}
	}
	x32 := []float32{1, 2, 3, 4, 1, 2, 3, 4}
	RoPE(x32, 1, 2, 1, 4, pos, 10000, false)
	for i := range want {
		if math.Abs(float64(x32[i])-want[i]) > 4e-7*math.Abs(want[i]) {
			t.Errorf("float32 x'[%d] = %.9g, want %.9g", i, x32[i], want[i])
		}
	}
}

// TestRoPEFloat32LikeHF: at a large position the float32 result follows
// transformers' float32 arithmetic (inv_freq in float32, angle =
// float32(inv_freq * pos)), not the exact angle. Position 4097, HS 8,
// theta 10000: HF's angles are 4097, 409.70001220703125, 40.96999740600586,
// 4.0970001220703125 (exact: 4097, 409.7, 40.97, 4.097), which moves
// outputs by up to 1.8e-5 relative. want32 was computed by emulating HF's
// float32 steps in Python (struct-rounded float32, math.cos/sin); want64
// uses exact angles. Tolerance: 1 ulp of float32 (PyTorch's float32 cos/sin
// are not always correctly rounded either).
func TestRoPEFloat32LikeHF(t *testing.T) {
	x := []float32{0.5, -1, 1.5, -2, 2.5, -3, 3.5, -4}
	want32 := []float32{-0.42073485255241394, 2.6106905937194824, -1.0362144708633423, -2.1116437911987305,
		2.514554023742676, -1.7844589948654175, -3.6641860008239746, 3.942202568054199}
	want64 := []float64{-0.42073485994699833, 2.6106689383657566, -1.0362050070936326, -2.1116434633123236,
		2.5145540713266397, -1.7844908781644735, -3.664188748314432, 3.942202669048147}
	RoPE(x, 1, 1, 1, 8, []int32{4097}, 10000, false)
	for i := range x {
		if ulps(x[i], want32[i]) > 1 {
			t.Errorf("float32 x'[%d] = %.9g, want %.9g (HF float32)", i, x[i], want32[i])
		}
	}
	x64 := []float64{0.5, -1, 1.5, -2, 2.5, -3, 3.5, -4}
	RoPE(x64, 1, 1, 1, 8, []int32{4097}, 10000, false)
	for i := range x64 {
		// 1e-12: the angle 409.7 has an ulp of 5.7e-14, and Python's
		// pos*theta**(-2i/HS) and our pos*(1/theta**(2i/HS)) differ in it.
		if math.Abs(x64[i]-want64[i]) > 1e-12 {
			t.Errorf("float64 x'[%d] = %.17g, want %.17g", i, x64[i], want64[i])
		}
	}
}

// TestRoPEMatchesTransformers: float32 RoPE against transformers' own
// LlamaRotaryEmbedding + apply_rotary_pos_emb (testdata/rope_golden.json,
// made by testdata/make_rope_golden.py: torch 2.15, transformers 5.24) for
// thetas 1e4, 1e6, 5e4, head sizes 64, 128, 16 and positions up to 32767.
//
// Most outputs are bit-identical (the log line counts them). The rest
// differ because PyTorch's vectorised float32 cos, sin and pow are not
// always correctly rounded (ours are): cos(1) is 1 ulp off there, and
// 1e6^(74/128) is 1 ulp off, which at position 32767 moves the angle by
// 3.7e-6. The tolerance is that error model: for output y from the pair
// (a, b) at angle f = pos*inv,
//
//	|y - y_hf| <= 2 ulp(y) + (|a|+|b|) * (1.2e-7 + f * 1.2e-7)
//
// (1 ulp of cos/sin, plus 1 ulp of inv_freq times the position).
func TestRoPEMatchesTransformers(t *testing.T) {
	raw, err := os.ReadFile("testdata/rope_golden.json")
	if err != nil {
		t.Fatal(err)
	}
	var golden struct {
		Cases []struct {
			Theta       float64
			B, T, H, HS int
			Pos         []int32
			X, Y        []float32
		}
	}
	if err := json.Unmarshal(raw, &golden); err != nil {
		t.Fatal(err)
	}
	if len(golden.Cases) == 0 {
		t.Fatal("no cases")
	}
	for _, c := range golden.Cases {
		half := c.HS / 2
		inv := ropeInvFreq(c.Theta, c.HS, true)
		y := slices.Clone(c.X)
		RoPE(y, c.B, c.T, c.H, c.HS, c.Pos, c.Theta, false)
		exact, worst := 0, 0.0
		for n := range y {
			if y[n] == c.Y[n] {
				exact++
			}
			row, d := n/c.HS, n%c.HS
			i := d % half
			a, b := float64(c.X[row*c.HS+i]), float64(c.X[row*c.HS+i+half])
			f := float64(c.Pos[row/c.H]) * inv[i]
			ulp := float64(math.Nextafter32(float32(math.Abs(float64(y[n]))), float32(math.Inf(1)))) - math.Abs(float64(y[n]))
			tol := 2*ulp + (math.Abs(a)+math.Abs(b))*(1.2e-7+f*1.2e-7)
			diff := math.Abs(float64(y[n]) - float64(c.Y[n]))
			worst = max(worst, diff)
			if diff > tol {
				t.Errorf("theta %g HS %d: y[%d] (pos %d) = %.9g, transformers %.9g (diff %.3g > %.3g)",
					c.Theta, c.HS, n, c.Pos[row/c.H], y[n], c.Y[n], diff, tol)
			}
		}
		t.Logf("theta %g HS %d: %d/%d bit-identical to transformers, worst |diff| %.3g", c.Theta, c.HS, exact, len(y), worst)
	}
}

func ulps(a, b float32) int64 {
	ia, ib := int64(int32(math.Float32bits(a))), int64(int32(math.Float32bits(b)))
	if ia < 0 {
		ia = math.MinInt32 - ia
	}
	if ib < 0 {
		ib = math.MinInt32 - ib
	}
	if ia > ib {
		return ia - ib
	}
	return ib - ia
}

func randPos(rng *rand.Rand, n int) []int32 {
	pos := make([]int32, n)
	for i := range pos {
		pos[i] = int32(rng.IntN(3000))
	}
	return pos
}

// TestRoPEInverseRestores: forward then inverse gives x back, in both
// dtypes, for shapes small and large enough to run in parallel, with
// positions through the cached table and (negative or huge, past the
// cache) computed per row. Tolerance |x” - x| <= 1e-14 (float64), 1e-6
// (float32): x is N(0,1), each value sees two rotations of 2 terms.
func TestRoPEInverseRestores(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, sh := range [][4]int{{2, 5, 3, 8}, {1, 1, 1, 2}, {2, 300, 4, 64}} {
		B, T, H, HS := sh[0], sh[1], sh[2], sh[3]
		for _, special := range []bool{false, true} {
			pos := randPos(rng, B*T)
			if special {
				pos[0] = -7
				pos[len(pos)-1] = 1 << 30
			}
			x := randSlice[float64](rng, B*T*H*HS)
			y := slices.Clone(x)
			RoPE(y, B, T, H, HS, pos, 10000, false)
			RoPE(y, B, T, H, HS, pos, 10000, true)
			for i := range x {
				if math.Abs(y[i]-x[i]) > 1e-14 {
					t.Fatalf("float64 %v: x[%d] %g -> %g", sh, i, x[i], y[i])
				}
			}
			x32 := randSlice[float32](rng, B*T*H*HS)
			y32 := slices.Clone(x32)
			RoPE(y32, B, T, H, HS, pos, 1e6, false)
			RoPE(y32, B, T, H, HS, pos, 1e6, true)
			for i := range x32 {
				if math.Abs(float64(y32[i]-x32[i])) > 1e-6 {
					t.Fatalf("float32 %v: x[%d] %g -> %g", sh, i, x32[i], y32[i])
				}
			}
		}
	}
}

// TestRoPEInverseIsTranspose: with loss = sum(dy .* RoPE(x)), the gradient
// with respect to x is RoPE_inverse(dy). Central finite differences in
// float64, eps 1e-6; the loss is linear in x, so the only error is
// rounding: |fd - grad| <= 1e-8 + 1e-7*max(|fd|, |grad|).
func TestRoPEInverseIsTranspose(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	const B, T, H, HS = 2, 3, 2, 6
	pos := []int32{0, 1, 2, 5, 9, 100}
	x := randSlice[float64](rng, B*T*H*HS)
	dy := randSlice[float64](rng, len(x))
	grad := slices.Clone(dy)
	RoPE(grad, B, T, H, HS, pos, 10000, true)
	y := make([]float64, len(x))
	loss := func() float64 {
		copy(y, x)
		RoPE(y, B, T, H, HS, pos, 10000, false)
		var s float64
		for i := range y {
			s += y[i] * dy[i]
		}
		return s
	}
	if err := gradcheck.Check("rope dx", x, grad, nil, 1e-6, 1e-8, 1e-7, loss); err != nil {
		t.Error(err)
	}
}

// TestRoPERelativePosition: after RoPE, q.k depends only on the position
// difference: dot(rope(q, m), rope(k, n)) = dot(rope(q, m+d), rope(k, n+d)).
// float64, tolerance 1e-12 (values O(HS)).
func TestRoPERelativePosition(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	const HS = 16
	q := randSlice[float64](rng, HS)
	k := randSlice[float64](rng, HS)
	dot := func(m, n int32) float64 {
		a, b := slices.Clone(q), slices.Clone(k)
		RoPE(a, 1, 1, 1, HS, []int32{m}, 10000, false)
		RoPE(b, 1, 1, 1, HS, []int32{n}, 10000, false)
		var s float64
		for i := range a {
			s += a[i] * b[i]
		}
		return s
	}
	for _, mn := range [][2]int32{{5, 2}, {7, 7}, {0, 3}, {40, 1}} {
		want := dot(mn[0], mn[1])
		for _, d := range []int32{1, 13, 250} {
			if got := dot(mn[0]+d, mn[1]+d); math.Abs(got-want) > 1e-12 {
				t.Errorf("positions (%d,%d)+%d: q.k = %.15g, want %.15g", mn[0], mn[1], d, got, want)
			}
		}
	}
	// and it does depend on the difference.
	if math.Abs(dot(5, 2)-dot(5, 3)) < 1e-6 {
		t.Error("q.k does not change with the position difference")
	}
}

// TestRoPETableMatchesDirect: rows served from the cached table and rows
// computed directly (a negative position in the call disables the table)
// are bit-identical, in both dtypes.
func TestRoPETableMatchesDirect(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	const H, HS = 2, 32
	posA := []int32{5, 2000, -1} // direct
	posB := []int32{5, 2000, 0}  // table
	x := randSlice[float32](rng, 3*H*HS)
	a, b := slices.Clone(x), slices.Clone(x)
	RoPE(a, 1, 3, H, HS, posA, 500000, false)
	RoPE(b, 1, 3, H, HS, posB, 500000, false)
	if !slices.Equal(a[:2*H*HS], b[:2*H*HS]) {
		t.Error("float32: table and direct results differ")
	}
	x64 := randSlice[float64](rng, 3*H*HS)
	a64, b64 := slices.Clone(x64), slices.Clone(x64)
	RoPE(a64, 1, 3, H, HS, posA, 500000, false)
	RoPE(b64, 1, 3, H, HS, posB, 500000, false)
	if !slices.Equal(a64[:2*H*HS], b64[:2*H*HS]) {
		t.Error("float64: table and direct results differ")
	}
}

func BenchmarkRoPEGPT2(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	const B, T, H, HS = 4, 64, 12, 64
	x := randSlice[float32](rng, B*T*H*HS)
	pos := make([]int32, B*T)
	for i := range pos {
		pos[i] = int32(i % T)
	}
	b.SetBytes(int64(4 * len(x)))
	for range b.N {
		RoPE(x, B, T, H, HS, pos, 10000, false)
	}
}
