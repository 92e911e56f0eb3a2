package backend

import "github.com/shoggo/shoggo/tensor"

// Memory is how code above the backend gets and moves storage. Parameters,
// gradients, optimizer state, activations and caches are allocated here, so
// a device backend keeps them in device buffers (a tensor whose Store is
// its handle, tensor.Tensor's Offset locating views) and the CPU backend in
// plain host slices (Store nil, zero overhead).
//
// A "host tensor" below is a tensor with host storage (Store == nil, the
// kind tensor.New makes); a "backend tensor" is one this backend allocated
// (or a view of one). On the CPU backend the two are the same thing.
type Memory interface {
	// Alloc returns a zeroed backend tensor.
	Alloc(dt tensor.DType, shape ...int) *tensor.Tensor
	// NewArena is tensor.NewArena with the block in backend storage: the
	// arena's tensors (and Flat) are views of one backend allocation.
	NewArena(dt tensor.DType, specs []tensor.Spec) (*tensor.Arena, error)
	// Upload copies the host tensor src into the backend tensor dst (same
	// dtype and element count).
	Upload(dst, src *tensor.Tensor)
	// Download copies the backend tensor src into the host tensor dst (same
	// dtype and element count).
	Download(dst, src *tensor.Tensor)
	// Adopt returns a backend tensor holding the host tensor's contents:
	// the CPU backend returns t itself (no copy); a device backend uploads
	// it. The caller must not write t afterwards.
	Adopt(t *tensor.Tensor) *tensor.Tensor
	// Free releases a tensor returned by Alloc (not a view, not an arena
	// tensor) before the garbage collector would; using it afterwards is a
	// programmer error. The CPU backend does nothing.
	Free(t *tensor.Tensor)
}

// FillHost fills the backend tensor dst from the host: fill receives a host
// tensor of dst's dtype and shape to write. On host storage (the CPU
// backend) fill writes dst itself, with no copy; otherwise a host scratch
// tensor is filled and uploaded. Parameter initialisation and checkpoint
// loading use it.
func FillHost(m Memory, dst *tensor.Tensor, fill func(h *tensor.Tensor)) {
	if dst.IsHost() {
		fill(dst)
		return
	}
	h := tensor.New(dst.DType, dst.Shape...)
	h.Name = dst.Name
	fill(h)
	m.Upload(dst, h)
}

// ReadHost hands read a host tensor with src's contents: src itself on host
// storage, otherwise a downloaded copy. Checkpoint writers use it.
func ReadHost(m Memory, src *tensor.Tensor, read func(h *tensor.Tensor)) {
	if src.IsHost() {
		read(src)
		return
	}
	h := tensor.New(src.DType, src.Shape...)
	h.Name = src.Name
	m.Download(h, src)
	read(h)
}

// ToHost returns src as a host tensor: src itself on host storage,
// otherwise a downloaded copy.
func ToHost(m Memory, src *tensor.Tensor) *tensor.Tensor {
	var out *tensor.Tensor
	ReadHost(m, src, func(h *tensor.Tensor) { out = h })
	return out
}
