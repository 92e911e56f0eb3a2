package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/shoggo/shoggo/model"
)

// grad is one trainable tensor's gradient.
type grad struct {
	name  string
	elems int
	// stage is when the gradient becomes final in backward, as the trainer's
	// backward hook (train/ddp.go) reports it: 0 = the head (final norm and an
	// untied LM head, right after the loss), 1..L = blocks L-1 .. 0, L+1 = the
	// embeddings (final only at the end: launched by WaitAll).
	stage int
}

// workload is the gradient list of one training setup (in the order the
// trainer hands it to the Bucketer: forward order, so the plan runs backwards
// through it) plus the backward compute split over the stages.
type workload struct {
	name   string
	grads  []grad
	layers int
	// weight[s] is stage s's share of the backward compute, proportional to
	// the weight elements of the matmuls it differentiates: the LM head (V·C,
	// also when tied) in stage 0, each block's linears, nothing for the
	// embedding lookup. Attention's T² terms and norms are ignored.
	weight []float64
}

func (w *workload) params() int64 {
	var n int64
	for _, g := range w.grads {
		n += int64(g.elems)
	}
	return n
}

func (w *workload) bytes() int64 { return 4 * w.params() }

func (w *workload) sizes() []int {
	s := make([]int, len(w.grads))
	for i, g := range w.grads {
		s[i] = g.elems
	}
	return s
}

// stageEnds returns when each stage's gradients are final, as fractions of
// the backward time.
func (w *workload) stageEnds() []float64 {
	var tot float64
	for _, x := range w.weight {
		tot += x
	}
	ends := make([]float64, len(w.weight))
	var c float64
	for s, x := range w.weight {
		c += x
		ends[s] = c / tot
	}
	ends[len(ends)-1] = 1 // the embeddings: WaitAll, at the end of backward
	return ends
}

func preset(name string) *model.Config {
	p, ok := model.Presets[name]
	if !ok {
		panic("no preset " + name)
	}
	c := p.Config
	return &c
}

// layerOf returns the block index in a name such as "model.layers.3.mlp"
// under the family's layer prefix, or -1.
func layerOf(c *model.Config, name string) int {
	pre := c.Spec().Names.Layers + "."
	if !strings.HasPrefix(name, pre) {
		return -1
	}
	rest := name[len(pre):]
	i := strings.IndexByte(rest, '.')
	if i < 0 {
		return -1
	}
	l, err := strconv.Atoi(rest[:i])
	if err != nil {
		return -1
	}
	return l
}

// blockWeights is each stage's matmul weight count for the backward split.
func blockWeights(c *model.Config) []float64 {
	L := c.NumHiddenLayers
	w := make([]float64, L+2)
	w[0] = float64(c.VocabSize) * float64(c.HiddenSize) // LM head (tied or not)
	for _, s := range model.ParamSpecs(c) {
		if len(s.Shape) != 2 {
			continue
		}
		if l := layerOf(c, s.Name); l >= 0 {
			w[L-l] += float64(s.Shape.Numel())
		}
	}
	return w
}

// fullWorkload is full fine-tuning / pretraining: every parameter trains.
func fullWorkload(presetName string) *workload {
	c := preset(presetName)
	L := c.NumHiddenLayers
	n := &c.Spec().Names
	w := &workload{name: presetName + " full", layers: L, weight: blockWeights(c)}
	for _, s := range model.ParamSpecs(c) {
		g := grad{name: s.Name, elems: s.Shape.Numel()}
		switch {
		case s.Name == n.Embed+".weight" || (n.Pos != "" && s.Name == n.Pos+".weight"):
			g.stage = L + 1
		case layerOf(c, s.Name) >= 0:
			g.stage = L - layerOf(c, s.Name)
		default: // final norm, untied LM head
			g.stage = 0
		}
		w.grads = append(w.grads, g)
	}
	return w
}

// loraWorkload is LoRA rank r on the attention's query and value
// projections: q_proj and v_proj (Llama/Qwen names); for GPT-2, whose q, k, v
// are one fused c_attn, PEFT's usual target is c_attn (A r×C, B 3C×r), which
// has exactly as many parameters as separate q and v adapters (4·r·C).
func loraWorkload(presetName string, r int) *workload {
	c := preset(presetName)
	L := c.NumHiddenLayers
	n := &c.Spec().Names
	C := c.HiddenSize
	hs := c.HeadDim()
	Q, KV := c.NumAttentionHeads*hs, c.NumKeyValueHeads*hs
	w := &workload{name: fmt.Sprintf("%s LoRA r=%d", presetName, r), layers: L, weight: blockWeights(c)}
	for l := range L {
		p := c.Spec().LayerPrefix(l)
		add := func(mod string, out int) {
			w.grads = append(w.grads,
				grad{name: p + mod + ".lora_A.weight", elems: r * C, stage: L - l},
				grad{name: p + mod + ".lora_B.weight", elems: out * r, stage: L - l})
		}
		if n.QKV != "" {
			add(n.QKV, Q+2*KV)
		} else {
			add(n.Q, Q)
			add(n.V, KV)
		}
	}
	return w
}
