package quant

// dot4Blocks returns sum over nblk blocks b of scales[b] * sum_i
// table[code_i] * x[i] over the block's 2*blkBytes elements, where codes
// 2k and 2k+1 are the high and low nibbles of byte k (kernels_amd64.s).
// blkBytes must be a positive multiple of 8.
//
//go:noescape
func dot4Blocks(table *[16]float32, codes *byte, x *float32, scales *float32, nblk, blkBytes int) float32

// dotI8 returns sum_i float32(q[i]) * x[i]; n is a positive multiple of 16.
//
//go:noescape
func dotI8(q *int8, x *float32, n int) float32

// dotU4Blocks is dot4Blocks with table[v] = v (int4 codes).
//
//go:noescape
func dotU4Blocks(codes *byte, x *float32, scales *float32, nblk, blkBytes int) float32

// deq4Blocks writes dst[i] = table[code_i] * scales[b] over nblk blocks b of
// 2*blkBytes elements (codes as in dot4Blocks).
//
//go:noescape
func deq4Blocks(table *[16]float32, codes *byte, dst *float32, scales *float32, nblk, blkBytes int)

// deqU4Blocks writes dst[i] = (float32(u_i) - zeros[b]) * scales[b] over
// nblk groups b of 2*blkBytes elements.
//
//go:noescape
func deqU4Blocks(codes *byte, dst *float32, scales, zeros *float32, nblk, blkBytes int)

// deqI8 writes dst[i] = (float32(q[i]) * s) * t; n is a positive multiple
// of 16.
//
//go:noescape
func deqI8(q *int8, dst *float32, n int, s, t float32)
