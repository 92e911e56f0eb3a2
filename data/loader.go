package data

import (
	"errors"
	"fmt"
	"iter"
	"math"
	"sort"
)

// Loader serves batches of token windows from shards.
//
// The shards are read as one concatenated stream of N tokens. A window is
// T+1 consecutive tokens and windows start every T tokens, so consecutive
// windows share one token and every token but the first is a target exactly
// once (inputs are a window's first T tokens, targets its last T).
//
// The end of the stream is held out for validation: ValWindows windows, the
// smallest multiple of B that is at least valFraction of all windows,
// aligned to end at the last token. Training windows come from the tokens
// before the first validation window, so no token is in both sets.
//
// Each epoch visits the training windows in a fresh seeded order and serves
// them B at a time; the TrainWindows % B windows left over at the end of an
// epoch's order are skipped in that epoch (a different set each epoch).
//
// A Loader reads tokens from the shards when it serves them and never holds
// the corpus in memory. The shards must stay open while it is in use. A
// Loader is not safe for concurrent use.
type Loader struct {
	shards   []*Shard
	starts   []int64 // starts[i] is the stream offset of shards[i]; starts[len] = N
	b, t     int
	seed     int64
	n        int64
	nTrain   int
	nVal     int
	valStart int64

	epoch     int
	pos       int
	perm      []uint32
	permEpoch int
}

// LoaderState is a Loader's position: the batch that Next will serve next.
// The fields after Index describe the loader that produced the state, so that
// Restore can refuse a state from a different configuration or corpus.
type LoaderState struct {
	Epoch int `json:"epoch"` // the epoch of the last batch served (0 before any)
	Index int `json:"index"` // windows of that epoch's order already served

	Seed         int64 `json:"seed"`
	BatchSize    int   `json:"batch_size"`
	SeqLen       int   `json:"seq_len"`
	Tokens       int64 `json:"tokens"`
	TrainWindows int   `json:"train_windows"`
}

// NewLoader makes a loader over the concatenation of shards, serving batches
// of B windows of T+1 tokens. seed fixes the training order; valFraction in
// [0, 1) is the share of windows held out for validation (rounded up to a
// whole number of batches; 0 holds out nothing). Every shard is validated
// (Shard.Validate) and all must have the same vocabulary size.
func NewLoader(shards []*Shard, B, T int, seed int64, valFraction float64) (*Loader, error) {
	switch {
	case len(shards) == 0:
		return nil, errors.New("loader: no shards")
	case B < 1 || T < 1:
		return nil, fmt.Errorf("loader: batch size %d and sequence length %d must be at least 1", B, T)
	case !(valFraction >= 0 && valFraction < 1):
		return nil, fmt.Errorf("loader: validation fraction %v outside [0, 1)", valFraction)
	}
	l := &Loader{shards: shards, b: B, t: T, seed: seed, permEpoch: -1}
	l.starts = make([]int64, len(shards)+1)
	for i, s := range shards {
		if s == nil || s.data == nil {
			return nil, fmt.Errorf("loader: shard %d is nil or closed", i)
		}
		if s.vocab != shards[0].vocab {
			return nil, fmt.Errorf("loader: shard %s has vocabulary size %d but shard %s has %d", nameOf(s, i), s.vocab, nameOf(shards[0], 0), shards[0].vocab)
		}
		if err := s.Validate(); err != nil {
			return nil, err
		}
		l.starts[i] = l.n
		l.n += int64(s.n)
	}
	l.starts[len(shards)] = l.n

	t := int64(T)
	var windows int64
	if l.n > 0 {
		windows = (l.n - 1) / t
	}
	l.valStart = l.n
	if valFraction > 0 && windows > 0 {
		v := int64(math.Ceil(valFraction * float64(windows)))
		v = (v + int64(B) - 1) / int64(B) * int64(B)
		if v*t+1 > l.n {
			return nil, fmt.Errorf("loader: %d tokens give %d windows of %d tokens, too few to hold out a validation batch of %d", l.n, windows, T+1, B)
		}
		l.nVal = int(v)
		l.valStart = l.n - v*t - 1
	}
	var train int64
	if l.valStart > 0 {
		train = (l.valStart - 1) / t
	}
	if train < int64(B) {
		return nil, fmt.Errorf("loader: %d tokens give %d training windows of %d tokens (after holding out %d for validation), fewer than a batch of %d",
			l.n, train, T+1, l.nVal, B)
	}
	if train > math.MaxUint32 {
		return nil, fmt.Errorf("loader: %d training windows, more than the %d supported; use a longer sequence", train, uint64(math.MaxUint32))
	}
	l.nTrain = int(train)
	return l, nil
}

func nameOf(s *Shard, i int) string {
	if s.path != "" {
		return s.path
	}
	return fmt.Sprintf("#%d", i)
}

// BatchSize is B, the windows per batch.
func (l *Loader) BatchSize() int { return l.b }

// SeqLen is T; each window holds T+1 tokens.
func (l *Loader) SeqLen() int { return l.t }

// Tokens is the number of tokens in all shards together.
func (l *Loader) Tokens() int64 { return l.n }

// VocabSize is the shards' vocabulary size.
func (l *Loader) VocabSize() int { return l.shards[0].vocab }

// TrainWindows is the number of training windows.
func (l *Loader) TrainWindows() int { return l.nTrain }

// BatchesPerEpoch is the number of training batches in one epoch.
func (l *Loader) BatchesPerEpoch() int { return l.nTrain / l.b }

// ValWindows is the number of validation windows, a multiple of B.
func (l *Loader) ValWindows() int { return l.nVal }

// ValBatchCount is the number of validation batches.
func (l *Loader) ValBatchCount() int { return l.nVal / l.b }

// Next fills dst, which must hold B*(T+1) tokens, with the next training batch:
// B windows of T+1 tokens, one after another. It returns the epoch the batch
// belongs to, counting from 0.
func (l *Loader) Next(dst []int32) (epoch int) {
	w := l.t + 1
	if len(dst) != l.b*w {
		panic(fmt.Sprintf("data: Loader.Next: dst holds %d tokens, want B*(T+1) = %d", len(dst), l.b*w))
	}
	if l.pos+l.b > l.nTrain {
		l.epoch++
		l.pos = 0
	}
	perm := l.order(l.epoch)
	for i := range l.b {
		l.window(int64(perm[l.pos+i])*int64(l.t), dst[i*w:(i+1)*w])
	}
	l.pos += l.b
	return l.epoch
}

// Position returns the loader's state; Restore on a loader made with the same
// shards, B, T, seed and valFraction continues with exactly the batches this
// loader would serve next.
func (l *Loader) Position() LoaderState {
	return LoaderState{
		Epoch: l.epoch, Index: l.pos,
		Seed: l.seed, BatchSize: l.b, SeqLen: l.t, Tokens: l.n, TrainWindows: l.nTrain,
	}
}

// Restore moves the loader to st, which Position returned. It is an error if
// st came from a loader with another seed, batch size, sequence length, corpus
// size or split.
func (l *Loader) Restore(st LoaderState) error {
	cur := l.Position()
	switch {
	case st.Seed != cur.Seed:
		return fmt.Errorf("loader: state has seed %d, loader has %d", st.Seed, cur.Seed)
	case st.BatchSize != cur.BatchSize:
		return fmt.Errorf("loader: state has batch size %d, loader has %d", st.BatchSize, cur.BatchSize)
	case st.SeqLen != cur.SeqLen:
		return fmt.Errorf("loader: state has sequence length %d, loader has %d", st.SeqLen, cur.SeqLen)
	case st.Tokens != cur.Tokens:
		return fmt.Errorf("loader: state is for %d tokens, loader has %d (different shards?)", st.Tokens, cur.Tokens)
	case st.TrainWindows != cur.TrainWindows:
		return fmt.Errorf("loader: state has %d training windows, loader has %d (different validation fraction?)", st.TrainWindows, cur.TrainWindows)
	case st.Epoch < 0 || st.Index < 0 || st.Index > l.nTrain:
		return fmt.Errorf("loader: state epoch %d index %d out of range (%d training windows)", st.Epoch, st.Index, l.nTrain)
	}
	l.epoch, l.pos = st.Epoch, st.Index
	return nil
}

// ValBatch fills dst, which must hold B*(T+1) tokens, with validation batch i
// (0 <= i < ValBatchCount()). Validation windows are served in stream order.
func (l *Loader) ValBatch(i int, dst []int32) {
	w := l.t + 1
	if len(dst) != l.b*w {
		panic(fmt.Sprintf("data: Loader.ValBatch: dst holds %d tokens, want B*(T+1) = %d", len(dst), l.b*w))
	}
	if i < 0 || i >= l.ValBatchCount() {
		panic(fmt.Sprintf("data: Loader.ValBatch(%d) out of range [0, %d)", i, l.ValBatchCount()))
	}
	for k := range l.b {
		l.window(l.valStart+int64(i*l.b+k)*int64(l.t), dst[k*w:(k+1)*w])
	}
}

// ValBatches iterates over the validation batches in order. The yielded slice
// holds B*(T+1) tokens and is overwritten by the next batch.
func (l *Loader) ValBatches() iter.Seq[[]int32] {
	return func(yield func([]int32) bool) {
		buf := make([]int32, l.b*(l.t+1))
		for i := range l.ValBatchCount() {
			l.ValBatch(i, buf)
			if !yield(buf) {
				return
			}
		}
	}
}

// window copies the len(dst) tokens starting at stream offset start.
func (l *Loader) window(start int64, dst []int32) {
	// the last shard whose start is <= start
	s := sort.Search(len(l.shards), func(i int) bool { return l.starts[i+1] > start })
	for len(dst) > 0 {
		sh := l.shards[s]
		i := int(start - l.starts[s])
		k := min(len(dst), sh.n-i)
		sh.Tokens(i, i+k, dst)
		dst = dst[k:]
		start += int64(k)
		s++
	}
}

// order returns the permutation of training windows for epoch e.
func (l *Loader) order(e int) []uint32 {
	if l.permEpoch == e {
		return l.perm
	}
	if l.perm == nil {
		l.perm = make([]uint32, l.nTrain)
	}
	ShuffleInto(l.perm, l.seed, e)
	l.permEpoch = e
	return l.perm
}
