package align

import (
	"reflect"
	"strings"
	"testing"

	"github.com/shoggo/shoggo/data"
	"github.com/shoggo/shoggo/sft/tasks"
)

func TestJudge(t *testing.T) {
	cases := []struct {
		answer, completion     string
		correct, exact, format bool
	}{
		{"4", "4", true, true, true},
		{"4", " 4\n", true, true, false},
		{"4", "4\n", true, true, true},
		{"4", "The answer is 4, I think.", true, false, true},
		{"4", "42", false, false, true},
		{"4", "14", false, false, true},
		{"42", "It is 42\nsurely", true, false, false},
		{"elppa", "apple", false, false, true},
		{"apple, fig, pear", "apple, fig, pear", true, true, true},
		{"apple, fig, pear", "fig, apple, pear", false, false, true},
		{"4", "", false, false, true},
	}
	for _, c := range cases {
		v := Judge(c.answer, c.completion)
		if v.Correct != c.correct || v.Exact != c.exact || v.Format != c.format {
			t.Errorf("Judge(%q, %q) = %+v, want correct %v exact %v format %v", c.answer, c.completion, v, c.correct, c.exact, c.format)
		}
	}
}

func TestJudgeOrder(t *testing.T) {
	// The seed's example: "4" beats an essay that contains 4 and a wrong
	// answer; a shorter ramble beats a longer one.
	essay := "Let me think. Two plus two is a classic question; the answer is 4. Hope this helps!"
	for _, c := range []struct{ a, b string }{{"4", essay}, {"4", "5"}, {"4", "4 4"}, {"It is 4", essay}} {
		if Prefer("4", c.a, c.b) != 1 || Prefer("4", c.b, c.a) != -1 {
			t.Errorf("Prefer(4, %q, %q) = %d", c.a, c.b, Prefer("4", c.a, c.b))
		}
	}
	if Prefer("4", "4", "4") != 0 {
		t.Error("tie expected")
	}
}

func TestJudgeTask(t *testing.T) {
	v, err := JudgeTask("What is 17+25?", "42")
	if err != nil || !v.Exact || v.Score() != 1 {
		t.Errorf("%+v %v", v, err)
	}
	v, err = JudgeTask("How many times does the letter 'a' appear in 'banana'?", "Three: 3")
	if err != nil || !v.Correct || v.Exact {
		t.Errorf("%+v %v", v, err)
	}
	if _, err := JudgeTask("What is love?", "x"); err == nil || !strings.Contains(err.Error(), "What is love?") {
		t.Errorf("err = %v", err)
	}
}

func TestGeneratePreferences(t *testing.T) {
	cfg := PrefConfig{Seed: 3, Train: 300, Test: 60}
	tr, te, err := GeneratePreferences(cfg)
	if err != nil || len(tr) != 300 || len(te) != 60 {
		t.Fatal(len(tr), len(te), err)
	}
	ramble := 0
	for heldOut, ps := range map[bool][]data.Preference{false: tr, true: te} {
		for _, p := range ps {
			if tasks.HeldOut(p.Prompt) != heldOut {
				t.Errorf("%q in the wrong split", p.Prompt)
			}
			ans, ok := tasks.Answer(p.Prompt)
			if !ok || p.Chosen != ans {
				t.Errorf("%q: chosen %q, answer %q", p.Prompt, p.Chosen, ans)
			}
			v := Judge(ans, p.Rejected)
			if v.Exact {
				t.Errorf("%q: rejected %q is exact", p.Prompt, p.Rejected)
			}
			if v.Correct {
				ramble++
			}
		}
	}
	if n := len(tr) + len(te); ramble < n/3 || ramble > 2*n/3 {
		t.Errorf("%d of %d rejected are rambling, want about half", ramble, n)
	}
	tr2, _, _ := GeneratePreferences(cfg)
	for i := range tr {
		if !reflect.DeepEqual(tr[i], tr2[i]) {
			t.Fatalf("pair %d differs between runs", i)
		}
	}
}
