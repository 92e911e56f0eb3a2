package cpu

import (
	"fmt"

	"github.com/shoggo/shoggo/tensor"
)

// The CPU backend's storage is host memory: Alloc is tensor.New, arenas are
// tensor arenas, Upload and Download are copies, Adopt and Free do nothing.

// Alloc returns a zeroed host tensor.
func (c *CPU) Alloc(dt tensor.DType, shape ...int) *tensor.Tensor { return tensor.New(dt, shape...) }

// NewArena is tensor.NewArena.
func (c *CPU) NewArena(dt tensor.DType, specs []tensor.Spec) (*tensor.Arena, error) {
	return tensor.NewArena(dt, specs)
}

// Upload copies src into dst (both host tensors of one dtype and size).
func (c *CPU) Upload(dst, src *tensor.Tensor) { CopyHost("Upload", dst, src) }

// Download copies src into dst (both host tensors of one dtype and size).
func (c *CPU) Download(dst, src *tensor.Tensor) { CopyHost("Download", dst, src) }

// Adopt returns t itself: host storage is the CPU backend's storage.
func (c *CPU) Adopt(t *tensor.Tensor) *tensor.Tensor {
	mustHost("Adopt", "t", t)
	return t
}

// Free does nothing: the garbage collector reclaims host tensors.
func (c *CPU) Free(t *tensor.Tensor) {}

// CopyHost copies the host tensor src into the host tensor dst: same dtype,
// same element count (shapes may differ). op names the caller in panics.
func CopyHost(op string, dst, src *tensor.Tensor) {
	mustHost(op, "dst", dst)
	mustHost(op, "src", src)
	n := src.Numel()
	if dst.DType != src.DType || dst.Numel() != n {
		panic(fmt.Sprintf("cpu.%s: %s into %s: want the same dtype and element count", op, src, dst))
	}
	switch src.DType {
	case tensor.F32:
		copy(dst.F32[:n], src.F32[:n])
	case tensor.F64:
		copy(dst.F64[:n], src.F64[:n])
	case tensor.F16, tensor.BF16:
		copy(dst.U16[:n], src.U16[:n])
	default:
		s := src.DType.Size()
		copy(dst.Bytes[:n*s], src.Bytes[:n*s])
	}
}

// mustHost panics when t is a backend tensor of another backend.
func mustHost(op, name string, t *tensor.Tensor) {
	if t != nil && !t.IsHost() {
		panic(fmt.Sprintf("cpu.%s: %s lives in %s storage, not host memory", op, label(name, t), t.Store.Backend()))
	}
}
