package tokenizer

import "math/bits"

// mergeTable maps a pair of token ids to (rank, merged id): an open-addressing hash table with
// linear probing, faster than a Go map for this hot lookup.
type mergeTable struct {
	keys  []uint64 // a<<32 | b, plus one so that 0 means empty
	vals  []uint64 // rank<<32 | merged id
	shift uint
	n     int
}

func newMergeTable(n int) *mergeTable {
	size := 16
	for size < 2*n+2 {
		size *= 2
	}
	return &mergeTable{
		keys:  make([]uint64, size),
		vals:  make([]uint64, size),
		shift: uint(64 - bits.TrailingZeros(uint(size))),
	}
}

func pairKey(a, b int32) uint64 { return uint64(uint32(a))<<32 | uint64(uint32(b)) }

func (m *mergeTable) slot(k uint64) int {
	return int((k * 0x9E3779B97F4A7C15) >> m.shift)
}

// put sets the entry for (a, b), replacing an earlier one (a later duplicate merge wins, as in
// Hugging Face, whose merge map is built by collecting into a HashMap).
func (m *mergeTable) put(a, b int32, rank, id int32) {
	if 2*(m.n+1) > len(m.keys) {
		m.grow()
	}
	k := pairKey(a, b) + 1
	mask := len(m.keys) - 1
	for i := m.slot(k); ; i = (i + 1) & mask {
		if m.keys[i] == 0 {
			m.keys[i] = k
			m.vals[i] = uint64(uint32(rank))<<32 | uint64(uint32(id))
			m.n++
			return
		}
		if m.keys[i] == k {
			m.vals[i] = uint64(uint32(rank))<<32 | uint64(uint32(id))
			return
		}
	}
}

func (m *mergeTable) grow() {
	old := *m
	*m = *newMergeTable(2 * old.n)
	for i, k := range old.keys {
		if k != 0 {
			p := k - 1
			m.put(int32(p>>32), int32(uint32(p)), int32(old.vals[i]>>32), int32(uint32(old.vals[i])))
		}
	}
}

const noRank = 1<<31 - 1

// get returns the rank and merged id of (a, b), or rank noRank when the pair does not merge.
func (m *mergeTable) get(a, b int32) (rank int32, id int32) {
	k := pairKey(a, b) + 1
	mask := len(m.keys) - 1
	for i := m.slot(k); ; i = (i + 1) & mask {
		switch m.keys[i] {
		case k:
			v := m.vals[i]
			return int32(v >> 32), int32(uint32(v))
		case 0:
			return noRank, -1
		}
	}
}

// bpeScratch holds the buffers of one merge.
type bpeScratch struct {
	syms  []int32
	ranks []int32
	ids   []int32
	heap  []heapEntry
	prev  []int32
	next  []int32
}

// mergeWord applies the merges to a word given as symbol ids, exactly as Hugging Face's BPE
// does: repeatedly merge the adjacent pair with the lowest rank, the leftmost one on ties.
// It returns the merged ids in syms' storage.
func (m *mergeTable) mergeWord(syms []int32, sc *bpeScratch) []int32 {
	if len(syms) < 2 {
		return syms
	}
	if len(syms) > 64 {
		return m.mergeWordHeap(syms, sc)
	}
	ranks := sc.ranks[:0]
	ids := sc.ids[:0]
	for i := 0; i+1 < len(syms); i++ {
		r, id := m.get(syms[i], syms[i+1])
		ranks = append(ranks, r)
		ids = append(ids, id)
	}
	for {
		best, bi := int32(noRank), -1
		for i, r := range ranks {
			if r < best {
				best, bi = r, i
			}
		}
		if bi < 0 {
			break
		}
		// merge bi and bi+1
		syms[bi] = ids[bi]
		copy(syms[bi+1:], syms[bi+2:])
		syms = syms[:len(syms)-1]
		copy(ranks[bi:], ranks[bi+1:])
		ranks = ranks[:len(ranks)-1]
		copy(ids[bi:], ids[bi+1:])
		ids = ids[:len(ids)-1]
		if bi > 0 {
			ranks[bi-1], ids[bi-1] = m.get(syms[bi-1], syms[bi])
		}
		if bi < len(ranks) {
			ranks[bi], ids[bi] = m.get(syms[bi], syms[bi+1])
		}
	}
	sc.ranks, sc.ids = ranks, ids
	return syms
}

type heapEntry struct {
	rank int32
	pos  int32
	id   int32
}

func (e heapEntry) less(o heapEntry) bool {
	return e.rank < o.rank || (e.rank == o.rank && e.pos < o.pos)
}

func heapPush(h []heapEntry, e heapEntry) []heapEntry {
	h = append(h, e)
	i := len(h) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !h[i].less(h[p]) {
			break
		}
		h[i], h[p] = h[p], h[i]
		i = p
	}
	return h
}

func heapPop(h []heapEntry) (heapEntry, []heapEntry) {
	top := h[0]
	last := len(h) - 1
	h[0] = h[last]
	h = h[:last]
	i := 0
	for {
		l := 2*i + 1
		if l >= len(h) {
			break
		}
		c := l
		if r := l + 1; r < len(h) && h[r].less(h[l]) {
			c = r
		}
		if !h[c].less(h[i]) {
			break
		}
		h[i], h[c] = h[c], h[i]
		i = c
	}
	return top, h
}

// mergeWordHeap is mergeWord for long words: a priority queue over a linked list of symbols,
// the algorithm of Hugging Face's Word::merge_all, O(n log n).
func (m *mergeTable) mergeWordHeap(syms []int32, sc *bpeScratch) []int32 {
	n := len(syms)
	if n < 2 {
		return syms
	}
	prev, next := sc.prev[:0], sc.next[:0]
	for i := 0; i < n; i++ {
		prev = append(prev, int32(i-1))
		next = append(next, int32(i+1))
	}
	next[n-1] = -1
	h := sc.heap[:0]
	for i := 0; i+1 < n; i++ {
		if r, id := m.get(syms[i], syms[i+1]); r != noRank {
			h = heapPush(h, heapEntry{r, int32(i), id})
		}
	}
	const dead = -2
	for len(h) > 0 {
		var e heapEntry
		e, h = heapPop(h)
		p := e.pos
		if next[p] == dead || next[p] < 0 {
			continue
		}
		q := next[p]
		if _, id := m.get(syms[p], syms[q]); id != e.id {
			continue // stale entry
		}
		syms[p] = e.id
		nq := next[q]
		next[p] = nq
		next[q] = dead
		if nq >= 0 {
			prev[nq] = p
		}
		if pp := prev[p]; pp >= 0 {
			if r, id := m.get(syms[pp], syms[p]); r != noRank {
				h = heapPush(h, heapEntry{r, pp, id})
			}
		}
		if nq >= 0 {
			if r, id := m.get(syms[p], syms[nq]); r != noRank {
				h = heapPush(h, heapEntry{r, p, id})
			}
		}
	}
	out := syms[:0]
	for i := int32(0); i >= 0; i = next[i] {
		out = append(out, syms[i])
	}
	sc.prev, sc.next, sc.heap = prev, next, h
	return out
}
