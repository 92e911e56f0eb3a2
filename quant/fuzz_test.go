package quant

import (
	"encoding/json"
	"math/rand/v2"
	"testing"

	"github.com/shoggo/shoggo/safetensors"
	"github.com/shoggo/shoggo/tensor"
)

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }

// FuzzParseQuantState: no input panics; whatever parses re-serializes to
// something that parses to the same state.
func FuzzParseQuantState(f *testing.F) {
	for _, s := range []string{
		`{"quant_type": "nf4", "blocksize": 64, "dtype": "float32", "shape": [5, 70], "nested_blocksize": 256, "nested_dtype": "float32", "nested_offset": 0.11824985593557358}`,
		`{"quant_type": "fp4", "blocksize": 128, "dtype": "bfloat16", "shape": [3, 4, 5]}`,
		`{"quant_type": "int4", "dtype": "float32", "shape": [10, 70], "group_size": 32, "symmetric": false}`,
		`{"quant_type": "nf4", "blocksize": 64, "dtype": "float32", "shape": [1099511627776, 2]}`,
		`{"quant_type": "nf4", "blocksize": 1e2, "shape": null}`,
		`{}`, `[]`, `null`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		q, err := ParseQuantState(data)
		if err != nil {
			return
		}
		q2, err := ParseQuantState(q.marshal())
		if err != nil {
			t.Fatalf("re-parse of %s: %v", q.marshal(), err)
		}
		if string(q2.marshal()) != string(q.marshal()) {
			t.Fatalf("round trip changed %s to %s", q.marshal(), q2.marshal())
		}
	})
}

// FuzzParseConfig: no input panics.
func FuzzParseConfig(f *testing.F) {
	for _, s := range []string{
		`{"quant_method": "bitsandbytes", "load_in_4bit": true, "bnb_4bit_quant_type": "nf4", "bnb_4bit_use_double_quant": true}`,
		`{"quant_method": "bitsandbytes", "load_in_8bit": true, "llm_int8_threshold": 0.0, "llm_int8_skip_modules": ["lm_head"]}`,
		`{"quant_method": "shoggo", "format": "int4", "bits": 4, "group_size": 128, "sym": false}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseConfig(data)
		if err != nil {
			return
		}
		if _, _, err := c.LayerFormat(); err != nil {
			t.Fatalf("parsed config without a format: %v", err)
		}
		c.Skipped("model.layers.0.mlp")
	})
}

// FuzzLoadLinear feeds arbitrary safetensors files to LoadLinear: it must
// return an error or a layer that can run (no panic, no out-of-range).
func FuzzLoadLinear(f *testing.F) {
	rng := rand.New(rand.NewPCG(11, 12))
	for _, c := range layerCases {
		l, err := QuantizeLinear(randTensor(rng, 1, 3, 37), randTensor(rng, 1, 3), c.format, c.opts)
		if err != nil {
			f.Fatal(err)
		}
		data, err := safetensors.Marshal(l.Tensors("l"), nil)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := safetensors.Parse(data)
		if err != nil {
			return
		}
		l, err := LoadLinear(file, "l")
		if err != nil {
			return
		}
		out, in := l.W.Dims()
		if out*in > 1<<16 {
			return
		}
		x := tensor.New(tensor.F32, 5, in)
		y := tensor.New(tensor.F32, 5, out)
		l.Forward(y, x)
		l.Backward(x, y, x)
		l.Forward(y.View(0, 1, out), x.View(0, 1, in))
		l.Dequantize()
	})
}

// FuzzLoadLinearMeta pairs a fuzzed quant_state JSON with tensors of fuzzed
// sizes: LoadLinear must reject every disagreement (no panic), and a layer
// it accepts must run.
func FuzzLoadLinearMeta(f *testing.F) {
	f.Add([]byte(`{"quant_type": "nf4", "blocksize": 64, "dtype": "float32", "shape": [5, 70]}`), uint16(175), uint16(6), uint16(0), false)
	f.Add([]byte(`{"quant_type": "fp4", "blocksize": 32, "dtype": "float32", "shape": [3, 33], "nested_blocksize": 256, "nested_dtype": "float32", "nested_offset": 0.5}`), uint16(50), uint16(4), uint16(1), true)
	f.Add([]byte(`{"quant_type": "int4", "dtype": "float32", "shape": [4, 33], "group_size": 16, "symmetric": false}`), uint16(68), uint16(12), uint16(12), false)
	f.Fuzz(func(t *testing.T, state []byte, codes, absmax, extra uint16, nested bool) {
		var qs map[string]any
		if json.Unmarshal(state, &qs) != nil {
			return
		}
		qt, _ := qs["quant_type"].(string)
		ts := []*tensor.Tensor{}
		switch qt {
		case NF4, FP4:
			ts = append(ts, u8Tensor("l.weight.quant_state.bitsandbytes__"+qt, state, len(state)),
				u8Tensor("l.weight", make([]byte, codes), int(codes), 1))
			code := code4For(qt).code
			ts = append(ts, f32Tensor("l.weight.quant_map", code[:], 16))
			if nested {
				ts = append(ts, u8Tensor("l.weight.absmax", make([]byte, absmax), int(absmax)),
					f32Tensor("l.weight.nested_absmax", make([]float32, extra), int(extra)),
					f32Tensor("l.weight.nested_quant_map", DynamicMap(), 256))
			} else {
				ts = append(ts, f32Tensor("l.weight.absmax", make([]float32, absmax), int(absmax)))
			}
		case Int4:
			ts = append(ts, u8Tensor("l.weight.quant_state.shoggo__int4", state, len(state)),
				u8Tensor("l.weight", make([]byte, codes), int(codes)),
				f32Tensor("l.weight.scales", make([]float32, absmax), int(absmax)))
			if nested {
				ts = append(ts, u8Tensor("l.weight.zeros", make([]byte, extra), int(extra)))
			}
		default:
			return
		}
		data, err := safetensors.Marshal(ts, nil)
		if err != nil {
			return
		}
		file, err := safetensors.Parse(data)
		if err != nil {
			t.Fatal(err)
		}
		l, err := LoadLinear(file, "l")
		if err != nil {
			return
		}
		out, in := l.W.Dims()
		if out*in > 1<<16 {
			return
		}
		x := tensor.New(tensor.F32, 5, in)
		y := tensor.New(tensor.F32, 5, out)
		l.Forward(y, x)
		l.Backward(x, y, x)
		l.Forward(y.View(0, 1, out), x.View(0, 1, in))
	})
}
