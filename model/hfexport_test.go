package model

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/shoggo/shoggo/backend/cpu"
	"github.com/shoggo/shoggo/safetensors"
	"github.com/shoggo/shoggo/tensor"
)

// TestExportForTransformers writes shoggo-saved model directories (each
// family; fp32, bf16 sharded, fp16) with the logits shoggo computes, for
// reference/check_shoggo_saves.sh to load with transformers and compare.
// It runs only when SHOGGO_EXPORT_DIR is set.
func TestExportForTransformers(t *testing.T) {
	root := os.Getenv("SHOGGO_EXPORT_DIR")
	if root == "" {
		t.Skip("set SHOGGO_EXPORT_DIR (reference/check_shoggo_saves.sh does)")
	}
	for _, preset := range []string{"tiny-gpt2", "tiny-llama", "tiny-qwen2", "tiny-qwen3"} {
		for _, v := range []struct {
			dt    tensor.DType
			shard int64
		}{{tensor.F32, 0}, {tensor.BF16, 20000}, {tensor.F16, 0}} {
			cfg, _ := LookupPreset(preset)
			m, _ := New(cfg, cpu.New(), tensor.F32, false)
			randomize(m, rand.New(rand.NewPCG(11, 12)), 0.2)
			dir := filepath.Join(root, fmt.Sprintf("%s_%s", preset, v.dt))
			if err := m.SaveHF(dir, SaveOptions{DType: v.dt, MaxShardBytes: v.shard}); err != nil {
				t.Fatal(err)
			}
			// Logits from the saved (rounded) weights, as transformers will see them.
			m2, _, err := LoadHF(dir, cpu.New(), tensor.F32, false)
			if err != nil {
				t.Fatal(err)
			}
			B, T := 2, 7
			ids := make([]int32, B*T)
			rng := rand.New(rand.NewPCG(1, 1))
			for i := range ids {
				ids[i] = int32(rng.IntN(cfg.VocabSize))
			}
			if err := m2.Forward(&Batch{B: B, T: T, IDs: ids}); err != nil {
				t.Fatal(err)
			}
			lg := m2.Logits().Reshape(B, T, cfg.VocabSize)
			lg.Name = "logits"
			idT := tensor.New(tensor.I32, B, T)
			idT.Name = "input_ids"
			for i, id := range ids {
				idT.Bytes[4*i] = byte(id)
				idT.Bytes[4*i+1] = byte(id >> 8)
			}
			if err := safetensors.Write(filepath.Join(dir, "shoggo_logits.safetensors"), []*tensor.Tensor{idT, lg}, nil); err != nil {
				t.Fatal(err)
			}
		}
	}
}
