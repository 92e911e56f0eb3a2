package quant

import (
	"math"
	"sync"
)

// NF4 is the NormalFloat4 code of QLoRA, exactly bitsandbytes'
// get_4bit_type("nf4"): 16 quantiles of N(0, 1) scaled to [-1, 1], sorted.
var nf4Code = [16]float32{
	-1.0,
	-0.6961928009986877,
	-0.5250730514526367,
	-0.39491748809814453,
	-0.28444138169288635,
	-0.18477343022823334,
	-0.09105003625154495,
	0.0,
	0.07958029955625534,
	0.16093020141124725,
	0.24611230194568634,
	0.33791524171829224,
	0.44070982933044434,
	0.5626170039176941,
	0.7229568362236023,
	1.0,
}

// fp4Code is bitsandbytes' get_4bit_type("fp4"): 1 sign bit, 2 exponent
// bits, 1 mantissa bit, in bit-pattern order, divided (in float32) by the
// largest magnitude, 12. Index 8 (sign bit and zero) is +0 too: bitsandbytes
// writes it as the Python integer -0.
var fp4Code = func() [16]float32 {
	raw := [16]float32{0, 0.0625, 8, 12, 4, 6, 2, 3, 0, -0.0625, -8, -12, -4, -6, -2, -3}
	var c [16]float32
	for i, v := range raw {
		c[i] = v / 12
	}
	return c
}()

// fp4Order is torch.argsort(fp4Code) as bitsandbytes' CPU quantizer computes
// it: the code indices in ascending order of value. The two zeros (indices 0
// and 8) keep their order, so inputs in (-0.0026, 0] get code 0 and inputs
// in (0, 0.0026] get code 8, as in bitsandbytes.
var fp4Order = [16]uint8{11, 10, 13, 12, 15, 14, 9, 0, 8, 1, 6, 7, 4, 5, 2, 3}

// code4 is one 4-bit code table with what quantization and the kernels need.
type code4 struct {
	name   string
	code   [16]float32     // value of each 4-bit code
	bounds [15]float32     // midpoints between consecutive sorted values
	order  [16]uint8       // sorted position -> code
	pair   [256][2]float32 // byte -> values of its high and low nibble
}

func newCode4(name string, code [16]float32, order [16]uint8) *code4 {
	c := &code4{name: name, code: code, order: order}
	for i := range c.bounds {
		// (code[order[:-1]] + code[order[1:]]) / 2 in float32, as bitsandbytes.
		c.bounds[i] = (code[order[i]] + code[order[i+1]]) / 2
	}
	for b := range c.pair {
		c.pair[b] = [2]float32{code[b>>4], code[b&15]}
	}
	return c
}

var (
	nf4 = newCode4("nf4", nf4Code, [16]uint8{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15})
	fp4 = newCode4("fp4", fp4Code, fp4Order)
)

// encode returns the code of a scaled value v in [-1, 1]: torch.bucketize
// (right=False) of v against the midpoints, so a value exactly on a
// midpoint takes the lower neighbour, then mapped through the sort order.
func (c *code4) encode(v float32) uint8 {
	// Number of bounds strictly below v (binary search over 15 sorted bounds).
	lo, hi := 0, len(c.bounds)
	for lo < hi {
		mid := (lo + hi) / 2
		if c.bounds[mid] < v {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return c.order[lo]
}

func code4For(quantType string) *code4 {
	switch quantType {
	case NF4:
		return nf4
	case FP4:
		return fp4
	}
	return nil
}

// NF4Code returns the 16 NF4 values (bitsandbytes' quant_map for "nf4").
func NF4Code() []float32 { c := nf4Code; return c[:] }

// FP4Code returns the 16 FP4 values (bitsandbytes' quant_map for "fp4").
func FP4Code() []float32 { c := fp4Code; return c[:] }

// dynamicMapBits is bitsandbytes' create_dynamic_map(signed=True,
// max_exponent_bits=7, total_bits=8), the code of its 8-bit blockwise
// quantization (used for the double quantization of the 4-bit absmax), as
// float32 bit patterns. Generated from bitsandbytes 0.50.2 and checked
// against it by the fixture tests.
var dynamicMapBits = [256]uint32{
	0xbf7e3333, 0xbf7a999a, 0xbf770000, 0xbf736666, 0xbf6fcccd, 0xbf6c3333, 0xbf68999a, 0xbf650000,
	0xbf616666, 0xbf5dcccd, 0xbf5a3333, 0xbf56999a, 0xbf530000, 0xbf4f6666, 0xbf4bcccd, 0xbf483333,
	0xbf44999a, 0xbf410000, 0xbf3d6666, 0xbf39cccd, 0xbf363334, 0xbf32999a, 0xbf2f0000, 0xbf2b6666,
	0xbf27cccd, 0xbf243334, 0xbf20999a, 0xbf1d0000, 0xbf196666, 0xbf15cccd, 0xbf123334, 0xbf0e999a,
	0xbf0b0000, 0xbf076666, 0xbf03cccc, 0xbf003333, 0xbef93332, 0xbef20000, 0xbeeacccc, 0xbee3999a,
	0xbedc6666, 0xbed53333, 0xbece0000, 0xbec6cccc, 0xbebf999a, 0xbeb86666, 0xbeb13333, 0xbeaa0000,
	0xbea2cccc, 0xbe9b999a, 0xbe946666, 0xbe8d3334, 0xbe860000, 0xbe7d9999, 0xbe6f3333, 0xbe60cccd,
	0xbe526666, 0xbe440000, 0xbe35999a, 0xbe273333, 0xbe18cccd, 0xbe0a6666, 0xbdf80000, 0xbddb3334,
	0xbdc9eb85, 0xbdc428f7, 0xbdbe6667, 0xbdb8a3d7, 0xbdb2e148, 0xbdad1eb8, 0xbda75c2a, 0xbda1999a,
	0xbd9bd70a, 0xbd96147b, 0xbd9051eb, 0xbd8a8f5d, 0xbd84cccd, 0xbd7e147b, 0xbd728f5d, 0xbd670a3d,
	0xbd5b851f, 0xbd500000, 0xbd447ae1, 0xbd38f5c3, 0xbd2d70a3, 0xbd21eb85, 0xbd166667, 0xbd0ae148,
	0xbcfeb852, 0xbce7ae15, 0xbcd0a3d7, 0xbcb9999a, 0xbca28f5d, 0xbc8b851f, 0xbc68f5c3, 0xbc3ae148,
	0xbc1f3b64, 0xbc160418, 0xbc0ccccd, 0xbc039581, 0xbbf4bc6a, 0xbbe24dd3, 0xbbcfdf3b, 0xbbbd70a4,
	0xbbab020d, 0xbb989374, 0xbb8624dd, 0xbb676c8a, 0xbb428f5c, 0xbb1db22d, 0xbaf1a9fc, 0xbaa7ef9d,
	0xba7765ff, 0xba59e83e, 0xba3c6a80, 0xba1eecc1, 0xba016f01, 0xb9c7e283, 0xb98ce705, 0xb923d70b,
	0xb8ba1f4b, 0xb88aefb3, 0xb8378034, 0xb7b24206, 0xb70205ff, 0xb65a1a94, 0xb513a3b7, 0x00000000,
	0x3513a3b7, 0x365a1a94, 0x370205ff, 0x37b24206, 0x38378034, 0x388aefb3, 0x38ba1f4b, 0x3923d70b,
	0x398ce705, 0x39c7e283, 0x3a016f01, 0x3a1eecc1, 0x3a3c6a80, 0x3a59e83e, 0x3a7765ff, 0x3aa7ef9d,
	0x3af1a9fc, 0x3b1db22d, 0x3b428f5c, 0x3b676c8a, 0x3b8624dd, 0x3b989374, 0x3bab020d, 0x3bbd70a4,
	0x3bcfdf3b, 0x3be24dd3, 0x3bf4bc6a, 0x3c039581, 0x3c0ccccd, 0x3c160418, 0x3c1f3b64, 0x3c3ae148,
	0x3c68f5c3, 0x3c8b851f, 0x3ca28f5d, 0x3cb9999a, 0x3cd0a3d7, 0x3ce7ae15, 0x3cfeb852, 0x3d0ae148,
	0x3d166667, 0x3d21eb85, 0x3d2d70a3, 0x3d38f5c3, 0x3d447ae1, 0x3d500000, 0x3d5b851f, 0x3d670a3d,
	0x3d728f5d, 0x3d7e147b, 0x3d84cccd, 0x3d8a8f5d, 0x3d9051eb, 0x3d96147b, 0x3d9bd70a, 0x3da1999a,
	0x3da75c2a, 0x3dad1eb8, 0x3db2e148, 0x3db8a3d7, 0x3dbe6667, 0x3dc428f7, 0x3dc9eb85, 0x3ddb3334,
	0x3df80000, 0x3e0a6666, 0x3e18cccd, 0x3e273333, 0x3e35999a, 0x3e440000, 0x3e526666, 0x3e60cccd,
	0x3e6f3333, 0x3e7d9999, 0x3e860000, 0x3e8d3334, 0x3e946666, 0x3e9b999a, 0x3ea2cccc, 0x3eaa0000,
	0x3eb13333, 0x3eb86666, 0x3ebf999a, 0x3ec6cccc, 0x3ece0000, 0x3ed53333, 0x3edc6666, 0x3ee3999a,
	0x3eeacccc, 0x3ef20000, 0x3ef93332, 0x3f003333, 0x3f03cccc, 0x3f076666, 0x3f0b0000, 0x3f0e999a,
	0x3f123334, 0x3f15cccd, 0x3f196666, 0x3f1d0000, 0x3f20999a, 0x3f243334, 0x3f27cccd, 0x3f2b6666,
	0x3f2f0000, 0x3f32999a, 0x3f363334, 0x3f39cccd, 0x3f3d6666, 0x3f410000, 0x3f44999a, 0x3f483333,
	0x3f4bcccd, 0x3f4f6666, 0x3f530000, 0x3f56999a, 0x3f5a3333, 0x3f5dcccd, 0x3f616666, 0x3f650000,
	0x3f68999a, 0x3f6c3333, 0x3f6fcccd, 0x3f736666, 0x3f770000, 0x3f7a999a, 0x3f7e3333, 0x3f800000,
}

// DynamicMap returns a copy of bitsandbytes' signed 8-bit dynamic map.
func DynamicMap() []float32 {
	m := make([]float32, 256)
	for i, b := range dynamicMapBits {
		m[i] = math.Float32frombits(b)
	}
	return m
}

var dynamicMap = DynamicMap()

// lutSize is the number of bins of the 8-bit quantizer's lookup table.
const lutSize = 65536

// dynamicLUT maps a bin of [-1, 1] to the nearest code of the dynamic map,
// exactly as bitsandbytes' native CPU quantizer (csrc/cpu_ops.cpp,
// build_quantize_lut) builds it.
var dynamicLUT = sync.OnceValue(func() *[lutSize]uint8 { return buildLUT(dynamicMap) })

func buildLUT(code []float32) *[lutSize]uint8 {
	var mids [255]float32
	for i := range mids {
		mids[i] = 0.5 * (code[i] + code[i+1])
	}
	lut := new([lutSize]uint8)
	ci := 0
	for i := 0; i < lutSize; i++ {
		v := float32(-1) + float32(float32(2*i)/float32(lutSize-1))
		for ci < len(mids) && mids[ci] < v {
			ci++
		}
		lut[i] = uint8(ci)
	}
	return lut
}

// lutIndex is bitsandbytes' norm_to_lut_index: clamp to [-1, 1], then
// (v + 1) * 0.5 * 65535 + 0.5 in float32, truncated.
func lutIndex(v float32) int {
	if v != v { // NaN: the C++ conversion yields 0 on x86
		return 0
	}
	v = min(max(v, -1), 1)
	t := float32(float32(float32(v+1)*0.5)*float32(lutSize-1)) + 0.5
	return int(float32(t))
}
