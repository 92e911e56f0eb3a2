package decode

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/shoggo/shoggo/backend/cpu"
	"github.com/shoggo/shoggo/lora"
	"github.com/shoggo/shoggo/model"
	"github.com/shoggo/shoggo/nn"
	"github.com/shoggo/shoggo/quant"
	"github.com/shoggo/shoggo/tensor"
)

// testModel returns a small random model: a plain preset (GPT-2 or
// Llama-style), or tiny-llama with NF4 block linears, with bf16 block
// linears and embedding/LM-head tables, or with LoRA adapters (non-zero B,
// evaluation mode) on every linear.
func testModel(t testing.TB, kind string) *model.Transformer {
	t.Helper()
	preset, variant, _ := strings.Cut(kind, "+")
	cfg, err := model.LookupPreset(preset)
	if err != nil {
		t.Fatal(err)
	}
	be := cpu.New()
	var opts model.FrozenOptions
	switch variant {
	case "nf4":
		opts.Factory = model.QuantizingFactory(quant.NF4, quant.Options{BlockSize: 32})
	case "bf16":
		opts.HalfEmbeddings = true
		opts.Factory = func(name string, w, b *tensor.Tensor) (nn.Layer, error) {
			if b != nil {
				b = be.Adopt(b.Clone()) // the factory's tensors are temporary host tensors
			}
			return lora.NewHalfLinear(be, name, w, b, tensor.BF16)
		}
	}
	m, err := model.NewFrozenOpts(cfg, be, tensor.F32, false, opts)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(11, uint64(len(kind))))
	m.InitWeights(rng)
	for _, p := range m.Params.Tensors() { // larger weights: decisive logits
		for i := range p.F32 {
			if len(p.Shape) == 1 {
				p.F32[i] = 1 + 0.1*float32(rng.NormFloat64())
			} else {
				p.F32[i] = 0.3 * float32(rng.NormFloat64())
			}
		}
	}
	if variant == "lora" {
		ad, err := lora.Apply(m, lora.Config{R: 4, Alpha: 8, Targets: []string{"all-linear"}, Seed: 3})
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range ad.WeightArena.Tensors() {
			for i := range w.F32 {
				w.F32[i] = 0.2 * float32(rng.NormFloat64())
			}
		}
		ad.SetTraining(false)
	}
	return m
}

var kinds = []string{"tiny-gpt2", "tiny-llama", "tiny-qwen2", "tiny-qwen3", "tiny-llama+nf4", "tiny-qwen2+bf16", "tiny-llama+lora"}

func testPrompts(V int) [][]int32 {
	rng := rand.New(rand.NewPCG(5, 5))
	var ps [][]int32
	for _, n := range []int{5, 1, 13, 8, 2} {
		p := make([]int32, n)
		for i := range p {
			p[i] = int32(rng.IntN(V))
		}
		ps = append(ps, p)
	}
	return ps
}

// Batched greedy decoding (rows of different lengths left padded, all at
// once or two slots refilled as rows finish) gives, token for token, what
// each prompt gives decoded alone.
func TestBatchedGreedyEqualsUnbatched(t *testing.T) {
	for _, kind := range kinds {
		m := testModel(t, kind)
		prompts := testPrompts(m.Cfg.VocabSize)
		opt := Options{MaxNewTokens: 12}
		var alone [][]int32
		for _, p := range prompts {
			r, err := Generate(m, [][]int32{p}, opt)
			if err != nil {
				t.Fatal(err)
			}
			if len(r[0].Tokens) != 12 || r[0].Finish != Length {
				t.Fatalf("%s: %d tokens, finish %q", kind, len(r[0].Tokens), r[0].Finish)
			}
			alone = append(alone, r[0].Tokens)
		}
		distinct := map[string]bool{}
		for _, bs := range []int{0, 2} {
			o := opt
			o.BatchSize = bs
			res, err := Generate(m, prompts, o)
			if err != nil {
				t.Fatal(err)
			}
			for i, r := range res {
				if !slices.Equal(r.Tokens, alone[i]) {
					t.Fatalf("%s batch %d: prompt %d: batched %v, alone %v", kind, bs, i, r.Tokens, alone[i])
				}
				distinct[fmt.Sprint(r.Tokens)] = true
			}
		}
		if len(distinct) < 2 {
			t.Fatalf("%s: every prompt gave the same tokens %v: test too weak", kind, alone[0])
		}
	}
}

// The decoder's logits (after the prompt, then after each step) equal the
// last-position logits of a full forward pass over the same tokens
// (tolerance 1e-4 absolute on logits of magnitude ~10).
func TestDecoderLogitsMatchForward(t *testing.T) {
	for _, kind := range kinds {
		m := testModel(t, kind)
		prompts := testPrompts(m.Cfg.VocabSize)[:3]
		V := m.Cfg.VocabSize
		full := func(seq []int32) []float32 {
			if err := m.Plan(1, len(seq)); err != nil {
				t.Fatal(err)
			}
			if err := m.Forward(&model.Batch{B: 1, T: len(seq), IDs: seq}); err != nil {
				t.Fatal(err)
			}
			return m.Logits().F32[(len(seq)-1)*V:]
		}
		d, err := New(m, 4, 0, nil)
		if err != nil {
			t.Fatal(err)
		}
		var reqs []Request
		for _, p := range prompts {
			reqs = append(reqs, Request{Prompt: p, MaxNewTokens: 5})
		}
		slots, err := d.Add(reqs...)
		if err != nil {
			t.Fatal(err)
		}
		compare := func(what string, got, want []float32) {
			for j := range want {
				if math.Abs(float64(got[j]-want[j])) > 1e-4 {
					t.Fatalf("%s %s: logit %d: decoder %v, full forward %v", kind, what, j, got[j], want[j])
				}
			}
		}
		for i, s := range slots {
			compare(fmt.Sprintf("prompt %d", i), d.seqs[s].pending, full(prompts[i]))
		}
		for step := 0; step < 4; step++ {
			if _, err := d.Step(); err != nil {
				t.Fatal(err)
			}
			if step == 0 {
				continue // sampled from the prompt logits, no forward
			}
			for b, s := range d.rows {
				seq := append(slices.Clone(prompts[slots[slices.Index(slots, int(s))]]), d.seqs[s].out[:len(d.seqs[s].out)-1]...)
				compare(fmt.Sprintf("step %d row %d", step, b), d.logits.F32[b*V:(b+1)*V], full(seq))
			}
		}
	}
}

// Per-row seeds: sampled tokens depend on the row's prompt and seed only,
// not on the batch (other rows, order, batch size); other seeds differ.
func TestSeedsReproducible(t *testing.T) {
	m := testModel(t, "tiny-llama")
	prompts := testPrompts(m.Cfg.VocabSize)
	opt := Options{MaxNewTokens: 10, Sampling: Sampling{Temperature: 1.5, TopK: 30, TopP: 0.95, RepetitionPenalty: 1.2},
		Seeds: []uint64{7, 8, 9, 10, 11}}
	all, err := Generate(m, prompts, opt)
	if err != nil {
		t.Fatal(err)
	}
	rev := slices.Clone(prompts)
	slices.Reverse(rev)
	ro := opt
	ro.Seeds = slices.Clone(opt.Seeds)
	slices.Reverse(ro.Seeds)
	ro.BatchSize = 3
	back, err := Generate(m, rev, ro)
	if err != nil {
		t.Fatal(err)
	}
	for i := range prompts {
		one, err := Generate(m, prompts[i:i+1], Options{MaxNewTokens: 10, Sampling: opt.Sampling, Seeds: opt.Seeds[i : i+1]})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(one[0].Tokens, all[i].Tokens) || !slices.Equal(back[len(prompts)-1-i].Tokens, all[i].Tokens) {
			t.Fatalf("prompt %d: batch %v, alone %v, reversed batch %v", i, all[i].Tokens, one[0].Tokens, back[len(prompts)-1-i].Tokens)
		}
	}
	o2 := opt
	o2.Seeds = []uint64{1, 2, 3, 4, 5}
	other, _ := Generate(m, prompts, o2)
	same := 0
	for i := range prompts {
		if slices.Equal(other[i].Tokens, all[i].Tokens) {
			same++
		}
	}
	if same == len(prompts) {
		t.Fatal("other seeds gave the same samples")
	}
}

// detok spells token id i as a letter.
func detok(ids []int32) string {
	var b strings.Builder
	for _, id := range ids {
		b.WriteByte(byte('a' + id%26))
	}
	return b.String()
}

// EOS ids end a row before them, stop strings after the token completing
// them (Text cut before the string), MaxNewTokens with Length, a full
// cache with Context; other rows of the batch are unaffected.
func TestStops(t *testing.T) {
	m := testModel(t, "tiny-gpt2")
	prompts := testPrompts(m.Cfg.VocabSize)[:2]
	base, err := Generate(m, prompts, Options{MaxNewTokens: 10, Detokenize: detok})
	if err != nil {
		t.Fatal(err)
	}
	ref := base[0].Tokens
	text := detok(ref)
	if base[0].Text != text || base[0].Finish != Length {
		t.Fatalf("text %q finish %q, want %q length", base[0].Text, base[0].Finish, text)
	}
	eos := ref[4]
	k := slices.Index(ref, eos)
	r, err := Generate(m, prompts, Options{MaxNewTokens: 10, EOS: []int32{eos}, Detokenize: detok})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(r[0].Tokens, ref[:k]) || r[0].Finish != EOS {
		t.Fatalf("eos %d: %v (%q), want %v", eos, r[0].Tokens, r[0].Finish, ref[:k])
	}
	stop := text[5:7]
	cut := strings.Index(text, stop)
	r, err = Generate(m, prompts, Options{MaxNewTokens: 10, Stops: []string{"zzzzzz", stop}, Detokenize: detok})
	if err != nil {
		t.Fatal(err)
	}
	if r[0].Finish != Stop || r[0].Text != text[:cut] || !slices.Equal(r[0].Tokens, ref[:cut+len(stop)]) {
		t.Fatalf("stop %q: tokens %v text %q finish %q; want %v %q", stop, r[0].Tokens, r[0].Text, r[0].Finish, ref[:cut+len(stop)], text[:cut])
	}
	for _, rr := range [][]Result{r} {
		if other := rr[1]; !strings.Contains(base[1].Text, stop) && !slices.Equal(other.Tokens, base[1].Tokens) {
			t.Fatalf("row 1 changed: %v, alone %v", other.Tokens, base[1].Tokens)
		}
	}
	// Context: a cache of len(prompt)+3 positions ends after 4 tokens (the
	// last sampled token is never fed).
	r, err = Generate(m, prompts[:1], Options{MaxNewTokens: 10, MaxT: len(prompts[0]) + 3})
	if err != nil {
		t.Fatal(err)
	}
	if r[0].Finish != Context || !slices.Equal(r[0].Tokens, ref[:4]) {
		t.Fatalf("context: %v (%q), want %v", r[0].Tokens, r[0].Finish, ref[:4])
	}
	if _, err := Generate(m, prompts, Options{MaxNewTokens: 3, Stops: []string{"x"}}); err == nil {
		t.Fatal("stop strings without Detokenize: no error")
	}
	if _, err := Generate(m, [][]int32{{}}, Options{MaxNewTokens: 3}); err == nil {
		t.Fatal("empty prompt: no error")
	}
}

// The step API: a sequence added while others decode, and a slot freed and
// reused, give the same tokens as decoding each alone.
func TestStepAPI(t *testing.T) {
	m := testModel(t, "tiny-llama")
	prompts := testPrompts(m.Cfg.VocabSize)
	alone := make([][]int32, len(prompts))
	for i, p := range prompts {
		r, _ := Generate(m, [][]int32{p}, Options{MaxNewTokens: 6})
		alone[i] = r[0].Tokens
	}
	d, err := New(m, 2, 32, nil)
	if err != nil {
		t.Fatal(err)
	}
	s0, err := d.Add(Request{Prompt: prompts[0], MaxNewTokens: 6})
	if err != nil {
		t.Fatal(err)
	}
	d.Step()
	d.Step()
	s1, _ := d.Add(Request{Prompt: prompts[1], MaxNewTokens: 6})
	if _, err := d.Add(Request{Prompt: prompts[2], MaxNewTokens: 6}); err == nil {
		t.Fatal("third request in two slots: no error")
	}
	reused := false
	for len(d.Active()) > 0 {
		toks, err := d.Step()
		if err != nil {
			t.Fatal(err)
		}
		for _, tk := range toks {
			if tk.Finish != Running && tk.Slot == s0[0] && !reused {
				reused = true
				if got := d.Remove(tk.Slot); !slices.Equal(got.Tokens, alone[0]) {
					t.Fatalf("slot %d: %v, alone %v", tk.Slot, got.Tokens, alone[0])
				}
				if _, err := d.Add(Request{Prompt: prompts[2], MaxNewTokens: 6}); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	if got := d.Result(s1[0]); !slices.Equal(got.Tokens, alone[1]) {
		t.Fatalf("second: %v, alone %v", got.Tokens, alone[1])
	}
	if got := d.Result(s0[0]); !reused || !slices.Equal(got.Tokens, alone[2]) {
		t.Fatalf("reused slot: %v, alone %v", got.Tokens, alone[2])
	}
}
