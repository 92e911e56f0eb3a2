package quant

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/shoggo/shoggo/internal/parallel"
	"github.com/shoggo/shoggo/safetensors"
	"github.com/shoggo/shoggo/tensor"
)

func randTensor(rng *rand.Rand, scale float64, shape ...int) *tensor.Tensor {
	t := tensor.New(tensor.F32, shape...)
	for i := range t.F32 {
		t.F32[i] = float32(rng.NormFloat64() * scale)
	}
	return t
}

type layerCase struct {
	format string
	opts   Options
}

func (c layerCase) String() string {
	s := c.format
	switch c.format {
	case NF4, FP4:
		s += fmt.Sprintf("/bs%d", cmp.Or(c.opts.BlockSize, DefaultBlockSize))
		if c.opts.DoubleQuant {
			s += "/dq"
		}
	case Int4:
		s += fmt.Sprintf("/g%d", cmp.Or(c.opts.GroupSize, DefaultGroupSize))
		if c.opts.Asymmetric {
			s += "/asym"
		}
	}
	return s
}

var layerCases = []layerCase{
	{NF4, Options{}},
	{NF4, Options{DoubleQuant: true}},
	{NF4, Options{BlockSize: 32, DoubleQuant: true}},
	{FP4, Options{BlockSize: 128}},
	{FP4, Options{DoubleQuant: true}},
	{Int8, Options{}},
	{Int4, Options{GroupSize: 32}},
	{Int4, Options{GroupSize: 64, Asymmetric: true}},
	{Int4, Options{GroupSize: 16, Asymmetric: true}},
}

// shapes (out, in): in not a multiple of the block size, odd in, a single row...
var layerShapes = [][2]int{{37, 70}, {130, 93}, {16, 1}, {1, 64}, {48, 200}, {33, 129}}

// withSmallPanels forces several panels (and panels of odd height) on small
// shapes, so the panel code paths are exercised.
func withSmallPanels(t *testing.T) {
	old := panelFloats
	panelFloats = 16 * 40
	t.Cleanup(func() { panelFloats = old })
}

// checkClose checks got against want, with a tolerance relative to the sum
// of the magnitudes of the products (the scale of the rounding error).
func checkClose(t *testing.T, what string, got, want, mag []float32, rel float64) {
	t.Helper()
	for i := range got {
		tol := rel*float64(mag[i]) + 1e-30
		if d := math.Abs(float64(got[i]) - float64(want[i])); !(d <= tol) {
			t.Fatalf("%s[%d] = %v, want %v (|diff| %g > %g)", what, i, got[i], want[i], d, tol)
		}
	}
}

// dense reference of y = x W^T + b with magnitudes sum |x||w| + |b|.
func refForward(x, w, b []float32, N, in, out int) (y, mag []float32) {
	y, mag = make([]float32, N*out), make([]float32, N*out)
	for n := 0; n < N; n++ {
		for o := 0; o < out; o++ {
			var s, m float64
			for i := 0; i < in; i++ {
				p := float64(x[n*in+i]) * float64(w[o*in+i])
				s += p
				m += math.Abs(p)
			}
			if b != nil {
				s += float64(b[o])
				m += math.Abs(float64(b[o]))
			}
			y[n*out+o], mag[n*out+o] = float32(s), float32(m)
		}
	}
	return
}

func TestForwardBackwardMatchDequantized(t *testing.T) {
	withSmallPanels(t)
	rng := rand.New(rand.NewPCG(1, 2))
	for _, c := range layerCases {
		for _, sh := range layerShapes {
			out, in := sh[0], sh[1]
			for _, withBias := range []bool{false, true} {
				name := fmt.Sprintf("%v/%dx%d/bias=%v", c, out, in, withBias)
				t.Run(name, func(t *testing.T) {
					w := randTensor(rng, 0.5, out, in)
					var b *tensor.Tensor
					if withBias {
						b = randTensor(rng, 1, out)
					}
					l, err := QuantizeLinear(w, b, c.format, c.opts)
					if err != nil {
						t.Fatal(err)
					}
					if l.In() != in || l.Out() != out {
						t.Fatalf("dims %d %d", l.In(), l.Out())
					}
					wd := l.Dequantize().F32
					before := tensorsCopy(l)
					for _, N := range []int{1, 2, 5, 17} {
						x := randTensor(rng, 1, N, in)
						y := randTensor(rng, 1, N, out) // garbage: Forward overwrites
						l.Forward(y, x)
						var bb []float32
						if b != nil {
							bb = b.F32
						}
						want, mag := refForward(x.F32, wd, bb, N, in, out)
						checkClose(t, fmt.Sprintf("N=%d y", N), y.F32, want, mag, 1e-5)

						dy := randTensor(rng, 1, N, out)
						dx := randTensor(rng, 1, N, in) // accumulated into
						dx0 := slices.Clone(dx.F32)
						l.Backward(dx, dy, x)
						for n := 0; n < N; n++ {
							for i := 0; i < in; i++ {
								s, m := float64(dx0[n*in+i]), math.Abs(float64(dx0[n*in+i]))
								for o := 0; o < out; o++ {
									p := float64(dy.F32[n*out+o]) * float64(wd[o*in+i])
									s += p
									m += math.Abs(p)
								}
								if d := math.Abs(s - float64(dx.F32[n*in+i])); d > 1e-5*m+1e-30 {
									t.Fatalf("N=%d dx[%d,%d] = %v, want %v", N, n, i, dx.F32[n*in+i], s)
								}
							}
						}
						l.Backward(nil, dy, x) // no input gradient wanted: nothing happens
					}
					// Weights are frozen: nothing in the layer changed.
					after := tensorsCopy(l)
					for i := range before {
						if !equalTensor(before[i], after[i]) {
							t.Fatalf("%s changed", before[i].Name)
						}
					}
				})
			}
		}
	}
}

func tensorsCopy(l *Linear) []*tensor.Tensor {
	var out []*tensor.Tensor
	for _, t := range l.Tensors("l") {
		out = append(out, t.Clone())
	}
	return out
}

func equalTensor(a, b *tensor.Tensor) bool {
	if !a.Shape.Equal(b.Shape) || a.DType != b.DType || len(a.F32) != len(b.F32) || string(a.Bytes) != string(b.Bytes) {
		return false
	}
	for i := range a.F32 {
		if math.Float32bits(a.F32[i]) != math.Float32bits(b.F32[i]) {
			return false
		}
	}
	return true
}

// The panel path and the direct kernels agree with each other and results
// do not depend on the number of threads.
func TestForwardDeterministic(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	defer parallel.SetThreads(0)
	for _, c := range layerCases {
		w := randTensor(rng, 1, 150, 300)
		l, err := QuantizeLinear(w, nil, c.format, c.opts)
		if err != nil {
			t.Fatal(err)
		}
		x := randTensor(rng, 1, 9, 300)
		var ref []float32
		for _, th := range []int{1, 2, 3} {
			parallel.SetThreads(th)
			y := tensor.New(tensor.F32, 9, 150)
			l.Forward(y, x)
			if ref == nil {
				ref = y.F32
			} else if !slices.Equal(ref, y.F32) {
				t.Fatalf("%v: result depends on the thread count", c)
			}
		}
	}
}

func TestRoundTripErrorBounds(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	const out, in = 64, 200
	w := randTensor(rng, 1, out, in)
	for _, c := range layerCases {
		l, err := QuantizeLinear(w, nil, c.format, c.opts)
		if err != nil {
			t.Fatal(err)
		}
		d := l.Dequantize().F32
		var se, sw float64
		for i, v := range w.F32 {
			e := float64(d[i] - v)
			se += e * e
			sw += float64(v) * float64(v)
		}
		rel := math.Sqrt(se / sw)
		// Expected relative RMS error of each scheme on Gaussian weights.
		limit := map[string]float64{NF4: 0.11, FP4: 0.13, Int8: 0.01, Int4: 0.12}[c.format]
		if rel > limit {
			t.Errorf("%v: relative RMS error %.4f > %.2f", c, rel, limit)
		}
		// Per-element bounds.
		for i, v := range w.F32 {
			r, col := i/in, i%in
			var bound float64
			switch q := l.W.(type) {
			case *Weight4:
				b := i / q.st.BlockSize
				// half the largest gap between neighbouring codes, times absmax
				gap := maxHalfGap(q.c)
				bound = gap*float64(q.scale(b)) + 1e-6*math.Abs(float64(v))
				if q.st.Nested() { // the absmax itself is approximate
					bound += 0.02 * math.Abs(float64(v))
				}
			case *Int8Weight:
				bound = float64(q.SCB[r])/254*(1+1e-5) + 1e-7
			case *Int4Weight:
				s := float64(q.Scales[r*q.Groups()+col/q.GroupSize])
				bound = s*0.5*(1+1e-5) + 1e-7
				if !q.Symmetric() {
					bound = s * (1 + 1e-5)
				}
			}
			if e := math.Abs(float64(d[i] - v)); e > bound {
				t.Fatalf("%v: element %d: %v -> %v, error %g > %g", c, i, v, d[i], e, bound)
			}
		}
	}
}

func TestSerializeRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, c := range layerCases {
		for _, withBias := range []bool{false, true} {
			w := randTensor(rng, 1, 21, 75)
			var b *tensor.Tensor
			if withBias {
				b = randTensor(rng, 1, 21)
			}
			l, err := QuantizeLinear(w, b, c.format, c.opts)
			if err != nil {
				t.Fatal(err)
			}
			data, err := safetensors.Marshal(l.Tensors("model.layers.0.mlp.up_proj"), nil)
			if err != nil {
				t.Fatal(err)
			}
			f, err := safetensors.Parse(data)
			if err != nil {
				t.Fatal(err)
			}
			l2, err := LoadLinear(f, "model.layers.0.mlp.up_proj")
			if err != nil {
				t.Fatalf("%v: %v", c, err)
			}
			if l2.Format() != c.format || (l2.B != nil) != withBias {
				t.Fatalf("%v: loaded %s bias %v", c, l2.Format(), l2.B != nil)
			}
			if !slices.Equal(l.Dequantize().F32, l2.Dequantize().F32) {
				t.Fatalf("%v: dequantized weights differ after a round trip", c)
			}
			if withBias && !slices.Equal(l.B.F32, l2.B.F32) {
				t.Fatalf("%v: bias differs", c)
			}
		}
	}
}

func TestQuantizeErrors(t *testing.T) {
	w := tensor.New(tensor.F32, 4, 64)
	for _, c := range []struct {
		format string
		opts   Options
		want   string
	}{
		{"nf5", Options{}, "unknown format"},
		{NF4, Options{BlockSize: 48}, "blocksize 48"},
		{FP4, Options{BlockSize: 8192}, "blocksize 8192"},
		{Int4, Options{GroupSize: 100}, "group size 100"},
	} {
		if _, err := QuantizeLinear(w, nil, c.format, c.opts); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s %+v: error %v, want %q", c.format, c.opts, err, c.want)
		}
	}
	bad := tensor.New(tensor.F32, 2, 8)
	bad.Name = "w"
	bad.F32[3] = float32(math.NaN())
	for _, f := range []string{NF4, Int8, Int4} {
		if _, err := QuantizeLinear(bad, nil, f, Options{GroupSize: 16}); err == nil || !strings.Contains(err.Error(), "finite") {
			t.Errorf("%s with NaN: %v", f, err)
		}
	}
	if _, err := QuantizeLinear(w, tensor.New(tensor.F32, 5), NF4, Options{}); err == nil {
		t.Error("bias of the wrong size accepted")
	}
	if _, err := QuantizeLinear(tensor.New(tensor.F32, 64), nil, NF4, Options{}); err == nil {
		t.Error("1-D weight accepted")
	}
}

// Zero rows and groups quantize to exact zeros.
func TestZeros(t *testing.T) {
	w := tensor.New(tensor.F32, 3, 40)
	for i := 40; i < 80; i++ {
		w.F32[i] = float32(i - 60)
	}
	for _, c := range layerCases {
		l, err := QuantizeLinear(w, nil, c.format, c.opts)
		if err != nil {
			t.Fatal(err)
		}
		d := l.Dequantize().F32
		for i := range 40 {
			if d[i] != 0 || d[80+i] != 0 {
				t.Fatalf("%v: zero row dequantizes to %v / %v", c, d[i], d[80+i])
			}
		}
	}
}

// A stored layer whose metadata disagrees with its tensors fails to load
// with an *Error naming the tensor at fault.
func TestLoadErrors(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	const name = "m.q_proj"
	build := func(format string, opts Options) map[string]*tensor.Tensor {
		l, err := QuantizeLinear(randTensor(rng, 1, 10, 70), randTensor(rng, 1, 10), format, opts)
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]*tensor.Tensor{}
		for _, tt := range l.Tensors(name) {
			m[strings.TrimPrefix(tt.Name, name)] = tt.Clone()
		}
		return m
	}
	state := func(s string) *tensor.Tensor { return u8Tensor("", []byte(s), len(s)) }
	for _, c := range []struct {
		desc, format string
		opts         Options
		edit         func(m map[string]*tensor.Tensor)
		tensor, msg  string
	}{
		{"short codes", NF4, Options{}, func(m map[string]*tensor.Tensor) {
			m[".weight"] = u8Tensor("", make([]byte, 349), 349, 1)
		}, ".weight", "349 elements"},
		{"absmax count", NF4, Options{}, func(m map[string]*tensor.Tensor) {
			m[".weight.absmax"] = f32Tensor("", make([]float32, 10), 10)
		}, ".weight.absmax", "10 elements"},
		{"absmax dtype", NF4, Options{}, func(m map[string]*tensor.Tensor) {
			m[".weight.absmax"] = u8Tensor("", make([]byte, 11), 11)
		}, ".weight.absmax", "dtype U8"},
		{"nested absmax count", FP4, Options{DoubleQuant: true}, func(m map[string]*tensor.Tensor) {
			m[".weight.nested_absmax"] = f32Tensor("", make([]float32, 2), 2)
		}, ".weight.nested_absmax", "2 elements"},
		{"nested map missing", NF4, Options{DoubleQuant: true}, func(m map[string]*tensor.Tensor) {
			delete(m, ".weight.nested_quant_map")
		}, ".weight.nested_quant_map", "missing"},
		{"unknown quant_type", NF4, Options{}, func(m map[string]*tensor.Tensor) {
			m[".weight.quant_state.bitsandbytes__nf4"] = state(`{"quant_type": "nf3", "blocksize": 64, "dtype": "float32", "shape": [10, 70]}`)
		}, ".weight.quant_state.bitsandbytes__nf4", "unknown quant_type"},
		{"state of the other type", NF4, Options{}, func(m map[string]*tensor.Tensor) {
			m[".weight.quant_state.bitsandbytes__nf4"] = state(`{"quant_type": "fp4", "blocksize": 64, "dtype": "float32", "shape": [10, 70]}`)
		}, ".weight.quant_state.bitsandbytes__nf4", "quant_type \"fp4\""},
		{"bad blocksize", NF4, Options{}, func(m map[string]*tensor.Tensor) {
			m[".weight.quant_state.bitsandbytes__nf4"] = state(`{"quant_type": "nf4", "blocksize": 63, "dtype": "float32", "shape": [10, 70]}`)
		}, ".weight.quant_state.bitsandbytes__nf4", "blocksize 63"},
		{"shape disagrees", NF4, Options{}, func(m map[string]*tensor.Tensor) {
			m[".weight.quant_state.bitsandbytes__nf4"] = state(`{"quant_type": "nf4", "blocksize": 64, "dtype": "float32", "shape": [10, 72]}`)
		}, ".weight", "360"},
		{"unknown key", NF4, Options{}, func(m map[string]*tensor.Tensor) {
			m[".weight.quant_state.bitsandbytes__nf4"] = state(`{"quant_type": "nf4", "blocksize": 64, "dtype": "float32", "shape": [10, 70], "bits": 3}`)
		}, ".weight.quant_state.bitsandbytes__nf4", "unknown field"},
		{"not json", NF4, Options{}, func(m map[string]*tensor.Tensor) {
			m[".weight.quant_state.bitsandbytes__nf4"] = state(`{"quant_type": nf4`)
		}, ".weight.quant_state.bitsandbytes__nf4", "quant_state"},
		{"quant map", NF4, Options{}, func(m map[string]*tensor.Tensor) {
			m[".weight.quant_map"] = f32Tensor("", FP4Code(), 16)
		}, ".weight.quant_map", "value"},
		{"two states", NF4, Options{}, func(m map[string]*tensor.Tensor) {
			m[".weight.quant_state.bitsandbytes__fp4"] = m[".weight.quant_state.bitsandbytes__nf4"].Clone()
		}, ".weight", "more than one"},
		{"bias size", NF4, Options{}, func(m map[string]*tensor.Tensor) {
			m[".bias"] = f32Tensor("", make([]float32, 9), 9)
		}, ".bias", "9 elements"},
		{"int8 SCB count", Int8, Options{}, func(m map[string]*tensor.Tensor) {
			m[".SCB"] = f32Tensor("", make([]float32, 11), 11)
		}, ".SCB", "11 elements"},
		{"int8 weight dtype", Int8, Options{}, func(m map[string]*tensor.Tensor) {
			m[".weight"] = u8Tensor("", make([]byte, 700), 10, 70)
		}, ".weight", "dtype U8"},
		{"int8 format", Int8, Options{}, func(m map[string]*tensor.Tensor) {
			m[".weight_format"] = u8Tensor("", []byte{2})
		}, ".weight_format", "format 2"},
		{"int4 scales", Int4, Options{GroupSize: 32}, func(m map[string]*tensor.Tensor) {
			m[".weight.scales"] = f32Tensor("", make([]float32, 20), 10, 2)
		}, ".weight.scales", "20 elements"},
		{"int4 codes", Int4, Options{GroupSize: 32}, func(m map[string]*tensor.Tensor) {
			m[".weight"] = u8Tensor("", make([]byte, 700), 10, 70)
		}, ".weight", "700 elements"},
		{"int4 zeros range", Int4, Options{GroupSize: 32, Asymmetric: true}, func(m map[string]*tensor.Tensor) {
			m[".weight.zeros"].Bytes[4] = 16
		}, ".weight.zeros", "outside 0..15"},
		{"int4 zeros missing", Int4, Options{GroupSize: 32, Asymmetric: true}, func(m map[string]*tensor.Tensor) {
			delete(m, ".weight.zeros")
		}, ".weight.zeros", "missing"},
		{"int4 group size", Int4, Options{GroupSize: 32}, func(m map[string]*tensor.Tensor) {
			m[".weight.quant_state.shoggo__int4"] = state(`{"quant_type": "int4", "dtype": "float32", "shape": [10, 70], "group_size": 24, "symmetric": true}`)
		}, ".weight.quant_state.shoggo__int4", "group_size 24"},
		{"no state", Int4, Options{GroupSize: 32}, func(m map[string]*tensor.Tensor) {
			delete(m, ".weight.quant_state.shoggo__int4")
		}, ".weight", "no quantization state"},
	} {
		t.Run(c.desc, func(t *testing.T) {
			m := build(c.format, c.opts)
			c.edit(m)
			var ts []*tensor.Tensor
			for k, v := range m {
				v.Name = name + k
				ts = append(ts, v)
			}
			data, err := safetensors.Marshal(ts, nil)
			if err != nil {
				t.Fatal(err)
			}
			f, err := safetensors.Parse(data)
			if err != nil {
				t.Fatal(err)
			}
			_, err = LoadLinear(f, name)
			var qe *Error
			if !errors.As(err, &qe) {
				t.Fatalf("error %v is not a *quant.Error", err)
			}
			if qe.Tensor != name+c.tensor || !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("error %q, want tensor %q and %q", err, name+c.tensor, c.msg)
			}
		})
	}
}

func TestConfigRoundTrip(t *testing.T) {
	for _, c := range layerCases {
		cfg, err := ConfigFor(c.format, c.opts, []string{"lm_head"})
		if err != nil {
			t.Fatal(err)
		}
		js, err := jsonMarshal(cfg)
		if err != nil {
			t.Fatal(err)
		}
		back, err := ParseConfig(js)
		if err != nil {
			t.Fatalf("%v: %v\n%s", c, err, js)
		}
		f, o, err := back.LayerFormat()
		if err != nil {
			t.Fatal(err)
		}
		want := c.opts
		switch c.format {
		case NF4, FP4:
			want.BlockSize = cmp.Or(want.BlockSize, DefaultBlockSize)
		case Int4:
			want.GroupSize = cmp.Or(want.GroupSize, DefaultGroupSize)
		}
		if f != c.format || o != want {
			t.Fatalf("%v: round trip gives %s %+v\n%s", c, f, o, js)
		}
		if !back.Skipped("lm_head") || !back.Skipped("model.lm_head") || back.Skipped("model.layers.0.mlp.up_proj") {
			t.Fatalf("%v: Skipped wrong", c)
		}
	}
	// What transformers writes for BitsAndBytesConfig(load_in_4bit=True, ...).
	hf := `{"_load_in_4bit": true, "_load_in_8bit": false, "bnb_4bit_compute_dtype": "bfloat16",
	"bnb_4bit_quant_storage": "uint8", "bnb_4bit_quant_type": "nf4", "bnb_4bit_use_double_quant": true,
	"llm_int8_enable_fp32_cpu_offload": false, "llm_int8_has_fp16_weight": false, "llm_int8_skip_modules": null,
	"llm_int8_threshold": 6.0, "load_in_4bit": true, "load_in_8bit": false, "quant_method": "bitsandbytes"}`
	c, err := ParseConfig([]byte(hf))
	if err != nil {
		t.Fatal(err)
	}
	if f, o, _ := c.LayerFormat(); f != NF4 || o != (Options{BlockSize: 64, DoubleQuant: true}) {
		t.Fatalf("transformers config parsed as %s %+v", f, o)
	}
	for _, bad := range []string{
		`{"quant_method": "gptq"}`,
		`{"quant_method": "bitsandbytes"}`,
		`{"quant_method": "bitsandbytes", "load_in_4bit": true, "bnb_4bit_quant_type": "int4"}`,
		`{"quant_method": "shoggo", "format": "int4", "bits": 4, "group_size": 100, "sym": true}`,
		`{"quant_method": "shoggo", "format": "int4", "bits": 4, "group_size": 64}`,
		`[1]`,
	} {
		if _, err := ParseConfig([]byte(bad)); err == nil {
			t.Errorf("accepted %s", bad)
		}
	}
}

// maxHalfGap is half the largest distance between neighbouring code values.
func maxHalfGap(c *code4) float64 {
	g := 0.0
	for i := 0; i < 15; i++ {
		g = max(g, float64(c.code[c.order[i+1]]-c.code[c.order[i]])/2)
	}
	return g
}

// Realistic sizes with the default panels (several panels per thread, and
// rows spanning more than 64 blocks).
func TestForwardBackwardLarge(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	rng := rand.New(rand.NewPCG(17, 18))
	const out, in, N = 300, 4200, 33
	w := randTensor(rng, 0.1, out, in)
	x := randTensor(rng, 1, N, in)
	dy := randTensor(rng, 1, N, out)
	for _, c := range layerCases {
		l, err := QuantizeLinear(w, nil, c.format, c.opts)
		if err != nil {
			t.Fatal(err)
		}
		wd := l.Dequantize().F32
		for _, n := range []int{1, N} {
			xs := x.View(0, n, in)
			y := tensor.New(tensor.F32, n, out)
			l.Forward(y, xs)
			want, mag := refForward(xs.F32, wd, nil, n, in, out)
			checkClose(t, fmt.Sprintf("%v N=%d y", c, n), y.F32, want, mag, 1e-5)
		}
		dx := tensor.New(tensor.F32, N, in)
		l.Backward(dx, dy, x)
		// dx^T = W^T dy^T: reuse refForward with the transposed weight
		wt := make([]float32, in*out)
		for o := 0; o < out; o++ {
			for i := 0; i < in; i++ {
				wt[i*out+o] = wd[o*in+i]
			}
		}
		want, mag := refForward(dy.F32, wt, nil, N, out, in)
		checkClose(t, fmt.Sprintf("%v dx", c), dx.F32, want, mag, 1e-5)
	}
}
