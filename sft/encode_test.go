package sft

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/shoggo/shoggo/data"
	"github.com/shoggo/shoggo/model"
	"github.com/shoggo/shoggo/tokenizer"
)

// splitDecode checks that labels equal ids where trained and IgnoreIndex
// elsewhere, and returns the decoded completion and prompt text.
func splitDecode(t *testing.T, tok Tokenizer, ids, labels []int32) (completion, prompt string) {
	t.Helper()
	if len(ids) != len(labels) {
		t.Fatalf("%d ids, %d labels", len(ids), len(labels))
	}
	var c, p []int32
	for i := range ids {
		switch labels[i] {
		case IgnoreIndex:
			p = append(p, ids[i])
		case ids[i]:
			c = append(c, ids[i])
		default:
			t.Fatalf("label %d at %d is neither the id %d nor %d", labels[i], i, ids[i], IgnoreIndex)
		}
	}
	return tok.Decode(c), tok.Decode(p)
}

func TestEncodeAlpaca(t *testing.T) {
	tok := testTokenizer(t)
	eos := tok.EOS()
	for _, ex := range []data.Example{
		{Instruction: "What is 17+25?", Output: "42"},
		{Instruction: "Say hello.", Input: "to the world", Output: "Hello, world!"},
	} {
		ids, labels, err := Encode(ex, tok, Alpaca{}, 512)
		if err != nil {
			t.Fatal(err)
		}
		prompt := AlpacaPrompt(ex.Instruction, ex.Input)
		want := append(append(tok.Encode(prompt), tok.Encode(ex.Output)...), eos)
		if !slices.Equal(ids, want) {
			t.Fatalf("ids %v, want %v", ids, want)
		}
		np := len(tok.Encode(prompt))
		for i, l := range labels {
			if i < np && l != IgnoreIndex || i >= np && l != ids[i] {
				t.Fatalf("label %d at %d (prompt has %d tokens)", l, i, np)
			}
		}
		if labels[len(labels)-1] != eos {
			t.Fatalf("last label %d, want EOS %d", labels[len(labels)-1], eos)
		}
		if !strings.Contains(tok.Decode(ids), "### Input:") == (ex.Input != "") {
			t.Fatalf("input section wrong in %q", tok.Decode(ids))
		}
	}
	// The exact prompt text.
	if got := AlpacaPrompt("Do it.", ""); got != "### Instruction:\nDo it.\n\n### Response:\n" {
		t.Fatalf("prompt %q", got)
	}
	if got := AlpacaPrompt("Do it.", "now"); got != "### Instruction:\nDo it.\n\n### Input:\nnow\n\n### Response:\n" {
		t.Fatalf("prompt %q", got)
	}
}

func TestEncodeChatML(t *testing.T) {
	tok := testTokenizer(t)
	imEnd, _ := tok.TokenToID(IMEnd)
	msgs := []data.Message{
		{Role: "system", Content: "You are a helpful assistant."},
		{Role: "user", Content: "What is 17+25?"},
		{Role: "assistant", Content: "42"},
		{Role: "user", Content: "Reverse the word: apple"},
		{Role: "assistant", Content: "elppa"},
		{Role: "user", Content: "Thanks"}, // after the last assistant turn: dropped
	}
	tm := make([]tokenizer.Message, 5)
	for i, m := range msgs[:5] {
		tm[i] = tokenizer.Message{Role: m.Role, Content: m.Content}
	}
	text := strings.TrimSuffix(tokenizer.ChatML(tm, false), "\n")

	// EOS (<|endoftext|>) differs from <|im_end|>: appended after the final turn.
	ids, labels, err := Encode(data.Example{Messages: msgs}, tok, ChatML{}, 512)
	if err != nil {
		t.Fatal(err)
	}
	if got := tok.Decode(ids); got != text+"<|endoftext|>" {
		t.Fatalf("rendered\n%q\nwant\n%q", got, text+"<|endoftext|>")
	}
	comp, _ := splitDecode(t, tok, ids, labels)
	if comp != "42<|im_end|>elppa<|im_end|><|endoftext|>" {
		t.Fatalf("trained text %q", comp)
	}
	// Every assistant turn is trained, each from its first token.
	for _, answer := range []string{"42", "elppa"} {
		a := tok.Encode(answer)
		i := indexOf(ids, a)
		if i < 0 || labels[i-1] != IgnoreIndex || labels[i] != ids[i] {
			t.Fatalf("answer %q not trained from its first token", answer)
		}
	}

	// EOS = <|im_end|> (a Qwen chat tokenizer): nothing appended, the final
	// <|im_end|> is the trained EOS.
	qt := eosTok{tok, imEnd}
	ids2, labels2, err := Encode(data.Example{Messages: msgs}, qt, ChatML{}, 512)
	if err != nil {
		t.Fatal(err)
	}
	if got := tok.Decode(ids2); got != text {
		t.Fatalf("rendered %q, want %q", got, text)
	}
	if n := len(ids2); ids2[n-1] != imEnd || labels2[n-1] != imEnd {
		t.Fatalf("last id %d label %d, want <|im_end|> %d", ids2[n-1], labels2[n-1], imEnd)
	}

	// An Alpaca example in ChatML is one user and one assistant turn.
	ids3, _, err := Encode(data.Example{Instruction: "Say hello.", Input: "to the world", Output: "Hi"}, tok, ChatML{}, 512)
	if err != nil {
		t.Fatal(err)
	}
	want := "<|im_start|>user\nSay hello.\n\nto the world<|im_end|>\n<|im_start|>assistant\nHi<|im_end|><|endoftext|>"
	if got := tok.Decode(ids3); got != want {
		t.Fatalf("rendered %q, want %q", got, want)
	}

	// The generation prompt is the training prompt of the final turn.
	pieces, answer, err := ChatML{}.Prompt(data.Example{Messages: msgs})
	if err != nil {
		t.Fatal(err)
	}
	p, _ := encodePieces(pieces, tok)
	if answer != "elppa" || !slices.Equal(p, ids[:len(p)]) || tok.Decode(ids[len(p):]) != "elppa<|im_end|><|endoftext|>" {
		t.Fatalf("prompt %q answer %q", tok.Decode(p), answer)
	}
	if !strings.HasSuffix(tok.Decode(p), "<|im_start|>assistant\n") {
		t.Fatalf("prompt does not end with the generation prompt: %q", tok.Decode(p))
	}

	// A tokenizer without the ChatML tokens is an error.
	if _, _, err := Encode(data.Example{Messages: msgs}, byteTok{}, ChatML{}, 512); err == nil {
		t.Fatal("ChatML with a tokenizer lacking <|im_start|>: no error")
	}
}

func TestAlpacaChat(t *testing.T) {
	tok := testTokenizer(t)
	ex := data.Example{Messages: []data.Message{
		{Role: "system", Content: "Be brief."},
		{Role: "user", Content: "What is 17+25?"},
		{Role: "assistant", Content: "42"},
		{Role: "user", Content: "What is 10+10?"},
		{Role: "assistant", Content: "20"},
	}}
	ids, labels, err := Encode(ex, tok, Alpaca{}, 512)
	if err != nil {
		t.Fatal(err)
	}
	want := "Be brief.\n\n### Instruction:\nWhat is 17+25?\n\n### Response:\n42<|endoftext|>" +
		"### Instruction:\nWhat is 10+10?\n\n### Response:\n20<|endoftext|>"
	if got := tok.Decode(ids); got != want {
		t.Fatalf("rendered %q, want %q", got, want)
	}
	if comp, _ := splitDecode(t, tok, ids, labels); comp != "42<|endoftext|>20<|endoftext|>" {
		t.Fatalf("trained %q", comp)
	}
	pieces, answer, err := Alpaca{}.Prompt(ex)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := encodePieces(pieces, tok)
	if answer != "20" || !slices.Equal(p, ids[:len(p)]) || tok.Decode(ids[len(p):]) != "20<|endoftext|>" {
		t.Fatalf("prompt %q answer %q", tok.Decode(p), answer)
	}
}

func indexOf(s, sub []int32) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if slices.Equal(s[i:i+len(sub)], sub) {
			return i
		}
	}
	return -1
}

// When the padding id is EOS, the EOS ending a completion is still a target:
// masking is by position.
func TestEOSTrainedWhenPadIsEOS(t *testing.T) {
	tok := testTokenizer(t)
	eos := tok.EOS()
	ids, labels, err := Encode(data.Example{Instruction: "What is 17+25?", Output: "42"}, tok, Alpaca{}, 64)
	if err != nil {
		t.Fatal(err)
	}
	T := len(ids) + 5
	b := PadBatch([][]int32{ids}, [][]int32{labels}, 1, T, eos)
	n := len(ids)
	if b.Targets[n-2] != eos {
		t.Fatalf("target before the final EOS is %d, want EOS %d", b.Targets[n-2], eos)
	}
	for t2 := n - 1; t2 < T; t2++ {
		if b.Targets[t2] != IgnoreIndex {
			t.Fatalf("position %d (past the last prediction): target %d", t2, b.Targets[t2])
		}
		if mask := b.KeyMask[t2]; t2 == n-1 && mask != 1 || t2 >= n && (mask != 0 || b.IDs[t2] != eos) {
			t.Fatalf("position %d: id %d key mask %d", t2, b.IDs[t2], mask)
		}
	}
	want := 0
	for _, l := range labels[1:] {
		if l != IgnoreIndex {
			want++
		}
	}
	if got := CountTargets([]*model.Batch{b}); got != want {
		t.Fatalf("%d targets, want %d", got, want)
	}
}

func TestTruncation(t *testing.T) {
	pr := func(n int) string { return strings.Repeat("p", n) }
	co := func(n int) string { return strings.Repeat("c", n) }
	single := func(P, C int) rawTemplate { // C counts the EOS
		return rawTemplate{{Text: pr(P)}, {Text: co(C - 1), Train: true}, {EOS: true, Train: true}}
	}
	cases := []struct {
		name       string
		tmpl       rawTemplate
		maxLen     int
		want       string // decoded ids, EOS as "$", masked as upper case
		cutP, cutC int
		err        error
	}{
		{"fits", single(5, 4), 9, "PPPPPccc$", 0, 0, nil},
		{"prompt cut from the left", single(10, 4), 8, "PPPPccc$", 6, 0, nil},
		{"long prompt keeps more than half", single(20, 3), 10, "PPPPPPPcc$", 13, 0, nil},
		{"both cut: half each, no EOS", single(20, 20), 10, "PPPPPccccc", 15, 15, nil},
		{"odd max length", single(20, 20), 11, "PPPPPcccccc", 15, 14, nil},
		{"short prompt kept whole", single(3, 20), 10, "PPPccccccc", 0, 13, nil},
		{"max length 2", single(3, 3), 2, "Pc", 2, 2, nil},
		{"multi-turn: later turns cut, trailing prompt dropped",
			rawTemplate{{Text: pr(3)}, {Text: co(2), Train: true}, {Text: pr(4)}, {Text: co(3), Train: true}}, 7,
			"PPPcc", 0, 5, nil},
		{"nothing trained", rawTemplate{{Text: pr(3)}}, 8, "", 0, 0, ErrNoTargets},
		{"only position 0 trained", rawTemplate{{EOS: true, Train: true}}, 8, "", 0, 0, ErrNoTargets},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ids, labels, cut, err := EncodeTrunc(data.Example{}, byteTok{}, c.tmpl, c.maxLen)
			if c.err != nil {
				if !errors.Is(err, c.err) {
					t.Fatalf("error %v, want %v", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var b strings.Builder
			for i, id := range ids {
				s := "$"
				if id < 256 {
					s = string(rune(id))
				}
				if labels[i] == IgnoreIndex {
					s = strings.ToUpper(s)
				} else if labels[i] != id {
					t.Fatalf("label %d at %d, id %d", labels[i], i, id)
				}
				b.WriteString(s)
			}
			if b.String() != c.want || cut.Prompt != c.cutP || cut.Completion != c.cutC {
				t.Fatalf("got %q cut %+v, want %q cut {%d %d}", b.String(), cut, c.want, c.cutP, c.cutC)
			}
			if len(ids) > c.maxLen {
				t.Fatalf("%d ids > max length %d", len(ids), c.maxLen)
			}
		})
	}
	if _, _, err := Encode(data.Example{}, byteTok{}, single(2, 2), 1); err == nil {
		t.Fatal("max length 1: no error")
	}
}

func TestEncodeAll(t *testing.T) {
	tok := testTokenizer(t)
	exs := []data.Example{
		{Instruction: "What is 17+25?", Output: "42", Line: 1},
		{Instruction: strings.Repeat("very long instruction ", 40), Output: "ok", Line: 2},
		{Instruction: "Reverse the word: apple", Output: "elppa", Line: 3},
	}
	enc, st, err := EncodeAll(exs, tok, Alpaca{}, 48)
	if err != nil {
		t.Fatal(err)
	}
	if len(enc) != 3 || st.Examples != 3 || st.Skipped != 0 || st.PromptTruncated != 1 || st.CompletionTruncated != 0 {
		t.Fatalf("stats %+v", st)
	}
	if n := CountTargets(Batches(enc, 3, 48, 0, false)); n != st.Targets {
		t.Fatalf("batches have %d targets, stats %d", n, st.Targets)
	}
	// A bad example is an error naming its line.
	_, _, err = EncodeAll([]data.Example{{Instruction: "x", Line: 7}}, tok, Alpaca{}, 32)
	if err == nil || !strings.Contains(err.Error(), "line 7") {
		t.Fatalf("error %v, want one naming line 7", err)
	}
	// Examples with nothing to train on are skipped and counted.
	_, st, err = EncodeAll([]data.Example{{}, {}}, byteTok{}, rawTemplate{{Text: "abc"}}, 8)
	if err != nil || st.Skipped != 2 || st.Examples != 0 {
		t.Fatalf("stats %+v err %v", st, err)
	}
}

func TestPlain(t *testing.T) {
	tok := testTokenizer(t)
	for _, c := range []struct {
		ex             data.Example
		text, trained  string
		prompt, answer string
	}{
		{data.Example{Instruction: "What is 17+25?", Output: "42"},
			"What is 17+25?\n42<|endoftext|>", "42<|endoftext|>", "What is 17+25?\n", "42"},
		{data.Example{Instruction: "Say hello.", Input: "to the world", Output: "Hi"},
			"Say hello.\nto the world\nHi<|endoftext|>", "Hi<|endoftext|>", "Say hello.\nto the world\n", "Hi"},
		{data.Example{Messages: []data.Message{{Role: "system", Content: "Be brief."}, {Role: "user", Content: "a"},
			{Role: "assistant", Content: "b"}, {Role: "user", Content: "c"}, {Role: "assistant", Content: "d"}}},
			"Be brief.\na\nb<|endoftext|>c\nd<|endoftext|>", "b<|endoftext|>d<|endoftext|>", "Be brief.\na\nb<|endoftext|>c\n", "d"},
	} {
		ids, labels, err := Encode(c.ex, tok, Plain{}, 64)
		if err != nil {
			t.Fatal(err)
		}
		comp, _ := splitDecode(t, tok, ids, labels)
		if got := tok.Decode(ids); got != c.text || comp != c.trained {
			t.Fatalf("rendered %q trained %q, want %q and %q", got, comp, c.text, c.trained)
		}
		pieces, answer, err := Plain{}.Prompt(c.ex)
		if err != nil {
			t.Fatal(err)
		}
		p, _ := encodePieces(pieces, tok)
		if tok.Decode(p) != c.prompt || answer != c.answer {
			t.Fatalf("prompt %q answer %q, want %q and %q", tok.Decode(p), answer, c.prompt, c.answer)
		}
	}
}

func TestTemplateByName(t *testing.T) {
	for _, n := range []string{"chatml", "alpaca", "plain"} {
		tm, err := TemplateByName(n)
		if err != nil || tm.Name() != n {
			t.Fatalf("%s: %v %v", n, tm, err)
		}
	}
	if _, err := TemplateByName("llama3"); err == nil {
		t.Fatal("unknown template: no error")
	}
}
