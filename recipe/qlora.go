package recipe

import (
	"runtime"

	"github.com/shoggo/shoggo/backend"
	"github.com/shoggo/shoggo/model"
	"github.com/shoggo/shoggo/nn"
	"github.com/shoggo/shoggo/quant"
	"github.com/shoggo/shoggo/tensor"
)

// QLoRAQuant is QLoRA's base quantization (Dettmers et al. 2023, and the
// bitsandbytes/PEFT recipe): NF4 in blocks of 64 with double quantization
// of the block absmax (8-bit, blocks of 256).
var QLoRAQuant = quant.Options{BlockSize: quant.DefaultBlockSize, DoubleQuant: true}

// qloraGCEvery is how many bytes of fp32 temporaries the QLoRA factory is
// handed between garbage collections (see QLoRAFactory).
const qloraGCEvery = 256 << 20

// QLoRAFactory quantizes each frozen block linear to NF4 as the model is
// built or loaded (one layer at a time, from a temporary fp32 copy), so the
// base is held in about 4.1 bits per weight. The layers compute in fp32:
// forward and the input gradient dequantize panels on the fly
// (quant.Linear). Norms stay fp32; LoadBase keeps the token embedding and
// LM head in bf16 (model.FrozenOptions.HalfEmbeddings).
//
// Each fp32 copy the model hands over is garbage once the layer is
// quantized. Left to itself, Go's collector lets the heap grow to twice the
// live size between collections, and the live size is dominated by the
// fp32 embeddings and LM head (2.5 GB for Qwen1.5-1.8B), so ~2 GB of dead
// temporaries would pile up while the base is built. The factory therefore
// collects after every 256 MB of temporaries; the arena is pointer-free,
// so a collection costs milliseconds.
//
// The LoRA adapters trained on top are ordinary PEFT adapters: they apply to
// the unquantized base as well (the base is quantized only in memory).
// Merging goes into the unquantized base: `shoggo merge --base <the fp32 or
// bf16 directory the run started from>`. Merging into the NF4 weights would
// mean dequantizing, adding scaling·B·A and quantizing again, which rounds
// most of the small update away into the 4-bit grid (an adapter's change to
// a weight is typically far below one NF4 step). The merged fp32 model
// differs from the model the adapter was trained with only by the NF4 error
// of the base; `shoggo quantize` it afterwards if a 4-bit model is wanted.
func QLoRAFactory(be backend.Backend) (model.LinearFactory, error) {
	_ = be // quant.Linear runs its own fused kernels on the CPU
	q := model.QuantizingFactory(quant.NF4, QLoRAQuant)
	var pending int64
	return func(name string, w, b *tensor.Tensor) (nn.Layer, error) {
		l, err := q(name, w, b)
		if pending += int64(4 * w.Numel()); pending >= qloraGCEvery {
			runtime.GC()
			pending = 0
		}
		return l, err
	}, nil
}
