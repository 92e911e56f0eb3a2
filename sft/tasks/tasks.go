// Package tasks generates shoggo's default fine-tuning task: short
// instructions with exact, checkable answers.
//
//	add2     What is 17+25?                                          42
//	sub2     What is 52-17?                                          35
//	reverse  Reverse the word: apple                                 elppa
//	length   How many letters are in 'banana'?                       6
//	count    How many times does the letter 'a' appear in 'banana'?  3
//	sort     Sort these words alphabetically: pear, fig, apple       apple, fig, pear
//
// Operands of add2 and sub2 are 10..99 (sub2 never goes below 0); words come
// from an embedded list of 200 common English words; count asks for a
// letter of the word three times in four and for any letter otherwise (the
// answer may be 0); sort lists 3 or 4 distinct words.
//
// # Held-out split
//
// Whether a question is held out is a fixed property of its text:
// [HeldOut] hashes it (FNV-1a, 64 bits, finalised with SplitMix64) and holds
// out 1 question in [HeldOutDenominator]. Training examples are drawn only
// from the other questions and test examples only from the held-out ones,
// so no training set and no test set share a question, whatever the seeds
// and sizes. For add2 that is about 810 of the 8,100 questions.
package tasks

import (
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"math/bits"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"

	"github.com/shoggo/shoggo/data"
	"github.com/shoggo/shoggo/internal/atomicfile"
)

// HeldOutDenominator: one question in HeldOutDenominator is held out.
const HeldOutDenominator = 10

// A Task generates questions of one kind.
type Task struct {
	Name    string
	Example string // a sample question and answer, for help texts
	gen     func(r *rng) (question, answer string)
	match   func(question string) bool
}

// Tasks lists the tasks in a fixed order.
var Tasks = []Task{
	{Name: "add2", Example: "What is 17+25? -> 42", gen: genAdd, match: func(q string) bool { return arith(q, '+') }},
	{Name: "sub2", Example: "What is 52-17? -> 35", gen: genSub, match: func(q string) bool { return arith(q, '-') }},
	{Name: "reverse", Example: "Reverse the word: apple -> elppa", gen: genReverse, match: prefix(reversePrefix)},
	{Name: "length", Example: "How many letters are in 'banana'? -> 6", gen: genLength, match: prefix(lengthPrefix)},
	{Name: "count", Example: "How many times does the letter 'a' appear in 'banana'? -> 3", gen: genCount, match: prefix(countPrefix)},
	{Name: "sort", Example: "Sort these words alphabetically: pear, fig, apple -> apple, fig, pear", gen: genSort, match: prefix(sortPrefix)},
}

const (
	reversePrefix = "Reverse the word: "
	lengthPrefix  = "How many letters are in '"
	countPrefix   = "How many times does the letter '"
	sortPrefix    = "Sort these words alphabetically: "
)

// Names returns the task names in order.
func Names() []string {
	out := make([]string, len(Tasks))
	for i, t := range Tasks {
		out[i] = t.Name
	}
	return out
}

// Classify returns the name of the task that asks question, or "".
func Classify(question string) string {
	for _, t := range Tasks {
		if t.match(question) {
			return t.Name
		}
	}
	return ""
}

// Answer returns the correct answer to a question of one of the tasks, and
// false for a question of none.
func Answer(question string) (string, bool) {
	switch Classify(question) {
	case "add2", "sub2":
		body := strings.TrimSuffix(strings.TrimPrefix(question, "What is "), "?")
		i := strings.IndexAny(body, "+-")
		a, _ := strconv.Atoi(body[:i])
		b, _ := strconv.Atoi(body[i+1:])
		if body[i] == '+' {
			return strconv.Itoa(a + b), true
		}
		return strconv.Itoa(a - b), true
	case "reverse":
		return reverse(strings.TrimPrefix(question, reversePrefix)), true
	case "length":
		w := strings.TrimSuffix(strings.TrimPrefix(question, lengthPrefix), "'?")
		return strconv.Itoa(len(w)), true
	case "count":
		rest := strings.TrimPrefix(question, countPrefix)
		letter := rest[:1]
		w := strings.TrimSuffix(strings.TrimPrefix(rest[1:], "' appear in '"), "'?")
		return strconv.Itoa(strings.Count(w, letter)), true
	case "sort":
		ws := strings.Split(strings.TrimPrefix(question, sortPrefix), ", ")
		slices.Sort(ws)
		return strings.Join(ws, ", "), true
	}
	return "", false
}

// HeldOut reports whether question belongs to the held-out (test) split.
func HeldOut(question string) bool {
	h := fnv.New64a()
	h.Write([]byte(question))
	return splitmix(h.Sum64())%HeldOutDenominator == 0
}

func splitmix(z uint64) uint64 {
	z += 0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// Config says what Generate makes.
type Config struct {
	Seed  uint64
	Tasks []string // task names; empty means all
	Train int      // training examples
	Test  int      // held-out examples
}

// Generate returns Train training and Test held-out examples in the Alpaca
// form (the question is the Instruction, the answer the Output, Input is
// empty; Line is the 1-based position, as WriteJSONL writes them). Tasks
// take turns (example i is of task i mod len(tasks)), so the mix is exact.
// The result depends only on cfg. Training examples may repeat; held-out
// examples are distinct while the task's held-out questions last (a
// question is redrawn up to 100 times to avoid a repeat). Questions of the
// two splits never coincide (see HeldOut).
func Generate(cfg Config) (train, test []data.Example, err error) {
	sel, err := selectTasks(cfg.Tasks)
	if err != nil {
		return nil, nil, err
	}
	if cfg.Train < 0 || cfg.Test < 0 {
		return nil, nil, fmt.Errorf("tasks: negative count (train %d, test %d)", cfg.Train, cfg.Test)
	}
	train, err = draw(sel, cfg.Train, newRNG(cfg.Seed, 1), false)
	if err != nil {
		return nil, nil, err
	}
	test, err = draw(sel, cfg.Test, newRNG(cfg.Seed, 2), true)
	if err != nil {
		return nil, nil, err
	}
	return train, test, nil
}

func selectTasks(names []string) ([]*Task, error) {
	if len(names) == 0 {
		names = Names()
	}
	var sel []*Task
	seen := map[string]bool{}
	for _, n := range names {
		n = strings.TrimSpace(n)
		if seen[n] {
			continue
		}
		seen[n] = true
		i := slices.IndexFunc(Tasks, func(t Task) bool { return t.Name == n })
		if i < 0 {
			return nil, fmt.Errorf("tasks: unknown task %q (known: %s)", n, strings.Join(Names(), ", "))
		}
		sel = append(sel, &Tasks[i])
	}
	return sel, nil
}

// maxDraws bounds the draws for one example: a task whose split had no
// question at all would otherwise loop for ever.
const maxDraws = 100_000

func draw(sel []*Task, n int, r *rng, heldOut bool) ([]data.Example, error) {
	out := make([]data.Example, 0, n)
	seen := map[string]bool{}
	for i := 0; i < n; i++ {
		t := sel[i%len(sel)]
		var q, a string
		repeats := 0
		for k := 0; ; k++ {
			if k == maxDraws {
				return nil, fmt.Errorf("tasks: %s: no question found for the %s split", t.Name, splitName(heldOut))
			}
			q, a = t.gen(r)
			if HeldOut(q) != heldOut {
				continue
			}
			if heldOut && seen[q] && repeats < 100 {
				repeats++
				continue
			}
			break
		}
		seen[q] = true
		out = append(out, data.Example{Instruction: q, Output: a, Line: i + 1})
	}
	return out, nil
}

func splitName(heldOut bool) string {
	if heldOut {
		return "held-out"
	}
	return "training"
}

func genAdd(r *rng) (string, string) {
	a, b := 10+r.intn(90), 10+r.intn(90)
	return fmt.Sprintf("What is %d+%d?", a, b), strconv.Itoa(a + b)
}

func genSub(r *rng) (string, string) {
	a := 10 + r.intn(90)
	b := 10 + r.intn(a-9)
	return fmt.Sprintf("What is %d-%d?", a, b), strconv.Itoa(a - b)
}

func genReverse(r *rng) (string, string) {
	w := words[r.intn(len(words))]
	return reversePrefix + w, reverse(w)
}

func genLength(r *rng) (string, string) {
	w := words[r.intn(len(words))]
	return lengthPrefix + w + "'?", strconv.Itoa(len(w))
}

func genCount(r *rng) (string, string) {
	w := words[r.intn(len(words))]
	var c byte
	if r.intn(4) < 3 {
		c = w[r.intn(len(w))]
	} else {
		c = byte('a' + r.intn(26))
	}
	return countPrefix + string(c) + "' appear in '" + w + "'?", strconv.Itoa(strings.Count(w, string(c)))
}

func genSort(r *rng) (string, string) {
	n := 3 + r.intn(2)
	ws := make([]string, 0, n)
	for len(ws) < n {
		w := words[r.intn(len(words))]
		if !slices.Contains(ws, w) {
			ws = append(ws, w)
		}
	}
	q := sortPrefix + strings.Join(ws, ", ")
	slices.Sort(ws)
	return q, strings.Join(ws, ", ")
}

func reverse(s string) string {
	b := []byte(s)
	slices.Reverse(b)
	return string(b)
}

func arith(q string, op byte) bool {
	body, ok := strings.CutPrefix(q, "What is ")
	if !ok {
		return false
	}
	body, ok = strings.CutSuffix(body, "?")
	if !ok {
		return false
	}
	a, b, ok := strings.Cut(body, string(op))
	if !ok {
		return false
	}
	_, e1 := strconv.Atoi(a)
	_, e2 := strconv.Atoi(b)
	return e1 == nil && e2 == nil
}

func prefix(p string) func(string) bool {
	return func(q string) bool { return strings.HasPrefix(q, p) }
}

// rng draws bounded integers from PCG directly (Lemire's method), so that
// the generated data depends only on PCG's output, which math/rand/v2
// specifies.
type rng struct{ g *rand.PCG }

func newRNG(seed, stream uint64) *rng { return &rng{rand.NewPCG(seed, stream)} }

func (r *rng) intn(n int) int {
	un := uint64(n)
	hi, lo := bits.Mul64(r.g.Uint64(), un)
	if lo < un {
		thresh := -un % un
		for lo < thresh {
			hi, lo = bits.Mul64(r.g.Uint64(), un)
		}
	}
	return int(hi)
}

// WriteJSONL writes examples to path, one JSON object per line: Alpaca
// examples as {"instruction", "input", "output"}, chat examples as
// {"messages": [{"role", "content"}, ...]}, readable by
// data.ReadInstructions. The file is written atomically (temporary file,
// fsync, rename).
func WriteJSONL(path string, examples []data.Example) error {
	if len(examples) == 0 {
		return errors.New("tasks: no examples to write")
	}
	type alpaca struct {
		Instruction string `json:"instruction"`
		Input       string `json:"input"`
		Output      string `json:"output"`
	}
	type chat struct {
		Messages []data.Message `json:"messages"`
	}
	return atomicfile.Write(path, 0o644, func(w io.Writer) error {
		enc := json.NewEncoder(w)
		enc.SetEscapeHTML(false)
		for _, ex := range examples {
			var err error
			if ex.IsChat() {
				err = enc.Encode(chat{ex.Messages})
			} else {
				err = enc.Encode(alpaca{ex.Instruction, ex.Input, ex.Output})
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
}
