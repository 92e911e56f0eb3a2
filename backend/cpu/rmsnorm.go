package cpu

import (
	"math"

	"github.com/shoggo/shoggo/backend/cpu/gemm"
	"github.com/shoggo/shoggo/internal/parallel"
	"github.com/shoggo/shoggo/tensor"
)

// RMSNormForward computes y = x * rstd * w over the last dim of x (N, C),
// with rstd = 1/sqrt(mean(x^2) + eps) (as Llama/Qwen2 RMSNorm), saving rstd
// (N). The statistic is accumulated in float64 whatever the dtype.
//
// x and/or y may be BF16 or F16 (an autocast call, autocast.go): the row is
// normalized in float32 from the widened x (statistic in float64, as for
// F32) and y rounded when 16-bit; rstd and w are F32.
func (c *CPU) RMSNormForward(y, rstd, x, w *tensor.Tensor, eps float64) {
	const op = "RMSNormForward"
	N, C := rc(x)
	checkRC(op, "y", y, N, C)
	checkNumel(op, "rstd", rstd, N, x)
	checkNumel(op, "w", w, C, x)
	if P, ok := autocastP(x, y); ok {
		args := []marg{{"y", y, true}, {"rstd", rstd, false}, {"x", x, true}, {"w", w, false}}
		checkMixed(op, P, halfArgs(args...), args...)
		normForwardMixed(y, x, N, C, func(yr, xr []float32, n int) {
			rmsNormRow(yr, &rstd.F32[n], xr, s32(w), eps)
		})
		return
	}
	switch dtypeOf(op, y, rstd, x, w) {
	case tensor.F32:
		rmsNormForward(s32(y), s32(rstd), s32(x), s32(w), N, C, eps)
	case tensor.F64:
		rmsNormForward(s64(y), s64(rstd), s64(x), s64(w), N, C, eps)
	}
}

// RMSNormBackward accumulates dx and dw (either may be nil) from dy, using
// the rstd saved by RMSNormForward. x may be BF16 or F16 (QK norm on
// 16-bit projections): it is widened into scratch and the float32 kernel
// runs; dx, dw, dy, w, rstd are F32.
func (c *CPU) RMSNormBackward(dx, dw, dy, x, w, rstd *tensor.Tensor) {
	const op = "RMSNormBackward"
	N, C := rc(x)
	checkRC(op, "dy", dy, N, C)
	checkRC(op, "dx", dx, N, C)
	checkNumel(op, "w", w, C, x)
	checkNumel(op, "dw", dw, C, x)
	checkNumel(op, "rstd", rstd, N, x)
	if P, ok := autocastP(x); ok {
		checkMixed(op, P, "x", marg{"dx", dx, false}, marg{"dw", dw, false}, marg{"dy", dy, false}, marg{"w", w, false}, marg{"rstd", rstd, false})
		if dx == nil && dw == nil {
			return
		}
		xv, release := f32Of(c, x)
		defer release()
		rmsNormBackward(s32(dx), s32(dw), s32(dy), xv, s32(w), s32(rstd), N, C)
		return
	}
	switch dtypeOf(op, dx, dw, dy, x, w, rstd) {
	case tensor.F32:
		rmsNormBackward(s32(dx), s32(dw), s32(dy), s32(x), s32(w), s32(rstd), N, C)
	case tensor.F64:
		rmsNormBackward(s64(dx), s64(dw), s64(dy), s64(x), s64(w), s64(rstd), N, C)
	}
}

func rmsNormForward[T gemm.Float](y, rstd, x, w []T, N, C int, eps float64) {
	if C == 0 {
		return
	}
	parallel.For(N, rowGrain(C), func(lo, hi int) {
		for n := lo; n < hi; n++ {
			rmsNormRow(y[n*C:n*C+C], &rstd[n], x[n*C:n*C+C], w, eps)
		}
	})
}

// rmsNormRow normalizes one row xr into yr, setting *rstd.
func rmsNormRow[T gemm.Float](yr []T, rstd *T, xr, w []T, eps float64) {
	C := len(xr)
	var ss float64
	for _, v := range xr {
		ss += float64(v) * float64(v)
	}
	r := 1 / math.Sqrt(ss/float64(C)+eps)
	*rstd = T(r)
	for j, v := range xr {
		yr[j] = T(float64(v) * r * float64(w[j]))
	}
}

// rmsNormBackward: with xhat = x * rstd and g = dy * w,
// dx = rstd * (g - xhat * mean(g * xhat)), dw = sum_n dy * xhat.
// dx is parallel over rows, dw over blocks of columns (see
// layerNormBackward).
func rmsNormBackward[T gemm.Float](dx, dw, dy, x, w, rstd []T, N, C int) {
	if C == 0 || (dx == nil && dw == nil) {
		return
	}
	if dx != nil {
		parallel.For(N, rowGrain(C), func(lo, hi int) {
			for n := lo; n < hi; n++ {
				xr := x[n*C : n*C+C]
				dyr := dy[n*C : n*C+C]
				r := float64(rstd[n])
				var sgx float64
				for j, v := range xr {
					sgx += float64(dyr[j]) * float64(w[j]) * float64(v) * r
				}
				sgx /= float64(C)
				dxr := dx[n*C : n*C+C]
				for j, v := range xr {
					xhat := float64(v) * r
					dxr[j] += T(r * (float64(dyr[j])*float64(w[j]) - xhat*sgx))
				}
			}
		})
	}
	if dw == nil {
		return
	}
	forColBlocks(C, func(j0, j1 int) {
		var buf [colGrain]float64
		acc := buf[:j1-j0]
		for n := 0; n < N; n++ {
			xr := x[n*C+j0 : n*C+j1]
			dyr := dy[n*C+j0 : n*C+j1]
			r := float64(rstd[n])
			for j, v := range xr {
				acc[j] += float64(dyr[j]) * float64(v) * r
			}
		}
		for j, v := range acc {
			dw[j0+j] += T(v)
		}
	})
}
