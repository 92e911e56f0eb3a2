package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"text/tabwriter"

	"github.com/shoggo/shoggo/internal/sysinfo"
	"github.com/shoggo/shoggo/model"
)

func init() {
	register("info", "describe a model (preset or HF directory): parameters and memory needs", runInfo)
	register("presets", "list the built-in model presets and their sources", runPresets)
}

func loadConfigArg(arg string) (*model.Config, error) {
	if st, err := os.Stat(arg); err == nil {
		if st.IsDir() {
			return model.ReadConfig(filepath.Join(arg, "config.json"))
		}
		return model.ReadConfig(arg)
	}
	return model.LookupPreset(arg)
}

func runPresets(args []string) error {
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "preset\tfamily\tparameters\tsource")
	for _, n := range model.PresetNames() {
		p := model.Presets[n]
		c := p.Config
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", n, c.ModelType, human(float64(model.ParamCount(&c))), p.Source)
	}
	return w.Flush()
}

func human(n float64) string { return sysinfo.Human(n) }

func runInfo(args []string) error {
	fs := flag.NewFlagSet("info", flag.ContinueOnError)
	batch := fs.Int("batch", 1, "batch size for the memory estimate")
	seq := fs.Int("seq", 512, "sequence length for the memory estimate")
	rank := fs.Int("lora-r", 8, "LoRA rank for the estimate")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("usage: shoggo info [flags] PRESET|MODEL_DIR|config.json")
	}
	if err := checkBounds(fs, atLeast("batch", 1), atLeast("seq", 1), atLeast("lora-r", 0)); err != nil {
		return err
	}
	c, err := loadConfigArg(fs.Arg(0))
	if err != nil {
		return err
	}
	n := model.ParamCount(c)
	fmt.Printf("architecture   %s (%d layers, hidden %d, intermediate %d, %d heads / %d KV heads, vocab %d, tied %v)\n",
		c.ModelType, c.NumHiddenLayers, c.HiddenSize, c.IntermediateSize, c.NumAttentionHeads, c.NumKeyValueHeads, c.VocabSize, c.TieWordEmbeddings)
	fmt.Printf("parameters     %d (%s)\n", n, human(float64(n)))
	est := model.EstimateMemory(c, *batch, *seq, *rank)
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Printf("\nmemory at batch %d, sequence %d (weights + gradients + optimizer + activations; LoRA rank %d on every linear layer):\n", *batch, *seq, *rank)
	fmt.Fprintln(w, "mode\tweights\tgradients\toptimizer\tactivations\ttotal\t")
	for _, e := range est {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t\n", e.Mode, gib(e.Weights), gib(e.Grads), gib(e.Optimizer), gib(e.Activations), gib(e.Total()))
	}
	return w.Flush()
}

func gib(b int64) string {
	if b == 0 {
		return "-"
	}
	if b < 1<<30 {
		return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
	}
	return fmt.Sprintf("%.2f GiB", float64(b)/(1<<30))
}
