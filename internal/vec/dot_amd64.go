package vec

// Assembly kernels (dot_amd64.s). n is a positive multiple of 8.

//go:noescape
func dotAVX2(a, b *float32, n int) float32

//go:noescape
func axpyAVX2(y, x *float32, n int, a float32)
