package cpu

import (
	"math"

	"github.com/shoggo/shoggo/backend/cpu/gemm"
	"github.com/shoggo/shoggo/internal/parallel"
	"github.com/shoggo/shoggo/internal/vec"
	"github.com/shoggo/shoggo/tensor"
)

// LayerNormForward normalizes each row of x (N, C) over its last dim, as
// torch.nn.LayerNorm does (biased variance, eps inside the square root):
// y = (x - mean) * rstd * w + b with rstd = 1/sqrt(var + eps). It saves mean
// and rstd (N elements each) for the backward pass. b may be nil. Row
// statistics are accumulated in float64 whatever the dtype.
//
// x and/or y may be BF16 or F16 (an autocast call, autocast.go): the row is
// normalized in float32 from the widened x (statistics in float64, as for
// F32) and y rounded when 16-bit; mean, rstd, w and b are F32.
func (c *CPU) LayerNormForward(y, mean, rstd, x, w, b *tensor.Tensor, eps float64) {
	const op = "LayerNormForward"
	N, C := rc(x)
	checkRC(op, "y", y, N, C)
	checkNumel(op, "mean", mean, N, x)
	checkNumel(op, "rstd", rstd, N, x)
	checkNumel(op, "w", w, C, x)
	checkNumel(op, "b", b, C, x)
	if P, ok := autocastP(x, y); ok {
		args := []marg{{"y", y, true}, {"mean", mean, false}, {"rstd", rstd, false}, {"x", x, true}, {"w", w, false}, {"b", b, false}}
		checkMixed(op, P, halfArgs(args...), args...)
		normForwardMixed(y, x, N, C, func(yr, xr []float32, n int) {
			layerNormRow(yr, &mean.F32[n], &rstd.F32[n], xr, s32(w), s32(b), eps)
		})
		return
	}
	switch dtypeOf(op, y, mean, rstd, x, w, b) {
	case tensor.F32:
		layerNormForward(s32(y), s32(mean), s32(rstd), s32(x), s32(w), s32(b), N, C, eps)
	case tensor.F64:
		layerNormForward(s64(y), s64(mean), s64(rstd), s64(x), s64(w), s64(b), N, C, eps)
	}
}

// LayerNormBackward accumulates dx, dw and db (each may be nil) from dy,
// using the mean and rstd saved by LayerNormForward. x may be BF16 or F16:
// it is widened into scratch and the float32 kernel runs; the other
// tensors are F32.
func (c *CPU) LayerNormBackward(dx, dw, db, dy, x, w, mean, rstd *tensor.Tensor) {
	const op = "LayerNormBackward"
	N, C := rc(x)
	checkRC(op, "dy", dy, N, C)
	checkRC(op, "dx", dx, N, C)
	checkNumel(op, "w", w, C, x)
	checkNumel(op, "dw", dw, C, x)
	checkNumel(op, "db", db, C, x)
	checkNumel(op, "mean", mean, N, x)
	checkNumel(op, "rstd", rstd, N, x)
	if P, ok := autocastP(x); ok {
		checkMixed(op, P, "x", marg{"dx", dx, false}, marg{"dw", dw, false}, marg{"db", db, false}, marg{"dy", dy, false},
			marg{"w", w, false}, marg{"mean", mean, false}, marg{"rstd", rstd, false})
		if dx == nil && dw == nil && db == nil {
			return
		}
		xv, release := f32Of(c, x)
		defer release()
		layerNormBackward(s32(dx), s32(dw), s32(db), s32(dy), xv, s32(w), s32(mean), s32(rstd), N, C)
		return
	}
	switch dtypeOf(op, dx, dw, db, dy, x, w, mean, rstd) {
	case tensor.F32:
		layerNormBackward(s32(dx), s32(dw), s32(db), s32(dy), s32(x), s32(w), s32(mean), s32(rstd), N, C)
	case tensor.F64:
		layerNormBackward(s64(dx), s64(dw), s64(db), s64(dy), s64(x), s64(w), s64(mean), s64(rstd), N, C)
	}
}

// rowGrain is the number of rows of C columns that make one parallel unit
// of a row-wise kernel (about 8K elements).
func rowGrain(C int) int { return max(1, 8192/max(C, 1)) }

// colGrain is the column-block width for the column-partitioned
// reductions (dw, db): a multiple of 8, so SIMD blocks stay whole.
const colGrain = 64

// forColBlocks calls fn(j0, j1) for blocks of at most colGrain columns of
// [0, C), in parallel. Each column belongs to one block, so a reduction
// over rows done per column (rows in order) does not depend on the thread
// count.
func forColBlocks(C int, fn func(j0, j1 int)) {
	parallel.For(C, colGrain, func(lo, hi int) {
		for j := lo; j < hi; j += colGrain {
			fn(j, min(j+colGrain, hi))
		}
	})
}

// Rows are normalized in parallel; each row is computed the same way
// whichever thread takes it.
func layerNormForward[T gemm.Float](y, mean, rstd, x, w, b []T, N, C int, eps float64) {
	if C == 0 {
		return
	}
	parallel.For(N, rowGrain(C), func(lo, hi int) {
		for n := lo; n < hi; n++ {
			layerNormRow(y[n*C:n*C+C], &mean[n], &rstd[n], x[n*C:n*C+C], w[:C], b, eps)
		}
	})
}

func layerNormRow[T gemm.Float](yr []T, mean, rstd *T, xr, w, b []T, eps float64) {
	C := len(xr)
	yr = yr[:C]
	var s float64
	for _, v := range xr {
		s += float64(v)
	}
	m := s / float64(C)
	var ss float64
	for _, v := range xr {
		d := float64(v) - m
		ss += d * d
	}
	r := 1 / math.Sqrt(ss/float64(C)+eps)
	*mean, *rstd = T(m), T(r)
	if b != nil {
		b = b[:C]
		for j, v := range xr {
			yr[j] = T((float64(v)-m)*r*float64(w[j]) + float64(b[j]))
		}
	} else {
		for j, v := range xr {
			yr[j] = T((float64(v) - m) * r * float64(w[j]))
		}
	}
}

// layerNormBackward: with xhat = (x - mean) * rstd and g = dy * w,
// dx = rstd * (g - mean(g) - xhat * mean(g * xhat)), dw = sum_n dy * xhat,
// db = sum_n dy.
//
// dx is computed in parallel over rows; dw and db in a second pass,
// parallel over blocks of columns, each column summing its rows in order
// (float64), so no result depends on the thread count.
func layerNormBackward[T gemm.Float](dx, dw, db, dy, x, w, mean, rstd []T, N, C int) {
	if C == 0 || (dx == nil && dw == nil && db == nil) {
		return
	}
	if dx != nil {
		parallel.For(N, rowGrain(C), func(lo, hi int) {
			for n := lo; n < hi; n++ {
				xr := x[n*C : n*C+C]
				dyr := dy[n*C : n*C+C]
				dxr := dx[n*C : n*C+C]
				m, r := float64(mean[n]), float64(rstd[n])
				var sg, sgx float64
				for j, v := range xr {
					g := float64(dyr[j]) * float64(w[j])
					sg += g
					sgx += g * (float64(v) - m) * r
				}
				sg /= float64(C)
				sgx /= float64(C)
				for j, v := range xr {
					xhat := (float64(v) - m) * r
					g := float64(dyr[j]) * float64(w[j])
					dxr[j] += T(r * (g - sg - xhat*sgx))
				}
			}
		})
	}
	if dw == nil && db == nil {
		return
	}
	forColBlocks(C, func(j0, j1 int) {
		var dwBuf, dbBuf [colGrain]float64
		dwAcc, dbAcc := dwBuf[:j1-j0], dbBuf[:j1-j0]
		for n := 0; n < N; n++ {
			xr := x[n*C+j0 : n*C+j1]
			dyr := dy[n*C+j0 : n*C+j1]
			if dw != nil {
				m, r := float64(mean[n]), float64(rstd[n])
				for j, v := range xr {
					dwAcc[j] += float64(dyr[j]) * (float64(v) - m) * r
				}
			}
			if db != nil {
				accumRow(dbAcc, dyr)
			}
		}
		if dw != nil {
			for j, v := range dwAcc {
				dw[j0+j] += T(v)
			}
		}
		if db != nil {
			for j, v := range dbAcc {
				db[j0+j] += T(v)
			}
		}
	})
}

// accumRow adds row to acc elementwise in float64 (the same bits as the
// plain loop; vec.AccumF64 for float32).
func accumRow[T gemm.Float](acc []float64, row []T) {
	if r32, ok := any(row).([]float32); ok {
		vec.AccumF64(acc, r32)
		return
	}
	for j, v := range row {
		acc[j] += float64(v)
	}
}

// normForwardMixed runs a float32 row kernel over the rows of x into y,
// either of them 16-bit: each row of x is widened into a row buffer and a
// 16-bit y row rounded from one. Rows run in parallel.
func normForwardMixed(y, x *tensor.Tensor, N, C int, row func(yr, xr []float32, n int)) {
	if C == 0 {
		return
	}
	parallel.For(N, rowGrain(C), func(lo, hi int) {
		xb, yb := make([]float32, C), make([]float32, C)
		for n := lo; n < hi; n++ {
			xr := chunkF32(x, n*C, n*C+C, xb)
			yr := outChunk(y, n*C, n*C+C, yb)
			row(yr, xr, n)
			storeChunk(y, n*C, n*C+C, yr)
		}
	})
}
