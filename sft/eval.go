package sft

import (
	"errors"
	"fmt"
	"strings"

	"github.com/shoggo/shoggo/data"
	"github.com/shoggo/shoggo/model"
)

// Decoder runs a model incrementally; *model.Generator implements it.
type Decoder interface {
	// Reset empties the cache.
	Reset()
	// Feed appends ids to the cache and returns the logits after the last.
	Feed(ids []int32) ([]float32, error)
	// Cap is the most tokens the cache holds.
	Cap() int
}

var _ Decoder = (*model.Generator)(nil)

// Prediction is the outcome of one exact-match question.
type Prediction struct {
	Want, Got string
	Correct   bool
}

// ExactMatch returns the share of examples whose greedy completion, decoded
// and trimmed of surrounding white space, equals the trimmed reference
// answer. Prompts come from tmpl.Prompt; decoding stops at tmpl.Stops(tok)
// or after maxNew tokens. The model must hold F32 parameters (as
// model.Generator requires).
func ExactMatch(m *model.Transformer, tok Tokenizer, tmpl Template, examples []data.Example, maxNew int) (float64, error) {
	prompts, answers, stops, err := prepare(tok, tmpl, examples, maxNew)
	if err != nil {
		return 0, err
	}
	// The cache holds the longest prompt and maxNew tokens (model.Generator
	// caps it at max_position_embeddings; Complete then cuts long prompts).
	longest := 0
	for _, p := range prompts {
		longest = max(longest, len(p))
	}
	g, err := m.NewGenerator(longest + maxNew)
	if err != nil {
		return 0, err
	}
	acc, _, err := run(g, tok, examples, prompts, answers, stops, maxNew)
	return acc, err
}

// ExactMatchWith is ExactMatch decoding with d; it also returns every
// prediction, in the order of examples.
func ExactMatchWith(d Decoder, tok Tokenizer, tmpl Template, examples []data.Example, maxNew int) (float64, []Prediction, error) {
	prompts, answers, stops, err := prepare(tok, tmpl, examples, maxNew)
	if err != nil {
		return 0, nil, err
	}
	return run(d, tok, examples, prompts, answers, stops, maxNew)
}

// prepare encodes the prompts and collects the answers of examples.
func prepare(tok Tokenizer, tmpl Template, examples []data.Example, maxNew int) (prompts [][]int32, answers []string, stops []int32, err error) {
	if len(examples) == 0 {
		return nil, nil, nil, errors.New("sft: exact match: no examples")
	}
	if maxNew <= 0 {
		return nil, nil, nil, fmt.Errorf("sft: exact match: max new tokens %d must be positive", maxNew)
	}
	if stops, err = tmpl.Stops(tok); err != nil {
		return nil, nil, nil, err
	}
	prompts, answers = make([][]int32, len(examples)), make([]string, len(examples))
	for i, ex := range examples {
		pieces, want, err := tmpl.Prompt(ex)
		if err != nil {
			return nil, nil, nil, exampleErr(ex, i, err)
		}
		prompts[i], _ = encodePieces(pieces, tok)
		answers[i] = want
	}
	return prompts, answers, stops, nil
}

func run(d Decoder, tok Tokenizer, examples []data.Example, prompts [][]int32, answers []string, stops []int32, maxNew int) (float64, []Prediction, error) {
	preds := make([]Prediction, len(examples))
	right := 0
	for i := range examples {
		got, err := Complete(d, prompts[i], stops, maxNew)
		if err != nil {
			return 0, nil, exampleErr(examples[i], i, err)
		}
		p := Prediction{Want: answers[i], Got: tok.Decode(got)}
		p.Correct = strings.TrimSpace(p.Got) == strings.TrimSpace(p.Want)
		if p.Correct {
			right++
		}
		preds[i] = p
	}
	return float64(right) / float64(len(examples)), preds, nil
}

func exampleErr(ex data.Example, i int, err error) error {
	if ex.Line > 0 {
		return fmt.Errorf("line %d: %w", ex.Line, err)
	}
	return fmt.Errorf("example %d: %w", i, err)
}

// Complete resets d, feeds prompt and decodes greedily (the first largest
// logit) until a stop id (not returned), maxNew new ids or a full cache. A
// prompt that leaves no room for maxNew tokens in the cache keeps only its
// last Cap()-maxNew ids.
func Complete(d Decoder, prompt, stops []int32, maxNew int) ([]int32, error) {
	if len(prompt) == 0 {
		return nil, errors.New("sft: empty prompt")
	}
	if room := d.Cap() - maxNew; len(prompt) > room {
		if room < 1 {
			return nil, fmt.Errorf("sft: %d new tokens do not fit a context of %d", maxNew, d.Cap())
		}
		prompt = prompt[len(prompt)-room:]
	}
	d.Reset()
	logits, err := d.Feed(prompt)
	if err != nil {
		return nil, err
	}
	var out []int32
	for len(out) < maxNew {
		next := argmax(logits)
		for _, s := range stops {
			if next == s {
				return out, nil
			}
		}
		out = append(out, next)
		if len(out) == maxNew {
			break
		}
		if logits, err = d.Feed([]int32{next}); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func argmax(x []float32) int32 {
	best := 0
	for i, v := range x {
		if v > x[best] {
			best = i
		}
	}
	return int32(best)
}
