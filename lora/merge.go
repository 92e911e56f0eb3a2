package lora

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/shoggo/shoggo/backend"
	"github.com/shoggo/shoggo/backend/device"
	"github.com/shoggo/shoggo/model"
	"github.com/shoggo/shoggo/nn"
	"github.com/shoggo/shoggo/tensor"
	"github.com/shoggo/shoggo/tokenizer"
)

// Merge folds the adapters into the base weights, W += scaling · B A (for
// GPT-2's c_attn each view adds its rows of B, so the fused weight gets the
// whole update), and puts the base layers back into m's blocks (PEFT's
// merge_and_unload). The model can then be saved with SaveHF. Bases must be
// *nn.Linear or HalfLinear (whose weights are rounded to their dtype after
// the addition); anything else (a quantized base) is an error and nothing
// is changed.
func Merge(m *model.Transformer, a *Adapters) error {
	if err := a.check(m); err != nil {
		return err
	}
	for _, v := range a.Layers {
		switch v.Base.(type) {
		case *nn.Linear, *HalfLinear:
		default:
			return fmt.Errorf("lora: merge: module %s has a %T base, which cannot take merged weights (load the base in fp32)", v.Mod.Name, v.Base)
		}
	}
	be := a.be
	for _, md := range a.Modules {
		r, in := md.A.Shape[0], md.A.Shape[1]
		ah := backend.ToHost(be, md.A)
		at := tensor.New(a.dt, in, r) // Aᵀ, built on the host
		for i := 0; i < r; i++ {
			for j := 0; j < in; j++ {
				at.Set(j*r+i, ah.At(i*in+j))
			}
		}
		atb := be.Adopt(at)
		for _, v := range md.Views {
			out := v.B.Shape[0]
			delta := be.Alloc(a.dt, out, in)
			be.LinearForward(delta, v.B, atb, nil) // B Aᵀᵀ = B A
			be.Scale(delta, md.Scaling)
			switch base := v.Base.(type) {
			case *nn.Linear:
				be.AddInto(base.W, delta)
			case *HalfLinear:
				// widened, summed and rounded back through the host (in
				// place on the CPU backend)
				w := be.Alloc(a.dt, out, in)
				backend.ReadHost(be, base.W, func(hw *tensor.Tensor) {
					backend.FillHost(be, w, func(h *tensor.Tensor) { widen(h, hw) })
				})
				be.AddInto(w, delta)
				backend.ReadHost(be, w, func(h *tensor.Tensor) {
					backend.FillHost(be, base.W, func(hw *tensor.Tensor) { toHalf(hw, h) })
				})
			}
		}
	}
	a.restore()
	return nil
}

// MergeDir loads the Hugging Face model in baseDir (fp32 on the CPU), applies
// the PEFT adapter in adapterDir, merges it and writes the merged model to
// outDir as a Hugging Face directory, in the dtype the base's config.json
// names (torch_dtype or dtype: float16/bfloat16, else float32). Tokenizer
// files (tokenizer.FileNames) and generation_config.json found in baseDir
// are copied (tokenizer.CopyFiles).
func MergeDir(baseDir, adapterDir, outDir string) error {
	if same(baseDir, outDir) {
		return fmt.Errorf("merge: output directory %s is the base directory", outDir)
	}
	if qc, err := model.QuantizationConfig(baseDir); err != nil {
		return err
	} else if qc != nil {
		return fmt.Errorf("merge: %s is a quantized model; merge the adapter into the unquantized base (the directory it was quantized from): folding an adapter into 4-bit weights would re-quantize the sum and lose most of the update", baseDir)
	}
	be, err := device.Open("")
	if err != nil {
		return err
	}
	m, _, err := model.LoadHF(baseDir, be, tensor.F32, false)
	if err != nil {
		return err
	}
	a, err := Load(m, adapterDir)
	if err != nil {
		return err
	}
	if err := Merge(m, a); err != nil {
		return err
	}
	dt, err := configDType(filepath.Join(baseDir, "config.json"))
	if err != nil {
		return err
	}
	if err := m.SaveHF(outDir, model.SaveOptions{DType: dt}); err != nil {
		return err
	}
	_, err = tokenizer.CopyFiles(baseDir, outDir, "generation_config.json")
	return err
}

func same(a, b string) bool {
	x, err1 := filepath.Abs(a)
	y, err2 := filepath.Abs(b)
	return err1 == nil && err2 == nil && filepath.Clean(x) == filepath.Clean(y)
}

// configDType reads torch_dtype (transformers 4) or dtype (5) from a config.json.
func configDType(path string) (tensor.DType, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	var c struct {
		TorchDType any `json:"torch_dtype"`
		DType      any `json:"dtype"`
	}
	if err := json.Unmarshal(data, &c); err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	for _, v := range []any{c.DType, c.TorchDType} {
		if s, ok := v.(string); ok {
			switch s {
			case "float16":
				return tensor.F16, nil
			case "bfloat16":
				return tensor.BF16, nil
			}
		}
	}
	return tensor.F32, nil
}
