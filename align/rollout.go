package align

import (
	"fmt"
	"strings"

	"github.com/shoggo/shoggo/backend"
	"github.com/shoggo/shoggo/data"
	"github.com/shoggo/shoggo/decode"
	"github.com/shoggo/shoggo/lora"
	"github.com/shoggo/shoggo/model"
	"github.com/shoggo/shoggo/sft"
)

// Prompt is one question to roll out: its encoded prompt, its text and its
// checkable answer.
type Prompt struct {
	IDs      []int32
	Question string
	Answer   string
}

// EncodePrompts renders examples with tmpl and keeps each prompt's ids
// (the positions before the first trained label) and answer.
func EncodePrompts(examples []data.Example, tok sft.Tokenizer, tmpl sft.Template, maxLen int) ([]Prompt, error) {
	out := make([]Prompt, 0, len(examples))
	for i, ex := range examples {
		ids, labels, err := sft.Encode(ex, tok, tmpl, maxLen)
		if err != nil {
			return nil, fmt.Errorf("example %d: %w", i, err)
		}
		n := 0
		for n < len(labels) && labels[n] == backend.IgnoreIndex {
			n++
		}
		if n == 0 || n >= len(ids) {
			return nil, fmt.Errorf("example %d: no prompt or no completion after encoding", i)
		}
		_, ans, err := tmpl.Prompt(ex)
		if err != nil {
			return nil, fmt.Errorf("example %d: %w", i, err)
		}
		q := ex.Instruction
		if ex.Input != "" {
			q += "\n" + ex.Input
		}
		out = append(out, Prompt{IDs: ids[:n], Question: q, Answer: ans})
	}
	return out, nil
}

// Row is one sampled completion.
type Row struct {
	Prompt     int     // index into the rollout's prompts
	Completion []int32 // generated ids, with the stop id appended when the row stopped on it
	Text       string  // the completion decoded, stop id excluded
	Finish     decode.Finish
	Reward     float64
}

// Sample generates one completion per entry of prompts (repeat a prompt
// for a group) with the batched decoder, row i seeded with seeds[i]. A row
// ended by a stop id gets that id appended to Completion so the loss
// trains the stop too.
func Sample(m *model.Transformer, prompts [][]int32, seeds []uint64, stops []int32, maxNew int, s decode.Sampling, detok func([]int32) string) ([]Row, error) {
	res, err := decode.Generate(m, prompts, decode.Options{MaxNewTokens: maxNew, Sampling: s, Seeds: seeds, EOS: stops})
	if err != nil {
		return nil, err
	}
	rows := make([]Row, len(res))
	for i, r := range res {
		c := append([]int32(nil), r.Tokens...)
		if r.Finish == decode.EOS && len(stops) > 0 {
			c = append(c, stops[0])
		}
		rows[i] = Row{Prompt: i, Completion: c, Text: detok(r.Tokens), Finish: r.Finish}
	}
	return rows, nil
}

// BuildBatch lays rows out as a training batch: row i is prompt ++
// completion, right-padded with pad to the longest; Targets predict the
// completion tokens only (prompt and padding are IgnoreIndex) and mask is
// 1 at those positions.
func BuildBatch(prompts, completions [][]int32, pad int32) (*model.Batch, []float64) {
	B, T := len(prompts), 1
	for i := range prompts {
		T = max(T, len(prompts[i])+len(completions[i]))
	}
	b := &model.Batch{B: B, T: T, IDs: make([]int32, B*T), Targets: make([]int32, B*T), KeyMask: make([]int32, B*T)}
	mask := make([]float64, B*T)
	for i := range prompts {
		p, c := prompts[i], completions[i]
		row := b.IDs[i*T : (i+1)*T]
		n := copy(row, p)
		copy(row[n:], c)
		for t := range T {
			b.KeyMask[i*T+t] = 0
			if t < len(p)+len(c) {
				b.KeyMask[i*T+t] = 1
			} else {
				row[t] = pad
			}
			b.Targets[i*T+t] = backend.IgnoreIndex
			if t >= len(p)-1 && t < len(p)+len(c)-1 {
				b.Targets[i*T+t] = row[t+1]
				mask[i*T+t] = 1
			}
		}
	}
	return b, mask
}

// Reference gives the reference model's per-token log-probs of a batch:
// a frozen copy (full fine-tuning) or the policy itself with its LoRA
// adapters switched off (no second copy).
type Reference struct {
	Model    *model.Transformer // the frozen copy, or the policy
	Adapters *lora.Adapters     // when set: Model is the policy, run with these off
}

// LogProbs returns the reference's per-token log-probs of b's targets.
func (r *Reference) LogProbs(b *model.Batch) ([]float64, error) {
	if r.Adapters != nil {
		saved := make([]float64, len(r.Adapters.Modules))
		for i, md := range r.Adapters.Modules {
			saved[i], md.Scaling = md.Scaling, 0
		}
		defer func() {
			for i, md := range r.Adapters.Modules {
				md.Scaling = saved[i]
			}
		}()
	}
	return PolicyLogProbs(r.Model, b)
}

// Clean trims a completion's text for scoring (as exact match does).
func Clean(s string) string { return strings.TrimSpace(s) }
