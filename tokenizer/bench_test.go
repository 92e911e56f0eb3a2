package tokenizer

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// benchText returns the benchmark corpus: the file named by SHOGGO_BENCH_TEXT (what
// bench/tokenizer_bench.sh sets), else the Go sources of a few standard packages.
func benchText(tb testing.TB) string {
	if p := os.Getenv("SHOGGO_BENCH_TEXT"); p != "" {
		data, err := os.ReadFile(p)
		if err != nil {
			tb.Fatal(err)
		}
		return string(data)
	}
	var b strings.Builder
	for _, pkg := range []string{"fmt", "strings", "bufio", "encoding/json"} {
		files, _ := filepath.Glob(filepath.Join(runtime.GOROOT(), "src", pkg, "*.go"))
		slices.Sort(files)
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err == nil {
				b.Write(data)
			}
		}
	}
	if b.Len() == 0 {
		tb.Skip("no benchmark text: set SHOGGO_BENCH_TEXT")
	}
	return b.String()
}

// benchDocs cuts text into documents of at least 4096 bytes at line ends (the last one may be
// shorter), exactly as bench/tokenizer_bench.py does.
func benchDocs(text string) []string {
	var docs []string
	start := 0
	for i := 0; i < len(text); i++ {
		if text[i] == '\n' && i+1-start >= 4096 {
			docs = append(docs, text[start:i+1])
			start = i + 1
		}
	}
	if start < len(text) {
		docs = append(docs, text[start:])
	}
	return docs
}

func benchEncodeBatch(b *testing.B, tok *Tokenizer, threads int) {
	text := benchText(b)
	docs := benchDocs(text)
	tok.EncodeBatch(docs, threads) // warm the caches, as the Python side does
	b.SetBytes(int64(len(text)))
	b.ResetTimer()
	for b.Loop() {
		tok.EncodeBatch(docs, threads)
	}
}

// BenchmarkEncodeQwen is single-threaded encoding with the Qwen3 tokenizer.
func BenchmarkEncodeQwen(b *testing.B) { benchEncodeBatch(b, qwen(b), 1) }

// BenchmarkEncodeQwenParallel uses all cores (GOMAXPROCS goroutines).
func BenchmarkEncodeQwenParallel(b *testing.B) { benchEncodeBatch(b, qwen(b), 0) }

func BenchmarkEncodeGPT2(b *testing.B) { benchEncodeBatch(b, gpt2(b), 1) }

func BenchmarkEncodeGPT2Parallel(b *testing.B) { benchEncodeBatch(b, gpt2(b), 0) }

// BenchmarkEncodeQwenCold measures encoding without a warm word cache.
func BenchmarkEncodeQwenCold(b *testing.B) {
	tok := qwen(b)
	text := benchText(b)
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		e := &encoder{t: tok, cache: map[string][]int32{}}
		e.encode(nil, text, true)
	}
}

func BenchmarkDecodeQwen(b *testing.B) {
	tok := qwen(b)
	text := benchText(b)
	ids := tok.Encode(text)
	b.SetBytes(int64(len(text)))
	var buf []byte
	for b.Loop() {
		buf = tok.AppendDecode(buf[:0], ids)
	}
}

func BenchmarkLoadQwen(b *testing.B) {
	qwen(b)
	for b.Loop() {
		if _, err := Load(thirdParty("qwen3", "tokenizer.json")); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkTrain(b *testing.B) {
	text := benchText(b)
	lines := strings.SplitAfter(text, "\n")
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		if _, err := Train(slices.Values(lines), 4096, []string{"<|endoftext|>"}); err != nil {
			b.Fatal(err)
		}
	}
}

// TestBenchParity compares the Go ids of the benchmark documents with the ids Python wrote
// (bench/tokenizer_bench.py --ids PATH): little-endian int32, all documents concatenated.
// Runs when SHOGGO_BENCH_IDS (and SHOGGO_BENCH_TOKENIZER=qwen3|gpt2) are set.
func TestBenchParity(t *testing.T) {
	p := os.Getenv("SHOGGO_BENCH_IDS")
	if p == "" {
		t.Skip("set SHOGGO_BENCH_IDS (see bench/tokenizer_bench.sh)")
	}
	tok := qwen(t)
	if os.Getenv("SHOGGO_BENCH_TOKENIZER") == "gpt2" {
		tok = gpt2(t)
	}
	raw, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	want := make([]int32, len(raw)/4)
	for i := range want {
		want[i] = int32(binary.LittleEndian.Uint32(raw[4*i:]))
	}
	docs := benchDocs(benchText(t))
	var got []int32
	for _, ids := range tok.EncodeBatch(docs, 0) {
		got = append(got, ids...)
	}
	if !slices.Equal(got, want) {
		n := 0
		for n < min(len(got), len(want)) && got[n] == want[n] {
			n++
		}
		t.Fatalf("ids differ at token %d of %d (python %d)", n, len(got), len(want))
	}
	t.Logf("%d documents, %d tokens: identical to Python", len(docs), len(got))
}
