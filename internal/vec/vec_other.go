//go:build !amd64

package vec

func maxAVX2(x *float32, n int) float32                            { panic("vec: no assembly") }
func expSubSumAVX2(x *float32, n int, m float32) float64           { panic("vec: no assembly") }
func expSubSum32AVX2(x *float32, n int, m float32) float32         { panic("vec: no assembly") }
func scaleAVX2(x *float32, n int, k float32)                       { panic("vec: no assembly") }
func addAVX2(y, a, b *float32, n int)                              { panic("vec: no assembly") }
func accumF64AVX2(acc *float64, x *float32, n int)                 { panic("vec: no assembly") }
func sumSquaresAVX2(x *float32, n int) float64                     { panic("vec: no assembly") }
func geluAVX2(y, x *float32, n int)                                { panic("vec: no assembly") }
func geluBwdAVX2(dx, dy, x *float32, n int)                        { panic("vec: no assembly") }
func swigluAVX2(y, gate, up *float32, n int)                       { panic("vec: no assembly") }
func swigluBwdAVX2(dg, du, dy, gate, up *float32, n int)           { panic("vec: no assembly") }
func adamwAVX2(w, grad, m, v *float32, n int, k *AdamW, small int) { panic("vec: no assembly") }
