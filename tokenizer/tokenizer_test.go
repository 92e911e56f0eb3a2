package tokenizer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

var (
	smallOnce sync.Once
	smallTok  *Tokenizer
)

// small returns a tokenizer trained on smallCorpus (no files needed).
func small(tb testing.TB) *Tokenizer {
	smallOnce.Do(func() {
		var err error
		smallTok, err = Train(slices.Values(smallCorpus()), 600, []string{"<|endoftext|>", "<|im_start|>", "<|im_end|>"})
		if err != nil {
			panic(err)
		}
	})
	return smallTok
}

func TestQwenBasics(t *testing.T) {
	tok := qwen(t)
	if got := tok.VocabSize(); got != 151669 {
		t.Errorf("VocabSize = %d, want 151669", got)
	}
	for name, c := range map[string]struct {
		got  int32
		want string
	}{"EOS": {tok.EOS(), "<|im_end|>"}, "PAD": {tok.PAD(), "<|endoftext|>"}} {
		if s, _ := tok.IDToToken(c.got); s != c.want {
			t.Errorf("%s = %d (%q), want %q", name, c.got, s, c.want)
		}
	}
	if tok.BOS() != -1 {
		t.Errorf("BOS = %d, want -1", tok.BOS())
	}
	if id, ok := tok.TokenToID("Ġthe"); !ok || string(tok.TokenBytes(id)) != " the" {
		t.Errorf("TokenToID(Ġthe) = %d %v", id, ok)
	}
	if id, _ := tok.TokenToID("<|im_start|>"); id != 151644 || !tok.IsSpecial(id) {
		t.Errorf("<|im_start|> = %d special %v", id, tok.IsSpecial(id))
	}
	if id, _ := tok.TokenToID("<think>"); tok.IsSpecial(id) {
		t.Error("<think> should not be special")
	}
	if _, ok := tok.IDToToken(151669); ok {
		t.Error("IDToToken past the end")
	}
	// special tokens are matched by Encode, not by EncodeOrdinary
	s := "a<|im_start|>b"
	if ids := tok.Encode(s); !slices.Contains(ids, 151644) {
		t.Errorf("Encode(%q) = %v", s, ids)
	}
	if ids := tok.EncodeOrdinary(s); slices.Contains(ids, 151644) || tok.Decode(ids) != s {
		t.Errorf("EncodeOrdinary(%q) = %v", s, ids)
	}
}

func TestGPT2Basics(t *testing.T) {
	tok := gpt2(t)
	if tok.VocabSize() != 50257 || tok.EOS() != 50256 || tok.BOS() != 50256 {
		t.Errorf("VocabSize %d EOS %d BOS %d", tok.VocabSize(), tok.EOS(), tok.BOS())
	}
	// the classic example
	if got, want := tok.Encode("Hello world"), []int32{15496, 995}; !slices.Equal(got, want) {
		t.Errorf("Hello world -> %v, want %v", got, want)
	}
}

// TestMergeHeapMatchesLoop checks the two BPE merge implementations against each other.
func TestMergeHeapMatchesLoop(t *testing.T) {
	toks := []*Tokenizer{small(t)}
	if haveFile(thirdParty("qwen3", "tokenizer.json")) {
		toks = append(toks, qwen(t))
	}
	rng := rand.New(rand.NewPCG(1, 2))
	words := []string{"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "the the the", "          ", "antidisestablishmentarianism"}
	alphabet := []string{"a", "b", "e", "t", "h", " ", "in", "the", "ing", "é", "中", "\n"}
	for i := 0; i < 300; i++ {
		var b strings.Builder
		for n := rng.IntN(80); n > 0; n-- {
			b.WriteString(alphabet[rng.IntN(len(alphabet))])
		}
		words = append(words, b.String())
	}
	var sc bpeScratch
	for _, tok := range toks {
		for _, w := range words {
			syms := make([]int32, len(w))
			for i := range len(w) {
				syms[i] = tok.byteID[w[i]]
			}
			a := slices.Clone(tok.merges.mergeWord(slices.Clone(syms), &sc))
			var b []int32
			if len(syms) > 64 {
				// mergeWord already used the heap; compare with the loop on a copy
				b = slices.Clone(loopMerge(tok.merges, slices.Clone(syms)))
			} else {
				b = slices.Clone(tok.merges.mergeWordHeap(slices.Clone(syms), &sc))
			}
			if !slices.Equal(a, b) {
				t.Fatalf("%q: %v vs %v", w, a, b)
			}
		}
	}
}

// loopMerge is the plain O(n^2) merge with no length switch.
func loopMerge(m *mergeTable, syms []int32) []int32 {
	for {
		best, bi := int32(noRank), -1
		var bid int32
		for i := 0; i+1 < len(syms); i++ {
			if r, id := m.get(syms[i], syms[i+1]); r < best {
				best, bi, bid = r, i, id
			}
		}
		if bi < 0 {
			return syms
		}
		syms[bi] = bid
		syms = append(syms[:bi+1], syms[bi+2:]...)
	}
}

func TestEncodeBatch(t *testing.T) {
	tok := small(t)
	if haveFile(thirdParty("qwen3", "tokenizer.json")) {
		tok = qwen(t)
	}
	g := readGolden(t, goldenPath)
	var texts []string
	for i := 0; i < 5; i++ {
		for _, r := range g.Qwen3 {
			texts = append(texts, r.Text)
		}
	}
	for _, th := range []int{1, 3, 0} {
		out := tok.EncodeBatch(texts, th)
		for i, s := range texts {
			if want := tok.Encode(s); !slices.Equal(out[i], want) {
				t.Fatalf("threads %d text %d: %v vs %v", th, i, out[i], want)
			}
		}
	}
	if out := tok.EncodeBatch(nil, 4); len(out) != 0 {
		t.Fatal("EncodeBatch(nil)")
	}
}

func TestSaveLoadQwen(t *testing.T) {
	tok := qwen(t)
	dir := t.TempDir()
	p := filepath.Join(dir, "tokenizer.json")
	if err := tok.Save(p); err != nil {
		t.Fatal(err)
	}
	tok2, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if eot, _ := tok.TokenToID("<|endoftext|>"); tok2.EOS() != eot || tok2.PAD() != -1 {
		t.Errorf("no tokenizer_config.json: EOS %d PAD %d, want <|endoftext|> and -1", tok2.EOS(), tok2.PAD())
	}
	g := readGolden(t, goldenPath)
	for _, r := range g.Qwen3 {
		if got := tok2.Encode(r.Text); !slices.Equal(got, r.IDs) && len(got)+len(r.IDs) > 0 {
			t.Fatalf("%q: %v, want %v", r.Text, got, r.IDs)
		}
	}
	if err := tok.SaveConfig(filepath.Join(dir, "tokenizer_config.json")); err != nil {
		t.Fatal(err)
	}
	tok3, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if tok3.EOS() != tok.EOS() || tok3.PAD() != tok.PAD() || tok3.BOS() != tok.BOS() {
		t.Errorf("specials after SaveConfig: %d %d %d", tok3.EOS(), tok3.PAD(), tok3.BOS())
	}
	tmpl, err := LoadChatTemplate(filepath.Join(dir, "tokenizer_config.json"))
	if err != nil || tmpl == nil {
		t.Fatal(err)
	}
}

func TestSaveLoadGPT2(t *testing.T) {
	tok := gpt2(t)
	p := filepath.Join(t.TempDir(), "tokenizer.json")
	if err := tok.Save(p); err != nil {
		t.Fatal(err)
	}
	tok2, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	g := readGolden(t, goldenPath)
	for _, r := range g.GPT2 {
		if got := tok2.Encode(r.Text); !slices.Equal(got, r.IDs) && len(got)+len(r.IDs) > 0 {
			t.Fatalf("%q: %v, want %v", r.Text, got, r.IDs)
		}
	}
}

func TestAddedTokenOptions(t *testing.T) {
	base := small(t)
	data, _ := base.MarshalJSON()
	js := strings.Replace(string(data), `"added_tokens": [`,
		`"added_tokens": [
    {"id": 600, "content": "<mask>", "single_word": true, "lstrip": true, "rstrip": true, "normalized": false, "special": true},
    {"id": 601, "content": "café", "single_word": false, "lstrip": false, "rstrip": false, "normalized": true, "special": false},`, 1)
	js = strings.Replace(js, `"normalizer": null`, `"normalizer": {"type": "NFC"}`, 1)
	tok, err := Parse([]byte(js))
	if err != nil {
		t.Fatal(err)
	}
	enc := func(s string) []int32 { return tok.Encode(s) }
	// lstrip/rstrip swallow the spaces; single_word refuses a match inside a word
	if got := enc("hi <mask> there"); !slices.Equal(got, append(append(enc("hi"), 600), enc("there")...)) {
		t.Errorf("lstrip/rstrip: %v", got)
	}
	if got := enc("a<mask>"); slices.Contains(got, 600) {
		t.Errorf("single_word matched inside a word: %v", got)
	}
	// a normalized token matches the NFC form of the text
	if got := enc("une cafe\u0301!"); !slices.Contains(got, 601) {
		t.Errorf("normalized added token not matched: %v", got)
	}
}

func TestLoadErrors(t *testing.T) {
	base := small(t)
	data, _ := base.MarshalJSON()
	good := string(data)
	eot, _ := base.TokenToID("<|endoftext|>")
	if _, err := Parse(data); err != nil {
		t.Fatal(err)
	}
	for name, edit := range map[string][2]string{
		"normalizer":   {`"normalizer": null`, `"normalizer": {"type": "NFKC"}`},
		"pre_regex":    {`"pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true}`, `"pre_tokenizer": {"type": "Sequence", "pretokenizers": [{"type": "Split", "pattern": {"Regex": "\\w+"}, "behavior": "Isolated", "invert": false}, {"type": "ByteLevel", "use_regex": false}]}`},
		"pre_type":     {`"pre_tokenizer": {"type": "ByteLevel"`, `"pre_tokenizer": {"type": "Whitespace"`},
		"decoder":      {`"decoder": {"type": "ByteLevel"`, `"decoder": {"type": "WordPiece"`},
		"model_type":   {`"type": "BPE"`, `"type": "Unigram"`},
		"dropout":      {`"dropout": null`, `"dropout": 0.1`},
		"merge_oov":    {`"merges": [`, `"merges": ["zzz yyy", `},
		"post":         {`"post_processor": {"type": "ByteLevel"`, `"post_processor": {"type": "TemplateProcessing"`},
		"truncation":   {`"truncation": null`, `"truncation": {"max_length": 5}`},
		"bad_json":     {`"version"`, `"version`},
		"added_clash":  {fmt.Sprintf(`"id": %d,`, eot), `"id": 5,`},
		"merge_string": {`"merges": [`, `"merges": ["abc", `},
	} {
		js := strings.Replace(good, edit[0], edit[1], 1)
		if js == good {
			t.Fatalf("%s: edit did not apply", name)
		}
		if _, err := Parse([]byte(js)); err == nil {
			t.Errorf("%s: no error", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
	// merges as ["a", "b"] pairs load too
	pairs := strings.Replace(good, `"merges": [`, `"merges": [["Ġ", "t"], `, 1)
	if _, err := Parse([]byte(pairs)); err != nil {
		t.Errorf("pair merges: %v", err)
	}
}

func TestLoadMissingFiles(t *testing.T) {
	if _, err := Load(filepath.Join(t.TempDir(), "nope.json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load missing: %v", err)
	}
	if _, err := LoadGPT2("nope.json", "nope.bpe"); err == nil {
		t.Error("LoadGPT2 missing: no error")
	}
}

func TestDecodeEdgeCases(t *testing.T) {
	tok := small(t)
	if got := tok.Decode([]int32{-1, 1 << 30, 'a'}); got != "a" {
		t.Errorf("unknown ids not skipped: %q", got)
	}
	// a split multi-byte character comes back as its bytes
	ids := tok.Encode("二") // not in the training text: three byte tokens
	if got := tok.Decode(ids[:1]); len(ids) != 3 || got != "\xe4" {
		t.Errorf("二 -> %v, first decodes to %q", ids, got)
	}
	if got := tok.Encode(""); len(got) != 0 {
		t.Errorf("Encode(\"\") = %v", got)
	}
	// invalid UTF-8 round-trips as bytes
	s := "ab\xff\xfe\xc3"
	if got := tok.Decode(tok.Encode(s)); got != s {
		t.Errorf("invalid UTF-8: %q", got)
	}
}

// roundTripTokenizers returns the tokenizers used by the round-trip fuzzer and whether each
// normalizes to NFC.
func roundTripTokenizers(tb testing.TB) []*Tokenizer {
	toks := []*Tokenizer{small(tb)}
	if haveFile(thirdParty("qwen3", "tokenizer.json")) {
		toks = append(toks, qwen(tb))
	}
	if haveFile(thirdParty("gpt2", "encoder.json")) {
		toks = append(toks, gpt2(tb))
	}
	return toks
}

func FuzzRoundTrip(f *testing.F) {
	for _, s := range scannerCases {
		f.Add(s)
	}
	f.Add("<|im_start|>user\nhi<|im_end|>\n")
	f.Add("<|endoftext|>\u0338 e\u0301")
	toks := roundTripTokenizers(f)
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) {
			return
		}
		for _, tok := range toks {
			want := s
			if tok.nfc {
				want = norm.NFC.String(s)
			}
			ids := tok.EncodeOrdinary(s)
			for _, id := range ids {
				if id < 0 || int(id) >= tok.VocabSize() {
					t.Fatalf("id %d out of range", id)
				}
			}
			if got := tok.Decode(ids); got != want {
				t.Fatalf("EncodeOrdinary round trip: %q -> %v -> %q", s, ids, got)
			}
			got := tok.Decode(tok.Encode(s))
			if tok.nfc {
				got = norm.NFC.String(got)
			}
			if got != want {
				t.Fatalf("Encode round trip: %q -> %q", s, got)
			}
		}
	})
}

// The full trained tokenizer.json (too large a fuzz seed) parses and
// behaves as the tokenizer it came from.
func TestParseTrainedTokenizer(t *testing.T) {
	data, err := small(t).MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	tok, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	s := "Hello, world! 123 <|endoftext|> é"
	if got, want := tok.Encode(s), small(t).Encode(s); !slices.Equal(got, want) {
		t.Errorf("parsed %v, trained %v", got, want)
	}
}

func TestDecodeFileMatchesEncodingJSON(t *testing.T) {
	files := [][]byte{}
	data, _ := small(t).MarshalJSON()
	files = append(files, data)
	if p := thirdParty("qwen3", "tokenizer.json"); haveFile(p) {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, data)
	}
	files = append(files, []byte(`{"version": "1.0", "model": {"type": "BPE", "dropout": 0.5, "vocab": {"a\u00e9\"": 0, "b": 1, "b": 2}, "merges": [["a\u00e9\"", "b"], "x y"], "unk_token": "a"}, "added_tokens": [], "normalizer": null, "extra": [1, {"x": "]}"}]}`))
	for i, data := range files {
		var std jsonFile
		if err := json.Unmarshal(data, &std); err != nil {
			t.Fatal(err)
		}
		fast, err := decodeFile(data)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(*fast, std) {
			t.Fatalf("file %d: decodeFile differs from encoding/json", i)
		}
	}
	for _, bad := range []string{``, `{`, `{"model": {"vocab": {"a": 1.5}}}`, `{"model": {"vocab": {"a": -1}}}`, `{"model": {"merges": [3]}}`,
		`{"model": {"merges": [["a"]]}}`, `{"a": "x} trailing`, `{} {}`, `{"a" 1}`, `{"model": {"vocab": {"a": 99999999999}}}`, "{\"a\": \"\x01\"}"} {
		if _, err := decodeFile([]byte(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func FuzzParse(f *testing.F) {
	// Small seeds only: every input that reaches new code is minimized
	// (up to -fuzzminimizetime, 60 s by default) at a cost that grows with
	// its size, and with a whole trained tokenizer.json (13 KB) as a seed
	// the fuzzer spent its minute minimizing: a few hundred inputs a
	// minute. With these it runs ~6,000 a second on one worker.
	// TestParseTrainedTokenizer covers the full file.
	f.Add([]byte(`{"model": {"type": "BPE", "vocab": {"h": 0, "e": 1, "l": 2, "o": 3, "he": 4, "ll": 5, "\u0120": 6}, "merges": ["h e", "l l"]}, "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false}, "normalizer": {"type": "NFC"}, "decoder": {"type": "ByteLevel"}, "added_tokens": [{"id": 7, "content": "<|im_start|>", "special": true}]}`))
	f.Add([]byte(`{"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2, "c": 3}, "merges": ["a b"]}, "added_tokens": [{"id": 4, "content": "<|endoftext|>", "special": true}]}`))
	f.Add([]byte(`{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "pre_tokenizer": {"type": "ByteLevel"}, "decoder": {"type": "ByteLevel"}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		// The fast decoder agrees with encoding/json wherever both accept the input, except
		// that encoding/json also matches keys case-insensitively (serde, like decodeFile,
		// does not): skip inputs where that could matter.
		var std jsonFile
		fast, err1 := decodeFile(data)
		cmpOK := !bytes.ContainsAny(data, "ABCDEFGHIJKLMNOPQRSTUVWXYZ\\")
		if err2 := json.Unmarshal(data, &std); cmpOK && err1 == nil && err2 == nil && !reflect.DeepEqual(*fast, std) {
			t.Fatalf("decodeFile differs from encoding/json:\n%+v\n%+v", *fast, std)
		}
		tok, err := Parse(data)
		if err != nil {
			return
		}
		s := "Hello, world! 123 <|endoftext|> é"
		ids := tok.Encode(s)
		_ = tok.Decode(ids)
		_, _ = tok.MarshalJSON()
	})
}
