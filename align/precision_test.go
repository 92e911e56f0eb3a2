package align

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/shoggo/shoggo/model"
	"github.com/shoggo/shoggo/tensor"
)

// The heads that read the final hidden states on the host (the reward
// head, PPO's value head) work whatever the dtype of Hidden() is: under
// bf16/fp16 mixed precision the saved hidden states are 16-bit. Scores,
// values, the PPO loss and the heads' gradients stay close to fp32's
// (bf16 keeps 8 bits of mantissa: 5% of the largest value).
func TestHeadsUnderMixedPrecision(t *testing.T) {
	rows := [][]int32{{5, 9, 14, 3, 7, 2}, {8, 8, 1, 6}, {4, 11, 12, 13, 10, 9, 15}, {3, 1}}
	b := rowsBatch(rows, []int{2, 1, 3, 1}, 8, 0)
	type out struct {
		scores, values []float64
		loss           float64
		dw, dv         []float32
	}
	run := func(dt tensor.DType) out {
		m := tinyModel(t, "llama", tensor.F32, 3)
		if err := m.SetPrecision(dt); err != nil {
			t.Fatal(err)
		}
		rh := NewRewardHead(m.Cfg.HiddenSize, 0, 0.5, rand.New(rand.NewPCG(1, 2)))
		scores, err := rh.Score(m, b)
		if err != nil {
			t.Fatal(err)
		}
		m.ZeroGrad()
		rh.Backward(m, b, []float64{1, -1, 0.5, 0})
		m.Backward(b)
		vh := NewValueHead(m.Cfg.HiddenSize)
		for i := range vh.W.F32 {
			vh.W.F32[i] = float32(math.Sin(float64(i)))
		}
		n := b.B * b.T
		mask, old, vOld, adv, ret := make([]float64, n), make([]float64, n), make([]float64, n), make([]float64, n), make([]float64, n)
		for i := range mask {
			if b.Targets[i] >= 0 {
				mask[i], old[i], adv[i], ret[i] = 1, -3, math.Cos(float64(i)), 0.5
			}
		}
		o := &PPO{Cfg: PPOConfig{ClipRange: 0.2, ClipRangeValue: 0.2, VFCoef: 0.1}, Head: vh, ValueTrunkGrad: true,
			Data: map[*model.Batch]*PPOBatch{b: {Mask: mask, Old: old, VOld: vOld, Adv: adv, Ret: ret}}}
		m.ZeroGrad()
		loss, err := o.ForwardBackward(m, b, 1)
		if err != nil {
			t.Fatalf("%v: %v", dt, err)
		}
		hid, err := HiddenF32(m)
		if err != nil {
			t.Fatal(err)
		}
		return out{scores, vh.Forward(hid, n), loss, append([]float32(nil), rh.G.F32...), append([]float32(nil), vh.DW.F32...)}
	}
	ref := run(tensor.F32)
	for _, dt := range []tensor.DType{tensor.BF16, tensor.F16} {
		got := run(dt)
		close64 := func(what string, a, b []float64) {
			scale := 1e-6
			for _, v := range b {
				scale = max(scale, math.Abs(v))
			}
			for i := range a {
				if math.IsNaN(a[i]) || math.Abs(a[i]-b[i]) > 0.05*scale {
					t.Errorf("%v %s[%d] = %v, fp32 %v", dt, what, i, a[i], b[i])
					return
				}
			}
		}
		widen := func(x []float32) []float64 {
			out := make([]float64, len(x))
			for i, v := range x {
				out[i] = float64(v)
			}
			return out
		}
		close64("reward scores", got.scores, ref.scores)
		close64("values", got.values, ref.values)
		close64("PPO loss", []float64{got.loss}, []float64{ref.loss})
		close64("reward head gradient", widen(got.dw), widen(ref.dw))
		close64("value head gradient", widen(got.dv), widen(ref.dv))
	}
}
