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
func (c *CPU) RMSNormForward(y, rstd, x, w *tensor.Tensor, eps float64) {
	const op = "RMSNormForward"
	N, C := rc(x)
	checkRC(op, "y", y, N, C)
	checkNumel(op, "rstd", rstd, N, x)
	checkNumel(op, "w", w, C, x)
	switch dtypeOf(op, y, rstd, x, w) {
	case tensor.F32:
		rmsNormForward(s32(y), s32(rstd), s32(x), s32(w), N, C, eps)
	case tensor.F64:
		rmsNormForward(s64(y), s64(rstd), s64(x), s64(w), N, C, eps)
	}
}

// RMSNormBackward accumulates dx and dw (either may be nil) from dy, using
// the rstd saved by RMSNormForward.
func (c *CPU) RMSNormBackward(dx, dw, dy, x, w, rstd *tensor.Tensor) {
	const op = "RMSNormBackward"
	N, C := rc(x)
	checkRC(op, "dy", dy, N, C)
	checkRC(op, "dx", dx, N, C)
	checkNumel(op, "w", w, C, x)
	checkNumel(op, "dw", dw, C, x)
	checkNumel(op, "rstd", rstd, N, x)
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
			xr := x[n*C : n*C+C]
			yr := y[n*C : n*C+C]
			var ss float64
			for _, v := range xr {
				ss += float64(v) * float64(v)
			}
			r := 1 / math.Sqrt(ss/float64(C)+eps)
			rstd[n] = T(r)
			for j, v := range xr {
				yr[j] = T(float64(v) * r * float64(w[j]))
			}
		}
	})
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
