package sft

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/shoggo/shoggo/data"
	"github.com/shoggo/shoggo/decode"
	"github.com/shoggo/shoggo/model"
	"github.com/shoggo/shoggo/optim"
	"github.com/shoggo/shoggo/sft/tasks"
	"github.com/shoggo/shoggo/tensor"
	"github.com/shoggo/shoggo/train"
)

// oracle is a fake Completer that answers task questions: it finds the
// question in the prompt it is fed and emits the answer's ids, then stop.
// With wrongEvery > 0, every wrongEvery-th question gets "7" appended.
type oracle struct {
	tok        Tokenizer
	tmpl       Template
	stop       int32
	wrongEvery int

	n     int
	queue []int32
	asked int
}

func (o *oracle) Reset()   { o.n, o.queue = 0, nil }
func (o *oracle) Cap() int { return 256 }

func (o *oracle) Feed(ids []int32) ([]float32, error) {
	if o.n == 0 { // the prompt
		text := o.tok.Decode(ids)
		var q string
		if _, ok := o.tmpl.(Alpaca); ok {
			q = between(text, AlpacaInstruction, "\n\n")
		} else {
			q = between(text, IMStart+"user\n", IMEnd)
		}
		a, ok := tasks.Answer(q)
		if !ok {
			a = "?"
		}
		o.asked++
		if o.wrongEvery > 0 && o.asked%o.wrongEvery == 0 {
			a += "7"
		}
		o.queue = append(o.tok.Encode(" "+a+" "), o.stop) // white space around is trimmed
	}
	o.n += len(ids)
	logits := make([]float32, 500)
	logits[o.queue[0]] = 1
	o.queue = o.queue[1:]
	return logits, nil
}

func between(s, a, b string) string {
	_, s, _ = strings.Cut(s, a)
	s, _, _ = strings.Cut(s, b)
	return s
}

func TestExactMatchOracle(t *testing.T) {
	tok := testTokenizer(t)
	_, test, err := tasks.Generate(tasks.Config{Seed: 3, Test: 24})
	if err != nil {
		t.Fatal(err)
	}
	imEnd, _ := tok.TokenToID(IMEnd)
	for _, c := range []struct {
		tmpl  Template
		stop  int32
		wrong int
		want  float64
	}{
		{Alpaca{}, tok.EOS(), 0, 1},
		{ChatML{}, imEnd, 0, 1},
		{ChatML{}, tok.EOS(), 4, 0.75},
	} {
		o := &oracle{tok: tok, tmpl: c.tmpl, stop: c.stop, wrongEvery: c.wrong}
		acc, preds, err := ExactMatchWith(o, tok, c.tmpl, test, 16)
		if err != nil {
			t.Fatal(err)
		}
		if acc != c.want || len(preds) != len(test) {
			t.Fatalf("%s: accuracy %v over %d predictions, want %v (first: %+v)", c.tmpl.Name(), acc, len(preds), c.want, preds[0])
		}
	}
}

// Complete through the batched decoder: rows of different lengths give
// what each gives alone, a stop id ends a row before it, a prompt longer
// than the context keeps its tail, and maxNew must leave room for a prompt.
func TestComplete(t *testing.T) {
	m := tinyModel(t, "tiny-llama", tensor.F32, 50, false, 7)
	prompts := [][]int32{{1, 2, 3}, {4}, {5, 6, 7, 8, 9}}
	all, err := Complete(m, prompts, nil, 6, 2)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range prompts {
		one, err := Complete(m, [][]int32{p}, nil, 6, 1)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(one[0], all[i]) || len(one[0]) != 6 {
			t.Fatalf("prompt %d: alone %v, batched %v (want 6 tokens)", i, one[0], all[i])
		}
	}
	stop := all[2][2]
	got, err := Complete(m, prompts[2:], []int32{stop}, 6, 0)
	if err != nil {
		t.Fatal(err)
	}
	if want := all[2][:slices.Index(all[2], stop)]; !slices.Equal(got[0], want) {
		t.Fatalf("stop %d: got %v, want %v", stop, got[0], want)
	}
	ctx := m.Cfg.MaxPositionEmbeddings
	long := make([]int32, ctx+5)
	for i := range long {
		long[i] = int32(i % 50)
	}
	got, err = Complete(m, [][]int32{long}, nil, 4, 0)
	if err != nil {
		t.Fatal(err)
	}
	tail, _ := Complete(m, [][]int32{long[len(long)-(ctx-4):]}, nil, 4, 0)
	if !slices.Equal(got[0], tail[0]) {
		t.Fatalf("long prompt: %v, its tail alone: %v", got[0], tail[0])
	}
	if _, err := Complete(m, prompts, nil, ctx, 0); err == nil {
		t.Fatal("maxNew = context: no error")
	}
}

// Complete makes the oracle a Completer: it feeds each prompt and follows
// the greedy choice until a stop id or maxNew ids.
func (o *oracle) Complete(prompts [][]int32, stops []int32, maxNew int) ([][]int32, error) {
	out := make([][]int32, len(prompts))
	for i, p := range prompts {
		o.Reset()
		logits, err := o.Feed(p)
		if err != nil {
			return nil, err
		}
		for len(out[i]) < maxNew {
			id := decode.Sample(logits, nil, decode.Sampling{}, nil)
			if slices.Contains(stops, id) {
				break
			}
			out[i] = append(out[i], id)
			if len(out[i]) == maxNew {
				break
			}
			if logits, err = o.Feed([]int32{id}); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// The whole pipeline on a real model: a tiny Llama memorises a few task
// examples through Encode, Dataset and train.Step, and ExactMatch (the
// batched decoder) then answers them all.
func TestExactMatchAfterTraining(t *testing.T) {
	tok := testTokenizer(t)
	exs := []data.Example{
		{Instruction: "What is 17+25?", Output: "42"},
		{Instruction: "Reverse the word: apple", Output: "elppa"},
		{Instruction: "What is 33+41?", Output: "74"},
		{Instruction: "How many letters are in 'banana'?", Output: "6"},
	}
	tmpl := ChatML{}
	enc, _, err := EncodeAll(exs, tok, tmpl, 32)
	if err != nil {
		t.Fatal(err)
	}
	m := tinyModel(t, "tiny-llama", tensor.F32, tok.VocabSize(), true, 1)
	m.InitWeights(rand.New(rand.NewPCG(1, 2)))
	before, err := ExactMatch(m, tok, tmpl, exs, 8)
	if err != nil {
		t.Fatal(err)
	}
	d, err := NewDataset(enc, DatasetConfig{B: 2, T: 32, PadID: tok.EOS(), Pack: true, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	oc := optim.DefaultConfig()
	oc.WeightDecay = 0
	opt, err := optim.NewAdamW(train.Params(m), oc)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Plan(2, 32); err != nil {
		t.Fatal(err)
	}
	var loss float64
	for step := 0; step < 300; step++ {
		b, _ := d.Next()
		r, err := train.Step(m, opt, []*model.Batch{b}, 1e-2, 1)
		if err != nil {
			t.Fatal(err)
		}
		loss = r.Loss
		if math.IsNaN(loss) {
			t.Fatal("NaN loss")
		}
		if step%20 == 19 {
			if acc, _ := ExactMatch(m, tok, tmpl, exs, 8); acc == 1 {
				break
			}
		}
	}
	after, err := ExactMatch(m, tok, tmpl, exs, 8)
	if err != nil {
		t.Fatal(err)
	}
	if after != 1 {
		t.Fatalf("exact match %v before, %v after training (loss %.4f), want 1", before, after, loss)
	}
}
