// Package quant provides shoggo's weight quantization: NF4 and FP4 with
// optional double quantization, bit-compatible with bitsandbytes; int8 per
// output row (LLM.int8() vector-wise, also bitsandbytes' layout); int4
// group-wise, symmetric or asymmetric (shoggo's own, GPTQ-like); and a frozen
// quantized linear layer (Linear) implementing nn.Layer whose forward and
// input-gradient backward dequantize on the fly, for QLoRA and for inference.
//
// # Formats
//
// NF4 / FP4 (bitsandbytes quantize_4bit): the weight is flattened and cut
// into blocks of BlockSize (32, 64 (default), 128, ... 4096) consecutive
// elements, so a block may span two rows. Each block is scaled by its
// absolute maximum and each element replaced by the index of the nearest of
// 16 code values (NF4Code, FP4Code); a value exactly between two codes takes
// the lower one. Two codes per byte, the first element in the high nibble;
// an odd element count is padded with the code of 0. Dequantization is
// code * absmax in float32. With double quantization (bitsandbytes'
// compress_statistics, HF's bnb_4bit_use_double_quant) the absmax vector is
// stored as 8-bit codes of (absmax - offset), offset = mean(absmax),
// quantized blockwise (blocks of 256) with bitsandbytes' signed dynamic map
// (DynamicMap); absmax = code8[q] * absmax2 + offset in float32.
//
// Compatibility: Quantize4Bit reproduces bitsandbytes 0.50.2's CPU backend
// bit for bit (packed codes, absmax, offset, quantized absmax, absmax2) and
// Dequantize4Bit its output exactly; testdata/quant/ holds the fixtures
// (reference/make_quant_fixtures.py). Two caveats. The offset is torch.mean
// of the absmax vector, which shoggo computes in PyTorch's single-threaded
// summation order: for weights with 32768 or more blocks PyTorch sums in
// per-thread chunks, so the offset (and, rarely, an absmax code next to a
// rounding boundary) may differ from what bitsandbytes computes on a given
// machine; both are valid encodings and every file decodes identically in
// both. And bitsandbytes' CUDA kernels round scaled values with their own
// thresholds; shoggo follows the CPU backend.
//
// Int8 (bitsandbytes int8_vectorwise_quant, threshold 0, i.e. no outlier
// decomposition): SCB[r] = max |W[r,:]|, q = round(W * (127/SCB[r])) (half
// to even), W ~ q * SCB[r] / 127. An all-zero row stores SCB 0 and codes 0.
//
// Int4 (shoggo): groups of GroupSize (16, 32, 64, 128 (default), 256)
// consecutive elements of a row (the last group of a row may be shorter);
// codes u in 0..15, two per byte (first in the high nibble, each row starting
// on a byte), W ~ (u - z) * scale. Symmetric: scale = absmax/7, z = 8.
// Asymmetric: lo = min(min W, 0), hi = max(max W, 0), scale = (hi-lo)/15,
// z = round(-lo/scale) stored per group. Rounding is half to even.
//
// NaN and Inf weights are rejected by every quantizer.
//
// # On-disk layout (safetensors)
//
// A quantized linear layer named <m> (e.g. model.layers.0.mlp.up_proj) is
// stored as below; Linear.Tensors writes it and LoadLinear reads it,
// checking every size against the metadata (an *Error names the tensor that
// disagrees). The NF4/FP4 and int8 layouts are exactly what transformers +
// bitsandbytes write for Linear4bit / Linear8bitLt, so those files load in
// both directions.
//
// NF4 / FP4 (<qt> = nf4 or fp4):
//
//	<m>.weight                                U8  [(numel+1)/2, 1]  packed codes of the flattened (out, in) weight
//	<m>.weight.absmax                         F32 [blocks]          per-block absmax (no double quantization), or
//	                                          U8  [blocks]          8-bit codes of absmax - offset (double quantization)
//	<m>.weight.quant_map                      F32 [16]              the code values (checked against NF4Code/FP4Code)
//	<m>.weight.nested_absmax                  F32 [ceil(blocks/256)] double quantization only
//	<m>.weight.nested_quant_map               F32 [256]             double quantization only (DynamicMap)
//	<m>.weight.quant_state.bitsandbytes__<qt> U8  [len]             UTF-8 JSON, see QuantState
//	<m>.bias                                  F32 [out]             optional
//
// where blocks = ceil(out*in / blocksize) and the JSON is bitsandbytes'
//
//	{"quant_type": "nf4", "blocksize": 64, "dtype": "float32", "shape": [out, in],
//	 "nested_blocksize": 256, "nested_dtype": "float32", "nested_offset": 0.0123}
//
// (the nested_* keys only with double quantization; unknown keys are errors).
//
// Int8:
//
//	<m>.weight         I8  [out, in]  codes
//	<m>.SCB            F32 [out]      per-row absmax
//	<m>.weight_format  U8  []         0 (row-major; bitsandbytes' marker)
//	<m>.bias           F32 [out]      optional
//
// Int4:
//
//	<m>.weight                           U8  [out, ceil(in/2)]   packed codes, row by row
//	<m>.weight.scales                    F32 [out, groups]       groups = ceil(in/group_size)
//	<m>.weight.zeros                     U8  [out, groups]       asymmetric only, values 0..15
//	<m>.weight.quant_state.shoggo__int4  U8  [len]               UTF-8 JSON:
//	    {"quant_type": "int4", "dtype": "float32", "shape": [out, in], "group_size": 128, "symmetric": true}
//	<m>.bias                             F32 [out]               optional
//
// # config.json
//
// The model's config.json carries a "quantization_config" (Config,
// ConfigFor, ParseConfig). NF4/FP4/int8 use Hugging Face's
// BitsAndBytesConfig fields:
//
//	{"quant_method": "bitsandbytes", "load_in_4bit": true, "bnb_4bit_quant_type": "nf4",
//	 "bnb_4bit_use_double_quant": true, "bnb_4bit_compute_dtype": "float32",
//	 "bnb_4bit_quant_storage": "uint8", "llm_int8_skip_modules": ["lm_head"],
//	 "_load_in_4bit": true, "_load_in_8bit": false}
//
//	{"quant_method": "bitsandbytes", "load_in_8bit": true, "llm_int8_threshold": 0.0, ...}
//
// plus, for a 4-bit block size other than 64 (which transformers cannot
// express), "shoggo_blocksize". Int4 is
//
//	{"quant_method": "shoggo", "format": "int4", "bits": 4, "group_size": 128, "sym": true,
//	 "modules_to_not_convert": ["lm_head"]}
//
// Modules listed in llm_int8_skip_modules / modules_to_not_convert stay in
// float32 (Config.Skipped).
//
// # Kernels
//
// Linear.Forward never builds the float32 weight: for up to a few input rows
// (decoding) it runs dequantize-and-dot kernels that read each packed byte
// once (AVX2/FMA assembly on amd64, Go elsewhere or with SHOGGO_NOASM=1);
// for more rows it dequantizes a panel of output rows into a per-goroutine
// buffer (about 1 MB) and multiplies it with gemm.Sgemm, panels running in
// parallel. Backward (dx += dy W) does the same with panels of input
// columns. Results do not depend on the thread count.
//
// Merging a LoRA adapter into a quantized base means dequantizing first
// (Linear.Dequantize), adding the adapter's delta in float32, and, if
// wanted, quantizing the result again.
package quant
