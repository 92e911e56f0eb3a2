package recipe

import (
	"flag"

	"github.com/shoggo/shoggo/train"
)

// PrecisionHelp is the flag help of the precision settings, by yaml key
// (every training command has them: train.Options embeds
// train.PrecisionConfig).
var PrecisionHelp = map[string]string{
	"precision": "compute precision: fp32, bf16 or fp16 (mixed precision as PyTorch autocast: fp32 master weights and optimizer, 16-bit matmul operands and saved activations; fp16 adds dynamic loss scaling)",
	"bf16":      "bf16 mixed precision (Hugging Face's bf16=True; same as --precision bf16)",
	"fp16":      "fp16 mixed precision with dynamic loss scaling (Hugging Face's fp16=True; same as --precision fp16)",
}

// PrecisionFlags defines --precision, --bf16 and --fp16 over p.
func PrecisionFlags(fs *flag.FlagSet, p *train.PrecisionConfig) {
	fs.StringVar(&p.Precision, "precision", p.Precision, PrecisionHelp["precision"])
	fs.BoolVar(&p.BF16, "bf16", p.BF16, PrecisionHelp["bf16"])
	fs.BoolVar(&p.FP16, "fp16", p.FP16, PrecisionHelp["fp16"])
}

func init() {
	for k, v := range PrecisionHelp {
		AlignHelp[k], DPOHelp[k], RLHelp[k] = v, v, v
	}
}
