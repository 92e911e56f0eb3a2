package recipe

import (
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/shoggo/shoggo/backend/device"
	"github.com/shoggo/shoggo/model"
	"github.com/shoggo/shoggo/sft"
	"github.com/shoggo/shoggo/tensor"
	"github.com/shoggo/shoggo/tokenizer"
	"github.com/shoggo/shoggo/train"
)

// InstructionEvalConfig configures EvalInstructions.
type InstructionEvalConfig struct {
	Model        string // HF model directory (plain or quantized)
	Tokenizer    string // default: the model directory's
	Data         string // instruction JSONL (instruction/input/output or messages)
	Template     string // chatml | alpaca | plain; default as sft picks it for --data
	MaxLen       int    // tokens per example (default 512, at most the context)
	Batch        int    // examples per loss batch (default 16)
	MaxNewTokens int    // tokens generated per exact-match question (default 16)
	Examples     int    // examples scored (0: all)
	SkipInvalid  bool
	Device       string
}

// InstructionEvalResult is what `shoggo eval --data F.jsonl --json` prints.
type InstructionEvalResult struct {
	Model      string  `json:"model"`
	Data       string  `json:"data"`
	Template   string  `json:"template"`
	Examples   int     `json:"examples"`
	Tokens     int     `json:"tokens"`   // completion tokens the loss is over
	Loss       float64 `json:"val_loss"` // mean loss per completion token
	ExactMatch float64 `json:"exact_match"`
	ElapsedS   float64 `json:"elapsed_s"`
}

// EvalInstructions scores a model on instruction data without training:
// the mean loss of the completion tokens (as sft's val_loss) and greedy
// exact match (as sft's exact_match), on the same template sft uses.
func EvalInstructions(cfg InstructionEvalConfig, log io.Writer) (InstructionEvalResult, error) {
	res := InstructionEvalResult{Model: cfg.Model, Data: cfg.Data}
	t0 := time.Now()
	if err := model.PrecheckHF(cfg.Model, tensor.F32, false, 0, 0); err != nil {
		return res, err
	}
	be, err := device.Open(cfg.Device)
	if err != nil {
		return res, err
	}
	m, warns, err := model.LoadForInference(cfg.Model, be, tensor.F32)
	if err != nil {
		return res, err
	}
	for _, w := range warns {
		fmt.Fprintln(log, "warning:", w)
	}
	tp := cfg.Tokenizer
	if tp == "" {
		tp = filepath.Join(cfg.Model, "tokenizer.json")
	}
	tok, err := tokenizer.Load(tp)
	if err != nil {
		return res, err
	}
	if cfg.Template == "" {
		cfg.Template = "alpaca"
		if _, ok := tok.TokenToID("<|im_start|>"); ok {
			cfg.Template = "chatml"
		}
	}
	res.Template = cfg.Template
	tmpl, err := sft.TemplateByName(cfg.Template)
	if err != nil {
		return res, err
	}
	exs, err := readInstructions(cfg.Data, cfg.SkipInvalid, log)
	if err != nil {
		return res, err
	}
	if cfg.Examples > 0 && cfg.Examples < len(exs) {
		exs = exs[:cfg.Examples]
	}
	res.Examples = len(exs)
	maxLen := cfg.MaxLen
	if maxLen <= 0 {
		maxLen = 512
	}
	maxLen = min(maxLen, m.Cfg.MaxPositionEmbeddings)
	enc, _, err := sft.EncodeAll(exs, tok, tmpl, maxLen)
	if err != nil {
		return res, err
	}
	longest := 0
	for _, e := range enc {
		longest = max(longest, len(e.IDs))
	}
	pad := tok.PAD()
	if pad < 0 {
		pad = max(tok.EOS(), 0)
	}
	batches := sft.Batches(enc, max(cfg.Batch, 1), min(maxLen, (longest+7)/8*8), pad, false)
	if res.Tokens = model.CountTargets(batches); res.Tokens > 0 {
		if res.Loss, err = train.Evaluate(m, batches); err != nil {
			return res, err
		}
	}
	if res.ExactMatch, err = sft.ExactMatch(m, tok, tmpl, exs, max(cfg.MaxNewTokens, 1)); err != nil {
		return res, err
	}
	res.ElapsedS = time.Since(t0).Seconds()
	return res, nil
}
