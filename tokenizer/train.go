package tokenizer

import (
	"container/heap"
	"fmt"
	"iter"
	"slices"
	"strings"
)

// Train learns a byte-level BPE tokenizer from texts (use slices.Values for a []string).
//
// The text is split like GPT-2 (PatternGPT2, no normalization; special tokens found in the
// text are cut out first and not learned from). Ids 0-255 are the 256 byte tokens in byte
// order, then one id per learned merge, then the special tokens in the order given, so
// vocabSize counts all three. Each step merges the most frequent adjacent pair; ties go to the
// pair with the smaller (left id, right id), so training is deterministic. Training stops early
// when no pair occurs any more.
//
// The result encodes exactly as Hugging Face `tokenizers` does with the tokenizer.json it
// writes (Save). EOS is <|endoftext|> when it is among the special tokens.
func Train(texts iter.Seq[string], vocabSize int, special []string) (*Tokenizer, error) {
	if vocabSize < 256+len(special) {
		return nil, fmt.Errorf("tokenizer: vocab size %d is below 256 bytes + %d special tokens", vocabSize, len(special))
	}
	seen := map[string]bool{}
	added := make([]AddedToken, len(special))
	for i, s := range special {
		if s == "" || seen[s] {
			return nil, fmt.Errorf("tokenizer: special token %q empty or repeated", s)
		}
		seen[s] = true
		added[i] = AddedToken{Content: s, Special: true}
	}
	buildClassTables()
	matcher := newAddedMatcher(added, func(*AddedToken) bool { return true }, func(a *AddedToken) string { return a.Content })

	// 1. count the pre-tokenized words
	counts := map[string]int64{}
	countText := func(s string) {
		for i := 0; i < len(s); {
			j := scanGPT2(s, i)
			w := s[i:j]
			if c, ok := counts[w]; ok {
				counts[w] = c + 1
			} else {
				counts[strings.Clone(w)] = 1
			}
			i = j
		}
	}
	for text := range texts {
		pos := 0
		if matcher != nil {
			for {
				st, en, k := matcher.find(text, pos)
				if k < 0 {
					break
				}
				countText(text[pos:st])
				pos = en
			}
		}
		countText(text[pos:])
	}

	// 2. learn merges
	tr := newTrainer(counts)
	numMerges := vocabSize - 256 - len(special)
	merges, tokens := tr.run(numMerges)

	// 3. build the tokenizer
	vocab := make(map[string]int32, len(tokens)+len(special))
	for id, b := range tokens {
		vocab[byteLevelEncode(b)] = int32(id)
	}
	mergeStrs := make([][2]string, len(merges))
	for i, m := range merges {
		mergeStrs[i] = [2]string{byteLevelEncode(tokens[m[0]]), byteLevelEncode(tokens[m[1]])}
	}
	for i := range added {
		added[i].ID = int32(len(tokens) + i)
	}
	t := &Tokenizer{unkID: -1}
	t.pre, _ = preTokenizerFor(PatternGPT2)
	t.useRegex = true
	t.postByte = true
	if err := t.build(vocab, mergeStrs, added); err != nil {
		return nil, fmt.Errorf("tokenizer: train: %w", err)
	}
	t.defaultSpecials()
	return t, nil
}

// trainer holds the state of BPE training: every distinct word as symbol ids with its count,
// the count of every adjacent pair, and for each pair the words that (may) contain it.
type trainer struct {
	words  [][]int32
	freq   []int64
	pairs  map[uint64]int32 // pair -> index into count/where
	count  []int64
	key    []uint64  // pair index -> key
	where  [][]int32 // word indices, possibly stale or repeated
	tokens [][]byte
	ids    map[string]int32
	queue  pairHeap
	mark   []int32
}

func newTrainer(counts map[string]int64) *trainer {
	keys := make([]string, 0, len(counts))
	for w := range counts {
		keys = append(keys, w)
	}
	slices.Sort(keys)
	tr := &trainer{pairs: map[uint64]int32{}, ids: map[string]int32{}}
	for b := range 256 {
		tr.tokens = append(tr.tokens, []byte{byte(b)})
		tr.ids[string([]byte{byte(b)})] = int32(b)
	}
	for _, w := range keys {
		syms := make([]int32, len(w))
		for i := 0; i < len(w); i++ {
			syms[i] = int32(w[i])
		}
		wi := int32(len(tr.words))
		tr.words = append(tr.words, syms)
		tr.freq = append(tr.freq, counts[w])
		for i := 0; i+1 < len(syms); i++ {
			p := tr.pair(syms[i], syms[i+1])
			tr.count[p] += counts[w]
			if l := tr.where[p]; len(l) == 0 || l[len(l)-1] != wi {
				tr.where[p] = append(l, wi)
			}
		}
	}
	tr.mark = make([]int32, len(tr.words))
	for i := range tr.mark {
		tr.mark[i] = -1
	}
	for k, p := range tr.pairs {
		tr.queue = append(tr.queue, pairItem{count: tr.count[p], key: k})
	}
	heap.Init(&tr.queue)
	return tr
}

func (tr *trainer) pair(a, b int32) int32 {
	k := pairKey(a, b)
	if p, ok := tr.pairs[k]; ok {
		return p
	}
	p := int32(len(tr.count))
	tr.pairs[k] = p
	tr.count = append(tr.count, 0)
	tr.key = append(tr.key, k)
	tr.where = append(tr.where, nil)
	return p
}

// run merges until there are 256+n tokens (or no pair is left) and returns the merges, in
// order, with the bytes of every token. A merge whose result already exists (from another
// pair) reuses its id, so there can be more merges than new tokens.
func (tr *trainer) run(n int) ([][2]int32, [][]byte) {
	var merges [][2]int32
	var fresh []int32 // pairs created by the current merge
	for step := int32(0); len(tr.tokens) < 256+n && tr.queue.Len() > 0; step++ {
		top := heap.Pop(&tr.queue).(pairItem)
		p := tr.pairs[top.key]
		if c := tr.count[p]; c != top.count {
			if c > 0 {
				heap.Push(&tr.queue, pairItem{count: c, key: top.key})
			}
			step--
			continue
		}
		if top.count <= 0 {
			break
		}
		a, b := int32(top.key>>32), int32(uint32(top.key))
		nb := append(append([]byte(nil), tr.tokens[a]...), tr.tokens[b]...)
		x, ok := tr.ids[string(nb)]
		if !ok {
			x = int32(len(tr.tokens))
			tr.tokens = append(tr.tokens, nb)
			tr.ids[string(nb)] = x
		}
		merges = append(merges, [2]int32{a, b})
		fresh = fresh[:0]
		for _, wi := range tr.where[p] {
			if tr.mark[wi] == step {
				continue
			}
			tr.mark[wi] = step
			tr.mergeIn(wi, a, b, x, &fresh)
		}
		tr.where[p] = nil
		slices.Sort(fresh)
		fresh = slices.Compact(fresh)
		for _, q := range fresh {
			if tr.count[q] > 0 {
				heap.Push(&tr.queue, pairItem{count: tr.count[q], key: tr.key[q]})
			}
		}
	}
	return merges, tr.tokens
}

// mergeIn replaces every (a, b) in word wi by x, updating pair counts; pairs that gain count
// (those with x) are appended to fresh.
func (tr *trainer) mergeIn(wi int32, a, b, x int32, fresh *[]int32) {
	syms := tr.words[wi]
	found := false
	for i := 0; i+1 < len(syms); i++ {
		if syms[i] == a && syms[i+1] == b {
			found = true
			break
		}
	}
	if !found {
		return
	}
	f := tr.freq[wi]
	for i := 0; i+1 < len(syms); i++ {
		tr.count[tr.pairs[pairKey(syms[i], syms[i+1])]] -= f
	}
	out := syms[:0]
	for i := 0; i < len(syms); i++ {
		if i+1 < len(syms) && syms[i] == a && syms[i+1] == b {
			out = append(out, x)
			i++
		} else {
			out = append(out, syms[i])
		}
	}
	tr.words[wi] = out
	for i := 0; i+1 < len(out); i++ {
		p := tr.pair(out[i], out[i+1])
		tr.count[p] += f
		if out[i] == x || out[i+1] == x {
			if l := tr.where[p]; len(l) == 0 || l[len(l)-1] != wi {
				tr.where[p] = append(l, wi)
			}
			*fresh = append(*fresh, p)
		}
	}
}

type pairItem struct {
	count int64
	key   uint64
}

// pairHeap is a max-heap on count; ties go to the smaller key (left id, then right id).
type pairHeap []pairItem

func (h pairHeap) Len() int { return len(h) }
func (h pairHeap) Less(i, j int) bool {
	if h[i].count != h[j].count {
		return h[i].count > h[j].count
	}
	return h[i].key < h[j].key
}
func (h pairHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *pairHeap) Push(x any)   { *h = append(*h, x.(pairItem)) }
func (h *pairHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	*h = old[:len(old)-1]
	return it
}
