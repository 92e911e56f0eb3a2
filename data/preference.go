package data

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
)

// Preference is a preference pair: for the prompt, Chosen is the better
// response and Rejected the worse. Chosen and Rejected are non-empty and
// differ. The prompt is either the string Prompt (may be empty) or, for a
// conversational pair, the chat PromptMessages (non-nil; the response is
// the assistant turn that follows them).
type Preference struct {
	Prompt         string
	Chosen         string
	Rejected       string
	PromptMessages []Message

	Line int // 1-based line of the source file
}

// IsChat reports whether p is conversational (PromptMessages set).
func (p *Preference) IsChat() bool { return p.PromptMessages != nil }

// Example returns the SFT example whose final assistant turn is response
// (p.Chosen or p.Rejected), for rendering with an SFT template.
func (p *Preference) Example(response string) Example {
	if p.IsChat() {
		msgs := append(append([]Message(nil), p.PromptMessages...), Message{Role: "assistant", Content: response})
		return Example{Messages: msgs, Line: p.Line}
	}
	return Example{Instruction: p.Prompt, Output: response, Line: p.Line}
}

// ReadPreferences reads preference pairs from a JSONL file in one of TRL's
// preference forms:
//
//   - standard: {"prompt": "...", "chosen": "...", "rejected": "..."}
//     ("prompt" may be empty);
//   - conversational: "prompt" a message list ending with a user turn and
//     "chosen"/"rejected" lists of one assistant message each;
//   - conversational with an implicit prompt: no "prompt"; "chosen" and
//     "rejected" are whole conversations that share every message but the
//     last, which is an assistant message.
//
// Errors and skipInvalid are as for ReadInstructions ("file:line: reason");
// chosen equal to rejected is an error.
func ReadPreferences(path string, skipInvalid bool) ([]Preference, int, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	return ReadPreferencesFrom(f, path, skipInvalid)
}

// ReadPreferencesFrom is ReadPreferences reading from r; name is used in
// errors.
func ReadPreferencesFrom(r io.Reader, name string, skipInvalid bool) ([]Preference, int, error) {
	var out []Preference
	skipped, err := readJSONL(r, name, skipInvalid, func(line []byte, lineNo int) error {
		p, err := parsePreference(line)
		if err != nil {
			return err
		}
		p.Line = lineNo
		out = append(out, p)
		return nil
	})
	if err != nil {
		return nil, skipped, err
	}
	return out, skipped, nil
}

func parsePreference(line []byte) (Preference, error) {
	m, err := jsonObject(line)
	if err != nil {
		return Preference{}, err
	}
	chat := false
	for _, k := range []string{"prompt", "chosen", "rejected"} {
		if raw, ok := m[k]; ok && jsonKind(raw) == "an array" {
			chat = true
		}
	}
	var p Preference
	if chat {
		p, err = parseChatPreference(m)
	} else {
		p, err = parseStringPreference(m)
	}
	if err != nil {
		return Preference{}, err
	}
	if p.Chosen == p.Rejected {
		return Preference{}, errors.New("\"chosen\" and \"rejected\" are identical")
	}
	return p, nil
}

func parseStringPreference(m map[string]json.RawMessage) (Preference, error) {
	var p Preference
	var err error
	if p.Prompt, err = requiredString(m, "prompt", true); err != nil {
		return Preference{}, err
	}
	if p.Chosen, err = requiredString(m, "chosen", false); err != nil {
		return Preference{}, err
	}
	if p.Rejected, err = requiredString(m, "rejected", false); err != nil {
		return Preference{}, err
	}
	return p, nil
}

// chatList parses the message list under key (which must be an array).
func chatList(m map[string]json.RawMessage, key string) ([]Message, error) {
	raw, ok := m[key]
	if !ok {
		return nil, fmt.Errorf("missing %q", key)
	}
	if k := jsonKind(raw); k != "an array" {
		return nil, fmt.Errorf("%q is %s; in a conversational pair it must be a message list", key, k)
	}
	msgs, err := parseMessageList(raw)
	if err != nil {
		return nil, fmt.Errorf("%q: %v", key, err)
	}
	return msgs, nil
}

func parseChatPreference(m map[string]json.RawMessage) (Preference, error) {
	chosen, err := chatList(m, "chosen")
	if err != nil {
		return Preference{}, err
	}
	rejected, err := chatList(m, "rejected")
	if err != nil {
		return Preference{}, err
	}
	var prompt []Message
	if _, ok := m["prompt"]; ok {
		if prompt, err = chatList(m, "prompt"); err != nil {
			return Preference{}, err
		}
		if len(chosen) != 1 || len(rejected) != 1 {
			return Preference{}, errors.New("with a \"prompt\" message list, \"chosen\" and \"rejected\" must hold exactly one assistant message each")
		}
	} else {
		// Implicit prompt: the messages both conversations share.
		if len(chosen) != len(rejected) || len(chosen) < 2 {
			return Preference{}, errors.New("implicit prompt: \"chosen\" and \"rejected\" must be conversations of the same length (at least 2) differing in the last message")
		}
		for i := range len(chosen) - 1 {
			if chosen[i] != rejected[i] {
				return Preference{}, fmt.Errorf("implicit prompt: chosen and rejected differ at message %d, before the last", i)
			}
		}
		prompt = chosen[:len(chosen)-1]
		chosen, rejected = chosen[len(chosen)-1:], rejected[len(rejected)-1:]
	}
	for i, mm := range prompt {
		if mm.Role == "assistant" && i == len(prompt)-1 {
			return Preference{}, errors.New("the prompt ends with an assistant message")
		}
	}
	if chosen[0].Role != "assistant" || rejected[0].Role != "assistant" {
		return Preference{}, errors.New("the chosen and rejected responses must be assistant messages")
	}
	if len(prompt) == 0 {
		prompt = []Message{}
	}
	return Preference{PromptMessages: prompt, Chosen: chosen[0].Content, Rejected: rejected[0].Content}, nil
}
