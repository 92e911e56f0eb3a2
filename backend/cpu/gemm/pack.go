package gemm

// Packing copies a block of op(A) or op(B) into the contiguous panel layout
// the micro-kernels read, so one kernel serves all four transpose layouts.
// Panels are zero-padded to full MR rows / NR columns; the padding only
// produces tile entries that are never written back.

// packA packs rows [i0, i0+mb) and columns [p0, p0+kc) of alpha*op(A) into
// dst as ceil(mb/mr) panels of kc*mr floats: panel q holds, for each p, the
// mr values alpha*op(A)[i0+q*mr+ii][p0+p], ii = 0..mr-1.
func packA(dst []float32, transA bool, a []float32, lda, i0, mb, p0, kc int, alpha float32) {
	for q := 0; q*mr < mb; q++ {
		rows := min(mr, mb-q*mr)
		d := dst[q*kc*mr : (q+1)*kc*mr]
		ib := i0 + q*mr
		if transA {
			// op(A)[i][p] = a[p*lda+i]: each p gives mr contiguous values.
			if rows == mr && useAsm {
				_ = a[(p0+kc-1)*lda+ib+mr-1]
				_ = dst[q*kc*mr+kc*mr+1] // packA6T writes 2 floats past the panel
				packA6T(kc, &a[p0*lda+ib], lda, &d[0], alpha)
				continue
			}
			if rows == mr {
				for p := 0; p < kc; p++ {
					src := (*[mr]float32)(a[(p0+p)*lda+ib:])
					dp := (*[mr]float32)(d[p*mr:])
					if alpha == 1 {
						*dp = *src
					} else {
						for ii := range dp {
							dp[ii] = alpha * src[ii]
						}
					}
				}
				continue
			}
			for p := 0; p < kc; p++ {
				src := a[(p0+p)*lda+ib : (p0+p)*lda+ib+rows]
				dp := (*[mr]float32)(d[p*mr:])
				for ii := range dp {
					if ii < rows {
						dp[ii] = alpha * src[ii]
					} else {
						dp[ii] = 0
					}
				}
			}
			continue
		}
		// op(A)[i][p] = a[i*lda+p]: row ii of the panel is contiguous in A.
		p1 := 0
		if rows == mr && kc >= 8 && useAsm {
			_ = a[(ib+mr-1)*lda+p0+kc-1]
			_ = dst[q*kc*mr+kc*mr+1] // packA6N writes 2 floats past the panel
			p1 = kc &^ 7
			packA6N(p1, &a[ib*lda+p0], lda, &d[0], alpha)
		}
		for ii := 0; ii < mr; ii++ {
			if ii >= rows {
				for p := 0; p < kc; p++ {
					d[p*mr+ii] = 0
				}
				continue
			}
			src := a[(ib+ii)*lda+p0+p1 : (ib+ii)*lda+p0+kc]
			dp := d[p1*mr:]
			if alpha == 1 {
				for p, v := range src {
					dp[p*mr+ii] = v
				}
			} else {
				for p, v := range src {
					dp[p*mr+ii] = alpha * v
				}
			}
		}
	}
}

// packB packs rows [p0, p0+kc) and columns [j0, j0+nb) of op(B) into dst as
// ceil(nb/nr) panels of kc*nr floats: panel q holds, for each p, the nr
// values op(B)[p0+p][j0+q*nr+jj], jj = 0..nr-1.
func packB(dst []float32, transB bool, b []float32, ldb, p0, kc, j0, nb int) {
	for q := 0; q*nr < nb; q++ {
		cols := min(nr, nb-q*nr)
		d := dst[q*kc*nr : (q+1)*kc*nr]
		jb := j0 + q*nr
		if !transB {
			// op(B)[p][j] = b[p*ldb+j]: each p gives nr contiguous values.
			if cols == nr && useAsm {
				_ = b[(p0+kc-1)*ldb+jb+nr-1]
				_ = d[kc*nr-1]
				packB16N(kc, &b[p0*ldb+jb], ldb, &d[0])
				continue
			}
			if cols == nr {
				for p := 0; p < kc; p++ {
					*(*[nr]float32)(d[p*nr:]) = *(*[nr]float32)(b[(p0+p)*ldb+jb:])
				}
				continue
			}
			for p := 0; p < kc; p++ {
				dp := (*[nr]float32)(d[p*nr:])
				n := copy(dp[:cols], b[(p0+p)*ldb+jb:(p0+p)*ldb+jb+cols])
				clear(dp[n:])
			}
			continue
		}
		// op(B)[p][j] = b[j*ldb+p]: column jj of the panel is contiguous in B.
		p1 := 0
		if cols == nr && kc >= 8 && useAsm {
			_ = b[(jb+nr-1)*ldb+p0+kc-1]
			p1 = kc &^ 7
			packB16T(p1, &b[jb*ldb+p0], ldb, &d[0])
		}
		for jj := 0; jj < nr; jj++ {
			if jj >= cols {
				for p := 0; p < kc; p++ {
					d[p*nr+jj] = 0
				}
				continue
			}
			src := b[(jb+jj)*ldb+p0+p1 : (jb+jj)*ldb+p0+kc]
			dp := d[p1*nr:]
			for p, v := range src {
				dp[p*nr+jj] = v
			}
		}
	}
}
