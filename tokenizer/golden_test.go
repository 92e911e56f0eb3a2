package tokenizer

import (
	"fmt"
	"os"
	"slices"
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
