// Package train is shoggo's trainer harness, shared by every training loop
// (pre-training, SFT and LoRA; reward models and preference/RL methods
// next): the optimisation step over an Objective and a Trainable with
// gradient accumulation and clipping, mixed precision (bf16, fp16 with
// dynamic loss scaling), AdamW and the LR schedule, metrics,
// progress, plots, summary.json, checkpoints with bit-exact resume, signal
// and time-limit handling. The recipes that drive it live in package
// recipe.
package train

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/shoggo/shoggo/backend"
	"github.com/shoggo/shoggo/internal/atomicfile"
	"github.com/shoggo/shoggo/model"
	"github.com/shoggo/shoggo/optim"
	"github.com/shoggo/shoggo/safetensors"
	"github.com/shoggo/shoggo/tensor"
)

// State is everything besides weights and optimizer moments that a run
// needs to resume exactly.
type State struct {
	Step int `json:"step"`
	// RNG is the marshalled state of the run's random source (rand.PCG).
	RNG []byte `json:"rng"`
	// Data is the data loader's position, as the loader marshals it.
	Data json.RawMessage `json:"data,omitempty"`
	// Extra holds recipe-specific values (best validation loss, the
	// evaluation before training, ...).
	Extra map[string]float64 `json:"extra,omitempty"`
	// Aux holds further marshalled state by name (Trainable.State: the
	// LoRA dropout streams; in a data-parallel run rank r's copy of a
	// per-rank state is under "name@rankR").
	Aux map[string][]byte `json:"aux,omitempty"`
	// WorldSize is the number of ranks of a data-parallel run (absent: 1);
	// a resume needs the same number.
	WorldSize int `json:"world_size,omitempty"`
}

const (
	stateFile = "trainer_state.json"
	optFile   = "optimizer.safetensors"
	// scalerState is the State.Aux key of the loss scaler (GradScaler).
	scalerState = "grad_scaler"
)

// CheckpointName is the directory name of the checkpoint at step.
func CheckpointName(step int) string { return fmt.Sprintf("step-%08d", step) }

// SaveCheckpoint writes root/step-NNNNNNNN: the model as a Hugging Face
// directory (usable by generate), the optimizer moments and the trainer
// state. See SaveCheckpointWith.
func SaveCheckpoint(root string, m *model.Transformer, opt *optim.AdamW, st State) (string, error) {
	tr := FullTrainable(m)
	return SaveCheckpointWith(root, tr.saveWeights, opt, st)
}

// SaveCheckpointWith writes root/step-NNNNNNNN: the weights (saveWeights
// writes them into the directory it is given), the optimizer moments and
// the trainer state. The directory is assembled under a temporary name, every file
// fsynced, then renamed into place, and root/latest is updated atomically
// last: a crash at any point leaves the previous checkpoint intact.
func SaveCheckpointWith(root string, saveWeights func(dir string) error, opt *optim.AdamW, st State) (string, error) {
	if opt == nil {
		return saveCheckpoint(root, saveWeights, nil, nil, 0, false, st)
	}
	return saveCheckpoint(root, saveWeights, opt.Backend(), opt.State(), opt.StepCount(), true, st)
}

// saveCheckpoint is SaveCheckpointWith with the optimizer given as its
// moment tensors (be's, or host tensors when be is nil) and step count.
func saveCheckpoint(root string, saveWeights func(dir string) error, be backend.Backend, moments []*tensor.Tensor, optStep int, withOpt bool, st State) (string, error) {
	if err := os.MkdirAll(root, 0o755); err != nil {
		return "", err
	}
	name := CheckpointName(st.Step)
	final := filepath.Join(root, name)
	tmp, err := os.MkdirTemp(root, "."+name+".tmp")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	if err := saveWeights(tmp); err != nil {
		return "", err
	}
	if withOpt {
		// The moments are backend tensors: written through host copies (on
		// the CPU backend, the tensors themselves).
		host := make([]*tensor.Tensor, len(moments))
		for i, t := range moments {
			host[i] = t
			if be != nil {
				host[i] = backend.ToHost(be, t)
			}
		}
		if err := safetensors.Write(filepath.Join(tmp, optFile), host, map[string]string{"step": fmt.Sprint(optStep)}); err != nil {
			return "", err
		}
	}
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return "", err
	}
	if err := atomicfile.WriteFile(filepath.Join(tmp, stateFile), data, 0o644); err != nil {
		return "", err
	}
	if _, err := os.Stat(final); err == nil {
		old := final + ".old"
		os.RemoveAll(old)
		if err := os.Rename(final, old); err != nil {
			return "", err
		}
		defer os.RemoveAll(old)
	}
	if err := os.Rename(tmp, final); err != nil {
		return "", err
	}
	if err := atomicfile.SyncDir(root); err != nil {
		return "", err
	}
	if err := atomicfile.WriteFile(filepath.Join(root, "latest"), []byte(name+"\n"), 0o644); err != nil {
		return "", err
	}
	return final, nil
}

// LatestCheckpoint returns the path of the newest complete checkpoint under
// root (the one named in root/latest, else the highest step directory).
func LatestCheckpoint(root string) (string, error) {
	if b, err := os.ReadFile(filepath.Join(root, "latest")); err == nil {
		p := filepath.Join(root, strings.TrimSpace(string(b)))
		if _, err := os.Stat(filepath.Join(p, stateFile)); err == nil {
			return p, nil
		}
	}
	ents, err := os.ReadDir(root)
	if err != nil {
		return "", fmt.Errorf("no checkpoint in %s: %w", root, err)
	}
	var names []string
	for _, e := range ents {
		if e.IsDir() && strings.HasPrefix(e.Name(), "step-") && !strings.Contains(e.Name(), ".") {
			if _, err := os.Stat(filepath.Join(root, e.Name(), stateFile)); err == nil {
				names = append(names, e.Name())
			}
		}
	}
	if len(names) == 0 {
		return "", fmt.Errorf("no checkpoint in %s", root)
	}
	sort.Strings(names)
	return filepath.Join(root, names[len(names)-1]), nil
}

// LoadCheckpoint restores weights, optimizer moments and step into m and
// opt (already built with the same config) and returns the trainer state.
func LoadCheckpoint(path string, m *model.Transformer, opt *optim.AdamW) (State, error) {
	tr := FullTrainable(m)
	return LoadCheckpointWith(path, tr.loadWeights, opt)
}

// loadModelWeights loads the HF directory dir (a checkpoint of a model with
// the same config) into m.
func loadModelWeights(dir string, m *model.Transformer) error {
	cfg, err := model.LoadConfig(filepath.Join(dir, "config.json"))
	if err != nil {
		return err
	}
	if *cfg != m.Cfg {
		a, _ := cfg.HFJSON()
		b, _ := m.Cfg.HFJSON()
		if string(a) != string(b) {
			return fmt.Errorf("%s: checkpoint config differs from the model's", dir)
		}
	}
	w, err := safetensors.OpenSharded(dir)
	if err != nil {
		return err
	}
	defer w.Close()
	_, err = m.LoadWeights(w, dir)
	return err
}

// LoadCheckpointWith restores the weights (loadWeights reads them from the
// checkpoint directory), the optimizer moments and step into opt (built
// over the same parameters) and returns the trainer state.
func LoadCheckpointWith(path string, loadWeights func(dir string) error, opt *optim.AdamW) (State, error) {
	var st State
	data, err := os.ReadFile(filepath.Join(path, stateFile))
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(data, &st); err != nil {
		return st, fmt.Errorf("%s: %w", filepath.Join(path, stateFile), err)
	}
	if st.Step < 0 {
		return st, fmt.Errorf("%s: negative step %d", filepath.Join(path, stateFile), st.Step)
	}
	if err := loadWeights(path); err != nil {
		return st, err
	}
	if opt != nil {
		of := filepath.Join(path, optFile)
		f, err := safetensors.Open(of)
		if err != nil {
			return st, err
		}
		defer f.Close()
		var loadErr error
		err = opt.LoadState(func(name string) *tensor.Tensor {
			t, err := f.Tensor(name)
			if err != nil {
				if loadErr == nil {
					loadErr = err
				}
				return nil
			}
			return t
		})
		if err != nil {
			if loadErr != nil {
				return st, fmt.Errorf("%s: %w", of, loadErr)
			}
			return st, fmt.Errorf("%s: %w", of, err)
		}
		var n int
		if _, err := fmt.Sscan(f.Metadata()["step"], &n); err != nil || n < 0 {
			return st, fmt.Errorf("%s: bad optimizer step %q in metadata", of, f.Metadata()["step"])
		}
		opt.SetStepCount(n)
	}
	return st, nil
}
