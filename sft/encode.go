package sft

import (
	"errors"
	"fmt"

	"github.com/shoggo/shoggo/backend"
	"github.com/shoggo/shoggo/data"
)

// IgnoreIndex marks a label or target that contributes nothing to the loss.
const IgnoreIndex = backend.IgnoreIndex

// ErrNoTargets: an example has no trained label after truncation.
var ErrNoTargets = errors.New("sft: example has no completion token to train on")

// Encoded is a tokenized example: IDs and Labels of the same length, Labels
// equal to IDs on completion tokens and IgnoreIndex elsewhere.
type Encoded struct {
	IDs, Labels []int32
}

// Truncation says what Encode cut from an example.
type Truncation struct {
	Prompt     int // prompt tokens cut from the left
	Completion int // tokens cut from the right (completion and later turns)
}

// Encode tokenizes ex with tmpl and returns its ids and labels (see the
// package documentation for the rendering, masking and truncation rules).
// maxLen must be at least 2. An example with nothing to train on after
// truncation is ErrNoTargets.
func Encode(ex data.Example, tok Tokenizer, tmpl Template, maxLen int) (ids, labels []int32, err error) {
	ids, labels, _, err = EncodeTrunc(ex, tok, tmpl, maxLen)
	return ids, labels, err
}

// EncodeTrunc is Encode that also reports what truncation cut.
func EncodeTrunc(ex data.Example, tok Tokenizer, tmpl Template, maxLen int) (ids, labels []int32, cut Truncation, err error) {
	if maxLen < 2 {
		return nil, nil, cut, fmt.Errorf("sft: max length %d, need at least 2", maxLen)
	}
	if _, err := tmpl.Stops(tok); err != nil {
		return nil, nil, cut, err
	}
	return encode(ex, tok, tmpl, maxLen)
}

func encode(ex data.Example, tok Tokenizer, tmpl Template, maxLen int) (ids, labels []int32, cut Truncation, err error) {
	pieces, err := tmpl.Render(ex)
	if err != nil {
		return nil, nil, cut, err
	}
	var trained []bool
	ids, trained = encodePieces(pieces, tok)
	ids, trained, cut, err = truncate(ids, trained, maxLen)
	if err != nil {
		return nil, nil, cut, err
	}
	labels = make([]int32, len(ids))
	n := 0
	for i, id := range ids {
		labels[i] = IgnoreIndex
		if trained[i] {
			labels[i] = id
			if i > 0 {
				n++
			}
		}
	}
	if n == 0 {
		return nil, nil, cut, ErrNoTargets
	}
	return ids, labels, cut, nil
}

// encodePieces tokenizes pieces one by one and marks the ids of Train pieces.
func encodePieces(pieces []Piece, tok Tokenizer) (ids []int32, trained []bool) {
	eos := tok.EOS()
	for _, p := range pieces {
		var add []int32
		if p.EOS {
			if len(ids) > 0 && ids[len(ids)-1] == eos {
				// The completion already ends with EOS (ChatML with EOS =
				// <|im_end|>): that id is trained when the piece is.
				trained[len(ids)-1] = trained[len(ids)-1] || p.Train
				continue
			}
			add = []int32{eos}
		} else {
			add = tok.Encode(p.Text)
		}
		ids = append(ids, add...)
		for range add {
			trained = append(trained, p.Train)
		}
	}
	return ids, trained
}

// truncate applies the truncation rule of the package documentation.
func truncate(ids []int32, trained []bool, maxLen int) ([]int32, []bool, Truncation, error) {
	var cut Truncation
	P := 0
	for P < len(ids) && !trained[P] {
		P++
	}
	if P == len(ids) {
		return nil, nil, cut, ErrNoTargets
	}
	if len(ids) > maxLen {
		C := len(ids) - P
		p := min(P, max(maxLen/2, maxLen-C))
		c := maxLen - p
		cut = Truncation{Prompt: P - p, Completion: C - c}
		ids, trained = ids[P-p:P+c], trained[P-p:P+c]
	}
	// Masked tokens at the end predict nothing.
	n := len(ids)
	for n > 0 && !trained[n-1] {
		n--
	}
	return ids[:n], trained[:n], cut, nil
}

// Stats counts what EncodeAll did.
type Stats struct {
	Examples            int // encoded
	Skipped             int // no trained label after truncation (ErrNoTargets)
	PromptTruncated     int // examples whose prompt was cut
	CompletionTruncated int // examples whose completion (or later turns) was cut
	Tokens              int // ids in the encoded examples
	Targets             int // trained labels at positions >= 1 (the loss's token count)
}

// EncodeAll encodes examples with Encode. Examples with nothing to train on
// are skipped and counted; any other error names the example by its Line
// (or index when Line is 0).
func EncodeAll(examples []data.Example, tok Tokenizer, tmpl Template, maxLen int) ([]Encoded, Stats, error) {
	var st Stats
	if maxLen < 2 {
		return nil, st, fmt.Errorf("sft: max length %d, need at least 2", maxLen)
	}
	if _, err := tmpl.Stops(tok); err != nil {
		return nil, st, err
	}
	out := make([]Encoded, 0, len(examples))
	for i, ex := range examples {
		ids, labels, cut, err := encode(ex, tok, tmpl, maxLen)
		if errors.Is(err, ErrNoTargets) {
			st.Skipped++
			continue
		}
		if err != nil {
			if ex.Line > 0 {
				return nil, st, fmt.Errorf("line %d: %w", ex.Line, err)
			}
			return nil, st, fmt.Errorf("example %d: %w", i, err)
		}
		if cut.Prompt > 0 {
			st.PromptTruncated++
		}
		if cut.Completion > 0 {
			st.CompletionTruncated++
		}
		st.Examples++
		st.Tokens += len(ids)
		for _, l := range labels[1:] {
			if l != IgnoreIndex {
				st.Targets++
			}
		}
		out = append(out, Encoded{IDs: ids, Labels: labels})
	}
	return out, st, nil
}
