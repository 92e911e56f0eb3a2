package vec

// Dot returns sum_i a[i]*b[i] over len(a) elements (len(b) >= len(a)),
// accumulated in float32: the assembly keeps partial sums in 16 lanes
// (two registers) and adds them at the end, the Go code adds the tail in
// order. The result depends only on len(a), never on where a and b start.
func Dot(a, b []float32) float32 {
	n := len(a)
	if n == 0 {
		return 0
	}
	b = b[:n]
	var s float32
	n8 := blocks(n)
	if n8 > 0 {
		s = dotAVX2(&a[0], &b[0], n8)
	}
	for i := n8; i < n; i++ {
		s += a[i] * b[i]
	}
	return s
}

// Axpy sets y[i] += a*x[i] over len(y) elements (fused multiply-add in the
// assembly, so it agrees with the Go loop to rounding).
func Axpy(y []float32, a float32, x []float32) {
	n := len(y)
	if n == 0 {
		return
	}
	x = x[:n]
	n8 := blocks(n)
	if n8 > 0 {
		axpyAVX2(&y[0], &x[0], n8, a)
	}
	for i := n8; i < n; i++ {
		y[i] += a * x[i]
	}
}
