package gemm

// The pure-Go micro-kernel: same packed panels and tile as kernel6x16, used
// where the CPU lacks AVX2/FMA, on other architectures, and when the
// assembly is switched off (SHOGGO_NOASM=1 or tests). It walks the 6x16
// tile in 2x4 blocks whose eight accumulators stay in registers.

// kernelGo computes the 6x16 tile AB of a packed 6 x k panel a and a packed
// k x 16 panel b and writes it to c (row stride ldc) as kernel6x16 does.
func kernelGo(k int, a, b, c []float32, ldc int, beta float32, mode int) {
	var t [mr * nr]float32
	tileGo(k, a, b, &t)
	writeTile(&t, c, ldc, mr, nr, beta, mode)
}

// tileGo computes the 6x16 product of the packed panels into t.
func tileGo(k int, a, b []float32, t *[mr * nr]float32) {
	a = a[:k*mr]
	b = b[:k*nr]
	for i := 0; i < mr; i += 2 {
		for j := 0; j < nr; j += 4 {
			var c00, c01, c02, c03, c10, c11, c12, c13 float32
			ai, bj := i, j
			for p := 0; p < k; p++ {
				pa := (*[2]float32)(a[ai : ai+2])
				pb := (*[4]float32)(b[bj : bj+4])
				a0, a1 := pa[0], pa[1]
				b0, b1, b2, b3 := pb[0], pb[1], pb[2], pb[3]
				c00 += a0 * b0
				c01 += a0 * b1
				c02 += a0 * b2
				c03 += a0 * b3
				c10 += a1 * b0
				c11 += a1 * b1
				c12 += a1 * b2
				c13 += a1 * b3
				ai += mr
				bj += nr
			}
			r0 := (*[4]float32)(t[i*nr+j:])
			r1 := (*[4]float32)(t[(i+1)*nr+j:])
			r0[0], r0[1], r0[2], r0[3] = c00, c01, c02, c03
			r1[0], r1[1], r1[2], r1[3] = c10, c11, c12, c13
		}
	}
}

// writeTile writes the top-left rows x cols of the tile t to c (row stride
// ldc): mode 0 stores, mode 1 adds, mode 2 stores beta*C + t with the same
// roundings as the assembly kernel (product rounded, then sum rounded).
func writeTile(t *[mr * nr]float32, c []float32, ldc, rows, cols int, beta float32, mode int) {
	for i := 0; i < rows; i++ {
		ti := t[i*nr : i*nr+cols]
		ci := c[i*ldc : i*ldc+cols]
		switch mode {
		case 0:
			copy(ci, ti)
		case 1:
			for j, v := range ti {
				ci[j] += v
			}
		default:
			for j, v := range ti {
				ci[j] = float32(beta*ci[j]) + v // the conversion forbids fusing into an FMA
			}
		}
	}
}
