package model

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/shoggo/shoggo/backend"
	"github.com/shoggo/shoggo/internal/atomicfile"
	"github.com/shoggo/shoggo/safetensors"
	"github.com/shoggo/shoggo/tensor"
)

// knownBuffers are non-parameter tensors some checkpoints carry (GPT-2's
// causal-mask buffers, Llama's rotary inv_freq); they are skipped silently.
func knownBuffer(name string) bool {
	return strings.HasSuffix(name, ".attn.bias") || strings.HasSuffix(name, ".attn.masked_bias") ||
		strings.HasSuffix(name, "rotary_emb.inv_freq")
}

// LoadHF loads a Hugging Face model directory (config.json plus
// model.safetensors or a sharded index). Weights stored as F16/BF16/F64 are
// converted to dt. warnings name tensors in the files that the model does
// not use.
func LoadHF(dir string, be backend.Backend, dt tensor.DType, trainable bool) (m *Transformer, warnings []string, err error) {
	return LoadHFFrozen(dir, be, dt, trainable, nil)
}

// LoadHFFrozen is LoadHF with the block linears built by factory (see
// NewFrozen); factory nil is LoadHF.
func LoadHFFrozen(dir string, be backend.Backend, dt tensor.DType, trainable bool, factory LinearFactory) (m *Transformer, warnings []string, err error) {
	return LoadHFFrozenOpts(dir, be, dt, trainable, FrozenOptions{Factory: factory})
}

// LoadHFFrozenOpts is LoadHFFrozen with options (see FrozenOptions).
func LoadHFFrozenOpts(dir string, be backend.Backend, dt tensor.DType, trainable bool, opt FrozenOptions) (m *Transformer, warnings []string, err error) {
	cfg, err := LoadConfig(filepath.Join(dir, "config.json"))
	if err != nil {
		return nil, nil, err
	}
	st, err := safetensors.OpenSharded(dir)
	if err != nil {
		return nil, nil, err
	}
	defer st.Close()
	if err := CheckHeader(cfg, st, dir); err != nil {
		return nil, nil, err
	}
	m, err = NewFrozenOpts(cfg, be, dt, trainable, opt)
	if err != nil {
		return nil, nil, err
	}
	warnings, err = m.LoadWeights(st, dir)
	if err != nil {
		return nil, nil, err
	}
	return m, warnings, nil
}

// WeightSource is what LoadWeights reads from (a safetensors file or a
// sharded set).
type WeightSource interface {
	Names() []string
	Info(name string) (safetensors.TensorInfo, bool)
	TensorF32(name string) ([]float32, error)
}

// LoadWeights copies every parameter from src, checking names and shapes,
// and builds the external frozen linears (NewFrozen) one at a time. where
// names the source in errors.
func (m *Transformer) LoadWeights(src WeightSource, where string) (warnings []string, err error) {
	return m.loadWeights(src, where, nil)
}

// layerLoader, given to loadWeights, loads a frozen block linear its own
// way (loadQuantized: from quantized tensors) and reports whether it did;
// false leaves the layer to the float path. It marks what it reads in used.
type layerLoader func(pl pendingLinear, used map[string]bool) (bool, error)

// loadWeights is the one loop over a checkpoint's tensors that every
// loader (LoadHF, LoadQuantized) runs: the BF16 tables, the parameter
// arena, then each frozen block linear (through layer, when it takes it,
// else read as floats and handed to the model's factory), and finally a
// warning for every tensor of src the model did not use.
func (m *Transformer) loadWeights(src WeightSource, where string, layer layerLoader) (warnings []string, err error) {
	used := map[string]bool{}
	if m.Tables != nil {
		for _, p := range m.Tables.Tensors() {
			if err := m.readHalf(src, where, p, used); err != nil {
				return nil, err
			}
		}
	}
	for _, p := range m.Params.Tensors() {
		data, err := m.readTensor(src, where, p.Name, p.Shape, used)
		if err != nil {
			return nil, err
		}
		backend.FillHost(m.BE, p, func(h *tensor.Tensor) {
			if h.DType == tensor.F32 {
				copy(h.F32, data)
				return
			}
			for i, v := range data {
				h.Set(i, float64(v))
			}
		})
	}
	for _, pl := range m.pending {
		if layer != nil {
			done, err := layer(pl, used)
			if err != nil {
				return nil, err
			}
			if done {
				continue
			}
		}
		w, err := m.readTensor(src, where, pl.prefix+".weight", tensor.Shape{pl.out, pl.in}, used)
		if err != nil {
			return nil, err
		}
		var b *tensor.Tensor
		if pl.bias {
			bd, err := m.readTensor(src, where, pl.prefix+".bias", tensor.Shape{pl.out}, used)
			if err != nil {
				return nil, err
			}
			b = tensor.FromF32(bd, pl.out)
		}
		if err := pl.build(tensor.FromF32(w, pl.out, pl.in), b); err != nil {
			return nil, fmt.Errorf("%s: %s: %w", where, pl.prefix, err)
		}
	}
	return unusedTensors(src.Names(), where, used, &m.Cfg), nil
}

// unusedTensors warns about each tensor in names that the model did not
// use, except known buffers and a tied LM head saved anyway.
func unusedTensors(names []string, where string, used map[string]bool, c *Config) []string {
	var extra []string
	for _, n := range names {
		if used[n] || knownBuffer(n) {
			continue
		}
		if f := c.Spec(); f != nil && f.Names.LMHead != "" && n == f.Names.LMHead+".weight" && c.TieWordEmbeddings {
			continue // a tied head saved anyway
		}
		extra = append(extra, n)
	}
	sort.Strings(extra)
	var warnings []string
	for _, n := range extra {
		warnings = append(warnings, fmt.Sprintf("%s: ignoring unknown tensor %q", where, n))
	}
	return warnings
}

// intoReader is a WeightSource that can convert a tensor straight into a
// destination of another dtype (safetensors.File and Set).
type intoReader interface {
	ReadInto(name string, dst *tensor.Tensor) error
}

// readHalf fills the BF16 table p from src (through backend.FillHost: in
// place on host storage): converted from the file where src can (no fp32
// copy of the table), else through a temporary float32 copy.
func (m *Transformer) readHalf(src WeightSource, where string, p *tensor.Tensor, used map[string]bool) error {
	if r, ok := src.(intoReader); ok && !m.fam.Transposed(p.Name) {
		found, err := m.findTensor(src, where, p.Name, p.Shape, p.Shape, used)
		if err != nil {
			return err
		}
		backend.FillHost(m.BE, p, func(h *tensor.Tensor) { err = r.ReadInto(found, h) })
		if err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
		return nil
	}
	data, err := m.readTensor(src, where, p.Name, p.Shape, used)
	if err != nil {
		return err
	}
	backend.FillHost(m.BE, p, func(h *tensor.Tensor) {
		for i, v := range data {
			h.U16[i] = tensor.F32ToBF16(v)
		}
	})
	return nil
}

// findTensor finds the parameter called name in src under one of its disk
// names, checks it has shape want (the on-disk layout) and a float dtype,
// marks it used and returns the disk name.
func (m *Transformer) findTensor(src WeightSource, where, name string, shape, want tensor.Shape, used map[string]bool) (string, error) {
	var found string
	for _, n := range m.fam.diskNames(name) {
		if _, ok := src.Info(n); ok {
			found = n
			break
		}
	}
	if found == "" {
		return "", fmt.Errorf("%s: missing tensor %q (shape %v)", where, name, shape)
	}
	used[found] = true
	info, _ := src.Info(found)
	if !info.Shape.Equal(want) {
		return "", fmt.Errorf("%s: tensor %q has shape %v in the checkpoint, the config needs %v", where, found, info.Shape, want)
	}
	if !info.DType.IsFloat() {
		return "", fmt.Errorf("%s: tensor %q has dtype %s, want a float type", where, found, info.DType)
	}
	return found, nil
}

// readTensor reads the parameter called name (shape in shoggo's layout) from
// src as float32, transposing GPT-2 Conv1D weights.
func (m *Transformer) readTensor(src WeightSource, where, name string, shape tensor.Shape, used map[string]bool) ([]float32, error) {
	want := shape
	conv := m.fam.Transposed(name)
	if conv {
		want = tensor.Shape{shape[1], shape[0]}
	}
	found, err := m.findTensor(src, where, name, shape, want, used)
	if err != nil {
		return nil, err
	}
	data, err := src.TensorF32(found)
	if err != nil {
		return nil, err
	}
	if conv {
		data = transpose(data, want[0], want[1])
	}
	return data, nil
}

func transpose(a []float32, rows, cols int) []float32 {
	out := make([]float32, len(a))
	for i := 0; i < rows; i++ {
		for j := 0; j < cols; j++ {
			out[j*rows+i] = a[i*cols+j]
		}
	}
	return out
}

// HFTensors returns the parameters as a Hugging Face checkpoint holds them:
// original names, GPT-2 Conv1D weights transposed back to (in, out),
// converted to dtype dt (F32, F16 or BF16).
func (m *Transformer) HFTensors(dt tensor.DType) ([]*tensor.Tensor, error) {
	if len(m.pending) > 0 {
		return nil, fmt.Errorf("model: block linears are held by a frozen-linear factory; merge or dequantize before saving")
	}
	var out []*tensor.Tensor
	for _, p := range m.weights() {
		t := tensor.New(tensor.F32, p.Shape...)
		backend.ReadHost(m.BE, p, func(h *tensor.Tensor) {
			for i := range t.F32 {
				t.F32[i] = float32(h.At(i))
			}
		})
		if m.fam.Transposed(p.Name) {
			t = tensor.FromF32(transpose(t.F32, p.Shape[0], p.Shape[1]), p.Shape[1], p.Shape[0])
		}
		t.Name = p.Name
		if dt != tensor.F32 {
			c, err := tensor.Convert(t, dt)
			if err != nil {
				return nil, err
			}
			t = c
		}
		out = append(out, t)
	}
	return out, nil
}

// SaveOptions control SaveHF.
type SaveOptions struct {
	DType         tensor.DType // F32 (default), F16 or BF16
	MaxShardBytes int64        // 0: one file
}

// SaveHF writes a Hugging Face model directory: config.json (with
// model_type, architectures and torch_dtype), model.safetensors (or shards
// and an index) and generation_config.json. Each file is written atomically.
func (m *Transformer) SaveHF(dir string, opt SaveOptions) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	ts, err := m.HFTensors(opt.DType)
	if err != nil {
		return err
	}
	cfgJSON, err := m.Cfg.HFJSON()
	if err != nil {
		return err
	}
	var cm map[string]any
	_ = json.Unmarshal(cfgJSON, &cm)
	cm["torch_dtype"] = map[tensor.DType]string{tensor.F32: "float32", tensor.F16: "float16", tensor.BF16: "bfloat16"}[opt.DType]
	cfgJSON, _ = json.MarshalIndent(cm, "", "  ")
	if err := atomicfile.WriteFile(filepath.Join(dir, "config.json"), append(cfgJSON, '\n'), 0o644); err != nil {
		return err
	}
	gen := map[string]any{"_from_model_config": true}
	if m.Cfg.BOSTokenID != nil {
		gen["bos_token_id"] = *m.Cfg.BOSTokenID
	}
	if m.Cfg.EOSTokenID != nil {
		gen["eos_token_id"] = *m.Cfg.EOSTokenID
	}
	genJSON, _ := json.MarshalIndent(gen, "", "  ")
	if err := atomicfile.WriteFile(filepath.Join(dir, "generation_config.json"), append(genJSON, '\n'), 0o644); err != nil {
		return err
	}
	max := opt.MaxShardBytes
	if max <= 0 {
		max = 1 << 62
	}
	return safetensors.WriteSharded(dir, "model", ts, max, map[string]string{"format": "pt"})
}
