package data

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestReadPreferencesChat(t *testing.T) {
	u := func(c string) Message { return Message{Role: "user", Content: c} }
	cases := []struct {
		name, line string
		want       Preference
		err        string
	}{
		{"explicit", `{"prompt": [{"role": "user", "content": "2+2?"}], "chosen": [{"role": "assistant", "content": "4"}], "rejected": [{"role": "assistant", "content": "5"}]}`,
			Preference{PromptMessages: []Message{u("2+2?")}, Chosen: "4", Rejected: "5", Line: 1}, ""},
		{"implicit", `{"chosen": [{"role": "system", "content": "s"}, {"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}], "rejected": [{"role": "system", "content": "s"}, {"role": "user", "content": "q"}, {"role": "assistant", "content": "b"}]}`,
			Preference{PromptMessages: []Message{{Role: "system", Content: "s"}, u("q")}, Chosen: "a", Rejected: "b", Line: 1}, ""},
		{"implicit differs early", `{"chosen": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}], "rejected": [{"role": "user", "content": "r"}, {"role": "assistant", "content": "b"}]}`,
			Preference{}, "differ at message 0"},
		{"two chosen", `{"prompt": [{"role": "user", "content": "q"}], "chosen": [{"role": "assistant", "content": "a"}, {"role": "assistant", "content": "c"}], "rejected": [{"role": "assistant", "content": "b"}]}`,
			Preference{}, "exactly one assistant message"},
		{"user response", `{"prompt": [{"role": "user", "content": "q"}], "chosen": [{"role": "user", "content": "a"}], "rejected": [{"role": "assistant", "content": "b"}]}`,
			Preference{}, "must be assistant messages"},
		{"identical", `{"prompt": [{"role": "user", "content": "q"}], "chosen": [{"role": "assistant", "content": "a"}], "rejected": [{"role": "assistant", "content": "a"}]}`,
			Preference{}, "identical"},
		{"bad role", `{"prompt": [{"role": "robot", "content": "q"}], "chosen": [{"role": "assistant", "content": "a"}], "rejected": [{"role": "assistant", "content": "b"}]}`,
			Preference{}, "unknown role"},
	}
	for _, c := range cases {
		got, _, err := ReadPreferencesFrom(strings.NewReader(c.line), "p.jsonl", false)
		if c.err != "" {
			var de *Error
			if !errors.As(err, &de) || de.Line != 1 || !strings.Contains(err.Error(), "p.jsonl:1: ") || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: err %v, want %q", c.name, err, c.err)
			}
			continue
		}
		if err != nil || len(got) != 1 || !reflect.DeepEqual(got[0], c.want) {
			t.Errorf("%s: got %+v, %v", c.name, got, err)
		}
	}
}

func TestPreferenceExample(t *testing.T) {
	p := Preference{Prompt: "q", Chosen: "a", Rejected: "b", Line: 3}
	if ex := p.Example(p.Chosen); ex.Instruction != "q" || ex.Output != "a" || ex.Line != 3 || ex.IsChat() {
		t.Errorf("string form: %+v", ex)
	}
	c := Preference{PromptMessages: []Message{{Role: "user", Content: "q"}}, Chosen: "a", Rejected: "b"}
	ex := c.Example(c.Rejected)
	if !ex.IsChat() || len(ex.Messages) != 2 || ex.Messages[1] != (Message{Role: "assistant", Content: "b"}) || len(c.PromptMessages) != 1 {
		t.Errorf("chat form: %+v", ex)
	}
}
