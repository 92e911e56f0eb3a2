package model

import (
	"bufio"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/shoggo/shoggo/safetensors"
	"github.com/shoggo/shoggo/tensor"
)

// Footprint is the memory a model built from a config needs, estimated
// from the config alone (nothing is allocated).
type Footprint struct {
	Params      int64 // parameters
	ParamBytes  int64 // the parameter arena
	GradBytes   int64 // gradients (trainable models)
	OptimBytes  int64 // AdamW's two fp32 moments (trainable models)
	ActBytes    int64 // a lower bound of the activations at the planned batch
	Batch, Seq  int   // the planned batch the activations are for
	Trainable   bool
	ComputeType tensor.DType
}

// Total is the sum of the parts.
func (f Footprint) Total() int64 { return f.ParamBytes + f.GradBytes + f.OptimBytes + f.ActBytes }

func (f Footprint) String() string {
	s := fmt.Sprintf("%s for %d parameters (%s)", humanBytes(f.ParamBytes), f.Params, f.ComputeType)
	if f.Trainable {
		s += fmt.Sprintf(" + %s gradients + %s AdamW state", humanBytes(f.GradBytes), humanBytes(f.OptimBytes))
	}
	if f.ActBytes > 0 {
		s += fmt.Sprintf(" + at least %s activations at batch %d x %d tokens", humanBytes(f.ActBytes), f.Batch, f.Seq)
	}
	return s
}

// maxParams bounds the parameter count of anything shoggo will try to
// build (10^13: far beyond any machine, small enough for exact int64
// arithmetic on the derived sizes).
const maxParams = 1e13

// CountParams is the number of parameters a config describes, computed
// without listing every layer (so a num_hidden_layers of 10^9 costs
// nothing). The config must be valid (Validate).
func CountParams(c *Config) (int64, error) {
	if err := c.Validate(); err != nil {
		return 0, err
	}
	count := func(layers int) float64 {
		cc := *c
		cc.NumHiddenLayers = layers
		var n float64
		for _, s := range ParamSpecs(&cc) {
			k := 1.0
			for _, d := range s.Shape {
				k *= float64(d)
			}
			n += k
		}
		return n
	}
	one, two := count(1), count(2)
	n := one + (two-one)*float64(c.NumHiddenLayers-1)
	if n > maxParams || math.IsNaN(n) {
		return 0, fmt.Errorf("config: %.3g parameters, %.3g bytes in fp32 (hidden_size %d, intermediate_size %d, num_hidden_layers %d, vocab_size %d), is beyond any machine",
			n, 4*n, c.HiddenSize, c.IntermediateSize, c.NumHiddenLayers, c.VocabSize)
	}
	return int64(n), nil
}

// EstimateFootprint is the memory a model of config c needs with
// parameters of dtype dt; trainable adds gradients and AdamW state, and
// batch x seq > 0 adds a lower bound of the activations a training step
// keeps (per layer about 8 values per hidden unit and 3 per MLP unit for
// every token).
func EstimateFootprint(c *Config, dt tensor.DType, trainable bool, batch, seq int) (Footprint, error) {
	n, err := CountParams(c)
	if err != nil {
		return Footprint{}, err
	}
	f := Footprint{Params: n, ParamBytes: n * int64(dt.Size()), Trainable: trainable, ComputeType: dt, Batch: batch, Seq: seq}
	if trainable {
		f.GradBytes = f.ParamBytes
		f.OptimBytes = 2 * 4 * n
	}
	if batch > 0 && seq > 0 {
		tokens := float64(batch) * float64(seq)
		act := tokens * float64(c.NumHiddenLayers) * (8*float64(c.HiddenSize) + 3*float64(c.IntermediateSize)) * 4
		if act > maxParams*4 {
			return f, fmt.Errorf("config: activations of %.3g bytes at batch %d x %d tokens are beyond any machine", act, batch, seq)
		}
		f.ActBytes = int64(act)
	}
	return f, nil
}

// MemAvailable is /proc/meminfo's MemAvailable in bytes (0 where unknown,
// for instance off Linux).
func MemAvailable() int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "MemAvailable:"); ok {
			fields := strings.Fields(rest)
			if len(fields) == 0 {
				return 0
			}
			kb, err := strconv.ParseInt(fields[0], 10, 64)
			if err != nil {
				return 0
			}
			return kb << 10
		}
	}
	return 0
}

// memAvailable is MemAvailable, replaceable in tests.
var memAvailable = MemAvailable

// CheckFits returns an error stating the bytes needed when the footprint
// exceeds the available memory (MemAvailable; no check where unknown).
// what names the model in the message (a directory, a preset).
func CheckFits(what string, f Footprint) error {
	avail := memAvailable()
	if avail <= 0 || f.Total() <= avail {
		return nil
	}
	return fmt.Errorf("%s needs about %s (%s) but only %s of memory is available (MemAvailable): use a smaller model, batch or sequence length",
		what, humanBytes(f.Total()), f, humanBytes(avail))
}

// CheckHeader checks the sizes a config implies against a checkpoint's
// header before anything is allocated: the token embedding's shape
// (vocab_size x hidden_size) and the number of layers (tensors for layer
// num_hidden_layers-1 exist, none for num_hidden_layers). where names the
// checkpoint in errors. Quantized checkpoints are checked the same way
// (their embedding is stored unquantized).
func CheckHeader(c *Config, src WeightSource, where string) error {
	f := c.Spec()
	if f == nil {
		return c.Validate()
	}
	embed := f.Names.Embed + ".weight"
	info, ok := src.Info(embed)
	for _, alt := range f.diskNames(embed)[1:] {
		if !ok {
			info, ok = src.Info(alt)
		}
	}
	if ok {
		want := []int{c.VocabSize, c.HiddenSize}
		if len(info.Shape) != 2 || info.Shape[0] != want[0] || info.Shape[1] != want[1] {
			return fmt.Errorf("%s: config.json says vocab_size %d and hidden_size %d, but %s has shape %v", where, c.VocabSize, c.HiddenSize, embed, []int(info.Shape))
		}
	}
	last, beyond := f.LayerPrefix(c.NumHiddenLayers-1), f.LayerPrefix(c.NumHiddenLayers)
	layers := map[int]bool{}
	foundLast := false
	for _, name := range src.Names() {
		if p := f.Names.OptionalPrefix; p != "" && !strings.HasPrefix(name, p) {
			name = p + name // a hub checkpoint without the prefix (GPT-2)
		}
		if strings.HasPrefix(name, last) {
			foundLast = true
		}
		if strings.HasPrefix(name, beyond) {
			return fmt.Errorf("%s: config.json says num_hidden_layers %d, but the checkpoint has %s", where, c.NumHiddenLayers, name)
		}
		if rest, ok := strings.CutPrefix(name, f.Names.Layers+"."); ok {
			if i := strings.IndexByte(rest, '.'); i > 0 {
				if l, err := strconv.Atoi(rest[:i]); err == nil {
					layers[l] = true
				}
			}
		}
	}
	if !foundLast {
		return fmt.Errorf("%s: config.json says num_hidden_layers %d, but the checkpoint has tensors for %d layers", where, c.NumHiddenLayers, len(layers))
	}
	return nil
}

// ReadConfig is LoadConfig naming the file once in its errors (ParseConfig
// names "config.json" itself).
func ReadConfig(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	cfg, err := ParseConfig(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %s", path, strings.TrimPrefix(err.Error(), "config.json: "))
	}
	return cfg, nil
}

// PrecheckHF checks an HF model directory before it is loaded: the config
// is valid, agrees with the checkpoint header (CheckHeader), and the model
// (parameters of dtype dt; gradients and AdamW state if trainable;
// activations at batch x seq if both are positive) fits in the available
// memory. Checkpoints stored quantized (any tensor not F32/BF16/F16) skip
// the memory check, as their footprint is not the config's fp32 count.
func PrecheckHF(dir string, dt tensor.DType, trainable bool, batch, seq int) error {
	path := filepath.Join(dir, "config.json")
	cfg, err := ReadConfig(path)
	if err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("%s: %w", filepath.Join(dir, "config.json"), err)
	}
	st, err := safetensors.OpenSharded(dir)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := CheckHeader(cfg, st, dir); err != nil {
		return err
	}
	for _, name := range st.Names() {
		if info, ok := st.Info(name); ok && info.DType != tensor.F32 && info.DType != tensor.BF16 && info.DType != tensor.F16 {
			return nil
		}
	}
	fp, err := EstimateFootprint(cfg, dt, trainable, batch, seq)
	if err != nil {
		return fmt.Errorf("%s: %w", dir, err)
	}
	return CheckFits(dir, fp)
}

// CheckActivations checks that the activations of a training step at
// batch x seq (a lower bound, see EstimateFootprint) fit in the memory
// available now, that is, after the model itself was loaded.
func CheckActivations(what string, c *Config, batch, seq int) error {
	fp, err := EstimateFootprint(c, tensor.F32, false, batch, seq)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	avail := memAvailable()
	if avail <= 0 || fp.ActBytes <= avail {
		return nil
	}
	return fmt.Errorf("%s: a training step at batch %d x %d tokens needs at least %s of activations but only %s of memory is available (MemAvailable): lower --batch or --max-len, or use --gradient-checkpointing",
		what, batch, seq, humanBytes(fp.ActBytes), humanBytes(avail))
}

// CheckConfigFits checks a config that is about to be built with fresh
// weights (a preset or a config file, named by what): valid, and its
// footprint fits in the available memory.
func CheckConfigFits(what string, c *Config, dt tensor.DType, trainable bool, batch, seq int) error {
	fp, err := EstimateFootprint(c, dt, trainable, batch, seq)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return CheckFits(what, fp)
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<40:
		return fmt.Sprintf("%.1f TiB", float64(n)/(1<<40))
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
