package tokenizer

import (
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// AddedToken is a token matched in the input text before any other processing (Hugging Face's
// added_tokens). Special tokens are the control tokens such as <|endoftext|> or <|im_start|>.
type AddedToken struct {
	ID         int32
	Content    string
	Special    bool // a control token (Hugging Face skips these when decoding with skip_special_tokens)
	SingleWord bool // match only when not inside a word
	LStrip     bool // the match swallows the whitespace on its left
	RStrip     bool // the match swallows the whitespace on its right
	Normalized bool // matched against the normalized text rather than the raw input
}

// Tokenizer is a byte-level BPE tokenizer. It is safe for concurrent use.
type Tokenizer struct {
	tokens  []string // id -> token as stored in tokenizer.json ("" for an unused id)
	bytesOf [][]byte // id -> the bytes the token decodes to (nil for an unused id)
	vocab   map[string]int32
	byteID  [256]int32 // id of each single-byte token, -1 when missing
	merges  *mergeTable
	// mergeList holds the merges in rank order, for Save.
	mergeList   [][2]int32
	mergePairs  bool // tokenizer.json stored merges as ["a","b"] pairs
	modelVocab  int  // number of entries in the model vocabulary
	ignoreMerge bool
	wordID      map[string]int32 // raw bytes -> id; only with ignoreMerge
	unkID       int32
	fuseUnk     bool

	added          []AddedToken
	addedByID      map[int32]int
	addedByContent map[string]int
	rawMatch       *addedMatcher // tokens matched on the raw text
	normMatch      *addedMatcher // tokens matched on the normalized text

	nfc         bool
	pre         preTokenizer
	prefixSpace int // prefixNone, prefixSegment or prefixPiece
	useRegex    bool
	postByte    bool // a ByteLevel post-processor was present (kept by Save)

	eos, bos, pad int32

	encoders sync.Pool
}

const (
	prefixNone    = iota
	prefixSegment // ByteLevel(add_prefix_space, use_regex): a space before each segment, then split
	prefixPiece   // Split then ByteLevel(add_prefix_space): a space before each piece
)

// cacheEntries bounds each encoder's word cache; the cache is cleared when it fills up.
const cacheEntries = 1 << 16

// maxCachedWord is the longest piece (in bytes) that is cached.
const maxCachedWord = 256

type encoder struct {
	t     *Tokenizer
	cache map[string][]int32
	arena []int32
	syms  []int32
	sc    bpeScratch
}

func (t *Tokenizer) getEncoder() *encoder {
	if e, ok := t.encoders.Get().(*encoder); ok {
		return e
	}
	return &encoder{t: t, cache: make(map[string][]int32, 1024)}
}

func (t *Tokenizer) putEncoder(e *encoder) { t.encoders.Put(e) }

// Encode returns the token ids of s. Added tokens (special or not) found in s are matched
// first, leftmost-longest, and emitted as their ids; the text between them is normalized,
// pre-tokenized and BPE-merged. This is what Hugging Face's Tokenizer.encode(s).ids returns.
// Bytes of invalid UTF-8 are encoded as bytes.
func (t *Tokenizer) Encode(s string) []int32 { return t.AppendEncode(nil, s) }

// AppendEncode appends the ids of s (as Encode) to dst.
func (t *Tokenizer) AppendEncode(dst []int32, s string) []int32 {
	e := t.getEncoder()
	dst = e.encode(dst, s, true)
	t.putEncoder(e)
	return dst
}

// EncodeOrdinary returns the ids of s treating all of it as ordinary text: no added or special
// token is matched, so "<|endoftext|>" in s becomes the ids of its characters.
func (t *Tokenizer) EncodeOrdinary(s string) []int32 {
	e := t.getEncoder()
	dst := e.encode(nil, s, false)
	t.putEncoder(e)
	return dst
}

// EncodeBatch encodes texts (as Encode) on threads goroutines (GOMAXPROCS when threads <= 0).
func (t *Tokenizer) EncodeBatch(texts []string, threads int) [][]int32 {
	out := make([][]int32, len(texts))
	if threads <= 0 {
		threads = runtime.GOMAXPROCS(0)
	}
	if threads > len(texts) {
		threads = len(texts)
	}
	if threads <= 1 {
		e := t.getEncoder()
		for i, s := range texts {
			out[i] = e.encode(make([]int32, 0, len(s)/3+8), s, true)
		}
		t.putEncoder(e)
		return out
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < threads; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e := t.getEncoder()
			defer t.putEncoder(e)
			for {
				i := int(next.Add(1) - 1)
				if i >= len(texts) {
					return
				}
				out[i] = e.encode(make([]int32, 0, len(texts[i])/3+8), texts[i], true)
			}
		}()
	}
	wg.Wait()
	return out
}

func (e *encoder) encode(dst []int32, s string, withAdded bool) []int32 {
	if withAdded && e.t.rawMatch != nil {
		return e.splitAdded(dst, s, e.t.rawMatch, true)
	}
	return e.encodeNormalized(dst, s, withAdded)
}

// splitAdded finds the added tokens of m in s (Hugging Face's AddedVocabulary::find_matches)
// and encodes the text around them: with raw, through normalization, otherwise directly.
func (e *encoder) splitAdded(dst []int32, s string, m *addedMatcher, raw bool) []int32 {
	t := e.t
	start, pos := 0, 0
	for {
		st, en, k := m.find(s, pos)
		if k < 0 {
			break
		}
		pos = en
		tok := &t.added[k]
		if tok.SingleWord {
			startOK := st == 0 || !endsWithWord(s[:st])
			stopOK := en == len(s) || !startsWithWord(s[en:])
			if !startOK || !stopOK {
				continue
			}
		}
		if tok.LStrip {
			st = max(len(strings.TrimRightFunc(s[:st], unicode.IsSpace)), start)
		}
		if tok.RStrip {
			en = len(s) - len(strings.TrimLeftFunc(s[en:], unicode.IsSpace))
		}
		if start < st {
			dst = e.segment(dst, s[start:st], raw)
		}
		dst = append(dst, tok.ID)
		start = en
	}
	if start < len(s) {
		dst = e.segment(dst, s[start:], raw)
	}
	return dst
}

func (e *encoder) segment(dst []int32, s string, raw bool) []int32 {
	if raw {
		return e.encodeNormalized(dst, s, true)
	}
	return e.encodeText(dst, s)
}

func isWordRune(r rune) bool {
	return unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r) ||
		unicode.Is(unicode.Pc, r) || unicode.Is(unicode.Nl, r) || r == 0x200C || r == 0x200D || unicode.In(r, unicode.Other_Alphabetic)
}

func endsWithWord(s string) bool {
	r, _ := utf8.DecodeLastRuneInString(s)
	return s != "" && isWordRune(r)
}

func startsWithWord(s string) bool {
	r, _ := utf8.DecodeRuneInString(s)
	return s != "" && isWordRune(r)
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

func (e *encoder) encodeNormalized(dst []int32, s string, withAdded bool) []int32 {
	t := e.t
	if t.nfc && !isASCII(s) && !norm.NFC.IsNormalString(s) {
		s = norm.NFC.String(s)
	}
	if withAdded && t.normMatch != nil {
		return e.splitAdded(dst, s, t.normMatch, false)
	}
	return e.encodeText(dst, s)
}

// encodeText pre-tokenizes normalized text and BPE-encodes each piece.
func (e *encoder) encodeText(dst []int32, s string) []int32 {
	t := e.t
	if s == "" {
		return dst
	}
	if t.prefixSpace == prefixSegment && s[0] != ' ' {
		s = " " + s
	}
	for i := 0; i < len(s); {
		j := t.pre.next(s, i)
		w := s[i:j]
		if t.prefixSpace == prefixPiece && w[0] != ' ' {
			w = " " + w
		}
		dst = e.word(dst, w)
		i = j
	}
	return dst
}

// word appends the ids of one pre-tokenized piece.
func (e *encoder) word(dst []int32, w string) []int32 {
	t := e.t
	if len(w) == 1 {
		if id := t.byteID[w[0]]; id >= 0 {
			return append(dst, id)
		}
	}
	if ids, ok := e.cache[w]; ok {
		return append(dst, ids...)
	}
	n := len(dst)
	dst = e.bpe(dst, w)
	if len(w) <= maxCachedWord {
		if len(e.cache) >= cacheEntries {
			clear(e.cache)
		}
		k := len(dst) - n
		if len(e.arena)+k > cap(e.arena) {
			e.arena = make([]int32, 0, max(4096, k))
		}
		m := len(e.arena)
		e.arena = append(e.arena, dst[n:]...)
		e.cache[strings.Clone(w)] = e.arena[m : m+k : m+k]
	}
	return dst
}

// bpe appends the BPE ids of the bytes of w.
func (e *encoder) bpe(dst []int32, w string) []int32 {
	t := e.t
	if t.ignoreMerge {
		if id, ok := t.wordID[w]; ok {
			return append(dst, id)
		}
	}
	syms := e.syms[:0]
	for i := 0; i < len(w); i++ {
		id := t.byteID[w[i]]
		if id < 0 {
			if t.unkID < 0 {
				continue // Hugging Face drops symbols it cannot map when there is no unk token
			}
			if t.fuseUnk && len(syms) > 0 && syms[len(syms)-1] == t.unkID {
				continue
			}
			id = t.unkID
		}
		syms = append(syms, id)
	}
	e.syms = syms
	syms = t.merges.mergeWord(syms, &e.sc)
	return append(dst, syms...)
}

// Decode returns the text of ids: the bytes of each token concatenated. Added tokens decode
// to their content. (Hugging Face passes added tokens through the ByteLevel decoder as well,
// which garbles one whose content has non-ASCII Latin-1 letters, such as "café"; for ASCII
// tokens like <|im_end|> the two agree.) Unknown ids are skipped. A sequence that ends inside a multi-byte character
// returns its bytes as they are (Hugging Face would replace them with U+FFFD); apply
// strings.ToValidUTF8 for that behaviour.
func (t *Tokenizer) Decode(ids []int32) string { return string(t.AppendDecode(nil, ids)) }

// AppendDecode appends the bytes of ids to dst (see Decode).
func (t *Tokenizer) AppendDecode(dst []byte, ids []int32) []byte {
	for _, id := range ids {
		if id >= 0 && int(id) < len(t.bytesOf) {
			dst = append(dst, t.bytesOf[id]...)
		}
	}
	return dst
}

// TokenToID returns the id of a token written as in tokenizer.json (byte-level form, such as
// "Ġthe" for " the", or an added token's content).
func (t *Tokenizer) TokenToID(token string) (int32, bool) {
	if k, ok := t.addedByContent[token]; ok {
		return t.added[k].ID, true
	}
	id, ok := t.vocab[token]
	return id, ok
}

// IDToToken returns the token of id as written in tokenizer.json.
func (t *Tokenizer) IDToToken(id int32) (string, bool) {
	if id < 0 || int(id) >= len(t.tokens) || t.bytesOf[id] == nil {
		return "", false
	}
	return t.tokens[id], true
}

// TokenBytes returns the bytes id decodes to (nil for an unknown id). Do not modify them.
func (t *Tokenizer) TokenBytes(id int32) []byte {
	if id < 0 || int(id) >= len(t.bytesOf) {
		return nil
	}
	return t.bytesOf[id]
}

// VocabSize returns the size of the id space: the largest id plus one, added tokens included.
// (A model's embedding table may be larger.)
func (t *Tokenizer) VocabSize() int { return len(t.tokens) }

// AddedTokens returns a copy of the added tokens, in tokenizer.json order.
func (t *Tokenizer) AddedTokens() []AddedToken { return append([]AddedToken(nil), t.added...) }

// IsSpecial reports whether id is a special added token.
func (t *Tokenizer) IsSpecial(id int32) bool {
	k, ok := t.addedByID[id]
	return ok && t.added[k].Special
}

// EOS returns the end-of-sequence id, or -1 if unknown. It comes from eos_token in a
// tokenizer_config.json next to tokenizer.json; without one, <|endoftext|> when present.
func (t *Tokenizer) EOS() int32 { return t.eos }

// BOS returns the beginning-of-sequence id, or -1 if unknown (from bos_token, as EOS).
func (t *Tokenizer) BOS() int32 { return t.bos }

// PAD returns the padding id, or -1 if unknown (from pad_token, as EOS).
func (t *Tokenizer) PAD() int32 { return t.pad }

// addedMatcher finds added tokens: leftmost match, longest at that position (Aho-Corasick
// LeftmostLongest, as Hugging Face uses).
type addedMatcher struct {
	first   [256]bool
	byFirst [256][]int // indices into Tokenizer.added, longest content first
	content []string   // content to match per index (normalized for normalized tokens)
}

func newAddedMatcher(added []AddedToken, want func(*AddedToken) bool, content func(*AddedToken) string) *addedMatcher {
	m := &addedMatcher{content: make([]string, len(added))}
	any := false
	for i := range added {
		if !want(&added[i]) {
			continue
		}
		c := content(&added[i])
		if c == "" {
			continue
		}
		m.content[i] = c
		b := c[0]
		m.first[b] = true
		// keep longest first; equal lengths keep tokenizer.json order
		l := m.byFirst[b]
		j := len(l)
		for j > 0 && len(m.content[l[j-1]]) < len(c) {
			j--
		}
		l = append(l, 0)
		copy(l[j+1:], l[j:])
		l[j] = i
		m.byFirst[b] = l
		any = true
	}
	if !any {
		return nil
	}
	return m
}

// find returns the leftmost-longest match at or after from, or k = -1.
func (m *addedMatcher) find(s string, from int) (start, end, k int) {
	for i := from; i < len(s); i++ {
		if !m.first[s[i]] {
			continue
		}
		for _, k := range m.byFirst[s[i]] {
			if strings.HasPrefix(s[i:], m.content[k]) {
				return i, i + len(m.content[k]), k
			}
		}
	}
	return 0, 0, -1
}
