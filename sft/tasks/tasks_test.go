package tasks

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/shoggo/shoggo/data"
)

func TestWords(t *testing.T) {
	seen := map[string]bool{}
	for _, w := range words {
		if seen[w] || len(w) < 3 || len(w) > 8 || strings.ToLower(w) != w {
			t.Fatalf("bad or repeated word %q", w)
		}
		seen[w] = true
	}
	if len(words) < 200 {
		t.Fatalf("%d words, want 200", len(words))
	}
}

func TestGenerateDeterministic(t *testing.T) {
	cfg := Config{Seed: 42, Train: 500, Test: 120}
	a1, b1, err := Generate(cfg)
	if err != nil {
		t.Fatal(err)
	}
	a2, b2, _ := Generate(cfg)
	if !reflect.DeepEqual(a1, a2) || !reflect.DeepEqual(b1, b2) {
		t.Fatal("same config, different examples")
	}
	if len(a1) != 500 || len(b1) != 120 {
		t.Fatalf("%d train, %d test", len(a1), len(b1))
	}
	a3, _, _ := Generate(Config{Seed: 43, Train: 500})
	if reflect.DeepEqual(a1, a3) {
		t.Fatal("different seeds, same examples")
	}
	// Pinned: the data must not change with Go versions or refactors.
	for i, want := range pinned {
		if got := a1[i].Instruction + " -> " + a1[i].Output; got != want {
			t.Fatalf("example %d is %q, pinned %q", i, got, want)
		}
	}
	if got := b1[0].Instruction + " -> " + b1[0].Output; got != pinnedTest {
		t.Fatalf("first test example %q, pinned %q", got, pinnedTest)
	}
}

// pinned are the first examples of Config{Seed: 42, ...}, one per task.
var pinned = []string{
	"What is 26+61? -> 87",
	"What is 61-44? -> 17",
	"Reverse the word: write -> etirw",
	"How many letters are in 'rice'? -> 4",
	"How many times does the letter 'a' appear in 'apple'? -> 1",
	"Sort these words alphabetically: wall, flame, autumn -> autumn, flame, wall",
}

const pinnedTest = "What is 91+45? -> 136"

func TestHeldOutDisjoint(t *testing.T) {
	trainQ := map[string]bool{}
	// Several seeds and sizes: no test question is ever a training question.
	var tests []data.Example
	for seed := uint64(0); seed < 4; seed++ {
		train, test, err := Generate(Config{Seed: seed, Train: 2000, Test: 300})
		if err != nil {
			t.Fatal(err)
		}
		for _, ex := range train {
			if HeldOut(ex.Instruction) {
				t.Fatalf("training question %q is held out", ex.Instruction)
			}
			trainQ[ex.Instruction] = true
		}
		tests = append(tests, test...)
	}
	for _, ex := range tests {
		if !HeldOut(ex.Instruction) || trainQ[ex.Instruction] {
			t.Fatalf("test question %q in the training split", ex.Instruction)
		}
	}
	// Held-out questions of one test set are distinct.
	_, test, _ := Generate(Config{Seed: 9, Tasks: []string{"add2"}, Test: 300})
	seen := map[string]bool{}
	for _, ex := range test {
		if seen[ex.Instruction] {
			t.Fatalf("repeated test question %q", ex.Instruction)
		}
		seen[ex.Instruction] = true
	}
	// About a tenth of all 2-digit additions are held out.
	n := 0
	for a := 10; a < 100; a++ {
		for b := 10; b < 100; b++ {
			if HeldOut("What is " + strconv.Itoa(a) + "+" + strconv.Itoa(b) + "?") {
				n++
			}
		}
	}
	if n < 700 || n > 920 {
		t.Fatalf("%d of 8100 additions held out, want about 810", n)
	}
}

func TestTasksAnswers(t *testing.T) {
	train, test, err := Generate(Config{Seed: 5, Train: 600, Test: 60})
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for _, ex := range append(train, test...) {
		name := Classify(ex.Instruction)
		counts[name]++
		a, ok := Answer(ex.Instruction)
		if !ok || a != ex.Output || ex.Input != "" || ex.IsChat() {
			t.Fatalf("%s: %q -> %q, Answer says %q", name, ex.Instruction, ex.Output, a)
		}
	}
	for _, n := range Names() {
		if counts[n] != 110 {
			t.Fatalf("task counts %v, want 110 each", counts)
		}
	}
	for _, c := range []struct{ q, a string }{
		{"What is 17+25?", "42"},
		{"What is 52-17?", "35"},
		{"Reverse the word: apple", "elppa"},
		{"How many letters are in 'banana'?", "6"},
		{"How many times does the letter 'a' appear in 'banana'?", "3"},
		{"Sort these words alphabetically: pear, fig, apple", "apple, fig, pear"},
	} {
		if a, ok := Answer(c.q); !ok || a != c.a {
			t.Errorf("Answer(%q) = %q, want %q", c.q, a, c.a)
		}
	}
	if _, ok := Answer("What is love?"); ok {
		t.Error("Answer of an unknown question")
	}
	// Subtraction never goes negative; operands are two-digit.
	for _, ex := range train {
		if Classify(ex.Instruction) == "sub2" && strings.HasPrefix(ex.Output, "-") {
			t.Fatalf("negative difference: %q -> %q", ex.Instruction, ex.Output)
		}
	}
}

func TestTaskFilter(t *testing.T) {
	train, test, err := Generate(Config{Seed: 1, Tasks: []string{"add2"}, Train: 100, Test: 20})
	if err != nil {
		t.Fatal(err)
	}
	for _, ex := range append(train, test...) {
		if Classify(ex.Instruction) != "add2" {
			t.Fatalf("filtered to add2, got %q", ex.Instruction)
		}
	}
	if _, _, err := Generate(Config{Tasks: []string{"add2", "multiply"}, Train: 1}); err == nil || !strings.Contains(err.Error(), "multiply") {
		t.Fatalf("unknown task: error %v", err)
	}
}

func TestWriteJSONL(t *testing.T) {
	train, _, err := Generate(Config{Seed: 2, Train: 30})
	if err != nil {
		t.Fatal(err)
	}
	train = append(train, data.Example{Instruction: "Say <hi> & \"bye\"", Input: "now", Output: "ok", Line: 31},
		data.Example{Messages: []data.Message{{Role: "user", Content: "hi"}, {Role: "assistant", Content: "hello"}}, Line: 32})
	path := filepath.Join(t.TempDir(), "train.jsonl")
	if err := WriteJSONL(path, train); err != nil {
		t.Fatal(err)
	}
	back, skipped, err := data.ReadInstructions(path, false)
	if err != nil || skipped != 0 {
		t.Fatalf("read back: %v (%d skipped)", err, skipped)
	}
	if !reflect.DeepEqual(back, train) {
		t.Fatalf("read back differs:\n%+v\n%+v", back[len(back)-2:], train[len(train)-2:])
	}
	raw, _ := os.ReadFile(path)
	if !strings.Contains(string(raw), `"Say <hi> & \"bye\""`) {
		t.Fatalf("HTML escaping in %s", raw)
	}
	if ents, _ := os.ReadDir(filepath.Dir(path)); len(ents) != 1 {
		t.Fatalf("%d files in the directory, want 1 (no temporary left)", len(ents))
	}
	if slices.ContainsFunc(train, func(e data.Example) bool { return e.Line == 0 }) {
		t.Fatal("example without a line number")
	}
}
