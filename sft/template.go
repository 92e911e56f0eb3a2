package sft

import (
	"errors"
	"fmt"
	"strings"

	"github.com/shoggo/shoggo/data"
	"github.com/shoggo/shoggo/tokenizer"
)

// Tokenizer is what this package needs of a tokenizer; *tokenizer.Tokenizer
// implements it.
type Tokenizer interface {
	Encode(s string) []int32
	Decode(ids []int32) string
	TokenToID(token string) (int32, bool)
	EOS() int32
}

var _ Tokenizer = (*tokenizer.Tokenizer)(nil)

// A Piece is one span of a rendered example: Text, or, when EOS is set, the
// tokenizer's end-of-sequence id (added only if the previous id is not EOS
// already). Train marks completion pieces, whose tokens are labels.
type Piece struct {
	Text  string
	EOS   bool
	Train bool
}

// Template renders examples for training and for generation.
type Template interface {
	// Name is the template's name as the CLI spells it ("chatml", "alpaca").
	Name() string
	// Render returns the pieces of ex for training: every assistant turn is
	// completion, everything else prompt.
	Render(ex data.Example) ([]Piece, error)
	// Prompt returns the pieces that prompt the model for ex's final
	// assistant turn (everything before it, ending with the generation
	// prompt) and that turn's content, the reference answer.
	Prompt(ex data.Example) (prompt []Piece, answer string, err error)
	// Stops returns the ids that end a completion: the tokenizer's EOS and
	// the template's end-of-turn token. It is an error if the tokenizer has
	// no EOS or lacks a special token the template uses.
	Stops(tok Tokenizer) ([]int32, error)
}

// TemplateByName returns the template called name: "chatml", "alpaca" or
// "plain".
func TemplateByName(name string) (Template, error) {
	switch strings.ToLower(name) {
	case "chatml":
		return ChatML{}, nil
	case "alpaca":
		return Alpaca{}, nil
	case "plain":
		return Plain{}, nil
	}
	return nil, fmt.Errorf("sft: unknown template %q (known: chatml, alpaca, plain)", name)
}

// turns returns ex as chat messages, up to and including the last assistant
// message. An Alpaca example is one user turn and one assistant turn.
func turns(ex *data.Example) ([]tokenizer.Message, error) {
	if !ex.IsChat() {
		if ex.Instruction == "" || ex.Output == "" {
			return nil, errors.New("sft: Alpaca example needs a non-empty instruction and output")
		}
		user := ex.Instruction
		if ex.Input != "" {
			user += "\n\n" + ex.Input
		}
		return []tokenizer.Message{{Role: "user", Content: user}, {Role: "assistant", Content: ex.Output}}, nil
	}
	last := -1
	for i, m := range ex.Messages {
		if m.Role == "assistant" {
			last = i
		}
	}
	if last < 0 {
		return nil, errors.New("sft: chat example has no assistant message")
	}
	msgs := make([]tokenizer.Message, last+1)
	for i, m := range ex.Messages[:last+1] {
		msgs[i] = tokenizer.Message{Role: m.Role, Content: m.Content}
	}
	return msgs, nil
}

// renderPrompt returns the pieces of t.Render(ex) before its final run of
// completion pieces, and the content of ex's final assistant turn. Using
// Render makes the generation prompt the very ids the model was trained on.
func renderPrompt(t Template, ex *data.Example) ([]Piece, string, error) {
	pieces, err := t.Render(*ex)
	if err != nil {
		return nil, "", err
	}
	msgs, err := turns(ex)
	if err != nil {
		return nil, "", err
	}
	i := len(pieces)
	for i > 0 && pieces[i-1].Train {
		i--
	}
	return pieces[:i], msgs[len(msgs)-1].Content, nil
}

// ChatML is the ChatML template (see the package documentation).
type ChatML struct{}

// Name returns "chatml".
func (ChatML) Name() string { return "chatml" }

// ChatML's special tokens.
const (
	IMStart = "<|im_start|>"
	IMEnd   = "<|im_end|>"
)

// Render renders ex in ChatML; every assistant turn is completion.
func (ChatML) Render(ex data.Example) ([]Piece, error) {
	msgs, err := turns(&ex)
	if err != nil {
		return nil, err
	}
	var out []Piece
	prefix := "" // text that precedes the next prompt
	start := 0   // first message not yet rendered
	for i, m := range msgs {
		if m.Role != "assistant" {
			continue
		}
		out = append(out,
			Piece{Text: prefix + tokenizer.ChatML(msgs[start:i], true)},
			Piece{Text: m.Content + IMEnd, Train: true})
		prefix, start = "\n", i+1
	}
	out = append(out, Piece{EOS: true, Train: true})
	return out, nil
}

// Prompt returns the ChatML prompt for ex's final assistant turn: the
// pieces of Render before the final completion.
func (c ChatML) Prompt(ex data.Example) ([]Piece, string, error) { return renderPrompt(c, &ex) }

// Stops returns EOS and <|im_end|>; both <|im_start|> and <|im_end|> must
// be tokens of tok.
func (ChatML) Stops(tok Tokenizer) ([]int32, error) {
	eos := tok.EOS()
	if eos < 0 {
		return nil, errors.New("sft: the tokenizer has no EOS token")
	}
	if _, ok := tok.TokenToID(IMStart); !ok {
		return nil, fmt.Errorf("sft: chatml template: the tokenizer has no %s token", IMStart)
	}
	end, ok := tok.TokenToID(IMEnd)
	if !ok {
		return nil, fmt.Errorf("sft: chatml template: the tokenizer has no %s token", IMEnd)
	}
	if end == eos {
		return []int32{eos}, nil
	}
	return []int32{eos, end}, nil
}

// Alpaca is the plain "### Instruction / ### Input / ### Response" prompt
// format (see the package documentation).
type Alpaca struct{}

// Name returns "alpaca".
func (Alpaca) Name() string { return "alpaca" }

// Alpaca's section headers.
const (
	AlpacaInstruction = "### Instruction:\n"
	AlpacaInput       = "### Input:\n"
	AlpacaResponse    = "### Response:\n"
)

// AlpacaPrompt is the prompt text of an Alpaca example.
func AlpacaPrompt(instruction, input string) string {
	s := AlpacaInstruction + instruction + "\n\n"
	if input != "" {
		s += AlpacaInput + input + "\n\n"
	}
	return s + AlpacaResponse
}

// Render renders ex in the Alpaca format; every assistant turn (the output)
// is completion and ends with EOS.
func (a Alpaca) Render(ex data.Example) ([]Piece, error) {
	if !ex.IsChat() {
		if ex.Instruction == "" || ex.Output == "" {
			return nil, errors.New("sft: Alpaca example needs a non-empty instruction and output")
		}
		return []Piece{
			{Text: AlpacaPrompt(ex.Instruction, ex.Input)},
			{Text: ex.Output, Train: true},
			{EOS: true, Train: true},
		}, nil
	}
	msgs, err := turns(&ex)
	if err != nil {
		return nil, err
	}
	var out []Piece
	var b strings.Builder
	for i, m := range msgs {
		switch m.Role {
		case "system":
			if i == 0 {
				b.WriteString(m.Content + "\n\n")
				continue
			}
			fallthrough
		case "user":
			b.WriteString(AlpacaInstruction + m.Content + "\n\n")
		case "assistant":
			b.WriteString(AlpacaResponse)
			out = append(out, Piece{Text: b.String()}, Piece{Text: m.Content, Train: true}, Piece{EOS: true, Train: true})
			b.Reset()
		default:
			return nil, fmt.Errorf("sft: unknown role %q", m.Role)
		}
	}
	return out, nil
}

// Prompt returns the Alpaca prompt for ex's final assistant turn: the
// pieces of Render before the final completion.
func (a Alpaca) Prompt(ex data.Example) ([]Piece, string, error) { return renderPrompt(a, &ex) }

// Stops returns EOS.
func (Alpaca) Stops(tok Tokenizer) ([]int32, error) {
	eos := tok.EOS()
	if eos < 0 {
		return nil, errors.New("sft: the tokenizer has no EOS token")
	}
	return []int32{eos}, nil
}

// Plain is the shortest format: the instruction, a newline, the input and a
// newline when the input is non-empty, then the output and EOS. A chat
// example renders every non-assistant message as "{content}\n" (prompt)
// and every assistant message as content + EOS (completion). With no
// headers, a prompt costs a few tokens, which makes it the cheapest format
// for small models on short tasks.
type Plain struct{}

// Name returns "plain".
func (Plain) Name() string { return "plain" }

// Render renders ex in the plain format.
func (Plain) Render(ex data.Example) ([]Piece, error) {
	if !ex.IsChat() {
		if ex.Instruction == "" || ex.Output == "" {
			return nil, errors.New("sft: Alpaca example needs a non-empty instruction and output")
		}
		prompt := ex.Instruction + "\n"
		if ex.Input != "" {
			prompt += ex.Input + "\n"
		}
		return []Piece{{Text: prompt}, {Text: ex.Output, Train: true}, {EOS: true, Train: true}}, nil
	}
	msgs, err := turns(&ex)
	if err != nil {
		return nil, err
	}
	var out []Piece
	var b strings.Builder
	for _, m := range msgs {
		if m.Role != "assistant" {
			b.WriteString(m.Content + "\n")
			continue
		}
		out = append(out, Piece{Text: b.String()}, Piece{Text: m.Content, Train: true}, Piece{EOS: true, Train: true})
		b.Reset()
	}
	return out, nil
}

// Prompt returns the plain prompt for ex's final assistant turn.
func (p Plain) Prompt(ex data.Example) ([]Piece, string, error) { return renderPrompt(p, &ex) }

// Stops returns EOS.
func (Plain) Stops(tok Tokenizer) ([]int32, error) { return Alpaca{}.Stops(tok) }
