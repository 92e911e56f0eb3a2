package opaquetest

import (
	"bytes"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/shoggo/shoggo/backend"
	"github.com/shoggo/shoggo/backend/cpu"
	"github.com/shoggo/shoggo/backend/opaque"
	"github.com/shoggo/shoggo/model"
	"github.com/shoggo/shoggo/tensor"
)

// backends are the two backends every test runs on: the CPU (the
// reference) and the opaque one.
func backends() []backend.Backend { return []backend.Backend{cpu.New(), opaque.New()} }

// sameTensor fails unless a and b (host tensors) hold the same bits.
func sameTensor(t *testing.T, what string, a, b *tensor.Tensor) {
	t.Helper()
	if a.DType != b.DType || !a.Shape.Equal(b.Shape) {
		t.Fatalf("%s: %s %v on the CPU, %s %v on the opaque backend", what, a.DType, a.Shape, b.DType, b.Shape)
	}
	n := a.Numel()
	switch a.DType {
	case tensor.F32:
		for i := 0; i < n; i++ {
			if math.Float32bits(a.F32[i]) != math.Float32bits(b.F32[i]) {
				t.Fatalf("%s[%d]: %v on the CPU, %v on the opaque backend", what, i, a.F32[i], b.F32[i])
			}
		}
	case tensor.F64:
		for i := 0; i < n; i++ {
			if math.Float64bits(a.F64[i]) != math.Float64bits(b.F64[i]) {
				t.Fatalf("%s[%d]: %v on the CPU, %v on the opaque backend", what, i, a.F64[i], b.F64[i])
			}
		}
	case tensor.F16, tensor.BF16:
		for i := 0; i < n; i++ {
			if a.U16[i] != b.U16[i] {
				t.Fatalf("%s[%d]: %#x on the CPU, %#x on the opaque backend", what, i, a.U16[i], b.U16[i])
			}
		}
	default:
		if !bytes.Equal(a.Bytes[:n*a.DType.Size()], b.Bytes[:n*b.DType.Size()]) {
			t.Fatalf("%s: bytes differ", what)
		}
	}
}

// sameOn compares tensor lists of the two backends (downloaded to the host).
func sameOn(t *testing.T, what string, bes []backend.Backend, a, b []*tensor.Tensor) {
	t.Helper()
	if len(a) != len(b) {
		t.Fatalf("%s: %d tensors on the CPU, %d on the opaque backend", what, len(a), len(b))
	}
	for i := range a {
		sameTensor(t, what+" "+a[i].Name, backend.ToHost(bes[0], a[i]), backend.ToHost(bes[1], b[i]))
	}
}

// opaqueStorage fails unless every tensor is backend storage without a
// host slice (so the step really ran on the opaque backend's buffers).
func opaqueStorage(t *testing.T, what string, ts []*tensor.Tensor) {
	t.Helper()
	for _, x := range ts {
		if x.IsHost() || x.F32 != nil || x.F64 != nil || x.U16 != nil || x.Bytes != nil {
			t.Fatalf("%s: %s is host storage", what, x)
		}
	}
}

// modelTensors lists every tensor of m's arenas (parameters, tables,
// gradients).
func modelTensors(m *model.Transformer) []*tensor.Tensor {
	ts := append([]*tensor.Tensor(nil), m.Params.Tensors()...)
	if m.Tables != nil {
		ts = append(ts, m.Tables.Tensors()...)
	}
	if m.Grads != nil {
		ts = append(ts, m.Grads.Tensors()...)
	}
	return ts
}

// randomBatch draws B rows of T tokens with targets; with pad, row r ends
// in r%(T/2) padding positions (masked keys, ignored targets, as SFT pads)
// and its first target is ignored (a prompt token).
func randomBatch(rng *rand.Rand, B, T, V int, pad bool) *model.Batch {
	b := &model.Batch{B: B, T: T, IDs: make([]int32, B*T), Targets: make([]int32, B*T)}
	if pad {
		b.KeyMask = make([]int32, B*T)
	}
	for r := 0; r < B; r++ {
		real := T
		if pad {
			real = T - r%(T/2)
		}
		for i := 0; i < T; i++ {
			n := r*T + i
			b.IDs[n] = int32(rng.IntN(V))
			b.Targets[n] = int32(rng.IntN(V))
			if pad {
				if i < real {
					b.KeyMask[n] = 1
				} else {
					b.Targets[n] = backend.IgnoreIndex
				}
			}
		}
		if pad {
			b.Targets[r*T] = backend.IgnoreIndex
		}
	}
	return b
}

// sameFiles fails unless the two directories hold the same file names with
// the same bytes.
func sameFiles(t *testing.T, a, b string) {
	t.Helper()
	list := func(dir string) []string {
		var out []string
		err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !d.IsDir() {
				rel, _ := filepath.Rel(dir, p)
				out = append(out, rel)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		sort.Strings(out)
		return out
	}
	la, lb := list(a), list(b)
	if len(la) == 0 || len(la) != len(lb) {
		t.Fatalf("files %v from the CPU, %v from the opaque backend", la, lb)
	}
	for i := range la {
		if la[i] != lb[i] {
			t.Fatalf("files %v from the CPU, %v from the opaque backend", la, lb)
		}
		da, err := os.ReadFile(filepath.Join(a, la[i]))
		if err != nil {
			t.Fatal(err)
		}
		db, err := os.ReadFile(filepath.Join(b, lb[i]))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(da, db) {
			t.Errorf("%s differs between the CPU's and the opaque backend's save", la[i])
		}
	}
}
