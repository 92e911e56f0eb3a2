package align

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/shoggo/shoggo/internal/gradcheck"
	"github.com/shoggo/shoggo/model"
	"github.com/shoggo/shoggo/tensor"
)

// pairRows is two ragged pairs (chosen, rejected) padded with pad = 0,
// with the completion starting at position 3.
func pairRows() ([][]int32, []int) {
	return [][]int32{{5, 6, 7, 8, 9, 10}, {5, 6, 7, 11}, {12, 13, 14, 15, 16}, {12, 13, 14, 17, 18, 19, 20}}, []int{3, 3, 3, 3}
}

// TestDPOLossGrad checks each loss's gradient with respect to the policy
// log-probs against central differences.
func TestDPOLossGrad(t *testing.T) {
	for _, l := range []DPOLoss{{Sigmoid, 0.1, 0}, {Sigmoid, 0.5, 0.2}, {IPO, 0.1, 0}, {Hinge, 0.7, 0}, {Robust, 0.3, 0.1}} {
		for _, p := range []PairTerms{{-3, -5, -4, -4, 3, 5}, {-9, -2, -7, -3, 1, 4}, {-1, -1.5, -1.2, -1.3, 2, 2}} {
			x := []float64{p.Chosen, p.Rejected}
			_, dc, dr := l.Pair(p)
			err := gradcheck.Check(fmt.Sprintf("%+v", l), x, []float64{dc, dr}, nil, 1e-6, 1e-8, 1e-6, func() float64 {
				q := p
				q.Chosen, q.Rejected = x[0], x[1]
				loss, _, _ := l.Pair(q)
				return loss
			})
			if err != nil {
				t.Error(err)
			}
		}
	}
}

func TestDPOLossValues(t *testing.T) {
	p := PairTerms{Chosen: -3, Rejected: -5, RefChosen: -4, RefRejected: -4, NChosen: 2, NRejected: 4}
	z := 0.1 * (1 - -1) // β(Δc-Δr)
	cases := []struct {
		l    DPOLoss
		want float64
	}{
		{DPOLoss{Sigmoid, 0.1, 0}, math.Log1p(math.Exp(-z))},
		{DPOLoss{Sigmoid, 0.1, 0.25}, 0.75*math.Log1p(math.Exp(-z)) + 0.25*math.Log1p(math.Exp(z))},
		{DPOLoss{Hinge, 0.1, 0}, 1 - z},
		{DPOLoss{IPO, 0.1, 0}, math.Pow(1.0/2-(-1.0)/4-5, 2)},
	}
	for _, c := range cases {
		if got, _, _ := c.l.Pair(p); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("%+v: loss %v, want %v", c.l, got, c.want)
		}
	}
	for _, bad := range []DPOLoss{{"kto", 0.1, 0}, {Sigmoid, 0, 0}, {Sigmoid, 0.1, 0.5}, {IPO, 0.1, 0.1}} {
		if bad.Validate() == nil {
			t.Errorf("%+v: no error", bad)
		}
	}
}

// TestRewardGrad checks the head + Bradley–Terry loss gradient through the
// whole model (float64) against central differences: the head's weights
// and a sample of the model's parameters.
func TestRewardGrad(t *testing.T) {
	for _, fam := range []string{"llama", "gpt2"} {
		t.Run(fam, func(t *testing.T) {
			m := tinyModel(t, fam, tensor.F64, 7)
			h := NewRewardHead(m.Cfg.HiddenSize, 0, 0.5, rand.New(rand.NewPCG(1, 2)))
			h.W, h.G = toF64(h.W), tensor.New(tensor.F64, 1, m.Cfg.HiddenSize)
			rows, start := pairRows()
			b := rowsBatch(rows, start, 8, 0)
			obj := &RewardObjective{Head: h, Margin: 0.3, CenterCoef: 0.01}
			loss := func() float64 {
				r, err := h.Score(m, b)
				if err != nil {
					t.Fatal(err)
				}
				var s float64
				for i := 0; i < 2; i++ {
					l, _, _ := BTLoss(r[2*i], r[2*i+1], 0.3)
					s += l + 0.01*(r[2*i]+r[2*i+1])*(r[2*i]+r[2*i+1])
				}
				return s / 2
			}
			m.ZeroGrad()
			if _, err := obj.ForwardBackward(m, b, 0.5); err != nil {
				t.Fatal(err)
			}
			if err := gradcheck.Check("score.weight", h.W.F64, h.G.F64, nil, 1e-5, 1e-8, 1e-5, loss); err != nil {
				t.Error(err)
			}
			for _, name := range []string{m.Params.Tensors()[0].Name, m.Params.Tensors()[3].Name, m.Params.Tensors()[len(m.Params.Tensors())-2].Name} {
				w, g := m.Params.Get(name), m.Grads.Get(name)
				if err := gradcheck.Check(name, w.F64, g.F64, gradcheck.Sample(len(w.F64), 12), 1e-5, 1e-8, 1e-4, loss); err != nil {
					t.Error(err)
				}
			}
		})
	}
}

// TestDPOObjectiveGrad checks the DPO objective's gradient through the
// model (float64) for each loss type, with reference log-probs cached from
// other weights.
func TestDPOObjectiveGrad(t *testing.T) {
	rows, start := pairRows()
	for _, l := range []DPOLoss{{Sigmoid, 0.5, 0.1}, {IPO, 0.5, 0}, {Hinge, 0.5, 0}, {Robust, 0.5, 0.2}} {
		ref := tinyModel(t, "llama", tensor.F64, 3)
		m := tinyModel(t, "llama", tensor.F64, 4)
		b := rowsBatch(rows, start, 8, 0)
		obj := &DPOObjective{Loss: l, Ref: RefCache{}}
		if err := obj.Ref.Fill(ref, []*model.Batch{b}); err != nil {
			t.Fatal(err)
		}
		loss := func() float64 {
			lp, err := SeqLogProbs(m, b)
			if err != nil {
				t.Fatal(err)
			}
			var s float64
			for i := 0; i < 2; i++ {
				p, _ := obj.Terms(b, lp, i)
				v, _, _ := l.Pair(p)
				s += v
			}
			return s / 2
		}
		m.ZeroGrad()
		if _, err := obj.ForwardBackward(m, b, 0.5); err != nil {
			t.Fatal(err)
		}
		for _, w := range m.Params.Tensors()[:4] {
			g := m.Grads.Get(w.Name)
			if err := gradcheck.Check(l.Type+" "+w.Name, w.F64, g.F64, gradcheck.Sample(len(w.F64), 10), 1e-5, 1e-8, 1e-4, loss); err != nil {
				t.Error(err)
			}
		}
	}
}

func toF64(t *tensor.Tensor) *tensor.Tensor {
	out := tensor.New(tensor.F64, t.Shape...)
	for i := range out.F64 {
		out.F64[i] = t.At(i)
	}
	out.Name = t.Name
	return out
}
