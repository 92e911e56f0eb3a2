package gemm

import "testing"

func tile1x8(k int, a, b []float32, t *[mr * nr]float32) {
	a = a[:k*mr]
	b = b[:k*nr]
	for i := 0; i < mr; i++ {
		for j := 0; j < nr; j += 8 {
			var c0, c1, c2, c3, c4, c5, c6, c7 float32
			for p := 0; p < k; p++ {
				av := a[p*mr+i]
				pb := (*[8]float32)(b[p*nr+j:])
				c0 += av * pb[0]
				c1 += av * pb[1]
				c2 += av * pb[2]
				c3 += av * pb[3]
				c4 += av * pb[4]
				c5 += av * pb[5]
				c6 += av * pb[6]
				c7 += av * pb[7]
			}
			r := (*[8]float32)(t[i*nr+j:])
			r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7] = c0, c1, c2, c3, c4, c5, c6, c7
		}
	}
}

func tileAxpy(k int, a, b []float32, t *[mr * nr]float32) {
	*t = [mr * nr]float32{}
	a = a[:k*mr]
	b = b[:k*nr]
	for p := 0; p < k; p++ {
		pa := (*[mr]float32)(a[p*mr:])
		pb := (*[nr]float32)(b[p*nr:])
		for i := 0; i < mr; i++ {
			av := pa[i]
			r := (*[nr]float32)(t[i*nr:])
			for j := range r {
				r[j] += av * pb[j]
			}
		}
	}
}

func tile2x4b(k int, a, b []float32, t *[mr * nr]float32) {
	a = a[:k*mr]
	b = b[:k*nr]
	for i := 0; i < mr; i += 2 {
		for j := 0; j < nr; j += 4 {
			var c00, c01, c02, c03, c10, c11, c12, c13 float32
			for p := 0; p < k; p++ {
				pa := (*[mr]float32)(a[p*mr:])
				pb := (*[nr]float32)(b[p*nr:])
				a0 := pa[i]
				a1 := pa[i+1]
				c00 += a0 * pb[j]
				c01 += a0 * pb[j+1]
				c02 += a0 * pb[j+2]
				c03 += a0 * pb[j+3]
				c10 += a1 * pb[j]
				c11 += a1 * pb[j+1]
				c12 += a1 * pb[j+2]
				c13 += a1 * pb[j+3]
			}
			r0 := (*[4]float32)(t[i*nr+j:])
			r1 := (*[4]float32)(t[(i+1)*nr+j:])
			r0[0], r0[1], r0[2], r0[3] = c00, c01, c02, c03
			r1[0], r1[1], r1[2], r1[3] = c10, c11, c12, c13
		}
	}
}

func benchTile(b *testing.B, f func(int, []float32, []float32, *[mr * nr]float32)) {
	k := 256
	a := make([]float32, k*mr)
	bb := make([]float32, k*nr)
	for i := range a {
		a[i] = float32(i)
	}
	var t [mr * nr]float32
	for b.Loop() {
		f(k, a, bb, &t)
	}
	b.ReportMetric(2*mr*nr*float64(k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
}
func BenchmarkTile2x4(b *testing.B)  { benchTile(b, tileGo) }
func BenchmarkTile2x4b(b *testing.B) { benchTile(b, tile2x4b) }
func BenchmarkTile1x8(b *testing.B)  { benchTile(b, tile1x8) }
func BenchmarkTileAxpy(b *testing.B) { benchTile(b, tileAxpy) }
