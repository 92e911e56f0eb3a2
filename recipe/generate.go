package recipe

import (
	"fmt"
	"io"
	"path/filepath"

	"github.com/shoggo/shoggo/backend/device"
	"github.com/shoggo/shoggo/model"
	"github.com/shoggo/shoggo/tensor"
	"github.com/shoggo/shoggo/tokenizer"
)

// LoadForGeneration loads an HF model directory (plain or quantized) on
// the device, its tokenizer (tokPath, default the directory's
// tokenizer.json) and the end-of-sequence id (the tokenizer's EOS, else the
// config's eos_token_id, else -1). Warnings go to log.
func LoadForGeneration(dir, tokPath, dev string, log io.Writer) (*model.Transformer, *tokenizer.Tokenizer, int32, error) {
	be, err := device.Open(dev)
	if err != nil {
		return nil, nil, 0, err
	}
	if err := model.PrecheckHF(dir, tensor.F32, false, 0, 0); err != nil {
		return nil, nil, 0, err
	}
	m, warns, err := model.LoadForInference(dir, be, tensor.F32)
	if err != nil {
		return nil, nil, 0, err
	}
	for _, w := range warns {
		fmt.Fprintln(log, "warning:", w)
	}
	if tokPath == "" {
		tokPath = filepath.Join(dir, "tokenizer.json")
	}
	tok, err := tokenizer.Load(tokPath)
	if err != nil {
		return nil, nil, 0, err
	}
	eos := tok.EOS()
	if m.Cfg.EOSTokenID != nil && eos < 0 {
		eos = int32(*m.Cfg.EOSTokenID)
	}
	return m, tok, eos, nil
}
