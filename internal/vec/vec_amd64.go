package vec

// Assembly kernels (vec_amd64.s). n is a positive multiple of 8.

//go:noescape
func maxAVX2(x *float32, n int) float32

//go:noescape
func expSubSumAVX2(x *float32, n int, m float32) float64

//go:noescape
func expSubSum32AVX2(x *float32, n int, m float32) float32

//go:noescape
func scaleAVX2(x *float32, n int, k float32)

//go:noescape
func addAVX2(y, a, b *float32, n int)

//go:noescape
func accumF64AVX2(acc *float64, x *float32, n int)

//go:noescape
func sumSquaresAVX2(x *float32, n int) float64

//go:noescape
func geluAVX2(y, x *float32, n int)

//go:noescape
func geluBwdAVX2(dx, dy, x *float32, n int)

//go:noescape
func swigluAVX2(y, gate, up *float32, n int)

//go:noescape
func swigluBwdAVX2(dg, du, dy, gate, up *float32, n int)

//go:noescape
func adamwAVX2(w, grad, m, v *float32, n int, k *AdamW, small int)
