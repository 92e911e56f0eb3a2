package vec

import (
	"math"
	"math/rand/v2"
	"testing"
)

// Dot and Axpy agree with float64 loops (to float32 rounding) for lengths
// around the 8- and 16-element blocks, with and without assembly, and Dot
// does not depend on where its slices start.
func TestDotAxpy(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, asm := range []bool{false, UseAsm} {
		saved := UseAsm
		UseAsm = asm
		for _, n := range []int{0, 1, 7, 8, 9, 15, 16, 17, 31, 64, 100} {
			a, b := make([]float32, n+3), make([]float32, n+3)
			for i := range a {
				a[i], b[i] = float32(rng.NormFloat64()), float32(rng.NormFloat64())
			}
			var want, mag float64
			for i := 0; i < n; i++ {
				want += float64(a[i]) * float64(b[i])
				mag += math.Abs(float64(a[i]) * float64(b[i]))
			}
			if got := Dot(a[:n], b[:n]); math.Abs(float64(got)-want) > 1e-6*mag+1e-7 {
				t.Errorf("asm %v n %d: Dot %v, want %v", asm, n, got, want)
			}
			// same values at another offset: same bits
			a2, b2 := append([]float32{9}, a[:n]...), append([]float32{9}, b[:n]...)
			if g1, g2 := Dot(a[:n], b[:n]), Dot(a2[1:], b2[1:]); g1 != g2 {
				t.Errorf("asm %v n %d: Dot depends on the offset: %v vs %v", asm, n, g1, g2)
			}
			y := append([]float32(nil), b[:n]...)
			Axpy(y, 0.75, a[:n])
			for i := range y {
				w := float64(b[i]) + 0.75*float64(a[i])
				if math.Abs(float64(y[i])-w) > 1e-6*(math.Abs(w)+1) {
					t.Fatalf("asm %v n %d: Axpy[%d] = %v, want %v", asm, n, i, y[i], w)
				}
			}
		}
		UseAsm = saved
	}
}
