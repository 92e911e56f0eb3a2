package model

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/shoggo/shoggo/backend/cpu"
	"github.com/shoggo/shoggo/safetensors"
	"github.com/shoggo/shoggo/tensor"
)

// qwen3Dir is the tiny random Qwen3 made by reference/make_qwen3_fixture.py.
const qwen3Dir = "../testdata/models/qwen3"

// The Qwen3 fixture loads as what it is: head_dim 32 with 4 heads next to
// hidden 64 (q_proj (128, 64), o_proj (64, 128)), per-head q/k RMSNorms of
// size head_dim, no biases, an untied head.
func TestQwen3FixtureShape(t *testing.T) {
	m, warn, err := LoadHF(qwen3Dir, cpu.New(), tensor.F32, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(warn) != 0 {
		t.Errorf("warnings: %v", warn)
	}
	c := &m.Cfg
	if c.Family() != Qwen3 || c.HeadDim() != 32 || c.HiddenSize != 64 || c.TieWordEmbeddings {
		t.Fatalf("config %+v", c)
	}
	for _, p := range m.Params.Tensors() {
		if strings.HasSuffix(p.Name, ".bias") {
			t.Errorf("unexpected bias %s", p.Name)
		}
	}
	for l, blk := range m.Blocks {
		if blk.QNorm == nil || blk.KNorm == nil || !blk.QNorm.RMS || blk.QNorm.W.Numel() != 32 || blk.KNorm.W.Numel() != 32 {
			t.Fatalf("block %d: q/k norms %+v %+v", l, blk.QNorm, blk.KNorm)
		}
		if blk.QNorm.Eps != 1e-6 || blk.QNorm.DW == nil {
			t.Errorf("block %d: q norm eps %g, gradient %v", l, blk.QNorm.Eps, blk.QNorm.DW != nil)
		}
		if blk.Q.Out() != 128 || blk.Q.In() != 64 || blk.K.Out() != 64 || blk.O.In() != 128 || blk.O.Out() != 64 {
			t.Errorf("block %d: q %dx%d k %dx%d o %dx%d", l, blk.Q.Out(), blk.Q.In(), blk.K.Out(), blk.K.In(), blk.O.Out(), blk.O.In())
		}
	}
	if m.LMHead == m.Embed {
		t.Error("untied head aliases the embedding")
	}
}

// With gradient checkpointing (each block's forward, q/k norms included,
// re-run during backward) the Qwen3 model still matches transformers: loss
// (relative 1e-5) and every gradient, the q/k norm weights' named here
// (max abs diff <= 1e-4 + 1e-3·max|g|, TestHFParity's tolerances).
func TestQwen3ParityCheckpointed(t *testing.T) {
	m, _, err := LoadHF(qwen3Dir, cpu.New(), tensor.F32, true)
	if err != nil {
		t.Fatal(err)
	}
	f, err := safetensors.Open(filepath.Join(qwen3Dir, "fixtures.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ids, shape := ints(t, f, "input_ids")
	B, T := shape[0], shape[1]
	labels, _ := ints(t, f, "labels")
	if err := m.SetCheckpointing(true); err != nil {
		t.Fatal(err)
	}
	b := &Batch{B: B, T: T, IDs: ids, Targets: ShiftLabels(labels, B, T)}
	count := CountTargets([]*Batch{b})
	m.ZeroGrad()
	sum, n, err := m.ForwardBackward(b, 1/float64(count))
	if err != nil {
		t.Fatal(err)
	}
	if want := float64(floats(t, f, "loss")[0]); math.Abs(sum/float64(n)-want) > 1e-5*math.Abs(want) {
		t.Errorf("loss %.7f, transformers %.7f", sum/float64(n), want)
	}
	var norms []string
	for _, p := range m.Params.Tensors() {
		want := floats(t, f, "grad."+p.Name)
		got := m.Grads.Get(p.Name).F32
		var d, mx float64
		for i := range want {
			d = math.Max(d, math.Abs(float64(want[i]-got[i])))
			mx = math.Max(mx, math.Abs(float64(want[i])))
		}
		if d > 1e-4+1e-3*mx || mx == 0 {
			t.Errorf("grad %s: max abs diff %.3g (max |g| %.3g)", p.Name, d, mx)
		}
		if strings.Contains(p.Name, "_norm.") && strings.Contains(p.Name, "self_attn") {
			norms = append(norms, p.Name)
		}
	}
	if len(norms) != 2*m.Cfg.NumHiddenLayers {
		t.Errorf("q/k norm gradients compared: %v", norms)
	}
}

// LoadHF -> SaveHF -> LoadHF: the same tensors under the same names as the
// file transformers wrote, bit for bit, and a config.json transformers reads
// as the same model (model_type, architectures, head_dim, attention_bias).
func TestQwen3SaveRoundTrip(t *testing.T) {
	m, _, err := LoadHF(qwen3Dir, cpu.New(), tensor.F32, false)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := m.SaveHF(dir, SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	m2, warn, err := LoadHF(dir, cpu.New(), tensor.F32, false)
	if err != nil || len(warn) != 0 {
		t.Fatal(err, warn)
	}
	if m2.Cfg.HeadDim() != m.Cfg.HeadDim() || m2.Cfg.Family() != Qwen3 || m2.Cfg.TieWordEmbeddings {
		t.Errorf("reloaded config %+v", m2.Cfg)
	}
	a, b := m.Params.Flat().F32, m2.Params.Flat().F32
	if !slices.Equal(a, b) {
		t.Error("weights changed in the round trip")
	}
	names := func(path string) []string {
		f, err := safetensors.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		n := slices.Clone(f.Names())
		slices.Sort(n)
		return n
	}
	if got, want := names(filepath.Join(dir, "model.safetensors")), names(filepath.Join(qwen3Dir, "model.safetensors")); !slices.Equal(got, want) {
		t.Errorf("saved tensors %v\ntransformers' %v", got, want)
	}
	data, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var js map[string]any
	if err := json.Unmarshal(data, &js); err != nil {
		t.Fatal(err)
	}
	arch, _ := js["architectures"].([]any)
	if js["model_type"] != "qwen3" || len(arch) != 1 || arch[0] != "Qwen3ForCausalLM" || js["head_dim"] != 32.0 || js["attention_bias"] != false {
		t.Errorf("config.json %s", data)
	}
}

// Qwen3 config.json handling: head_dim defaults to Qwen3Config's 128 when
// absent; attention_bias puts biases on q, k, v and o; the q/k norms have
// head_dim weights; sliding windows are refused; an explicit head_dim is
// refused for GPT-2, whose table entry does not allow it.
func TestQwen3Config(t *testing.T) {
	base := `"model_type":"qwen3","vocab_size":10,"hidden_size":64,"intermediate_size":96,"num_hidden_layers":1,"num_attention_heads":4,"num_key_value_heads":2,"max_position_embeddings":16`
	c, err := ParseConfig([]byte(`{` + base + `}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.HeadDim() != 128 || c.QKVBias() || c.OBias() || c.TieWordEmbeddings || c.RopeTheta != 10000 {
		t.Errorf("defaults: head dim %d, biases %v %v, tied %v, theta %g", c.HeadDim(), c.QKVBias(), c.OBias(), c.TieWordEmbeddings, c.RopeTheta)
	}
	specs := map[string]tensor.Shape{}
	for _, s := range ParamSpecs(c) {
		specs[s.Name] = s.Shape
	}
	for name, want := range map[string]tensor.Shape{
		"model.layers.0.self_attn.q_proj.weight": {512, 64},
		"model.layers.0.self_attn.k_proj.weight": {256, 64},
		"model.layers.0.self_attn.o_proj.weight": {64, 512},
		"model.layers.0.self_attn.q_norm.weight": {128},
		"model.layers.0.self_attn.k_norm.weight": {128},
		"lm_head.weight":                         {10, 64},
	} {
		if !specs[name].Equal(want) {
			t.Errorf("%s: shape %v, want %v", name, specs[name], want)
		}
	}
	c, err = ParseConfig([]byte(`{` + base + `,"head_dim":16,"attention_bias":true,"tie_word_embeddings":true}`))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, s := range ParamSpecs(c) {
		if strings.HasSuffix(s.Name, ".bias") {
			n++
		}
		if s.Name == "lm_head.weight" {
			t.Error("tied head listed")
		}
	}
	if c.HeadDim() != 16 || n != 4 {
		t.Errorf("head dim %d, %d biases (want 16, 4)", c.HeadDim(), n)
	}
	for _, js := range []string{
		`{` + base + `,"use_sliding_window":true}`,
		`{` + base + `,"head_dim":15}`,
		`{"model_type":"gpt2","vocab_size":10,"n_embd":32,"n_layer":1,"n_head":4,"n_positions":16,"head_dim":16}`,
	} {
		if _, err := ParseConfig([]byte(js)); err == nil {
			t.Errorf("no error for %s", js)
		}
	}
}
