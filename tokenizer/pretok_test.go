package tokenizer

import (
	"slices"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// A tiny backtracking regex engine, enough to express the three pre-tokenizer patterns
// directly (alternation, greedy quantifiers, classes, case-folded literals, negative lookahead),
// used as an independent reference for the hand-written scanners.

type rnode interface {
	// match tries to match at rs[i] and calls k with each possible end, in priority order,
	// stopping at the first k that returns true.
	match(rs []rune, i int, k func(int) bool) bool
}

type rclass func(rune) bool

func (c rclass) match(rs []rune, i int, k func(int) bool) bool {
	return i < len(rs) && c(rs[i]) && k(i+1)
}

type rlit struct {
	s    []rune
	fold bool
}

func (l rlit) match(rs []rune, i int, k func(int) bool) bool {
	for j, r := range l.s {
		if i+j >= len(rs) {
			return false
		}
		if c := rs[i+j]; c != r && !(l.fold && strings.EqualFold(string(c), string(r))) {
			return false
		}
	}
	return k(i + len(l.s))
}

type rseq []rnode

func (s rseq) match(rs []rune, i int, k func(int) bool) bool {
	if len(s) == 0 {
		return k(i)
	}
	return s[0].match(rs, i, func(j int) bool { return s[1:].match(rs, j, k) })
}

type ralt []rnode

func (a ralt) match(rs []rune, i int, k func(int) bool) bool {
	for _, n := range a {
		if n.match(rs, i, k) {
			return true
		}
	}
	return false
}

// rrep is n{min,max} (max < 0: unbounded), greedy.
type rrep struct {
	n        rnode
	min, max int
}

func (r rrep) match(rs []rune, i int, k func(int) bool) bool {
	var try func(i, count int) bool
	try = func(i, count int) bool {
		if r.max < 0 || count < r.max {
			if r.n.match(rs, i, func(j int) bool { return j > i && try(j, count+1) }) {
				return true
			}
		}
		return count >= r.min && k(i)
	}
	return try(i, 0)
}

// rnotAhead is (?!c): not followed by a rune of class c.
type rnotAhead rclass

func (n rnotAhead) match(rs []rune, i int, k func(int) bool) bool {
	if i < len(rs) && n(rs[i]) {
		return false
	}
	return k(i)
}

var (
	pL      = rclass(unicode.IsLetter)
	pN      = rclass(unicode.IsNumber)
	pS      = rclass(unicode.IsSpace)
	pNotS   = func(r rune) bool { return !unicode.IsSpace(r) }
	pOther  = rclass(func(r rune) bool { return !unicode.IsSpace(r) && !unicode.IsLetter(r) && !unicode.IsNumber(r) })
	pCRLF   = rclass(func(r rune) bool { return r == '\r' || r == '\n' })
	pPrefix = rclass(func(r rune) bool { return r != '\r' && r != '\n' && !unicode.IsLetter(r) && !unicode.IsNumber(r) })
	space   = rlit{s: []rune(" ")}
)

func lits(fold bool, ss ...string) ralt {
	var a ralt
	for _, s := range ss {
		a = append(a, rlit{[]rune(s), fold})
	}
	return a
}

func plus(n rnode) rnode { return rrep{n, 1, -1} }
func star(n rnode) rnode { return rrep{n, 0, -1} }
func opt(n rnode) rnode  { return rrep{n, 0, 1} }

var contractions = []string{"'s", "'t", "'re", "'ve", "'m", "'ll", "'d"}

// PatternGPT2
var refGPT2 = ralt{
	lits(false, contractions...),
	rseq{opt(space), plus(pL)},
	rseq{opt(space), plus(pN)},
	rseq{opt(space), plus(pOther)},
	rseq{plus(pS), rnotAhead(pNotS)},
	plus(pS),
}

// PatternQwen2 (digits 1) and PatternLlama3 (digits 3)
func refQwen(digits int) ralt {
	return ralt{
		lits(true, contractions...),
		rseq{opt(pPrefix), plus(pL)},
		rrep{pN, 1, digits},
		rseq{opt(space), plus(pOther), star(pCRLF)},
		rseq{star(pS), plus(pCRLF)},
		rseq{plus(pS), rnotAhead(pNotS)},
		plus(pS),
	}
}

// refSplit splits like Hugging Face's Split(pattern, Isolated): matches and the gaps between
// them are pieces.
func refSplit(re rnode, s string) []string {
	rs := []rune(s)
	var out []string
	gap := 0
	for i := 0; i < len(rs); {
		end := -1
		re.match(rs, i, func(j int) bool {
			if j > i {
				end = j
				return true
			}
			return false
		})
		if end < 0 {
			i++
			continue
		}
		if gap < i {
			out = append(out, string(rs[gap:i]))
		}
		out = append(out, string(rs[i:end]))
		i, gap = end, end
	}
	if gap < len(rs) {
		out = append(out, string(rs[gap:]))
	}
	return out
}

var scannerCases = []string{
	"", " ", "  ", "a", "Hello, world!", "I'LL DON'T 'ſ 'Sup x'ſt", "a  \n\n  b   c  ",
	"  123 ((hello \u00a0\u00a0x", "x\r\n\r\n\t y!!\n\nz", "ab  ", "don't you're we've", "'s'S'ſ''",
	"12345 ٣٤٥ ９８７", " 1 22 333 4444", "\t\tx", " \n", "\n ", " !x", " !!\n\n x", "😀😀 😀x",
	"e\u0301 \u0301x", "  \u3000x", "a\u2028b", "x\u0085y", "a'", "'",
}

func checkScanner(t *testing.T, name string, p preTokenizer, ref rnode, s string) {
	t.Helper()
	got := p.split(s)
	want := refSplit(ref, s)
	if !slices.Equal(got, want) {
		t.Fatalf("%s %q:\n got  %q\n want %q", name, s, got, want)
	}
}

func scanners() []struct {
	name string
	p    preTokenizer
	ref  rnode
} {
	g, _ := preTokenizerFor(PatternGPT2)
	q, _ := preTokenizerFor(PatternQwen2)
	l, _ := preTokenizerFor(PatternLlama3)
	return []struct {
		name string
		p    preTokenizer
		ref  rnode
	}{{"gpt2", g, refGPT2}, {"qwen2", q, refQwen(1)}, {"llama3", l, refQwen(3)}}
}

func TestScannersAgainstReference(t *testing.T) {
	for _, sc := range scanners() {
		for _, s := range scannerCases {
			checkScanner(t, sc.name, sc.p, sc.ref, s)
		}
	}
}

func FuzzPreTokenizers(f *testing.F) {
	for _, s := range scannerCases {
		f.Add(s)
	}
	scs := scanners()
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) || len(s) > 200 {
			return
		}
		for _, sc := range scs {
			checkScanner(t, sc.name, sc.p, sc.ref, s)
		}
	})
}

func TestScannerInvalidUTF8(t *testing.T) {
	for _, sc := range scanners() {
		s := "ab\xff\xfe cd\xc3"
		if got := strings.Join(sc.p.split(s), ""); got != s {
			t.Errorf("%s: pieces do not cover the input: %q", sc.name, got)
		}
	}
}
