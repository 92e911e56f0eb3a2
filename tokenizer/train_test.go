package tokenizer

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// smallCorpus is a few kilobytes of varied text for training tests.
func smallCorpus() []string {
	base := []string{
		"The quick brown fox jumps over the lazy dog. The dog didn't mind; it's a lazy dog.",
		"In the beginning God created the heaven and the earth. And the earth was without form, and void.",
		"func main() {\n\tfmt.Println(\"hello, world\")\n\tfor i := 0; i < 10; i++ {\n\t\tsum += i\n\t}\n}\n",
		"What is 17+25? 42. What is 100-58? 42. Reverse 'abc': 'cba'. Sort 3 1 2: 1 2 3.",
		"Café naïve résumé. 中文测试：你好，世界！ 😀👍 Привет, мир!",
		"  indented   text\twith\ttabs\r\nand windows line ends\r\n\n\n",
	}
	var out []string
	for i := 0; i < 20; i++ {
		for _, b := range base {
			out = append(out, b)
		}
	}
	return out
}

func TestTrainSmall(t *testing.T) {
	special := []string{"<|endoftext|>", "<|im_start|>", "<|im_end|>"}
	corpus := smallCorpus()
	corpus[3] += "<|endoftext|>" // special tokens in the text are not learned from
	tok, err := Train(slices.Values(corpus), 400, special)
	if err != nil {
		t.Fatal(err)
	}
	if tok.VocabSize() != 400 {
		t.Fatalf("vocab size %d, want 400", tok.VocabSize())
	}
	for b := 0; b < 256; b++ {
		if got := tok.TokenBytes(int32(b)); !bytes.Equal(got, []byte{byte(b)}) {
			t.Fatalf("id %d decodes to %q", b, got)
		}
	}
	if id, _ := tok.TokenToID("<|endoftext|>"); id != 397 || tok.EOS() != 397 {
		t.Fatalf("<|endoftext|> id %d, EOS %d; want 397", id, tok.EOS())
	}
	if id, _ := tok.TokenToID("<|im_end|>"); id != 399 {
		t.Fatalf("<|im_end|> id %d, want 399", id)
	}
	// deterministic
	tok2, err := Train(slices.Values(corpus), 400, special)
	if err != nil {
		t.Fatal(err)
	}
	j1, _ := tok.MarshalJSON()
	j2, _ := tok2.MarshalJSON()
	if !bytes.Equal(j1, j2) {
		t.Fatal("training is not deterministic")
	}
	// compresses its own training text
	text := strings.Join(corpus, "\n")
	ids := tok.Encode(text)
	if 3*len(ids) > 2*len(text) {
		t.Errorf("%d tokens for %d bytes: poor compression", len(ids), len(text))
	}
	if got := tok.Decode(ids); got != text {
		t.Fatal("round trip failed")
	}
	chat := ChatML([]Message{{"user", "hi"}}, true)
	ids = tok.Encode(chat)
	if ids[0] != 398 || !slices.Contains(ids, 399) {
		t.Fatalf("special tokens not matched: %v", ids)
	}
	// Save and load back
	dir := t.TempDir()
	p := filepath.Join(dir, "tokenizer.json")
	if err := tok.Save(p); err != nil {
		t.Fatal(err)
	}
	tok3, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range append(corpus[:6], chat, "unseen words: zebra quixotic 12345") {
		if a, b := tok.Encode(s), tok3.Encode(s); !slices.Equal(a, b) {
			t.Fatalf("%q: trained %v, reloaded %v", s, a, b)
		}
	}
	j3, _ := tok3.MarshalJSON()
	if !bytes.Equal(j1, j3) {
		t.Error("Save(Load(Save(t))) differs from Save(t)")
	}
}

func TestTrainErrors(t *testing.T) {
	if _, err := Train(slices.Values([]string{"x"}), 257, []string{"<a>", "<b>"}); err == nil {
		t.Error("vocab smaller than bytes + specials accepted")
	}
	if _, err := Train(slices.Values([]string{"x"}), 300, []string{"<a>", "<a>"}); err == nil {
		t.Error("repeated special accepted")
	}
	// too little text: stops early without error
	tok, err := Train(slices.Values([]string{"abab"}), 1000, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := tok.Encode("abab"); len(got) != 1 {
		t.Errorf("abab -> %v, want one token", got)
	}
}

// trainCorpus returns the text named by SHOGGO_TRAIN_TEXT, else the KJV Bible dumped by the
// Debian bible-kjv package's `bible -f` if saved at /tmp/kjv.txt, else nil.
func trainCorpus(tb testing.TB) []byte {
	p := os.Getenv("SHOGGO_TRAIN_TEXT")
	if p == "" {
		tb.Skip("set SHOGGO_TRAIN_TEXT to a text file (e.g. `bible -f 'Genesis 1:1-Revelation 22:21' > kjv.txt`)")
	}
	data, err := os.ReadFile(p)
	if err != nil {
		tb.Fatal(err)
	}
	return data
}

// TestExportTrainedTokenizer trains on $SHOGGO_TRAIN_TEXT (vocab 4096) and, when
// SHOGGO_TOKENIZER_EXPORT names a directory, writes tokenizer.json and sample.json (texts and
// their ids) there for reference/check_trained_tokenizer.py.
func TestExportTrainedTokenizer(t *testing.T) {
	data := trainCorpus(t)
	lines := strings.SplitAfter(string(data), "\n")
	start := time.Now()
	tok, err := Train(slices.Values(lines), 4096, []string{"<|endoftext|>", "<|im_start|>", "<|im_end|>"})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("trained vocab %d on %.1f MB in %v", tok.VocabSize(), float64(len(data))/1e6, time.Since(start))
	dir := os.Getenv("SHOGGO_TOKENIZER_EXPORT")
	if dir == "" {
		return
	}
	if err := tok.Save(filepath.Join(dir, "tokenizer.json")); err != nil {
		t.Fatal(err)
	}
	g := readGolden(t, goldenPath)
	type row struct {
		Text string  `json:"text"`
		IDs  []int32 `json:"ids"`
	}
	var rows []row
	add := func(s string) { rows = append(rows, row{s, tok.Encode(s)}) }
	for _, r := range g.Qwen3 {
		add(r.Text)
	}
	for i := 0; i < len(lines); i += 97 {
		add(strings.Join(lines[i:min(i+5, len(lines))], ""))
	}
	out, _ := json.Marshal(rows)
	if err := os.WriteFile(filepath.Join(dir, "sample.json"), out, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s/tokenizer.json and sample.json (%d texts)", dir, len(rows))
}
