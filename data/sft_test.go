package data

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestReadInstructions(t *testing.T) {
	src := "\xEF\xBB\xBF" + `{"instruction": "Add", "input": "17+25", "output": "42", "extra": [1]}
{"instruction": "Say hi", "output": "hi"}

{"instruction": "Say hi", "input": null, "output": "h\u00e9"}` + "\r\n" +
		`{"messages": [{"role": "system", "content": ""}, {"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "4"}]}
{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}, {"role": "assistant", "content": "d", "name": "x"}]}`
	p := filepath.Join(t.TempDir(), "sft.jsonl")
	os.WriteFile(p, []byte(src), 0o644)
	got, skipped, err := ReadInstructions(p, false)
	if err != nil || skipped != 0 {
		t.Fatal(err, skipped)
	}
	want := []Example{
		{Instruction: "Add", Input: "17+25", Output: "42", Line: 1},
		{Instruction: "Say hi", Output: "hi", Line: 2},
		{Instruction: "Say hi", Output: "hé", Line: 4},
		{Messages: []Message{{"system", ""}, {"user", "What is 2+2?"}, {"assistant", "4"}}, Line: 5},
		{Messages: []Message{{"user", "a"}, {"assistant", "b"}, {"user", "c"}, {"assistant", "d"}}, Line: 6},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
	if got[0].IsChat() || !got[3].IsChat() {
		t.Error("IsChat")
	}
}

var badInstructionLines = []struct {
	line, msg string
}{
	{`{"instruction": "x", "output": "y"`, "invalid JSON"},
	{`not json`, "invalid JSON"},
	{`[{"instruction": "x"}]`, "expected a JSON object, found an array"},
	{`"just a string"`, "expected a JSON object, found a string"},
	{`{"instruction": "x"}`, `missing "output"`},
	{`{"instruction": "x", "output": null}`, `missing "output"`},
	{`{"instruction": "x", "output": ""}`, `empty "output"`},
	{`{"instruction": "x", "output": 42}`, `"output" is a number, expected a string`},
	{`{"output": "y"}`, `missing "instruction"`},
	{`{"instruction": ["x"], "output": "y"}`, `"instruction" is an array`},
	{`{"instruction": "x", "input": 3, "output": "y"}`, `"input" is a number`},
	{`{"messages": []}`, `empty "messages"`},
	{`{"messages": null}`, `"messages" is null`},
	{`{"messages": {"role": "user"}}`, `"messages" is an object`},
	{`{"messages": ["hi"]}`, `messages[0] is a string`},
	{`{"messages": [{"role": "human", "content": "a"}, {"role": "assistant", "content": "b"}]}`, `messages[0]: unknown role "human"`},
	{`{"messages": [{"content": "a"}]}`, `messages[0]: missing "role"`},
	{`{"messages": [{"role": "user", "content": "a"}, {"role": "assistant"}]}`, `messages[1]: missing "content"`},
	{`{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": ""}]}`, `messages[1]: empty "content"`},
	{`{"messages": [{"role": "user", "content": "a"}]}`, `no assistant message`},
	{`{"messages": [{"role": "user", "content": "a"}, {"role": "system", "content": "s"}, {"role": "assistant", "content": "b"}]}`, `messages[1]: a system message may only come first`},
	{`{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}], "output": "c"}`, `both "messages" and "output"`},
	{"{\"instruction\": \"x\xff\", \"output\": \"y\"}", "invalid UTF-8"},
}

func TestReadInstructionsErrors(t *testing.T) {
	good := `{"instruction": "ok", "output": "fine"}`
	for _, c := range badInstructionLines {
		// The bad line is line 4, after a good line and two blank ones.
		src := good + "\n\n   \n" + c.line + "\n" + good + "\n"
		_, _, err := ReadInstructionsFrom(strings.NewReader(src), "data.jsonl", false)
		var de *Error
		if !errors.As(err, &de) || de.Line != 4 || !strings.HasPrefix(err.Error(), "data.jsonl:4: ") || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("line %s: error %v, want data.jsonl:4: ...%s", c.line, err, c.msg)
		}
		got, skipped, err := ReadInstructionsFrom(strings.NewReader(src), "data.jsonl", true)
		if err != nil || skipped != 1 || len(got) != 2 || got[0].Line != 1 || got[1].Line != 5 {
			t.Errorf("line %s with skipInvalid: %d examples, %d skipped, %v", c.line, len(got), skipped, err)
		}
	}
	// Invalid UTF-8 also names the byte offset in the file.
	_, _, err := ReadInstructionsFrom(strings.NewReader(good+"\n"+"{\"instruction\": \"x\xff\"}\n"), "d.jsonl", false)
	var de *Error
	if !errors.As(err, &de) || de.Offset != int64(len(good)+1+18) {
		t.Errorf("UTF-8 error %v, want byte offset %d", err, len(good)+1+18)
	}
}

func TestReadInstructionsFileErrors(t *testing.T) {
	dir := t.TempDir()
	p := func(name, body string) string {
		f := filepath.Join(dir, name)
		os.WriteFile(f, []byte(body), 0o644)
		return f
	}
	for _, c := range []struct {
		path string
		skip bool
		msg  string
	}{
		{p("empty.jsonl", ""), false, "empty file"},
		{p("blank.jsonl", "\n\n"), false, "no records"},
		{p("allbad.jsonl", "x\ny\n"), true, "no valid records (2 invalid lines skipped)"},
		{filepath.Join(dir, "missing.jsonl"), false, "missing.jsonl"},
	} {
		_, _, err := ReadInstructions(c.path, c.skip)
		if err == nil || !strings.Contains(err.Error(), c.msg) || !strings.Contains(err.Error(), c.path) {
			t.Errorf("%s: %v, want %q", c.path, err, c.msg)
		}
	}
}

func TestReadInstructionsLongLine(t *testing.T) {
	long := strings.Repeat("x", 1<<20)
	src := `{"instruction": "a", "output": "` + long + `"}` + "\n" + `{"instruction": "b"}`
	_, _, err := ReadInstructionsFrom(strings.NewReader(src), "l.jsonl", false)
	if err == nil || !strings.HasPrefix(err.Error(), "l.jsonl:2: ") {
		t.Errorf("err = %v", err)
	}
}

func TestReadPreferences(t *testing.T) {
	src := `{"prompt": "2+2?", "chosen": "4", "rejected": "5"}
{"prompt": "", "chosen": "a", "rejected": "b", "score": 1}
{"prompt": "x", "chosen": "same", "rejected": "same"}
{"prompt": "x", "chosen": [{"role": "assistant", "content": "a"}], "rejected": "b"}
{"prompt": "x", "chosen": "a"}
{"chosen": "a", "rejected": "b"}
{"prompt": "x", "chosen": "", "rejected": "b"}
{"prompt": 1, "chosen": "a", "rejected": "b"}
`
	p := filepath.Join(t.TempDir(), "pref.jsonl")
	os.WriteFile(p, []byte(src), 0o644)
	got, skipped, err := ReadPreferences(p, true)
	if err != nil || skipped != 6 {
		t.Fatal(err, skipped)
	}
	want := []Preference{{Prompt: "2+2?", Chosen: "4", Rejected: "5", Line: 1}, {Prompt: "", Chosen: "a", Rejected: "b", Line: 2}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v", got)
	}
	wantErr := map[int]string{
		3: "identical",
		4: `"rejected" is a string; in a conversational pair it must be a message list`,
		5: `missing "rejected"`,
		6: `missing "prompt"`,
		7: `empty "chosen"`,
		8: `"prompt" is a number`,
	}
	lines := strings.Split(src, "\n")
	for n, msg := range wantErr {
		_, _, err := ReadPreferencesFrom(strings.NewReader(lines[0]+"\n"+lines[n-1]), "p.jsonl", false)
		var de *Error
		if !errors.As(err, &de) || de.Line != 2 || !strings.Contains(err.Error(), msg) {
			t.Errorf("line %d: %v, want %q", n, err, msg)
		}
	}
}

// checkExample verifies the documented invariants of a parsed example.
func checkExample(t *testing.T, e Example) {
	if e.IsChat() {
		if e.Instruction != "" || e.Input != "" || e.Output != "" || len(e.Messages) == 0 {
			t.Fatalf("bad chat example %+v", e)
		}
		asst := false
		for i, m := range e.Messages {
			if !knownRoles[m.Role] || (m.Role == "system" && i > 0) || (m.Role != "system" && m.Content == "") {
				t.Fatalf("bad message %d in %+v", i, e)
			}
			asst = asst || m.Role == "assistant"
		}
		if !asst {
			t.Fatalf("no assistant in %+v", e)
		}
	} else if e.Instruction == "" || e.Output == "" {
		t.Fatalf("bad Alpaca example %+v", e)
	}
}

func FuzzReadInstructions(f *testing.F) {
	f.Add([]byte(`{"instruction": "Add", "input": "1+1", "output": "2"}` + "\n" + `{"instruction": "x"}`))
	f.Add([]byte(`{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}`))
	f.Add([]byte("\xEF\xBB\xBF{\"instruction\": \"\\u00e9\", \"output\": \"\\ud800\"}\r\n\n[1]\n"))
	for _, c := range badInstructionLines {
		f.Add([]byte(c.line))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		strict, sk0, errStrict := ReadInstructionsFrom(bytes.NewReader(b), "f", false)
		lax, skipped, errLax := ReadInstructionsFrom(bytes.NewReader(b), "f", true)
		if sk0 != 0 {
			t.Fatal("skipped without skipInvalid")
		}
		if errStrict == nil {
			if errLax != nil || skipped != 0 || !reflect.DeepEqual(strict, lax) {
				t.Fatalf("strict succeeded but skipInvalid differs: %v %d", errLax, skipped)
			}
		} else {
			var de *Error
			if !errors.As(errStrict, &de) || de.File != "f" {
				t.Fatalf("error %v is not a *data.Error naming the file", errStrict)
			}
		}
		if errLax == nil {
			nonBlank := 0
			for _, l := range bytes.Split(b, []byte("\n")) {
				if !isBlank(l) && !bytes.Equal(l, utf8BOM) {
					nonBlank++
				}
			}
			if len(lax)+skipped != nonBlank && !bytes.HasPrefix(b, utf8BOM) {
				t.Fatalf("%d examples + %d skipped != %d non-blank lines", len(lax), skipped, nonBlank)
			}
		}
		prev := 0
		for _, e := range lax {
			checkExample(t, e)
			if e.Line <= prev {
				t.Fatalf("line numbers not increasing: %d after %d", e.Line, prev)
			}
			prev = e.Line
		}
	})
}

func FuzzReadPreferences(f *testing.F) {
	f.Add([]byte(`{"prompt": "2+2?", "chosen": "4", "rejected": "5"}` + "\n" + `{"prompt": "x", "chosen": "a"}`))
	f.Add([]byte(`{"prompt": "x", "chosen": [1], "rejected": "b"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		prefs, _, err := ReadPreferencesFrom(bytes.NewReader(b), "f", true)
		if err != nil {
			var de *Error
			if !errors.As(err, &de) {
				t.Fatalf("error %v is not a *data.Error", err)
			}
			return
		}
		for _, p := range prefs {
			if p.Chosen == "" || p.Rejected == "" || p.Chosen == p.Rejected || p.Line < 1 {
				t.Fatalf("bad preference %+v", p)
			}
		}
	})
}
