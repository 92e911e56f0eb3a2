package recipe

import (
	"fmt"
	"math"
	"os"
	"path/filepath"

	"github.com/shoggo/shoggo/safetensors"
	"github.com/shoggo/shoggo/tensor"
)

// CheckFiniteDir reads every floating-point tensor of the checkpoint in dir
// named prefix (prefix.safetensors or its sharded index: "model",
// "adapter_model") and returns an error naming the file, the tensor and
// the first element that is NaN or infinite. Quantized tensors (integer
// storage) are skipped.
func CheckFiniteDir(dir, prefix string) error {
	st, err := safetensors.OpenShardedPrefix(dir, prefix)
	if err != nil {
		return err
	}
	defer st.Close()
	for _, name := range st.Names() {
		info, ok := st.Info(name)
		if !ok || (info.DType != tensor.F32 && info.DType != tensor.BF16 && info.DType != tensor.F16) {
			continue
		}
		v, err := st.TensorF32(name)
		if err != nil {
			return err
		}
		for i, x := range v {
			if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
				return fmt.Errorf("%s: tensor %s element %d is %v (the weights are corrupt or the run that wrote them diverged)", filepath.Join(dir, prefix+".safetensors"), name, i, x)
			}
		}
	}
	return nil
}

// CheckFiniteModel checks an HF model directory, and its adapter if dir
// holds one (adapter_model.safetensors), with CheckFiniteDir.
func CheckFiniteModel(dir string) error {
	if _, err := os.Stat(filepath.Join(dir, "adapter_model.safetensors")); err == nil {
		return CheckFiniteDir(dir, "adapter_model")
	}
	return CheckFiniteDir(dir, "model")
}
