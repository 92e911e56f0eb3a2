package quant

import (
	"math"
	"math/rand/v2"
	"testing"
)

// The assembly kernels agree with the Go code paths (which the fixtures and
// the dense references check) on every row layout, including rows that
// start in the middle of a block or of a byte.
func TestAsmMatchesGo(t *testing.T) {
	if !useAsm {
		t.Skip("no assembly kernels on this machine")
	}
	rng := rand.New(rand.NewPCG(13, 14))
	for _, c := range layerCases {
		for _, sh := range [][2]int{{9, 64}, {7, 200}, {5, 257}, {4, 1024}, {3, 33}, {2, 8192}, {3, 4201}} {
			out, in := sh[0], sh[1]
			l, err := QuantizeLinear(randTensor(rng, 1, out, in), nil, c.format, c.opts)
			if err != nil {
				t.Fatal(err)
			}
			x := randTensor(rng, 1, 1, in).F32
			yAsm := make([]float32, out)
			yGo := make([]float32, out)
			run := func(y []float32) {
				if i4, ok := l.W.(*Int4Weight); ok {
					i4.MatVec(y, x, 0, out)
				} else {
					l.W.MatVec(y, x, 0, out)
				}
			}
			run(yAsm)
			useAsm = false
			run(yGo)
			useAsm = true
			for r := range yAsm {
				var mag float64
				for _, v := range x {
					mag += math.Abs(float64(v))
				}
				if d := math.Abs(float64(yAsm[r] - yGo[r])); d > 1e-5*mag {
					t.Fatalf("%v %dx%d row %d: asm %v, Go %v", c, out, in, r, yAsm[r], yGo[r])
				}
			}
		}
	}
}

// Dequantization is bit-identical with and without the assembly kernels,
// by rows and by columns.
func TestAsmDequantIdentical(t *testing.T) {
	if !useAsm {
		t.Skip("no assembly kernels on this machine")
	}
	rng := rand.New(rand.NewPCG(15, 16))
	defer func() { useAsm = true }()
	for _, c := range layerCases {
		for _, sh := range [][2]int{{9, 64}, {7, 200}, {5, 257}, {3, 33}} {
			out, in := sh[0], sh[1]
			l, err := QuantizeLinear(randTensor(rng, 1, out, in), nil, c.format, c.opts)
			if err != nil {
				t.Fatal(err)
			}
			var got [2][][]float32
			for k, asm := range []bool{true, false} {
				useAsm = asm
				rows := l.Dequantize().F32
				cols := make([]float32, out*(in-3))
				l.W.DequantizeCols(cols, 3, in)
				got[k] = [][]float32{rows, cols}
			}
			for i := range got[0] {
				for j := range got[0][i] {
					if math.Float32bits(got[0][i][j]) != math.Float32bits(got[1][i][j]) {
						t.Fatalf("%v %dx%d: asm %v, Go %v at %d/%d", c, out, in, got[0][i][j], got[1][i][j], i, j)
					}
				}
			}
		}
	}
}
