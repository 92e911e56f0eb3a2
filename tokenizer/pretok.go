package tokenizer

import (
	"sync"
	"unicode"
	"unicode/utf8"
)

// Pre-tokenizer scanners. Each one is a hand-written equivalent of a regular expression used by
// Hugging Face `tokenizers` (Oniguruma semantics: leftmost-first alternation, greedy
// quantifiers with backtracking). A scanner is a function that, given a position i < len(s),
// returns the end of the match that starts at i. The patterns below match every non-empty
// input at every position, so splitting is simply repeated scanning.

// The regex strings this package recognises in a tokenizer.json.
const (
	// PatternGPT2 is GPT-2's pattern, also the built-in pattern of the ByteLevel pre-tokenizer.
	PatternGPT2 = `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
	// PatternQwen2 is the Qwen2/Qwen2.5/Qwen3 pattern (one digit per piece).
	PatternQwen2 = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	// PatternLlama3 is the Llama 3 / cl100k-style pattern (up to three digits per piece).
	PatternLlama3 = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
)

// Character classes as the patterns see them.
const (
	clsOther   uint8 = iota // [^\s\p{L}\p{N}]
	clsLetter               // \p{L}
	clsNumber               // \p{N}
	clsSpace                // \s other than \r and \n
	clsNewline              // \r or \n
)

var (
	asciiClass [128]uint8
	bmpOnce    sync.Once
	bmpClass   []uint8 // class of every rune below 0x10000, built on first use
)

func init() {
	for c := 0; c < 128; c++ {
		asciiClass[c] = classOfRune(rune(c))
	}
}

func classOfRune(r rune) uint8 {
	switch {
	case r == '\r' || r == '\n':
		return clsNewline
	case unicode.IsSpace(r): // Unicode White_Space, the same set as Oniguruma's \s
		return clsSpace
	case unicode.IsLetter(r):
		return clsLetter
	case unicode.IsNumber(r):
		return clsNumber
	}
	return clsOther
}

func buildClassTables() {
	bmpOnce.Do(func() {
		t := make([]uint8, 0x10000)
		for r := 0; r < 0x10000; r++ {
			t[r] = classOfRune(rune(r))
		}
		bmpClass = t
	})
}

// classAt returns the class and byte width of the rune at s[i]. An invalid UTF-8 byte is
// treated as a one-byte rune of class other.
func classAt(s string, i int) (uint8, int) {
	c := s[i]
	if c < utf8.RuneSelf {
		return asciiClass[c], 1
	}
	r, n := utf8.DecodeRuneInString(s[i:])
	if r < 0x10000 {
		if r == utf8.RuneError && n == 1 {
			return clsOther, 1
		}
		return bmpClass[r], n
	}
	return classOfRune(r), n
}

// runEnd returns the end of the run of runes of class cls starting at i.
func runEnd(s string, i int, cls uint8) int {
	for i < len(s) {
		c, n := classAt(s, i)
		if c != cls {
			break
		}
		i += n
	}
	return i
}

// contraction returns the length of a contraction suffix ('s 't 're 've 'm 'll 'd, after the
// apostrophe at s[i-1]) starting at s[i], or 0. With fold, letters match case-insensitively
// under Unicode simple case folding, so "ſ" (U+017F) matches s, as in Oniguruma.
func contraction(s string, i int, fold bool) int {
	if i >= len(s) {
		return 0
	}
	lower := func(c byte) byte {
		if fold && c >= 'A' && c <= 'Z' {
			return c + 'a' - 'A'
		}
		return c
	}
	switch lower(s[i]) {
	case 's', 't', 'm', 'd':
		return 1
	case 'r', 'v':
		if i+1 < len(s) && lower(s[i+1]) == 'e' {
			return 2
		}
	case 'l':
		if i+1 < len(s) && lower(s[i+1]) == 'l' {
			return 2
		}
	case 0xC5:
		if fold && i+1 < len(s) && s[i+1] == 0xBF { // U+017F LATIN SMALL LETTER LONG S
			return 2
		}
	}
	return 0
}

// whitespace handles the whitespace alternatives shared by both patterns, at a whitespace rune
// at i. With newlines (Qwen/Llama 3), `\s*[\r\n]+` comes first: it ends after the last \r or \n
// of the whitespace run. Then `\s+(?!\S)`: the whole run at the end of the text, else the run
// less its last rune when that leaves at least one rune. Then `\s+`: the whole (one-rune) run.
func whitespace(s string, i int, newlines bool) int {
	j, lastNL, prev, runes := i, -1, i, 0
	for j < len(s) {
		c, n := classAt(s, j)
		if c != clsSpace && c != clsNewline {
			break
		}
		if c == clsNewline {
			lastNL = j
		}
		prev = j
		j += n
		runes++
	}
	if newlines && lastNL >= 0 {
		return lastNL + 1
	}
	if j == len(s) || runes < 2 {
		return j
	}
	return prev
}

// scanGPT2 matches PatternGPT2 at s[i].
func scanGPT2(s string, i int) int {
	if s[i] == '\'' {
		if n := contraction(s, i+1, false); n > 0 {
			return i + 1 + n
		}
	}
	c, n := classAt(s, i)
	if s[i] == ' ' && i+1 < len(s) {
		if c2, n2 := classAt(s, i+1); c2 == clsLetter || c2 == clsNumber || c2 == clsOther {
			return runEnd(s, i+1+n2, c2)
		}
	}
	switch c {
	case clsLetter, clsNumber, clsOther:
		return runEnd(s, i+n, c)
	}
	return whitespace(s, i, false)
}

// scanQwen matches PatternQwen2 (maxDigits 1) or PatternLlama3 (maxDigits 3) at s[i].
func scanQwen(s string, i int, maxDigits int) int {
	if s[i] == '\'' {
		if n := contraction(s, i+1, true); n > 0 {
			return i + 1 + n
		}
	}
	c, n := classAt(s, i)
	switch c {
	case clsLetter: // [^\r\n\p{L}\p{N}]?\p{L}+ with an empty prefix
		return runEnd(s, i+n, clsLetter)
	case clsNumber: // \p{N}{1,maxDigits}
		j := i + n
		for k := 1; k < maxDigits && j < len(s); k++ {
			c2, n2 := classAt(s, j)
			if c2 != clsNumber {
				break
			}
			j += n2
		}
		return j
	case clsOther, clsSpace:
		// [^\r\n\p{L}\p{N}]?\p{L}+ with a one-rune prefix
		if i+n < len(s) {
			if c2, n2 := classAt(s, i+n); c2 == clsLetter {
				return runEnd(s, i+n+n2, clsLetter)
			}
		}
		// ` ?[^\s\p{L}\p{N}]+[\r\n]*`
		j := i
		if s[i] == ' ' {
			j++
		}
		if j < len(s) {
			if c2, n2 := classAt(s, j); c2 == clsOther {
				j = runEnd(s, j+n2, clsOther)
				for j < len(s) && (s[j] == '\r' || s[j] == '\n') {
					j++
				}
				return j
			}
		}
	}
	return whitespace(s, i, true)
}

// preTokenizer splits text into pieces.
type preTokenizer struct {
	kind      int // preGPT2 or preQwen
	maxDigits int
	pattern   string // the regex string it implements
}

const (
	preGPT2 = iota
	preQwen
)

func preTokenizerFor(pattern string) (preTokenizer, bool) {
	switch pattern {
	case PatternGPT2:
		return preTokenizer{kind: preGPT2, pattern: pattern}, true
	case PatternQwen2:
		return preTokenizer{kind: preQwen, maxDigits: 1, pattern: pattern}, true
	case PatternLlama3:
		return preTokenizer{kind: preQwen, maxDigits: 3, pattern: pattern}, true
	}
	return preTokenizer{}, false
}

// next returns the end of the piece starting at s[i].
func (p *preTokenizer) next(s string, i int) int {
	if p.kind == preGPT2 {
		return scanGPT2(s, i)
	}
	return scanQwen(s, i, p.maxDigits)
}

// split returns the pieces of s (for tests and tools; encoding scans without allocating).
func (p *preTokenizer) split(s string) []string {
	buildClassTables()
	var out []string
	for i := 0; i < len(s); {
		j := p.next(s, i)
		out = append(out, s[i:j])
		i = j
	}
	return out
}
