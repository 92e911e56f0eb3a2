package tensor

import "testing"

type fakeStore struct{ n int }

func (f *fakeStore) Backend() string { return "fake" }

// TestBackendViews: views of a backend tensor carry its handle with
// composed offsets and no host slice; host-only methods panic; Identity
// tells storage locations apart.
func TestBackendViews(t *testing.T) {
	s := &fakeStore{}
	x := &Tensor{Shape: Shape{4, 6}, DType: F32, Store: s, Offset: 10}
	cases := []struct {
		name   string
		v      *Tensor
		offset int
		shape  Shape
	}{
		{"View", x.View(5, 3), 15, Shape{3}},
		{"Slice", x.Slice(1, 3), 16, Shape{2, 6}},
		{"Reshape", x.Reshape(24), 10, Shape{24}},
		{"Slice of Slice", x.Slice(1, 3).Slice(1, 2), 22, Shape{1, 6}},
	}
	for _, c := range cases {
		if c.v.Store != s || c.v.Offset != c.offset || !c.v.Shape.Equal(c.shape) || c.v.F32 != nil || c.v.IsHost() {
			t.Errorf("%s: store %v offset %d shape %v, want offset %d shape %v in the same storage", c.name, c.v.Store, c.v.Offset, c.v.Shape, c.offset, c.shape)
		}
	}
	for name, f := range map[string]func(){"Zero": func() { x.Zero() }, "Clone": func() { x.Clone() }, "At": func() { x.At(0) }, "Set": func() { x.Set(0, 1) }} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s on a backend tensor: no panic", name)
				}
			}()
			f()
		}()
	}
	if x.Identity() != x.Reshape(24).Identity() || x.Identity() == x.View(1, 1).Identity() {
		t.Error("Identity does not name the storage location")
	}
	h := New(F32, 4)
	if h.Identity() != h.View(0, 2).Identity() || h.Identity() == h.View(1, 2).Identity() || h.Identity() == New(F32, 4).Identity() {
		t.Error("host Identity does not name the storage location")
	}
}

// TestNewArenaAlloc: arena tensors are views of the allocator's block; an
// allocator that returns the wrong size is an error.
func TestNewArenaAlloc(t *testing.T) {
	s := &fakeStore{}
	alloc := func(dt DType, n int) *Tensor { return &Tensor{Shape: Shape{n}, DType: dt, Store: s} }
	a, err := NewArenaAlloc(F32, []Spec{{"a", Shape{3}}, {"b", Shape{2, 2}}}, alloc)
	if err != nil {
		t.Fatal(err)
	}
	if b := a.Get("b"); b.Store != s || b.Offset != arenaAlign || b.F32 != nil {
		t.Errorf("arena tensor b: %+v", b)
	}
	bad := func(dt DType, n int) *Tensor { return New(dt, n+1) }
	if _, err := NewArenaAlloc(F32, []Spec{{"a", Shape{3}}}, bad); err == nil {
		t.Error("a wrong-sized block was accepted")
	}
}
