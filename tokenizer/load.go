package tokenizer

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/text/unicode/norm"
)

type jsonFile struct {
	Version       string           `json:"version"`
	Truncation    json.RawMessage  `json:"truncation"`
	Padding       json.RawMessage  `json:"padding"`
	AddedTokens   []jsonAddedToken `json:"added_tokens"`
	Normalizer    *jsonComponent   `json:"normalizer"`
	PreTokenizer  *jsonComponent   `json:"pre_tokenizer"`
	PostProcessor *jsonComponent   `json:"post_processor"`
	Decoder       *jsonComponent   `json:"decoder"`
	Model         jsonModel        `json:"model"`
}

type jsonAddedToken struct {
	ID         int32  `json:"id"`
	Content    string `json:"content"`
	SingleWord bool   `json:"single_word"`
	LStrip     bool   `json:"lstrip"`
	RStrip     bool   `json:"rstrip"`
	Normalized bool   `json:"normalized"`
	Special    bool   `json:"special"`
}

type jsonComponent struct {
	Type           string          `json:"type"`
	AddPrefixSpace *bool           `json:"add_prefix_space"`
	TrimOffsets    *bool           `json:"trim_offsets"`
	UseRegex       *bool           `json:"use_regex"`
	Pattern        *jsonPattern    `json:"pattern"`
	Behavior       string          `json:"behavior"`
	Invert         bool            `json:"invert"`
	Pretokenizers  []jsonComponent `json:"pretokenizers"`
	Normalizers    []jsonComponent `json:"normalizers"`
	Decoders       []jsonComponent `json:"decoders"`
	Processors     []jsonComponent `json:"processors"`
}

type jsonPattern struct {
	Regex  *string `json:"Regex"`
	String *string `json:"String"`
}

type jsonModel struct {
	Type                    string           `json:"type"`
	Dropout                 *float64         `json:"dropout"`
	UnkToken                *string          `json:"unk_token"`
	ContinuingSubwordPrefix *string          `json:"continuing_subword_prefix"`
	EndOfWordSuffix         *string          `json:"end_of_word_suffix"`
	FuseUnk                 bool             `json:"fuse_unk"`
	ByteFallback            bool             `json:"byte_fallback"`
	IgnoreMerges            bool             `json:"ignore_merges"`
	Vocab                   map[string]int32 `json:"vocab"`
	Merges                  []jsonMerge      `json:"merges"`
}

// jsonMerge is one merge, stored either as "a b" or as ["a", "b"].
type jsonMerge struct {
	a, b string
	pair bool
}

func (m *jsonMerge) UnmarshalJSON(data []byte) error {
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return errors.New("empty merge")
	}
	simple := bytes.IndexByte(data, '\\') < 0
	switch data[0] {
	case '"':
		var s string
		if simple && len(data) >= 2 && data[len(data)-1] == '"' {
			s = string(data[1 : len(data)-1])
		} else if err := json.Unmarshal(data, &s); err != nil {
			return err
		}
		a, b, ok := strings.Cut(s, " ")
		if !ok || strings.Contains(b, " ") {
			return fmt.Errorf("merge %q is not two tokens separated by one space", s)
		}
		m.a, m.b = a, b
		return nil
	case '[':
		var p []string
		if err := json.Unmarshal(data, &p); err != nil {
			return err
		}
		if len(p) != 2 {
			return fmt.Errorf("merge %s does not have two tokens", data)
		}
		m.a, m.b, m.pair = p[0], p[1], true
		return nil
	}
	return fmt.Errorf("merge %.40s is neither a string nor a pair", data)
}

// Load reads a Hugging Face tokenizer.json holding a byte-level BPE model (Qwen2/Qwen3,
// Llama 3, GPT-2 style). When a tokenizer_config.json sits in the same directory, its
// eos_token, bos_token and pad_token set EOS, BOS and PAD.
//
// Supported pieces: normalizer null or NFC; pre_tokenizer ByteLevel (use_regex true, the GPT-2
// pattern) or Sequence[Split(regex), ByteLevel(use_regex false)] where the regex is one of
// PatternGPT2, PatternQwen2 or PatternLlama3; post_processor null or ByteLevel; decoder
// ByteLevel; model BPE without dropout, subword prefix or suffix. Anything else is an error
// naming the field, since encoding would not match Hugging Face.
func Load(path string) (*Tokenizer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	t, err := parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	cfg := filepath.Join(filepath.Dir(path), "tokenizer_config.json")
	if err := t.loadConfig(cfg); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	return t, nil
}

// Parse reads tokenizer.json content (see Load); EOS, BOS and PAD follow the defaults of a
// tokenizer without tokenizer_config.json.
func Parse(data []byte) (*Tokenizer, error) { return parse(data) }

func parse(data []byte) (*Tokenizer, error) {
	f, err := decodeFile(data)
	if err != nil {
		return nil, err
	}
	if !isNull(f.Truncation) {
		return nil, errors.New("truncation: not supported (must be null)")
	}
	if !isNull(f.Padding) {
		return nil, errors.New("padding: not supported (must be null)")
	}
	t := &Tokenizer{unkID: -1, eos: -1, bos: -1, pad: -1}

	// normalizer
	if n := f.Normalizer; n != nil {
		switch n.Type {
		case "NFC":
			t.nfc = true
		case "Sequence":
			for _, c := range n.Normalizers {
				if c.Type != "NFC" {
					return nil, fmt.Errorf("normalizer: %q not supported (only NFC)", c.Type)
				}
				t.nfc = true
			}
		default:
			return nil, fmt.Errorf("normalizer: %q not supported (only NFC)", n.Type)
		}
	}

	// pre-tokenizer
	if err := t.setPreTokenizer(f.PreTokenizer); err != nil {
		return nil, fmt.Errorf("pre_tokenizer: %w", err)
	}

	// post-processor
	if p := f.PostProcessor; p != nil {
		switch {
		case p.Type == "ByteLevel":
			t.postByte = true
		case p.Type == "Sequence" && allByteLevel(p.Processors):
			t.postByte = len(p.Processors) > 0
		default:
			return nil, fmt.Errorf("post_processor: %q not supported (only ByteLevel or null)", p.Type)
		}
	}

	// decoder
	if d := f.Decoder; d == nil {
		return nil, errors.New("decoder: null not supported (need ByteLevel)")
	} else if !(d.Type == "ByteLevel" || (d.Type == "Sequence" && len(d.Decoders) == 1 && d.Decoders[0].Type == "ByteLevel")) {
		return nil, fmt.Errorf("decoder: %q not supported (need ByteLevel)", d.Type)
	}

	// model
	m := &f.Model
	if m.Type != "BPE" && m.Type != "" {
		return nil, fmt.Errorf("model.type: %q not supported (need BPE)", m.Type)
	}
	if m.Dropout != nil && *m.Dropout != 0 {
		return nil, fmt.Errorf("model.dropout: %v not supported", *m.Dropout)
	}
	if m.ContinuingSubwordPrefix != nil && *m.ContinuingSubwordPrefix != "" {
		return nil, errors.New("model.continuing_subword_prefix: not supported")
	}
	if m.EndOfWordSuffix != nil && *m.EndOfWordSuffix != "" {
		return nil, errors.New("model.end_of_word_suffix: not supported")
	}
	if len(m.Vocab) == 0 {
		return nil, errors.New("model.vocab: empty")
	}
	t.ignoreMerge = m.IgnoreMerges
	t.fuseUnk = m.FuseUnk
	merges := make([][2]string, len(m.Merges))
	pairs := false
	for i, mg := range m.Merges {
		merges[i] = [2]string{mg.a, mg.b}
		pairs = pairs || mg.pair
	}
	added := make([]AddedToken, len(f.AddedTokens))
	for i, a := range f.AddedTokens {
		added[i] = AddedToken{ID: a.ID, Content: a.Content, Special: a.Special, SingleWord: a.SingleWord,
			LStrip: a.LStrip, RStrip: a.RStrip, Normalized: a.Normalized}
	}
	if err := t.build(m.Vocab, merges, added); err != nil {
		return nil, err
	}
	t.mergePairs = pairs
	if m.UnkToken != nil {
		id, ok := t.vocab[*m.UnkToken]
		if !ok {
			return nil, fmt.Errorf("model.unk_token: %q not in vocab", *m.UnkToken)
		}
		t.unkID = id
	}
	if m.ByteFallback {
		for b := range 256 {
			if t.byteID[b] < 0 {
				return nil, fmt.Errorf("model.byte_fallback: not supported with byte %#x missing from vocab", b)
			}
		}
	}
	t.defaultSpecials()
	return t, nil
}

func isNull(r json.RawMessage) bool {
	r = bytes.TrimSpace(r)
	return len(r) == 0 || string(r) == "null"
}

func allByteLevel(cs []jsonComponent) bool {
	for _, c := range cs {
		if c.Type != "ByteLevel" {
			return false
		}
	}
	return true
}

func boolOr(p *bool, def bool) bool {
	if p == nil {
		return def
	}
	return *p
}

func (t *Tokenizer) setPreTokenizer(p *jsonComponent) error {
	if p == nil {
		return errors.New("null not supported (need ByteLevel)")
	}
	if p.Type == "Sequence" && len(p.Pretokenizers) == 1 {
		p = &p.Pretokenizers[0]
	}
	switch p.Type {
	case "ByteLevel":
		if !boolOr(p.UseRegex, true) {
			return errors.New("ByteLevel with use_regex false needs a Split before it")
		}
		t.pre, _ = preTokenizerFor(PatternGPT2)
		t.useRegex = true
		if boolOr(p.AddPrefixSpace, true) {
			t.prefixSpace = prefixSegment
		}
		return nil
	case "Sequence":
		if len(p.Pretokenizers) != 2 {
			break
		}
		sp, bl := &p.Pretokenizers[0], &p.Pretokenizers[1]
		if sp.Type != "Split" || bl.Type != "ByteLevel" {
			break
		}
		if boolOr(bl.UseRegex, true) {
			return errors.New("Split followed by ByteLevel with use_regex true not supported")
		}
		if sp.Pattern == nil || sp.Pattern.Regex == nil {
			return errors.New("Split: only a Regex pattern is supported")
		}
		if sp.Behavior != "Isolated" || sp.Invert {
			return fmt.Errorf("Split: behavior %q invert %v not supported (need Isolated, false)", sp.Behavior, sp.Invert)
		}
		pt, ok := preTokenizerFor(*sp.Pattern.Regex)
		if !ok {
			return fmt.Errorf("Split: unknown regex %q (supported: the GPT-2, Qwen2 and Llama 3 patterns)", *sp.Pattern.Regex)
		}
		t.pre = pt
		if boolOr(bl.AddPrefixSpace, true) {
			t.prefixSpace = prefixPiece
		}
		return nil
	}
	return fmt.Errorf("%q not supported (need ByteLevel or Sequence[Split, ByteLevel])", p.Type)
}

// build fills the vocabulary, merges and added tokens.
func (t *Tokenizer) build(vocab map[string]int32, merges [][2]string, added []AddedToken) error {
	buildClassTables()
	maxID := int32(-1)
	for tok, id := range vocab {
		if id < 0 {
			return fmt.Errorf("model.vocab: %q has negative id %d", tok, id)
		}
		maxID = max(maxID, id)
	}
	for _, a := range added {
		if a.ID < 0 {
			return fmt.Errorf("added_tokens: %q has negative id %d", a.Content, a.ID)
		}
		maxID = max(maxID, a.ID)
	}
	if n := len(vocab) + len(added); int(maxID) > 2*n+1024 {
		return fmt.Errorf("token ids are sparse: largest id %d for %d tokens", maxID, n)
	}
	t.vocab = vocab
	t.modelVocab = len(vocab)
	t.tokens = make([]string, maxID+1)
	t.bytesOf = make([][]byte, maxID+1)
	for tok, id := range vocab {
		if t.bytesOf[id] != nil {
			return fmt.Errorf("model.vocab: id %d used by both %q and %q", id, t.tokens[id], tok)
		}
		t.tokens[id] = tok
		t.bytesOf[id], _ = byteLevelDecode(tok)
	}
	for b := range 256 {
		t.byteID[b] = -1
		if id, ok := vocab[string(byteToRune[b])]; ok {
			t.byteID[b] = id
		}
	}
	if t.ignoreMerge {
		t.wordID = make(map[string]int32, len(vocab))
		for tok, id := range vocab {
			if b, ok := byteLevelDecode(tok); ok {
				t.wordID[string(b)] = id
			}
		}
	}
	t.merges = newMergeTable(len(merges))
	t.mergeList = make([][2]int32, len(merges))
	for i, mg := range merges {
		a, ok1 := vocab[mg[0]]
		b, ok2 := vocab[mg[1]]
		if !ok1 || !ok2 {
			return fmt.Errorf("model.merges[%d]: %q %q: token not in vocab", i, mg[0], mg[1])
		}
		c, ok := vocab[mg[0]+mg[1]]
		if !ok {
			return fmt.Errorf("model.merges[%d]: merged token %q not in vocab", i, mg[0]+mg[1])
		}
		t.merges.put(a, b, int32(i), c)
		t.mergeList[i] = [2]int32{a, b}
	}
	t.added = added
	t.addedByID = make(map[int32]int, len(added))
	t.addedByContent = make(map[string]int, len(added))
	for i, a := range added {
		if a.Content == "" {
			return fmt.Errorf("added_tokens: id %d has empty content", a.ID)
		}
		if _, dup := t.addedByContent[a.Content]; dup {
			return fmt.Errorf("added_tokens: %q listed twice", a.Content)
		}
		t.addedByContent[a.Content] = i
		if _, dup := t.addedByID[a.ID]; dup {
			return fmt.Errorf("added_tokens: id %d used twice", a.ID)
		}
		if id, ok := vocab[a.Content]; ok && id != a.ID {
			return fmt.Errorf("added_tokens: %q has id %d but the vocab gives it %d", a.Content, a.ID, id)
		}
		if id, ok := vocab[a.Content]; t.bytesOf[a.ID] != nil && (!ok || id != a.ID) {
			return fmt.Errorf("added_tokens: id %d of %q is the vocab's %q", a.ID, a.Content, t.tokens[a.ID])
		}
		t.addedByID[a.ID] = i
		t.tokens[a.ID] = a.Content
		t.bytesOf[a.ID] = []byte(a.Content)
	}
	t.rawMatch = newAddedMatcher(t.added, func(a *AddedToken) bool { return !a.Normalized },
		func(a *AddedToken) string { return a.Content })
	t.normMatch = newAddedMatcher(t.added, func(a *AddedToken) bool { return a.Normalized },
		func(a *AddedToken) string {
			if t.nfc {
				return norm.NFC.String(a.Content)
			}
			return a.Content
		})
	return nil
}

// defaultSpecials sets EOS (and BOS for GPT-2 style vocabularies) when no config says otherwise.
func (t *Tokenizer) defaultSpecials() {
	t.eos, t.bos, t.pad = -1, -1, -1
	for _, a := range t.added {
		if a.Content == "<|endoftext|>" {
			t.eos = a.ID
		}
	}
}

// tokenizerConfig is the part of tokenizer_config.json this package reads.
type tokenizerConfig struct {
	EOS          json.RawMessage `json:"eos_token"`
	BOS          json.RawMessage `json:"bos_token"`
	PAD          json.RawMessage `json:"pad_token"`
	ChatTemplate json.RawMessage `json:"chat_template"`
}

// tokenString reads a token field: null, "content" or {"content": "..."}.
func tokenString(r json.RawMessage) (string, bool, error) {
	if isNull(r) {
		return "", false, nil
	}
	var s string
	if err := json.Unmarshal(r, &s); err == nil {
		return s, true, nil
	}
	var o struct {
		Content *string `json:"content"`
	}
	if err := json.Unmarshal(r, &o); err != nil || o.Content == nil {
		return "", false, fmt.Errorf("not a token: %.60s", r)
	}
	return *o.Content, true, nil
}

func readConfig(path string) (*tokenizerConfig, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var c tokenizerConfig
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &c, nil
}

func (t *Tokenizer) loadConfig(path string) error {
	c, err := readConfig(path)
	if err != nil {
		return err
	}
	for _, f := range []struct {
		name string
		raw  json.RawMessage
		dst  *int32
	}{{"eos_token", c.EOS, &t.eos}, {"bos_token", c.BOS, &t.bos}, {"pad_token", c.PAD, &t.pad}} {
		s, ok, err := tokenString(f.raw)
		if err != nil {
			return fmt.Errorf("%s: %s: %w", path, f.name, err)
		}
		if !ok {
			*f.dst = -1
			continue
		}
		id, found := t.TokenToID(s)
		if !found {
			return fmt.Errorf("%s: %s: %q is not in the vocabulary", path, f.name, s)
		}
		*f.dst = id
	}
	return nil
}

// LoadGPT2 reads OpenAI's GPT-2 files: encoder.json (token -> id) and vocab.bpe (merges, one
// "a b" per line after a "#version" header). <|endoftext|> becomes a special added token and
// both EOS and BOS, as in Hugging Face's gpt2 tokenizer.
func LoadGPT2(encoderJSON, vocabBPE string) (*Tokenizer, error) {
	data, err := os.ReadFile(encoderJSON)
	if err != nil {
		return nil, err
	}
	var vocab map[string]int32
	if err := json.Unmarshal(data, &vocab); err != nil {
		return nil, fmt.Errorf("%s: %w", encoderJSON, err)
	}
	f, err := os.Open(vocabBPE)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var merges [][2]string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		s := strings.TrimRight(sc.Text(), "\r")
		if s == "" || (line == 1 && strings.HasPrefix(s, "#version")) {
			continue
		}
		a, b, ok := strings.Cut(s, " ")
		if !ok || strings.Contains(b, " ") {
			return nil, fmt.Errorf("%s:%d: merge %q is not two tokens separated by one space", vocabBPE, line, s)
		}
		merges = append(merges, [2]string{a, b})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", vocabBPE, err)
	}
	t := &Tokenizer{unkID: -1}
	t.pre, _ = preTokenizerFor(PatternGPT2)
	t.useRegex = true
	t.postByte = true
	var added []AddedToken
	if id, ok := vocab["<|endoftext|>"]; ok {
		added = append(added, AddedToken{ID: id, Content: "<|endoftext|>", Special: true})
	}
	if err := t.build(vocab, merges, added); err != nil {
		return nil, fmt.Errorf("%s, %s: %w", encoderJSON, vocabBPE, err)
	}
	t.defaultSpecials()
	t.bos = t.eos
	return t, nil
}
