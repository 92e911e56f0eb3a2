package align

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"

	"github.com/shoggo/shoggo/data"
	"github.com/shoggo/shoggo/internal/atomicfile"
	"github.com/shoggo/shoggo/model"
	"github.com/shoggo/shoggo/sft"
	"github.com/shoggo/shoggo/sft/tasks"
)

// PrefConfig says what GeneratePreferences makes.
type PrefConfig struct {
	Seed  uint64
	Tasks []string // embedded task names; empty: all
	Train int      // training pairs
	Test  int      // held-out pairs
	// Ramble is the fraction of pairs whose rejected response is the
	// correct answer buried in rambling (the rest get a wrong answer);
	// 0 means 0.5, negative means none.
	Ramble float64
}

// rambles are the paddings around a correct answer: the seed's "4" versus
// an essay.
var rambles = []string{
	"Let me think about this step by step. %s, so after careful thought the answer is %s. I hope this helps!",
	"Great question! There are many ways to look at %s. Considering all of them, I would say %s, but please double-check.",
	"Well, %s is an interesting one. Many people get it wrong. The answer, I believe, is %s, as far as I can tell.",
	"Sure! To answer %s we need to work carefully. Doing so gives %s. Let me know if you have any other questions.",
}

// GeneratePreferences makes preference pairs from the embedded checkable
// tasks: the prompt is a task question, chosen its exact answer, rejected
// either a wrong answer (the answer to another question of the same task)
// or the correct answer buried in rambling. Every pair is checked with the
// judge (chosen must score higher). Questions are split as tasks.Generate
// splits them (by a hash of the question), so training and held-out pairs
// never share a question. The result depends only on cfg.
func GeneratePreferences(cfg PrefConfig) (train, test []data.Preference, err error) {
	ramble := cfg.Ramble
	if ramble == 0 {
		ramble = 0.5
	}
	trEx, teEx, err := tasks.Generate(tasks.Config{Seed: cfg.Seed, Tasks: cfg.Tasks, Train: cfg.Train, Test: cfg.Test})
	if err != nil {
		return nil, nil, err
	}
	// A pool of answers per task to draw wrong answers from.
	poolEx, _, err := tasks.Generate(tasks.Config{Seed: cfg.Seed + 7919, Tasks: cfg.Tasks, Train: 64 * max(1, len(tasks.Names())), Test: 0})
	if err != nil {
		return nil, nil, err
	}
	pool := map[string][]string{}
	for _, e := range poolEx {
		k := tasks.Classify(e.Instruction)
		pool[k] = append(pool[k], e.Output)
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x9e3f))
	if train, err = pairsFor(trEx, pool, ramble, rng); err != nil {
		return nil, nil, err
	}
	if test, err = pairsFor(teEx, pool, ramble, rng); err != nil {
		return nil, nil, err
	}
	return train, test, nil
}

func pairsFor(exs []data.Example, pool map[string][]string, ramble float64, rng *rand.Rand) ([]data.Preference, error) {
	out := make([]data.Preference, 0, len(exs))
	for i, e := range exs {
		q, ans := e.Instruction, e.Output
		var rej string
		if rng.Float64() < ramble {
			rej = fmt.Sprintf(rambles[rng.IntN(len(rambles))], q, ans)
		} else {
			cands := pool[tasks.Classify(q)]
			for k := 0; k < 100 && (rej == "" || rej == ans); k++ {
				rej = cands[rng.IntN(len(cands))]
			}
			if rej == ans {
				rej = ans + " " + ans // still wrong: not the bare answer
			}
		}
		if Prefer(ans, ans, rej) <= 0 {
			return nil, fmt.Errorf("align: judge does not prefer %q to %q for %q", ans, rej, q)
		}
		out = append(out, data.Preference{Prompt: q, Chosen: ans, Rejected: rej, Line: i + 1})
	}
	return out, nil
}

// OnPolicyPairs makes pairs from the model's own completions: for each
// example whose completion the judge does not find exact, chosen is the
// reference answer and rejected the completion. Both slices have the same
// length.
func OnPolicyPairs(exs []data.Example, completions []string) []data.Preference {
	var out []data.Preference
	for i, e := range exs {
		c := completions[i]
		if c == "" || Judge(e.Output, c).Exact || Prefer(e.Output, e.Output, c) <= 0 {
			continue
		}
		out = append(out, data.Preference{Prompt: e.Instruction, Chosen: e.Output, Rejected: c, Line: e.Line})
	}
	return out
}

// WritePreferences writes pairs as JSONL ({"prompt", "chosen",
// "rejected"}), atomically.
func WritePreferences(path string, prefs []data.Preference) error {
	var b []byte
	for _, p := range prefs {
		line, err := json.Marshal(map[string]string{"prompt": p.Prompt, "chosen": p.Chosen, "rejected": p.Rejected})
		if err != nil {
			return err
		}
		b = append(append(b, line...), '\n')
	}
	return atomicfile.WriteFile(path, b, 0o644)
}

// Pair is an encoded preference pair: the prompt and each response
// rendered with a template (labels mark the response tokens).
type Pair struct {
	Chosen, Rejected sft.Encoded
}

// EncodePairs encodes prefs with tmpl, truncating each sequence to maxLen
// tokens by the SFT rule. Pairs with nothing to train on are skipped and
// counted; other errors name the pair's line.
func EncodePairs(prefs []data.Preference, tok sft.Tokenizer, tmpl sft.Template, maxLen int) ([]Pair, int, error) {
	var out []Pair
	skipped := 0
	for i, p := range prefs {
		var pr Pair
		var err error
		for k, resp := range []string{p.Chosen, p.Rejected} {
			var e sft.Encoded
			e.IDs, e.Labels, err = sft.Encode(p.Example(resp), tok, tmpl, maxLen)
			if err != nil {
				break
			}
			if k == 0 {
				pr.Chosen = e
			} else {
				pr.Rejected = e
			}
		}
		if errors.Is(err, sft.ErrNoTargets) {
			skipped++
			continue
		}
		if err != nil {
			line := p.Line
			if line == 0 {
				line = i + 1
			}
			return nil, skipped, fmt.Errorf("pair %d: %w", line, err)
		}
		out = append(out, pr)
	}
	if len(out) == 0 {
		return nil, skipped, errors.New("align: no preference pair to train on")
	}
	return out, skipped, nil
}

// MaxLen returns the longest sequence of pairs.
func MaxLen(pairs []Pair) int {
	n := 0
	for _, p := range pairs {
		n = max(n, len(p.Chosen.IDs), len(p.Rejected.IDs))
	}
	return n
}

// PairBatch lays pairs out as a (2·P, T) batch, right-padded with pad:
// row 2i is pair i's chosen sequence and row 2i+1 its rejected one, with
// targets shifted as sft.PadBatch makes them (the response tokens; prompt
// and padding IgnoreIndex). Rows beyond 2·len(pairs) are padding.
func PairBatch(pairs []Pair, P, T int, pad int32) *model.Batch {
	ids := make([][]int32, 0, 2*len(pairs))
	labels := make([][]int32, 0, 2*len(pairs))
	for _, p := range pairs {
		ids = append(ids, p.Chosen.IDs, p.Rejected.IDs)
		labels = append(labels, p.Chosen.Labels, p.Rejected.Labels)
	}
	return sft.PadBatch(ids, labels, 2*P, T, pad)
}

// PairBatches lays all pairs out in order, P pairs per batch.
func PairBatches(pairs []Pair, P, T int, pad int32) []*model.Batch {
	var out []*model.Batch
	for i := 0; i < len(pairs); i += P {
		out = append(out, PairBatch(pairs[i:min(i+P, len(pairs))], P, T, pad))
	}
	return out
}

// CountPairs counts the pairs of batches laid out by PairBatch: row pairs
// whose chosen row has at least one real token.
func CountPairs(batches []*model.Batch) int {
	n := 0
	for _, b := range batches {
		for i := 0; 2*i+1 < b.B; i++ {
			if rowUsed(b, 2*i) {
				n++
			}
		}
	}
	return n
}

func rowUsed(b *model.Batch, r int) bool {
	if b.KeyMask == nil {
		return true
	}
	for _, k := range b.KeyMask[r*b.T : (r+1)*b.T] {
		if k != 0 {
			return true
		}
	}
	return false
}

// PairSource serves shuffled batches of P pairs (a train.Source): every
// epoch visits all pairs once in an order drawn from (Seed, epoch) with
// data.Shuffle.
type PairSource struct {
	Pairs []Pair
	P, T  int
	Pad   int32
	Seed  int64

	epoch, index int
	order        []int
}

type pairState struct {
	Epoch int `json:"epoch"`
	Index int `json:"index"`
	Pairs int `json:"pairs"`
}

// Fill sets micro to the next batches.
func (s *PairSource) Fill(micro []*model.Batch) error {
	if len(s.Pairs) == 0 || s.P <= 0 {
		return errors.New("align: pair source has no pairs")
	}
	for i := range micro {
		if s.order == nil {
			s.order = data.Shuffle(len(s.Pairs), s.Seed, s.epoch)
		}
		end := min(s.index+s.P, len(s.Pairs))
		sel := make([]Pair, 0, s.P)
		for _, j := range s.order[s.index:end] {
			sel = append(sel, s.Pairs[j])
		}
		micro[i] = PairBatch(sel, s.P, s.T, s.Pad)
		s.index = end
		if s.index >= len(s.Pairs) {
			s.epoch, s.index, s.order = s.epoch+1, 0, nil
		}
	}
	return nil
}

// MarshalState saves the position.
func (s *PairSource) MarshalState() ([]byte, error) {
	return json.Marshal(pairState{s.epoch, s.index, len(s.Pairs)})
}

// RestoreState restores a position saved by MarshalState.
func (s *PairSource) RestoreState(b []byte) error {
	var st pairState
	if err := json.Unmarshal(b, &st); err != nil {
		return err
	}
	if st.Pairs != len(s.Pairs) || st.Index < 0 || st.Index >= max(len(s.Pairs), 1) {
		return fmt.Errorf("align: pair source state %+v does not fit %d pairs", st, len(s.Pairs))
	}
	s.epoch, s.index, s.order = st.Epoch, st.Index, nil
	return nil
}
