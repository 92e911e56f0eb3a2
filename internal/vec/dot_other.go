//go:build !amd64

package vec

func dotAVX2(a, b *float32, n int) float32     { panic("vec: no assembly") }
func axpyAVX2(y, x *float32, n int, a float32) { panic("vec: no assembly") }
