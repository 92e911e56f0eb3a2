// Package gradcheck compares analytic gradients with central finite
// differences in float64.
package gradcheck

import (
	"fmt"
	"math"
)

// Check perturbs x[i] for each index in idx (all indices if idx is nil) by
// ±eps, evaluates loss() at both points, and compares the central difference
// with grad[i]. It returns an error naming the first coordinate whose
// |fd - grad| > atol + rtol*max(|fd|, |grad|). loss must read x afresh each
// call; x is restored afterwards.
func Check(name string, x []float64, grad []float64, idx []int, eps, atol, rtol float64, loss func() float64) error {
	if len(x) != len(grad) {
		return fmt.Errorf("%s: %d values but %d gradients", name, len(x), len(grad))
	}
	if idx == nil {
		idx = make([]int, len(x))
		for i := range idx {
			idx[i] = i
		}
	}
	for _, i := range idx {
		orig := x[i]
		x[i] = orig + eps
		lp := loss()
		x[i] = orig - eps
		lm := loss()
		x[i] = orig
		fd := (lp - lm) / (2 * eps)
		if d := math.Abs(fd - grad[i]); d > atol+rtol*math.Max(math.Abs(fd), math.Abs(grad[i])) || math.IsNaN(d) {
			return fmt.Errorf("%s[%d]: finite difference %.10g, analytic %.10g (|diff| %.3g)", name, i, fd, grad[i], d)
		}
	}
	return nil
}

// Sample returns up to k distinct indices in [0, n), spread evenly and
// always including the first and last.
func Sample(n, k int) []int {
	if n <= k {
		out := make([]int, n)
		for i := range out {
			out[i] = i
		}
		return out
	}
	out := make([]int, 0, k)
	for j := 0; j < k; j++ {
		out = append(out, j*(n-1)/(k-1))
	}
	return out
}
