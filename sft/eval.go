package sft

import (
	"errors"
	"fmt"
	"strings"

	"github.com/shoggo/shoggo/data"
	"github.com/shoggo/shoggo/decode"
	"github.com/shoggo/shoggo/model"
)

// Completer continues prompts greedily until a stop id (not returned) or
// maxNew new ids. ModelCompleter (the batched decoder) implements it; tests
// substitute fakes.
type Completer interface {
	Complete(prompts [][]int32, stops []int32, maxNew int) ([][]int32, error)
}

// EvalBatch is the number of prompts ExactMatch decodes together.
const EvalBatch = 16

// ModelCompleter completes prompts with m through decode.Generate, batch
// prompts at a time (see Complete).
func ModelCompleter(m *model.Transformer, batch int) Completer { return modelCompleter{m, batch} }

type modelCompleter struct {
	m     *model.Transformer
	batch int
}

func (c modelCompleter) Complete(prompts [][]int32, stops []int32, maxNew int) ([][]int32, error) {
	return Complete(c.m, prompts, stops, maxNew, c.batch)
}

// Prediction is the outcome of one exact-match question.
type Prediction struct {
	Want, Got string
	Correct   bool
}

// ExactMatch returns the share of examples whose greedy completion, decoded
// and trimmed of surrounding white space, equals the trimmed reference
// answer. Prompts come from tmpl.Prompt; decoding stops at tmpl.Stops(tok)
// or after maxNew tokens, EvalBatch prompts decoded together. The model
// must hold F32 parameters.
func ExactMatch(m *model.Transformer, tok Tokenizer, tmpl Template, examples []data.Example, maxNew int) (float64, error) {
	acc, _, err := ExactMatchWith(ModelCompleter(m, EvalBatch), tok, tmpl, examples, maxNew)
	return acc, err
}

// ExactMatchWith is ExactMatch completing with c; it also returns every
// prediction, in the order of examples.
func ExactMatchWith(c Completer, tok Tokenizer, tmpl Template, examples []data.Example, maxNew int) (float64, []Prediction, error) {
	prompts, answers, stops, err := prepare(tok, tmpl, examples, maxNew)
	if err != nil {
		return 0, nil, err
	}
	return run(c, tok, examples, prompts, answers, stops, maxNew)
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

func run(c Completer, tok Tokenizer, examples []data.Example, prompts [][]int32, answers []string, stops []int32, maxNew int) (float64, []Prediction, error) {
	outs, err := c.Complete(prompts, stops, maxNew)
	if err != nil {
		return 0, nil, err
	}
	if len(outs) != len(prompts) {
		return 0, nil, fmt.Errorf("sft: %d completions for %d prompts", len(outs), len(prompts))
	}
	preds := make([]Prediction, len(examples))
	right := 0
	for i, got := range outs {
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

// Complete decodes prompts greedily (the first largest logit) with m
// through the batched decoder, batch prompts at a time (<= 0: all), each
// until a stop id (not returned) or maxNew new ids. A prompt that leaves no
// room for maxNew tokens in the model's context keeps only its last
// max_position_embeddings-maxNew ids.
func Complete(m *model.Transformer, prompts [][]int32, stops []int32, maxNew, batch int) ([][]int32, error) {
	ctx := m.Cfg.MaxPositionEmbeddings
	room := ctx - maxNew
	if room < 1 {
		return nil, fmt.Errorf("sft: %d new tokens do not fit a context of %d", maxNew, ctx)
	}
	cut := make([][]int32, len(prompts))
	for i, p := range prompts {
		if len(p) == 0 {
			return nil, fmt.Errorf("sft: prompt %d is empty", i)
		}
		cut[i] = p[max(len(p)-room, 0):]
	}
	res, err := decode.Generate(m, cut, decode.Options{MaxNewTokens: maxNew, EOS: stops, BatchSize: batch})
	if err != nil {
		return nil, err
	}
	out := make([][]int32, len(res))
	for i, r := range res {
		out[i] = r.Tokens
	}
	return out, nil
}
