package tensor

import "fmt"

// Spec names and shapes one tensor to be carved from an Arena.
type Spec struct {
	Name  string
	Shape Shape
}

// arenaAlign is the element alignment of every tensor in an arena (64 bytes
// for F32), so SIMD kernels see aligned rows.
const arenaAlign = 16

// Arena is one allocation holding many named tensors of one dtype. Model
// parameters, their gradients and optimizer moments each live in one arena,
// so an optimizer or an all-reduce can treat them as a single flat vector.
type Arena struct {
	DType   DType
	flat    *Tensor
	tensors []*Tensor
	index   map[string]int
}

// NewArena allocates one zeroed host block for all specs, in order. Names
// must be unique and shapes non-negative.
func NewArena(dt DType, specs []Spec) (*Arena, error) {
	return NewArenaAlloc(dt, specs, func(dt DType, n int) *Tensor { return New(dt, n) })
}

// NewArenaAlloc is NewArena with the block allocated by alloc (which must
// return a zeroed 1-D tensor of n elements of dtype dt): a backend passes its
// own allocator, and the arena's tensors are views of its storage.
func NewArenaAlloc(dt DType, specs []Spec, alloc func(dt DType, n int) *Tensor) (*Arena, error) {
	if dt != F32 && dt != F64 && dt != F16 && dt != BF16 {
		return nil, fmt.Errorf("arena: unsupported dtype %s", dt)
	}
	a := &Arena{DType: dt, index: make(map[string]int, len(specs))}
	offsets := make([]int, len(specs))
	total := 0
	for i, s := range specs {
		if _, dup := a.index[s.Name]; dup {
			return nil, fmt.Errorf("arena: duplicate tensor name %q", s.Name)
		}
		for _, d := range s.Shape {
			if d < 0 {
				return nil, fmt.Errorf("arena: tensor %q has negative dimension in shape %v", s.Name, s.Shape)
			}
		}
		a.index[s.Name] = i
		offsets[i] = total
		n := s.Shape.Numel()
		total += (n + arenaAlign - 1) / arenaAlign * arenaAlign
	}
	a.flat = alloc(dt, total)
	if a.flat == nil || a.flat.DType != dt || a.flat.Numel() != total {
		return nil, fmt.Errorf("arena: allocator returned %v, want %d elements of %s", a.flat, total, dt)
	}
	a.flat.Name = "arena"
	for i, s := range specs {
		v := a.flat.View(offsets[i], s.Shape...)
		v.Name = s.Name
		a.tensors = append(a.tensors, v)
	}
	return a, nil
}

// Get returns the named tensor, or nil.
func (a *Arena) Get(name string) *Tensor {
	i, ok := a.index[name]
	if !ok {
		return nil
	}
	return a.tensors[i]
}

// Tensors returns the tensors in creation order (views into the arena).
func (a *Arena) Tensors() []*Tensor { return a.tensors }

// Flat returns a 1-D view of the whole block, padding included (padding is
// zero and stays zero under any elementwise update of zero gradients).
func (a *Arena) Flat() *Tensor { return a.flat }

// Numel counts the elements of all tensors, padding excluded.
func (a *Arena) Numel() int {
	n := 0
	for _, t := range a.tensors {
		n += t.Numel()
	}
	return n
}

// Zero clears the whole arena of a host arena (a backend arena panics: use
// the backend's Zero on Flat()).
func (a *Arena) Zero() { a.flat.Zero() }
