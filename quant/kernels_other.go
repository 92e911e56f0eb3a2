//go:build !amd64

package quant

func dot4Blocks(table *[16]float32, codes *byte, x *float32, scales *float32, nblk, blkBytes int) float32 {
	panic("quant: no assembly kernels on this architecture")
}

func dotI8(q *int8, x *float32, n int) float32 {
	panic("quant: no assembly kernels on this architecture")
}

func dotU4Blocks(codes *byte, x *float32, scales *float32, nblk, blkBytes int) float32 {
	panic("quant: no assembly kernels on this architecture")
}

func deq4Blocks(table *[16]float32, codes *byte, dst *float32, scales *float32, nblk, blkBytes int) {
	panic("quant: no assembly kernels on this architecture")
}

func deqU4Blocks(codes *byte, dst *float32, scales, zeros *float32, nblk, blkBytes int) {
	panic("quant: no assembly kernels on this architecture")
}

func deqI8(q *int8, dst *float32, n int, s, t float32) {
	panic("quant: no assembly kernels on this architecture")
}
