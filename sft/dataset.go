package sft

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/shoggo/shoggo/data"
	"github.com/shoggo/shoggo/model"
)

// DatasetConfig configures a Dataset.
type DatasetConfig struct {
	B, T  int   // micro-batch shape; every example must have at most T tokens
	PadID int32 // the id written at padding positions (masked out; any valid id)
	Pack  bool  // pack several examples per row (Pack) instead of padding (PadBatch)
	Seed  int64 // fixes the order of every epoch
}

// Dataset serves micro-batches of encoded examples. Every epoch visits all
// examples once, in a fresh order drawn from (Seed, epoch), laid out into
// batches as PadBatch (one example per row) or Pack. The last batch of an
// epoch may have empty rows (all padding, no targets). With packing the
// number of batches can differ from epoch to epoch ([Dataset.NumBatches]).
// A Dataset is not safe for concurrent use.
type Dataset struct {
	ex     []Encoded
	cfg    DatasetConfig
	tokens int64

	epoch, index int       // the next batch is batch index of epoch
	planEpoch    int       // epoch of plan, -1 for none
	plan         [][][]int // batch -> row -> example
}

// DatasetState is a Dataset's position: Next serves batch Index of Epoch.
// The other fields describe the dataset, so that Restore can refuse a state
// from a different configuration or data.
type DatasetState struct {
	Epoch int `json:"epoch"`
	Index int `json:"index"`

	Seed     int64 `json:"seed"`
	B        int   `json:"batch_size"`
	T        int   `json:"seq_len"`
	Pack     bool  `json:"pack"`
	Examples int   `json:"examples"`
	Tokens   int64 `json:"tokens"`
}

// NewDataset makes a dataset over examples (not copied: do not modify them).
func NewDataset(examples []Encoded, cfg DatasetConfig) (*Dataset, error) {
	if cfg.B <= 0 || cfg.T <= 0 {
		return nil, fmt.Errorf("sft: dataset batch %d x %d must be positive", cfg.B, cfg.T)
	}
	if len(examples) == 0 {
		return nil, errors.New("sft: dataset has no examples")
	}
	if cfg.PadID < 0 {
		return nil, fmt.Errorf("sft: padding id %d (use the EOS id when the tokenizer has no PAD)", cfg.PadID)
	}
	d := &Dataset{ex: examples, cfg: cfg, planEpoch: -1}
	for i, e := range examples {
		if len(e.IDs) != len(e.Labels) || len(e.IDs) == 0 || len(e.IDs) > cfg.T {
			return nil, fmt.Errorf("sft: dataset example %d has %d ids and %d labels (need 1..T = %d of each)", i, len(e.IDs), len(e.Labels), cfg.T)
		}
		d.tokens += int64(len(e.IDs))
	}
	return d, nil
}

// Len is the number of examples.
func (d *Dataset) Len() int { return len(d.ex) }

// Config returns the dataset's configuration.
func (d *Dataset) Config() DatasetConfig { return d.cfg }

// NumBatches is the number of batches of epoch e (0-based).
func (d *Dataset) NumBatches(e int) int {
	if !d.cfg.Pack {
		return (len(d.ex) + d.cfg.B - 1) / d.cfg.B
	}
	return len(d.planFor(e))
}

// Next returns the next micro-batch and the epoch it belongs to (from 0).
// The batch is freshly allocated.
func (d *Dataset) Next() (*model.Batch, int) {
	p := d.planFor(d.epoch)
	if d.index >= len(p) {
		d.epoch++
		d.index = 0
		p = d.planFor(d.epoch)
	}
	b := d.build(p[d.index])
	d.index++
	return b, d.epoch
}

// Epoch returns all batches of epoch e in order, without moving the dataset.
func (d *Dataset) Epoch(e int) []*model.Batch {
	p := d.planFor(e)
	out := make([]*model.Batch, len(p))
	for i, rows := range p {
		out[i] = d.build(rows)
	}
	return out
}

// Position returns the dataset's state; Restore on a dataset made from the
// same examples and configuration continues with exactly the batches this
// one would serve next.
func (d *Dataset) Position() DatasetState {
	return DatasetState{Epoch: d.epoch, Index: d.index, Seed: d.cfg.Seed, B: d.cfg.B, T: d.cfg.T,
		Pack: d.cfg.Pack, Examples: len(d.ex), Tokens: d.tokens}
}

// Restore moves the dataset to st, which Position returned.
func (d *Dataset) Restore(st DatasetState) error {
	cur := d.Position()
	switch {
	case st.Seed != cur.Seed:
		return fmt.Errorf("sft: dataset state has seed %d, dataset has %d", st.Seed, cur.Seed)
	case st.B != cur.B || st.T != cur.T:
		return fmt.Errorf("sft: dataset state is for batches of %dx%d, dataset has %dx%d", st.B, st.T, cur.B, cur.T)
	case st.Pack != cur.Pack:
		return fmt.Errorf("sft: dataset state has pack=%v, dataset has pack=%v", st.Pack, cur.Pack)
	case st.Examples != cur.Examples || st.Tokens != cur.Tokens:
		return fmt.Errorf("sft: dataset state is for %d examples of %d tokens, dataset has %d of %d (different data or max length?)",
			st.Examples, st.Tokens, cur.Examples, cur.Tokens)
	case st.Epoch < 0 || st.Index < 0 || st.Index > d.NumBatches(st.Epoch):
		return fmt.Errorf("sft: dataset state epoch %d index %d out of range", st.Epoch, st.Index)
	}
	d.epoch, d.index = st.Epoch, st.Index
	return nil
}

// Fill sets every micro[i] to the next batch: a Dataset is a training
// source for the trainer harness (train.Source).
func (d *Dataset) Fill(micro []*model.Batch) error {
	for i := range micro {
		micro[i], _ = d.Next()
	}
	return nil
}

// MarshalState returns Position as JSON.
func (d *Dataset) MarshalState() ([]byte, error) { return json.Marshal(d.Position()) }

// RestoreState restores a position MarshalState returned (see Restore).
func (d *Dataset) RestoreState(b []byte) error {
	var st DatasetState
	if err := json.Unmarshal(b, &st); err != nil {
		return fmt.Errorf("sft: dataset state: %w", err)
	}
	return d.Restore(st)
}

func (d *Dataset) planFor(e int) [][][]int {
	if d.planEpoch == e {
		return d.plan
	}
	order := data.Shuffle(len(d.ex), d.cfg.Seed, e)
	lens := make([]int, len(d.ex))
	for i, x := range d.ex {
		lens[i] = len(x.IDs)
	}
	d.plan = plan(lens, order, d.cfg.B, d.cfg.T, d.cfg.Pack)
	d.planEpoch = e
	return d.plan
}

func (d *Dataset) build(rows [][]int) *model.Batch {
	ids, labels := make([][]int32, 0, len(rows)), make([][]int32, 0, len(rows))
	local := make([][]int, len(rows))
	for r, row := range rows {
		for _, e := range row {
			local[r] = append(local[r], len(ids))
			ids = append(ids, d.ex[e].IDs)
			labels = append(labels, d.ex[e].Labels)
		}
	}
	return build(ids, labels, local, d.cfg.B, d.cfg.T, d.cfg.PadID, d.cfg.Pack)
}

// Batches lays out examples in order (no shuffling) as padded or packed
// (B, T) batches, for evaluation.
func Batches(examples []Encoded, B, T int, padID int32, pack bool) []*model.Batch {
	ids, labels := make([][]int32, len(examples)), make([][]int32, len(examples))
	for i, e := range examples {
		ids[i], labels[i] = e.IDs, e.Labels
	}
	if pack {
		return Pack(ids, labels, B, T, padID)
	}
	checkExamples("Batches", ids, labels, T)
	var out []*model.Batch
	for i := 0; i < len(ids); i += B {
		j := min(i+B, len(ids))
		out = append(out, PadBatch(ids[i:j], labels[i:j], B, T, padID))
	}
	return out
}
