package tokenizer

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
)

func checkGolden(t *testing.T, tok *Tokenizer, rows []goldenRow) {
	t.Helper()
	bad := 0
	for i, r := range rows {
		if r.Pieces != nil {
			var got []string
			for _, p := range tok.pre.split(r.Text) {
				got = append(got, byteLevelEncode([]byte(p)))
			}
			if !slices.Equal(got, r.Pieces) && !(len(got) == 0 && len(r.Pieces) == 0) {
				t.Errorf("row %d %q: pieces\n got  %q\n want %q", i, trunc(r.Text), got, r.Pieces)
				bad++
			}
		}
		ids := tok.Encode(r.Text)
		if !slices.Equal(ids, r.IDs) && !(len(ids) == 0 && len(r.IDs) == 0) {
			t.Errorf("row %d %q: ids\n got  %v\n want %v", i, trunc(r.Text), ids, r.IDs)
			bad++
		}
		if got := tok.Decode(r.IDs); r.Decoded != nil && got != *r.Decoded {
			t.Errorf("row %d %q: decode = %q, want %q", i, trunc(r.Text), got, *r.Decoded)
			bad++
		}
		if bad > 10 {
			t.Fatal("too many failures")
		}
	}
}

func trunc(s string) string {
	if len(s) > 60 {
		return s[:60] + "..."
	}
	return s
}

func TestGoldenQwen3(t *testing.T) {
	tok := qwen(t)
	g := readGolden(t, goldenPath)
	if len(g.Qwen3) < 100 {
		t.Fatalf("golden has %d qwen3 rows", len(g.Qwen3))
	}
	checkGolden(t, tok, g.Qwen3)
}

func TestGoldenGPT2(t *testing.T) {
	tok := gpt2(t)
	g := readGolden(t, goldenPath)
	checkGolden(t, tok, g.GPT2)
}

// TestGoldenVariants checks less common configurations (reference/tokenizer_fixtures.py
// variants()): the Llama 3 digit rule, ByteLevel add_prefix_space in both positions, and
// ignore_merges. Each is made by the same edit of the tokenizer.json on both sides.
func TestGoldenVariants(t *testing.T) {
	g := readGolden(t, goldenPath)
	edit := func(tok *Tokenizer, old, new string) *Tokenizer {
		t.Helper()
		data, _ := tok.MarshalJSON()
		js := strings.Replace(string(data), old, new, 1)
		if js == string(data) {
			t.Fatalf("edit %q did not apply", old)
		}
		v, err := Parse([]byte(js))
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	q, g2 := qwen(t), gpt2(t)
	variants := map[string]func() *Tokenizer{
		"qwen3_llama3_pattern": func() *Tokenizer {
			return edit(q, jsonString(PatternQwen2), jsonString(PatternLlama3))
		},
		"qwen3_prefix_space": func() *Tokenizer {
			return edit(q, `{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false}]`,
				`{"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": false}]`)
		},
		"qwen3_added_options": func() *Tokenizer {
			return edit(q, `"added_tokens": [`, `"added_tokens": [
    {"id": 151669, "content": "<mask>", "single_word": true, "lstrip": true, "rstrip": true, "normalized": false, "special": true},
    {"id": 151670, "content": "café", "single_word": false, "lstrip": false, "rstrip": false, "normalized": true, "special": false},`)
		},
		"qwen3_ignore_merges": func() *Tokenizer { return edit(q, `"ignore_merges": false`, `"ignore_merges": true`) },
		"gpt2_prefix_space": func() *Tokenizer {
			return edit(g2, `"add_prefix_space": false, "trim_offsets": true, "use_regex": true`,
				`"add_prefix_space": true, "trim_offsets": true, "use_regex": true`)
		},
	}
	if len(g.Variants) != len(variants) {
		t.Fatalf("golden has %d variants, test knows %d", len(g.Variants), len(variants))
	}
	for name, make := range variants {
		t.Run(name, func(t *testing.T) {
			rows, ok := g.Variants[name]
			if !ok {
				t.Fatalf("golden lacks %s", name)
			}
			if name == "qwen3_added_options" {
				// Hugging Face sends added tokens through the ByteLevel decoder too, so its
				// "café" decodes to "caf\xe9" (U+FFFD); Decode returns added tokens verbatim.
				for i := range rows {
					rows[i].Decoded = nil
				}
			}
			checkGolden(t, make(), rows)
		})
	}
}

// TestPreTokStress compares with a large random sample made by
// reference/tokenizer_fixtures.py --stress N PATH; it runs when SHOGGO_PRETOK_STRESS=PATH.
func TestPreTokStress(t *testing.T) {
	p := os.Getenv("SHOGGO_PRETOK_STRESS")
	if p == "" {
		t.Skip("set SHOGGO_PRETOK_STRESS to a file from reference/tokenizer_fixtures.py --stress")
	}
	g := readGolden(t, p)
	t.Run("qwen3", func(t *testing.T) { checkGolden(t, qwen(t), g.Qwen3) })
	t.Run("gpt2", func(t *testing.T) { checkGolden(t, gpt2(t), g.GPT2) })
	fmt.Println(len(g.Qwen3), "texts")
}
