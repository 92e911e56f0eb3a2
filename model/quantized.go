package model

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/shoggo/shoggo/backend"
	"github.com/shoggo/shoggo/internal/atomicfile"
	"github.com/shoggo/shoggo/nn"
	"github.com/shoggo/shoggo/quant"
	"github.com/shoggo/shoggo/safetensors"
	"github.com/shoggo/shoggo/tensor"
)

// Quantized model directories
//
// A quantized model directory is a Hugging Face model directory whose
// config.json carries a "quantization_config" (quant.Config: bitsandbytes'
// fields for NF4/FP4/int8, quant_method "shoggo" for int4) and whose
// safetensors hold every block linear (attention and MLP projections) in
// quant's on-disk layout (see the quant package doc; NF4/FP4/int8 are the
// layouts transformers + bitsandbytes write) and everything else
// (embeddings, norms, the LM head) as float tensors (F32, or BF16/F16 with
// QuantizeOptions.KeepDType). Quantized weights are stored in (out, in)
// order for every family, GPT-2's Conv1D layers included (as bitsandbytes
// stores them); GPT-2's fused c_attn is quantized as one (3C, C) layer.
//
// QuantizeHF writes such a directory from an fp32/bf16/fp16 one, one tensor
// at a time; LoadQuantized reads it for inference; LoadForInference loads
// either kind.

// QuantizingFactory returns a LinearFactory (see NewFrozen) that quantizes
// each frozen block linear with quant.QuantizeLinear: QLoRA's NF4 base is
// QuantizingFactory(quant.NF4, quant.Options{BlockSize: 64, DoubleQuant: true}).
// The fp32 weight the model hands over is temporary; the layer keeps only
// the quantized copy (and an fp32 copy of the bias).
func QuantizingFactory(format string, opts quant.Options) LinearFactory {
	return func(name string, w, b *tensor.Tensor) (nn.Layer, error) {
		l, err := quant.QuantizeLinear(w, b, format, opts)
		if err != nil {
			return nil, fmt.Errorf("quantizing %s: %w", name, err)
		}
		l.Name = name
		return l, nil // the model sets l.BE to its backend (Transformer.onBackend)
	}
}

// QuantizationConfig reads the "quantization_config" of dir/config.json:
// nil (and no error) when the model is not quantized.
func QuantizationConfig(dir string) (*quant.Config, error) {
	path := filepath.Join(dir, "config.json")
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	qc, ok := raw["quantization_config"]
	if !ok || string(qc) == "null" {
		return nil, nil
	}
	c, err := quant.ParseConfig(qc)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// QuantizeOptions control QuantizeHF.
type QuantizeOptions struct {
	Format string        // quant.NF4, quant.FP4, quant.Int8 or quant.Int4
	Quant  quant.Options // block size, double quantization, group size, asymmetric
	// KeepDType is the dtype of the tensors that stay unquantized
	// (embeddings, norms, LM head): F32 (default), BF16 or F16.
	KeepDType     tensor.DType
	MaxShardBytes int64 // 0: one file
}

// QuantizeResult summarises QuantizeHF.
type QuantizeResult struct {
	Config       *quant.Config
	Layers       int   // quantized linear layers
	LinearParams int64 // weights of those layers
	QuantBytes   int64 // their storage (codes, scales, biases)
	FloatBytes   int64 // the unquantized tensors' storage
	Warnings     []string
}

// skipModules are the modules QuantizeHF never quantizes, recorded in the
// config as transformers does (the LM head; embeddings and norms are not
// linear layers and are never quantized either).
var skipModules = []string{"lm_head"}

// QuantizeHF reads the Hugging Face model in srcDir and writes a quantized
// model directory to dstDir: config.json (the source's, with a
// quantization_config and torch_dtype added) and model.safetensors (or
// shards and an index). Other files (tokenizer, generation config) are left
// to the caller. The source is read one tensor at a time, so its fp32 copy
// never exists in memory as a whole.
func QuantizeHF(srcDir, dstDir string, o QuantizeOptions) (*QuantizeResult, error) {
	if a, b := absClean(srcDir), absClean(dstDir); a == b {
		return nil, fmt.Errorf("quantize: output directory %s is the input directory", dstDir)
	}
	if o.KeepDType == 0 {
		o.KeepDType = tensor.F32
	}
	dtName := map[tensor.DType]string{tensor.F32: "float32", tensor.BF16: "bfloat16", tensor.F16: "float16"}[o.KeepDType]
	if dtName == "" {
		return nil, fmt.Errorf("quantize: unquantized tensors can be kept as F32, BF16 or F16, not %s", o.KeepDType)
	}
	qc, err := quant.ConfigFor(o.Format, o.Quant, skipModules)
	if err != nil {
		return nil, err
	}
	if qcSrc, err := QuantizationConfig(srcDir); err != nil {
		return nil, err
	} else if qcSrc != nil {
		return nil, fmt.Errorf("quantize: %s is already quantized (its config.json has a quantization_config)", srcDir)
	}
	cfgPath := filepath.Join(srcDir, "config.json")
	cfg, err := LoadConfig(cfgPath)
	if err != nil {
		return nil, err
	}
	rawCfg, err := os.ReadFile(cfgPath)
	if err != nil {
		return nil, err
	}
	var cm map[string]any
	if err := json.Unmarshal(rawCfg, &cm); err != nil {
		return nil, fmt.Errorf("%s: %w", cfgPath, err)
	}
	st, err := safetensors.OpenSharded(srcDir)
	if err != nil {
		return nil, err
	}
	defer st.Close()

	// A model value carrying only the config, for readTensor (names,
	// shapes, GPT-2's Conv1D transposes).
	fam := cfg.Spec()
	rd := &Transformer{Cfg: *cfg, fam: fam}
	specs := ParamSpecs(cfg)
	shapes := map[string]tensor.Shape{}
	for _, s := range specs {
		shapes[s.Name] = s.Shape
	}
	used := map[string]bool{}
	res := &QuantizeResult{Config: qc}
	var out []*tensor.Tensor
	for _, s := range specs {
		prefix, isLinear := fam.BlockLinear(s.Name)
		if isLinear && qc.Skipped(prefix) {
			isLinear = false
		}
		if !isLinear {
			if fam.Transposed(s.Name) {
				return nil, fmt.Errorf("quantize: keeping GPT-2 Conv1D layer %s unquantized is not supported", prefix)
			}
			data, err := rd.readTensor(st, srcDir, s.Name, s.Shape, used)
			if err != nil {
				return nil, err
			}
			t := tensor.FromF32(data, s.Shape...)
			t.Name = s.Name
			if o.KeepDType != tensor.F32 {
				if t, err = tensor.Convert(t, o.KeepDType); err != nil {
					return nil, err
				}
				t.Name = s.Name
			}
			res.FloatBytes += int64(t.Numel() * o.KeepDType.Size())
			out = append(out, t)
			continue
		}
		if strings.HasSuffix(s.Name, ".bias") {
			continue // quantized with its weight
		}
		out0, in := s.Shape[0], s.Shape[1]
		wd, err := rd.readTensor(st, srcDir, s.Name, s.Shape, used)
		if err != nil {
			return nil, err
		}
		w := tensor.FromF32(wd, out0, in)
		w.Name = s.Name
		var b *tensor.Tensor
		if bs, ok := shapes[prefix+".bias"]; ok {
			bd, err := rd.readTensor(st, srcDir, prefix+".bias", bs, used)
			if err != nil {
				return nil, err
			}
			b = tensor.FromF32(bd, out0)
			b.Name = prefix + ".bias"
		}
		l, err := quant.QuantizeLinear(w, b, o.Format, o.Quant)
		if err != nil {
			return nil, fmt.Errorf("quantize: %s: %w", srcDir, err)
		}
		res.Layers++
		res.LinearParams += int64(out0 * in)
		for _, t := range l.Tensors(prefix) {
			res.QuantBytes += int64(len(t.Bytes) + 4*len(t.F32))
			out = append(out, t)
		}
	}
	res.Warnings = unusedTensors(st.Names(), srcDir, used, cfg)

	if err := os.MkdirAll(dstDir, 0o755); err != nil {
		return nil, err
	}
	shard := o.MaxShardBytes
	if shard <= 0 {
		shard = 1 << 62
	}
	if err := safetensors.WriteSharded(dstDir, "model", out, shard, map[string]string{"format": "pt"}); err != nil {
		return nil, err
	}
	cm["quantization_config"] = qc
	cm["torch_dtype"] = dtName
	if _, ok := cm["dtype"]; ok {
		cm["dtype"] = dtName
	}
	js, err := json.MarshalIndent(cm, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := atomicfile.WriteFile(filepath.Join(dstDir, "config.json"), append(js, '\n'), 0o644); err != nil {
		return nil, err
	}
	return res, nil
}

func absClean(p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		return filepath.Clean(p)
	}
	return filepath.Clean(a)
}

// LoadForInference loads a model directory for inference (frozen, no
// gradients): a quantized directory (config.json with a
// quantization_config) through LoadQuantized, which needs dt = F32, any
// other through LoadHF with parameters of dtype dt. warnings name tensors
// the model does not use.
func LoadForInference(dir string, be backend.Backend, dt tensor.DType) (m *Transformer, warnings []string, err error) {
	qc, err := QuantizationConfig(dir)
	if err != nil {
		return nil, nil, err
	}
	if qc == nil {
		return LoadHF(dir, be, dt, false)
	}
	if dt != tensor.F32 {
		return nil, nil, fmt.Errorf("%s: a quantized model computes in F32, not %s", dir, dt)
	}
	return loadQuantized(dir, be, qc)
}

// LoadQuantized loads a quantized model directory (see QuantizeHF; also
// what transformers + bitsandbytes save for NF4/FP4/int8 models) for
// inference: the block linears become quant.Linear layers read straight
// from the file (no float copy of them is made), the other tensors are
// converted to fp32. Every quantized layer must agree with the
// quantization_config (format, block or group size, double quantization)
// and with the model config (shape, bias); errors name the file and tensor.
// Tensors the model does not use are ignored (LoadForInference reports
// them).
func LoadQuantized(dir string, be backend.Backend) (*Transformer, error) {
	qc, err := QuantizationConfig(dir)
	if err != nil {
		return nil, err
	}
	if qc == nil {
		return nil, fmt.Errorf("%s: config.json has no quantization_config", dir)
	}
	m, _, err := loadQuantized(dir, be, qc)
	return m, err
}

func loadQuantized(dir string, be backend.Backend, qc *quant.Config) (*Transformer, []string, error) {
	format, opts, err := qc.LayerFormat()
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", filepath.Join(dir, "config.json"), err)
	}
	cfg, err := LoadConfig(filepath.Join(dir, "config.json"))
	if err != nil {
		return nil, nil, err
	}
	st, err := safetensors.OpenSharded(dir)
	if err != nil {
		return nil, nil, err
	}
	defer st.Close()

	// The factory hands out the layers loaded below, in the order the model
	// asks for them; unquantized (skipped) layers get an fp32 copy.
	var queue []nn.Layer
	factory := func(name string, w, b *tensor.Tensor) (nn.Layer, error) {
		if len(queue) > 0 {
			l := queue[0]
			queue = queue[1:]
			return l, nil
		}
		l := &nn.Linear{BE: be, Name: name, W: be.Adopt(w.Clone())}
		if b != nil {
			l.B = be.Adopt(b.Clone())
		}
		return l, nil
	}
	m, err := NewFrozen(cfg, be, tensor.F32, false, factory)
	if err != nil {
		return nil, nil, err
	}
	warns, err := m.loadWeights(st, dir, func(pl pendingLinear, used map[string]bool) (bool, error) {
		if qc.Skipped(pl.prefix) {
			return false, nil // stored as floats, like an ordinary checkpoint
		}
		l, err := loadQuantLayer(st, dir, m.fam, pl, format, opts, used)
		if err != nil {
			return false, err
		}
		if pl.split != nil {
			// A fused layer (GPT-2's c_attn) reaches the model as row
			// blocks (q, k, v): build asks the factory once per block.
			r0 := 0
			for _, rows := range pl.split {
				part, err := rowBlock(l, r0, r0+rows)
				if err != nil {
					return false, fmt.Errorf("%s: %w", tensorWhere(st, dir, l.Name+".weight"), err)
				}
				queue = append(queue, part)
				r0 += rows
			}
		} else {
			queue = append(queue, l)
		}
		if err := pl.build(nil, nil); err != nil {
			return false, fmt.Errorf("%s: %s: %w", dir, pl.prefix, err)
		}
		if len(queue) != 0 {
			panic("model: quantized layers left over after building " + pl.prefix)
		}
		return true, nil
	})
	if err != nil {
		return nil, nil, err
	}
	return m, warns, nil
}

// tensorWhere names the file holding tensor name (a shard of a sharded set).
func tensorWhere(st *safetensors.Set, dir, name string) string {
	if f, ok := st.File(name); ok {
		return f.Path()
	}
	return dir
}

// loadQuantLayer reads the quantized layer for pl and checks it against the
// config.
func loadQuantLayer(st *safetensors.Set, dir string, fam *FamilySpec, pl pendingLinear, format string, opts quant.Options, used map[string]bool) (*quant.Linear, error) {
	prefix := pl.prefix
	for _, n := range fam.diskNames(pl.prefix + ".weight") {
		if _, ok := st.Info(n); ok {
			prefix = strings.TrimSuffix(n, ".weight")
			break
		}
	}
	wname := prefix + ".weight"
	where := tensorWhere(st, dir, wname)
	fail := func(format string, args ...any) (*quant.Linear, error) {
		return nil, fmt.Errorf("%s: tensor %q: %s", where, wname, fmt.Sprintf(format, args...))
	}
	if !quant.IsQuantized(st, prefix) {
		if info, ok := st.Info(wname); ok {
			return fail("stored as %s %v, but quantization_config says %s and does not skip %s", info.DType, info.Shape, format, prefix)
		}
		return fail("missing (quantized layer of shape [%d %d])", pl.out, pl.in)
	}
	l, err := quant.LoadLinear(st, prefix)
	if err != nil {
		var qe *quant.Error
		if errors.As(err, &qe) {
			where = tensorWhere(st, dir, qe.Tensor)
		}
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	if l.Format() != format {
		return fail("quantized as %s, but quantization_config says %s", l.Format(), format)
	}
	switch w := l.W.(type) {
	case *quant.Weight4:
		s := w.State()
		if s.BlockSize != opts.BlockSize {
			return fail("blocksize %d, but quantization_config says %d", s.BlockSize, opts.BlockSize)
		}
		if s.Nested() != opts.DoubleQuant {
			return fail("double quantization %t, but quantization_config says bnb_4bit_use_double_quant = %t", s.Nested(), opts.DoubleQuant)
		}
	case *quant.Int4Weight:
		if w.GroupSize != opts.GroupSize {
			return fail("group_size %d, but quantization_config says %d", w.GroupSize, opts.GroupSize)
		}
		if w.Symmetric() == opts.Asymmetric {
			return fail("symmetric = %t, but quantization_config says sym = %t", w.Symmetric(), !opts.Asymmetric)
		}
	}
	if l.Out() != pl.out || l.In() != pl.in {
		return fail("quantized shape [%d %d], the config needs [%d %d]", l.Out(), l.In(), pl.out, pl.in)
	}
	if pl.bias && l.B == nil {
		return nil, fmt.Errorf("%s: missing tensor %q (shape [%d])", where, prefix+".bias", pl.out)
	}
	if !pl.bias && l.B != nil {
		return nil, fmt.Errorf("%s: tensor %q: the config has no bias for %s", tensorWhere(st, dir, prefix+".bias"), prefix+".bias", prefix)
	}
	for _, n := range st.Names() {
		if strings.HasPrefix(n, prefix+".") {
			used[n] = true
		}
	}
	l.Name = pl.prefix
	return l, nil
}

// rowBlock returns rows [r0, r1) of a quantized layer as a layer of its own
// sharing storage where it can (int8, int4; NF4/FP4 get their block absmax
// dequantized, which decodes identically). NF4/FP4 blocks must not straddle
// r0 or r1.
func rowBlock(l *quant.Linear, r0, r1 int) (*quant.Linear, error) {
	_, in := l.W.Dims()
	rows := r1 - r0
	var w quant.Weight
	var err error
	switch q := l.W.(type) {
	case *quant.Int8Weight:
		w, err = quant.NewInt8Weight(q.Q[r0*in:r1*in], q.SCB[r0:r1], rows, in)
	case *quant.Int4Weight:
		g, rb := q.Groups(), q.RowBytes()
		var z []uint8
		if q.Zeros != nil {
			z = q.Zeros[r0*g : r1*g]
		}
		w, err = quant.NewInt4Weight(q.Packed[r0*rb:r1*rb], q.Scales[r0*g:r1*g], z, q.GroupSize, rows, in)
	case *quant.Weight4:
		s := q.State()
		e0, e1 := r0*in, r1*in
		if e0%s.BlockSize != 0 || (e1%s.BlockSize != 0 && e1 != s.Numel()) || e0%2 != 0 {
			return nil, fmt.Errorf("cannot split rows [%d, %d) of a %s weight with blocksize %d (blocks straddle the split)", r0, r1, s.QuantType, s.BlockSize)
		}
		abs := s.BlockAbsmax()
		ns := &quant.State4{QuantType: s.QuantType, Shape: []int{rows, in}, BlockSize: s.BlockSize,
			Absmax: append([]float32(nil), abs[e0/s.BlockSize:(e1+s.BlockSize-1)/s.BlockSize]...)}
		w, err = quant.NewWeight4(q.Packed()[e0/2:(e1+1)/2], ns)
	default:
		return nil, fmt.Errorf("cannot split a %T", l.W)
	}
	if err != nil {
		return nil, err
	}
	part := &quant.Linear{Name: l.Name, W: w}
	if l.B != nil {
		part.B = l.B.View(r0, rows)
	}
	return part, nil
}
