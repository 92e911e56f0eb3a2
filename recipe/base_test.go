package recipe

import (
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/shoggo/shoggo/backend/cpu"
)

// LoadBase holds a LoRA base as asked and refuses combinations that make
// no sense.
func TestLoadBase(t *testing.T) {
	for _, tc := range []struct {
		name   string
		c      BaseConfig
		frozen bool
		want   string // layer type of block 0's q projection, or an error substring
	}{
		{"full fp32", BaseConfig{Preset: "tiny-llama"}, false, "*nn.Linear"},
		{"lora fp32", BaseConfig{Preset: "tiny-llama", BaseDType: "fp32"}, true, "*nn.Linear"},
		{"lora bf16", BaseConfig{Preset: "tiny-llama", BaseDType: "bf16"}, true, "*lora.HalfLinear"},
		{"qlora", BaseConfig{Preset: "tiny-llama", QLoRA: true}, true, "*quant.Linear"},
		{"qlora and bf16", BaseConfig{Preset: "tiny-llama", QLoRA: true, BaseDType: "bf16"}, true, "exclusive"},
		{"full bf16", BaseConfig{Preset: "tiny-llama", BaseDType: "bf16"}, false, "need LoRA"},
		{"bad dtype", BaseConfig{Preset: "tiny-llama", BaseDType: "fp8"}, true, "want fp32, bf16 or fp16"},
		{"no preset", BaseConfig{Preset: "nope"}, false, "nope"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := LoadBase(tc.c, tc.frozen, 0, 1, cpu.New(), io.Discard)
			if err != nil {
				if !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("error %v, want one mentioning %q", err, tc.want)
				}
				return
			}
			got := fmt.Sprintf("%T", m.Blocks[0].Q)
			if got != tc.want {
				t.Errorf("q projection is %s, want %s", got, tc.want)
			}
			if tc.frozen == (m.Grads != nil) {
				t.Errorf("frozen %v but gradient arena %v", tc.frozen, m.Grads != nil)
			}
		})
	}
}
