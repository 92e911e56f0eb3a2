package data

import (
	"slices"
	"testing"
)

// TestShuffleGolden pins the shuffle: a checkpoint written by one build
// (pre-training loader or SFT dataset) must resume identically in the next.
// Both element types and the allocating form give the same order.
func TestShuffleGolden(t *testing.T) {
	want := map[int][]int{
		0: {7, 6, 1, 3, 2, 4, 8, 9, 0, 5},
		1: {2, 5, 8, 3, 4, 1, 7, 6, 0, 9},
	}
	for epoch, w := range want {
		p32 := make([]uint32, len(w))
		ShuffleInto(p32, 1, epoch)
		got := Shuffle(len(w), 1, epoch)
		if !slices.Equal(got, w) {
			t.Errorf("epoch %d: Shuffle %v, want %v", epoch, got, w)
		}
		for i := range w {
			if int(p32[i]) != w[i] {
				t.Errorf("epoch %d: ShuffleInto([]uint32) %v, want %v", epoch, p32, w)
				break
			}
		}
	}
	if p := Shuffle(0, 1, 0); len(p) != 0 {
		t.Errorf("n=0: %v", p)
	}
	if p := Shuffle(1, 1, 0); !slices.Equal(p, []int{0}) {
		t.Errorf("n=1: %v", p)
	}
}

// TestShuffleUniform checks roughly that every element is equally likely first.
func TestShuffleUniform(t *testing.T) {
	const n, trials = 8, 16000
	var first [n]int
	p := make([]uint32, n)
	for s := range trials {
		ShuffleInto(p, int64(s), 3)
		first[p[0]]++
	}
	for i, c := range first {
		if c < trials/n*8/10 || c > trials/n*12/10 {
			t.Errorf("element %d first %d times in %d trials", i, c, trials)
		}
	}
}

// A permutation holds every index once.
func TestShuffleIsPermutation(t *testing.T) {
	for _, n := range []int{2, 3, 17, 1000} {
		p := Shuffle(n, int64(n), 7)
		s := slices.Clone(p)
		slices.Sort(s)
		for i, v := range s {
			if v != i {
				t.Fatalf("n=%d: %v is not a permutation", n, p)
			}
		}
	}
}
