package quant

import (
	"encoding/json"
	"math"
	"path/filepath"
	"testing"

	"github.com/shoggo/shoggo/safetensors"
)

// Fixtures made by reference/make_quant_fixtures.py with bitsandbytes 0.50.2.
func openFixture(t *testing.T, name string) *safetensors.File {
	t.Helper()
	f, err := safetensors.Open(filepath.Join("..", "testdata", "quant", name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func mustF32(t *testing.T, f safetensors.Reader, name string) []float32 {
	t.Helper()
	v, err := f.TensorF32(name)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func mustBytes(t *testing.T, f safetensors.Reader, name string) []byte {
	t.Helper()
	v, err := f.Tensor(name)
	if err != nil {
		t.Fatal(err)
	}
	return v.Bytes
}

// sameF32 compares as float values (so -0 == +0: bitsandbytes' native FP4
// kernel returns +0 for code 8 where its table has -0) and reports the
// first difference.
func sameF32(t *testing.T, what string, got, want []float32) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("%s[%d] = %v (%#x), want %v (%#x)", what, i, got[i], math.Float32bits(got[i]), want[i], math.Float32bits(want[i]))
		}
	}
}

func sameBytes(t *testing.T, what string, got, want []byte) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d bytes, want %d", what, len(got), len(want))
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("%s[%d] = %#x, want %#x", what, i, got[i], want[i])
		}
	}
}

func TestCodeTablesMatchBitsandbytes(t *testing.T) {
	f := openFixture(t, "bnb4bit.safetensors")
	sameF32(t, "nf4_code", NF4Code(), mustF32(t, f, "nf4_code"))
	// compare FP4 bit for bit, -0 included
	want := mustF32(t, f, "fp4_code")
	for i, v := range FP4Code() {
		if math.Float32bits(v) != math.Float32bits(want[i]) {
			t.Fatalf("fp4 code %d = %v, want %v", i, v, want[i])
		}
	}
	dm := mustF32(t, f, "dynamic_map")
	for i, v := range DynamicMap() {
		if math.Float32bits(v) != math.Float32bits(dm[i]) {
			t.Fatalf("dynamic map %d = %v, want %v", i, v, dm[i])
		}
	}
}

func TestBlockwise8MatchesBitsandbytes(t *testing.T) {
	f := openFixture(t, "bnb4bit.safetensors")
	in := mustF32(t, f, "q8.input")
	q, absmax := QuantizeBlockwise8(in, 256)
	sameBytes(t, "q8 codes", q, mustBytes(t, f, "q8.q"))
	sameF32(t, "q8 absmax", absmax, mustF32(t, f, "q8.absmax"))
	sameF32(t, "q8 dequant", DequantizeBlockwise8(q, absmax, DynamicMap(), 256), mustF32(t, f, "q8.dequant"))
}

func TestQuantize4BitMatchesBitsandbytes(t *testing.T) {
	f := openFixture(t, "bnb4bit.safetensors")
	var cases []struct {
		Name      string `json:"name"`
		Shape     []int  `json:"shape"`
		BlockSize int    `json:"blocksize"`
	}
	if err := json.Unmarshal([]byte(f.Metadata()["cases"]), &cases); err != nil {
		t.Fatal(err)
	}
	variants := 0
	for _, c := range cases {
		in := mustF32(t, f, c.Name+".input")
		for _, qt := range []string{NF4, FP4} {
			for _, dq := range []bool{false, true} {
				v := c.Name + "." + qt
				if dq {
					v += "_dq"
				}
				if _, ok := f.Info(v + ".packed"); !ok {
					continue
				}
				variants++
				t.Run(v, func(t *testing.T) {
					packed, st, err := Quantize4Bit(in, c.Shape, qt, c.BlockSize, dq)
					if err != nil {
						t.Fatal(err)
					}
					sameBytes(t, "packed", packed, mustBytes(t, f, v+".packed"))
					if dq {
						wantOff := mustF32(t, f, v+".offset")[0]
						if math.Float32bits(st.Offset) != math.Float32bits(wantOff) {
							t.Errorf("offset %v, want %v", st.Offset, wantOff)
						}
						sameBytes(t, "qabsmax", st.QAbsmax, mustBytes(t, f, v+".qabsmax"))
						sameF32(t, "absmax2", st.Absmax2, mustF32(t, f, v+".absmax2"))
					} else {
						sameF32(t, "absmax", st.Absmax, mustF32(t, f, v+".absmax"))
					}
					if _, ok := f.Info(v + ".dequant"); ok {
						got, err := Dequantize4Bit(packed, st)
						if err != nil {
							t.Fatal(err)
						}
						sameF32(t, "dequant", got, mustF32(t, f, v+".dequant"))
					}
				})
			}
		}
	}
	if variants < 40 {
		t.Fatalf("only %d variants in the fixture", variants)
	}
}

func TestInt8MatchesBitsandbytes(t *testing.T) {
	f := openFixture(t, "int8.safetensors")
	w := mustF32(t, f, "w")
	info, _ := f.Info("w")
	q, err := QuantizeInt8(w, info.Shape[0], info.Shape[1])
	if err != nil {
		t.Fatal(err)
	}
	sameBytes(t, "codes", int8Bytes(q.Q), mustBytes(t, f, "cb"))
	sameF32(t, "scb", q.SCB, mustF32(t, f, "scb"))
	l := &Linear{W: q}
	sameF32(t, "dequant", l.Dequantize().F32, mustF32(t, f, "dequant"))
}

// TestLoadBitsandbytesModules loads state dicts saved by bitsandbytes'
// Linear4bit / Linear8bitLt (the layout transformers writes) and checks the
// forward pass against bitsandbytes' own output.
func TestLoadBitsandbytesModules(t *testing.T) {
	f := openFixture(t, "bnb_modules.safetensors")
	for _, c := range []struct {
		prefix, format, x, y string
		in                   int
		bias                 bool
	}{
		{"nf4dq", NF4, "x", "y_nf4dq", 70, true},
		{"fp4", FP4, "x64", "y_fp4", 64, false},
		{"int8", Int8, "x", "", 70, true},
	} {
		t.Run(c.prefix, func(t *testing.T) {
			if !IsQuantized(f, c.prefix) {
				t.Fatal("IsQuantized = false")
			}
			l, err := LoadLinear(f, c.prefix)
			if err != nil {
				t.Fatal(err)
			}
			if l.Format() != c.format || l.In() != c.in || l.Out() != 24 || (l.B != nil) != c.bias {
				t.Fatalf("loaded %s (%d -> %d, bias %v)", l.Format(), l.In(), l.Out(), l.B != nil)
			}
			x := mustF32(t, f, c.x)
			N := len(x) / c.in
			y := make([]float32, N*24)
			l.Forward(f32Tensor("y", y, N, 24), f32Tensor("x", x, N, c.in))
			var want []float32
			if c.y != "" {
				want = mustF32(t, f, c.y)
			} else { // int8: compare with x dequant^T + b
				w := mustF32(t, f, "dq_int8")
				sameF32(t, "dequant", l.Dequantize().F32, w)
				want = denseForward(x, w, l.B.F32, N, c.in, 24)
			}
			for i := range y {
				if d := math.Abs(float64(y[i] - want[i])); d > 1e-5*(1+math.Abs(float64(want[i]))) {
					t.Fatalf("y[%d] = %v, bitsandbytes %v", i, y[i], want[i])
				}
			}
			// Writing the layer back gives bitsandbytes' exact tensors.
			for _, tt := range l.Tensors("") {
				ref, err := f.Tensor(tt.Name)
				if err != nil {
					t.Fatalf("%s: %v", tt.Name, err)
				}
				if !ref.Shape.Equal(tt.Shape) || ref.DType != tt.DType {
					t.Fatalf("%s: %v %v, bitsandbytes %v %v", tt.Name, tt.DType, tt.Shape, ref.DType, ref.Shape)
				}
				switch tt.DType {
				case 0: // F32
					sameF32(t, tt.Name, tt.F32, ref.F32)
				default:
					sameBytes(t, tt.Name, tt.Bytes, ref.Bytes)
				}
			}
		})
	}
}

func denseForward(x, w, b []float32, N, in, out int) []float32 {
	y := make([]float32, N*out)
	for n := 0; n < N; n++ {
		for o := 0; o < out; o++ {
			var s float64
			for i := 0; i < in; i++ {
				s += float64(x[n*in+i]) * float64(w[o*in+i])
			}
			if b != nil {
				s += float64(b[o])
			}
			y[n*out+o] = float32(s)
		}
	}
	return y
}
