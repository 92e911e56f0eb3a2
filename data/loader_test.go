package data

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// positionShards writes shards of the given sizes whose tokens are their
// positions in the concatenated stream, so a window shows where it came from.
func positionShards(t *testing.T, sizes ...int) []*Shard {
	t.Helper()
	dir := t.TempDir()
	var shards []*Shard
	pos := int32(0)
	for i, n := range sizes {
		toks := make([]int32, n)
		for k := range toks {
			toks[k] = pos
			pos++
		}
		p := filepath.Join(dir, fmt.Sprintf("s%d.bin", i))
		if err := WriteShard(p, toks, 1<<20); err != nil {
			t.Fatal(err)
		}
		s, err := OpenShard(p)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		shards = append(shards, s)
	}
	return shards
}

// windowStarts checks that batch holds B windows of T+1 consecutive positions
// and returns their first positions.
func windowStarts(t *testing.T, batch []int32, B, T int) []int32 {
	t.Helper()
	starts := make([]int32, B)
	for b := range B {
		w := batch[b*(T+1) : (b+1)*(T+1)]
		for k := range w {
			if w[k] != w[0]+int32(k) {
				t.Fatalf("window %d not consecutive: %v", b, w)
			}
		}
		if int(w[0])%T != 0 {
			t.Fatalf("window starts at %d, not a multiple of T=%d", w[0], T)
		}
		starts[b] = w[0]
	}
	return starts
}

func TestLoaderSplitAndWindows(t *testing.T) {
	shards := positionShards(t, 5, 0, 37, 100, 3) // 145 tokens, boundaries inside windows
	const B, T = 2, 8
	l, err := NewLoader(shards, B, T, 42, 0.1)
	if err != nil {
		t.Fatal(err)
	}
	// 18 windows; 10% is 1.8 -> 2 (a whole batch); they end at the last token.
	if l.Tokens() != 145 || l.ValWindows() != 2 || l.ValBatchCount() != 1 || l.TrainWindows() != 15 || l.BatchesPerEpoch() != 7 {
		t.Fatalf("tokens %d val %d/%d train %d batches %d", l.Tokens(), l.ValWindows(), l.ValBatchCount(), l.TrainWindows(), l.BatchesPerEpoch())
	}
	if l.VocabSize() != 1<<20 || l.BatchSize() != B || l.SeqLen() != T {
		t.Fatal("accessors")
	}
	var val []int32
	for batch := range l.ValBatches() {
		val = append(val, windowStarts(t, batch, B, T)...)
		if batch[len(batch)-1] != 144 {
			t.Errorf("last validation token %d, want 144", batch[len(batch)-1])
		}
	}
	if !slices.Equal(val, []int32{128, 136}) {
		t.Errorf("validation windows start at %v, want [128 136]", val)
	}

	// One epoch serves 14 distinct training windows, all ending by token 128,
	// so train and validation share no token.
	buf := make([]int32, B*(T+1))
	seen := map[int32]bool{}
	for range l.BatchesPerEpoch() {
		if e := l.Next(buf); e != 0 {
			t.Fatalf("epoch %d, want 0", e)
		}
		for _, s := range windowStarts(t, buf, B, T) {
			if seen[s] {
				t.Errorf("window %d served twice in one epoch", s)
			}
			seen[s] = true
			if s+T+1 > 128 {
				t.Errorf("training window %d overlaps validation tokens [128, 145)", s)
			}
		}
	}
	if len(seen) != 14 {
		t.Errorf("%d distinct windows, want 14", len(seen))
	}
	if e := l.Next(buf); e != 1 {
		t.Errorf("epoch %d after a full epoch, want 1", e)
	}
}

func TestLoaderNoValidation(t *testing.T) {
	l, err := NewLoader(positionShards(t, 33), 4, 4, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	if l.ValWindows() != 0 || l.TrainWindows() != 8 {
		t.Fatalf("val %d train %d", l.ValWindows(), l.TrainWindows())
	}
	for range l.ValBatches() {
		t.Fatal("validation batch with valFraction 0")
	}
	// Every token but the first is a target once per epoch.
	buf := make([]int32, 4*5)
	var starts []int32
	for range 2 {
		l.Next(buf)
		starts = append(starts, windowStarts(t, buf, 4, 4)...)
	}
	slices.Sort(starts)
	if !slices.Equal(starts, []int32{0, 4, 8, 12, 16, 20, 24, 28}) {
		t.Errorf("starts %v", starts)
	}
}

// take returns the window starts of the next n batches.
func take(t *testing.T, l *Loader, n int) (starts []int32, epochs []int) {
	buf := make([]int32, l.BatchSize()*(l.SeqLen()+1))
	for range n {
		epochs = append(epochs, l.Next(buf))
		starts = append(starts, windowStarts(t, buf, l.BatchSize(), l.SeqLen())...)
	}
	return
}

func TestLoaderDeterminismAndReshuffle(t *testing.T) {
	shards := positionShards(t, 400, 211)
	const B, T = 3, 10
	a, _ := NewLoader(shards, B, T, 7, 0.05)
	b, _ := NewLoader(shards, B, T, 7, 0.05)
	c, _ := NewLoader(shards, B, T, 8, 0.05)
	per := a.BatchesPerEpoch()
	sa, ea := take(t, a, 3*per)
	sb, eb := take(t, b, 3*per)
	sc, _ := take(t, c, 3*per)
	if !slices.Equal(sa, sb) || !slices.Equal(ea, eb) {
		t.Fatal("same seed gave different batches")
	}
	if slices.Equal(sa, sc) {
		t.Error("different seeds gave the same batches")
	}
	for i, e := range ea {
		if e != i/per {
			t.Fatalf("batch %d has epoch %d, want %d", i, e, i/per)
		}
	}
	n := per * B
	e0, e1, e2 := sa[:n], sa[n:2*n], sa[2*n:]
	if slices.Equal(e0, e1) || slices.Equal(e1, e2) {
		t.Error("epochs repeat the same order")
	}
	for _, ep := range [][]int32{e0, e1, e2} {
		s := slices.Clone(ep)
		slices.Sort(s)
		if len(slices.Compact(s)) != n {
			t.Error("a window repeats within an epoch")
		}
	}
	// The validation split does not depend on the seed.
	var va, vc []int32
	for x := range a.ValBatches() {
		va = append(va, x...)
	}
	for x := range c.ValBatches() {
		vc = append(vc, x...)
	}
	if len(va) == 0 || !slices.Equal(va, vc) {
		t.Error("validation batches differ between seeds")
	}
}

func TestLoaderResume(t *testing.T) {
	shards := positionShards(t, 300, 250)
	const B, T = 4, 6
	ref, _ := NewLoader(shards, B, T, 99, 0.1)
	per := ref.BatchesPerEpoch()
	for _, stop := range []int{0, 1, per - 1, per, per + 1, 2*per + 3} {
		run, _ := NewLoader(shards, B, T, 99, 0.1)
		take(t, run, stop)
		st := run.Position()
		js, err := json.Marshal(st)
		if err != nil {
			t.Fatal(err)
		}
		var back LoaderState
		if err := json.Unmarshal(js, &back); err != nil || back != st {
			t.Fatalf("state JSON round trip: %s -> %+v (%v)", js, back, err)
		}
		want, wantE := take(t, run, 2*per+1)

		resumed, _ := NewLoader(shards, B, T, 99, 0.1)
		if err := resumed.Restore(back); err != nil {
			t.Fatal(err)
		}
		got, gotE := take(t, resumed, 2*per+1)
		if !slices.Equal(got, want) || !slices.Equal(gotE, wantE) {
			t.Errorf("resumed after %d batches: different batches", stop)
		}
	}
}

func TestLoaderRestoreMismatch(t *testing.T) {
	shards := positionShards(t, 300)
	l, _ := NewLoader(shards, 4, 6, 1, 0.1)
	take(t, l, 3)
	st := l.Position()
	for _, c := range []struct {
		mk  func() (*Loader, error)
		msg string
	}{
		{func() (*Loader, error) { return NewLoader(shards, 4, 6, 2, 0.1) }, "seed"},
		{func() (*Loader, error) { return NewLoader(shards, 2, 6, 1, 0.1) }, "batch size"},
		{func() (*Loader, error) { return NewLoader(shards, 4, 5, 1, 0.1) }, "sequence length"},
		{func() (*Loader, error) { return NewLoader(shards[:1:1], 4, 6, 1, 0.3) }, "training windows"},
		{func() (*Loader, error) { return NewLoader(positionShards(t, 301), 4, 6, 1, 0.1) }, "tokens"},
	} {
		o, err := c.mk()
		if err != nil {
			t.Fatal(err)
		}
		if err := o.Restore(st); err == nil || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("Restore = %v, want error about %s", err, c.msg)
		}
	}
	bad := st
	bad.Index = l.TrainWindows() + 1
	if err := l.Restore(bad); err == nil {
		t.Error("Restore accepted an index past the end")
	}
	bad = st
	bad.Epoch = -1
	if err := l.Restore(bad); err == nil {
		t.Error("Restore accepted a negative epoch")
	}
}

func TestLoaderErrors(t *testing.T) {
	small := positionShards(t, 20)
	dir := t.TempDir()
	other := filepath.Join(dir, "o.bin")
	if err := WriteShard(other, []int32{1, 2, 3}, 50); err != nil {
		t.Fatal(err)
	}
	o, _ := OpenShard(other)
	defer o.Close()
	badTok, _ := ParseShard(rawShard(ShardMagic, 1, 2, 2, 10, 0, []byte{1, 0, 12, 0}))
	closed := positionShards(t, 5)[0]
	closed.Close()
	for _, c := range []struct {
		shards []*Shard
		B, T   int
		val    float64
		msg    string
	}{
		{nil, 1, 1, 0, "no shards"},
		{small, 0, 4, 0, "batch size 0"},
		{small, 1, 0, 0, "sequence length 0"},
		{small, 1, 4, -0.1, "validation fraction"},
		{small, 1, 4, 1, "validation fraction"},
		{small, 5, 4, 0, "fewer than a batch of 5"},   // 4 windows
		{small, 2, 4, 0.6, "fewer than a batch of 2"}, // 4 held out, none left
		{small, 5, 4, 0.1, "too few to hold out"},
		{[]*Shard{small[0], o}, 1, 2, 0, "vocabulary size 50"},
		{[]*Shard{badTok}, 1, 1, 0, "byte offset 34"},
		{[]*Shard{closed}, 1, 1, 0, "closed"},
	} {
		if _, err := NewLoader(c.shards, c.B, c.T, 0, c.val); err == nil || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("NewLoader(B=%d T=%d val=%v) = %v, want %q", c.B, c.T, c.val, err, c.msg)
		}
	}
}
