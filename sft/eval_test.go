package sft

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/shoggo/shoggo/data"
	"github.com/shoggo/shoggo/model"
	"github.com/shoggo/shoggo/optim"
	"github.com/shoggo/shoggo/sft/tasks"
	"github.com/shoggo/shoggo/tensor"
	"github.com/shoggo/shoggo/train"
)

// oracle is a fake Decoder that answers task questions: it finds the
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

func TestComplete(t *testing.T) {
	o := &fixed{out: []int32{5, 6, 7, 8, 9}}
	got, err := Complete(o, []int32{1, 2, 3}, []int32{8}, 10)
	if err != nil || len(got) != 3 {
		t.Fatalf("got %v err %v, want [5 6 7]", got, err)
	}
	got, _ = Complete(o, []int32{1, 2, 3}, []int32{8}, 2)
	if len(got) != 2 {
		t.Fatalf("maxNew 2: got %v", got)
	}
	// A long prompt keeps its tail so that maxNew tokens fit.
	if _, err := Complete(o, make([]int32, 20), nil, 4); err != nil || o.fed != 12 {
		t.Fatalf("fed %d prompt ids (err %v), want 16-4 = 12", o.fed, err)
	}
	if _, err := Complete(o, []int32{1}, nil, 16); err == nil {
		t.Fatal("maxNew = cache size: no error")
	}
}

// fixed emits out in order, with a cache of 16.
type fixed struct {
	out    []int32
	i, fed int
	first  bool
}

func (f *fixed) Reset()   { f.i, f.first = 0, true }
func (f *fixed) Cap() int { return 16 }
func (f *fixed) Feed(ids []int32) ([]float32, error) {
	if f.first {
		f.fed, f.first = len(ids), false
	}
	l := make([]float32, 10)
	l[f.out[f.i]] = 1
	f.i++
	return l, nil
}

// The whole pipeline on a real model: a tiny Llama memorises a few task
// examples through Encode, Dataset and train.Step, and ExactMatch (with
// model.Generator) then answers them all.
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
