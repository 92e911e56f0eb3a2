package data

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
)

// Message is one turn of a chat.
type Message struct {
	Role    string `json:"role"` // "system", "user" or "assistant"
	Content string `json:"content"`
}

// Example is one supervised fine-tuning example, in one of two forms:
//
//   - Alpaca: Instruction (non-empty), Input (may be empty) and Output
//     (non-empty); Messages is nil.
//   - chat: Messages, with at least one assistant message; a system message
//     may only come first. Instruction, Input and Output are empty.
type Example struct {
	Instruction string
	Input       string
	Output      string
	Messages    []Message

	Line int // 1-based line of the source file
}

// IsChat reports whether e is in the chat form.
func (e *Example) IsChat() bool { return e.Messages != nil }

// ReadInstructions reads SFT examples from a JSONL file: one JSON object per
// line, either {"instruction", "input" (optional), "output"} or {"messages":
// [{"role", "content"}, ...]}. Other fields are ignored and blank lines are
// skipped. A bad line (invalid JSON or UTF-8, a missing or empty required
// field, a field of the wrong type, empty messages, an unknown role) is an
// error "file:line: reason"; with skipInvalid it is skipped instead and
// counted in the returned int. A file with no valid example is an error.
func ReadInstructions(path string, skipInvalid bool) ([]Example, int, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	return ReadInstructionsFrom(f, path, skipInvalid)
}

// ReadInstructionsFrom is ReadInstructions reading from r; name is used in
// errors.
func ReadInstructionsFrom(r io.Reader, name string, skipInvalid bool) ([]Example, int, error) {
	var out []Example
	skipped, err := readJSONL(r, name, skipInvalid, func(line []byte, lineNo int) error {
		ex, err := parseExample(line)
		if err != nil {
			return err
		}
		ex.Line = lineNo
		out = append(out, ex)
		return nil
	})
	if err != nil {
		return nil, skipped, err
	}
	return out, skipped, nil
}

// readJSONL runs parse on every non-blank line of r. A parse error or invalid
// UTF-8 on a line is returned as name:line: reason, or counted and skipped
// when skip is set.
func readJSONL(r io.Reader, name string, skip bool, parse func(line []byte, lineNo int) error) (skipped int, err error) {
	lines, good := 0, 0
	err = eachLine(r, func(line []byte, lineNo int, off int64) error {
		lines++
		if isBlank(line) {
			return nil
		}
		var lerr error
		if e := checkLineUTF8(name, line, lineNo, off); e != nil {
			lerr = e
		} else if perr := parse(line, lineNo); perr != nil {
			lerr = lineErr(name, lineNo, "%v", perr)
		}
		if lerr != nil {
			if skip {
				skipped++
				return nil
			}
			return lerr
		}
		good++
		return nil
	})
	if err != nil {
		var de *Error
		if errors.As(err, &de) {
			return skipped, err
		}
		return skipped, fmt.Errorf("%s: %w", name, err)
	}
	switch {
	case lines == 0:
		return 0, offsetErr(name, 0, "empty file")
	case good == 0 && skipped > 0:
		return skipped, lineErr(name, 0, "no valid records (%d invalid lines skipped)", skipped)
	case good == 0:
		return 0, lineErr(name, 0, "no records (only blank lines)")
	}
	return skipped, nil
}

var knownRoles = map[string]bool{"system": true, "user": true, "assistant": true}

func parseExample(line []byte) (Example, error) {
	m, err := jsonObject(line)
	if err != nil {
		return Example{}, err
	}
	if raw, ok := m["messages"]; ok {
		for _, k := range []string{"instruction", "input", "output"} {
			if _, dup := m[k]; dup {
				return Example{}, fmt.Errorf("both \"messages\" and %q: a line is either chat or Alpaca form", k)
			}
		}
		msgs, err := parseMessages(raw)
		if err != nil {
			return Example{}, err
		}
		return Example{Messages: msgs}, nil
	}
	var ex Example
	if ex.Instruction, err = requiredString(m, "instruction", false); err != nil {
		return Example{}, err
	}
	if ex.Input, _, err = stringField(m, "input"); err != nil {
		return Example{}, err
	}
	if ex.Output, err = requiredString(m, "output", false); err != nil {
		return Example{}, err
	}
	return ex, nil
}

func parseMessages(raw json.RawMessage) ([]Message, error) {
	msgs, err := parseMessageList(raw)
	if err != nil {
		return nil, err
	}
	for _, m := range msgs {
		if m.Role == "assistant" {
			return msgs, nil
		}
	}
	return nil, errors.New("no assistant message, nothing to train on")
}

// parseMessageList parses a list of chat messages (roles checked, a system
// message only first).
func parseMessageList(raw json.RawMessage) ([]Message, error) {
	if k := jsonKind(raw); k != "an array" {
		return nil, fmt.Errorf("\"messages\" is %s, expected an array", k)
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, fmt.Errorf("\"messages\": %v", err)
	}
	if len(items) == 0 {
		return nil, errors.New("empty \"messages\"")
	}
	msgs := make([]Message, len(items))
	for i, it := range items {
		if k := jsonKind(it); k != "an object" {
			return nil, fmt.Errorf("messages[%d] is %s, expected an object", i, k)
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(it, &m); err != nil {
			return nil, fmt.Errorf("messages[%d]: %v", i, err)
		}
		role, err := requiredString(m, "role", false)
		if err != nil {
			return nil, fmt.Errorf("messages[%d]: %v", i, err)
		}
		if !knownRoles[role] {
			return nil, fmt.Errorf("messages[%d]: unknown role %q (expected system, user or assistant)", i, role)
		}
		if role == "system" && i > 0 {
			return nil, fmt.Errorf("messages[%d]: a system message may only come first", i)
		}
		content, err := requiredString(m, "content", role == "system")
		if err != nil {
			return nil, fmt.Errorf("messages[%d]: %v", i, err)
		}
		msgs[i] = Message{Role: role, Content: content}
	}
	return msgs, nil
}
