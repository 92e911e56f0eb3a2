// Package decode is shoggo's one batched decoder: B sequences decoded
// together over a model.KVCache, each with its own prompt length, stop
// conditions (EOS ids, stop strings, a token budget) and sampling state
// (greedy or temperature/top-k/top-p/repetition penalty with a per-row
// seed). Generate is the simple API; Decoder is the step API (add a
// sequence into a free slot, step every active row one token, remove a
// finished row) that RL rollouts and a continuous-batching server drive.
//
// Only the logits of each row's last position are formed ((B, V) per
// step, never (B, T, V)). A row's tokens depend only on its own prompt,
// options and seed, not on which other rows share its batch: the block
// matmuls compute each row independently and the KV-cache attention
// ignores the slot and its padding.
package decode

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"

	"github.com/shoggo/shoggo/model"
	"github.com/shoggo/shoggo/tensor"
)

// Finish says why a sequence stopped.
type Finish string

const (
	Running Finish = ""        // still decoding
	EOS     Finish = "eos"     // an EOS id was sampled (not part of Tokens)
	Stop    Finish = "stop"    // the text contains a stop string
	Length  Finish = "length"  // MaxNewTokens were generated
	Context Finish = "context" // the cache or the model's positions are full
)

// Request is one sequence to decode.
type Request struct {
	Prompt       []int32 // at least one token
	MaxNewTokens int     // > 0
	Sampling     Sampling
	Seed         uint64  // seeds the row's own random stream
	EOS          []int32 // ids that end the sequence (not returned)
	// Stops end the sequence once the detokenized generated text contains
	// one of them (needs the Decoder's Detokenize); Result.Text is cut
	// before it.
	Stops []string
}

// Result is a sequence's outcome.
type Result struct {
	// Tokens are the generated ids: without the EOS id that ended them;
	// with a stop string, up to the token that completed it.
	Tokens []int32
	Finish Finish
	// Text is the detokenized Tokens, cut before a stop string; empty
	// without a Detokenize function.
	Text string
}

// Token is one step's output for one row.
type Token struct {
	Slot   int
	ID     int32  // the sampled id (an EOS id too)
	Finish Finish // Running unless this token ended the row
}

type seq struct {
	req     Request
	rng     *rand.Rand
	hist    []int32 // prompt + generated, for the repetition penalty
	out     []int32
	text    string
	finish  Finish
	pending []float32 // logits after the prompt, before the first Step
}

// Decoder decodes up to Slots sequences together over one KV cache.
type Decoder struct {
	m *model.Transformer
	// Detokenize turns generated ids into text for stop strings; nil
	// disables them (Requests with Stops are then an error).
	Detokenize func([]int32) string

	kc     *model.KVCache
	seqs   []*seq         // per slot; nil = free
	logits *tensor.Tensor // (Slots, V) backend tensor; its first rows are a step's logits
	host   []float32      // their host copy on a backend without host storage
	ids    []int32
	rows   []int32
}

// New makes a decoder for up to slots sequences of at most maxT cache
// positions each (prompt, its left padding and the generated tokens;
// maxT <= 0: max_position_embeddings).
func New(m *model.Transformer, slots, maxT int, detokenize func([]int32) string) (*Decoder, error) {
	if m.DType != tensor.F32 {
		return nil, fmt.Errorf("decode: model dtype %s, want F32", m.DType)
	}
	kc, err := m.NewKVCache(slots, maxT)
	if err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	return &Decoder{m: m, Detokenize: detokenize, kc: kc, seqs: make([]*seq, slots)}, nil
}

// Slots is the most sequences decoded at once.
func (d *Decoder) Slots() int { return d.kc.Slots }

// MaxT is the cache capacity of a slot.
func (d *Decoder) MaxT() int { return d.kc.MaxT }

// FreeSlots is the number of empty slots.
func (d *Decoder) FreeSlots() int {
	n := 0
	for _, s := range d.seqs {
		if s == nil {
			n++
		}
	}
	return n
}

// Active returns the slots holding a sequence that is still decoding.
func (d *Decoder) Active() []int {
	var out []int
	for i, s := range d.seqs {
		if s != nil && s.finish == Running {
			out = append(out, i)
		}
	}
	return out
}

// Add prefills the requests into free slots, all in one batch (shorter
// prompts left padded), and returns their slots. The first token is
// sampled by the next Step.
func (d *Decoder) Add(reqs ...Request) ([]int, error) {
	if len(reqs) == 0 {
		return nil, nil
	}
	longest := 0
	for i, r := range reqs {
		if len(r.Prompt) == 0 {
			return nil, fmt.Errorf("decode: request %d: empty prompt", i)
		}
		if r.MaxNewTokens <= 0 {
			return nil, fmt.Errorf("decode: request %d: max new tokens %d must be positive", i, r.MaxNewTokens)
		}
		if len(r.Stops) > 0 && d.Detokenize == nil {
			return nil, fmt.Errorf("decode: request %d: stop strings need a Detokenize function", i)
		}
		longest = max(longest, len(r.Prompt))
	}
	if longest >= d.kc.MaxT {
		return nil, fmt.Errorf("decode: a prompt of %d tokens leaves no room in a cache of %d", longest, d.kc.MaxT)
	}
	var slots []int32
	for i := range d.seqs {
		if d.seqs[i] == nil && len(slots) < len(reqs) {
			slots = append(slots, int32(i))
		}
	}
	if len(slots) < len(reqs) {
		return nil, fmt.Errorf("decode: %d requests for %d free slots", len(reqs), len(slots))
	}
	B, V := len(reqs), d.m.Cfg.VocabSize
	ids, pad := make([]int32, B*longest), make([]int32, B)
	for b, r := range reqs {
		pad[b] = int32(longest - len(r.Prompt))
		copy(ids[b*longest+int(pad[b]):], r.Prompt)
	}
	logits := d.logitsBuf(B)
	if err := d.m.ForwardKV(d.kc, slots, ids, longest, pad, logits); err != nil {
		for _, s := range slots {
			d.kc.Free(int(s))
		}
		return nil, fmt.Errorf("decode: prefill: %w", err)
	}
	out := make([]int, B)
	host := d.hostLogits(logits)
	for b, r := range reqs {
		s := &seq{req: r, rng: rand.New(rand.NewPCG(r.Seed, 0x5eed)), hist: append([]int32(nil), r.Prompt...)}
		s.pending = append([]float32(nil), host[b*V:(b+1)*V]...)
		d.seqs[slots[b]] = s
		out[b] = int(slots[b])
	}
	return out, nil
}

func (d *Decoder) logitsBuf(B int) *tensor.Tensor {
	V := d.m.Cfg.VocabSize
	if d.logits == nil {
		d.logits = d.m.BE.Alloc(tensor.F32, d.kc.Slots, V)
	}
	return d.logits.View(0, B, V)
}

// hostLogits returns the (B, V) logits, a backend tensor, as host memory:
// the one place the decoder reads tensor storage. On host storage (the CPU
// backend) it is the tensor's own slice; otherwise the logits are
// downloaded into a buffer reused from step to step.
func (d *Decoder) hostLogits(logits *tensor.Tensor) []float32 {
	n := logits.Numel()
	if logits.IsHost() {
		return logits.F32[:n]
	}
	if cap(d.host) < n {
		d.host = make([]float32, n)
	}
	h := tensor.FromF32(d.host[:n], logits.Shape...)
	d.m.BE.Download(h, logits)
	return h.F32
}

// Step advances every active row by one token: rows just added sample from
// their prompt's logits, the others feed their last token through the
// model first (one batched forward). It returns the tokens in slot order.
func (d *Decoder) Step() ([]Token, error) {
	d.rows, d.ids = d.rows[:0], d.ids[:0]
	for i, s := range d.seqs {
		if s != nil && s.finish == Running && s.pending == nil {
			d.rows = append(d.rows, int32(i))
			d.ids = append(d.ids, s.out[len(s.out)-1])
		}
	}
	V := d.m.Cfg.VocabSize
	var host []float32
	if len(d.rows) > 0 {
		logits := d.logitsBuf(len(d.rows))
		if err := d.m.ForwardKV(d.kc, d.rows, d.ids, 1, nil, logits); err != nil {
			return nil, fmt.Errorf("decode: %w", err)
		}
		host = d.hostLogits(logits)
	}
	b := 0 // d.rows is in slot order
	var toks []Token
	for i, s := range d.seqs {
		if s == nil || s.finish != Running {
			continue
		}
		var l []float32
		if s.pending != nil {
			l, s.pending = s.pending, nil
		} else {
			l = host[b*V : (b+1)*V]
			b++
		}
		id := Sample(l, s.hist, s.req.Sampling, s.rng)
		toks = append(toks, Token{Slot: i, ID: id, Finish: d.accept(i, s, id)})
	}
	return toks, nil
}

// accept appends id to slot i's sequence and returns why it finished, if
// it did.
func (d *Decoder) accept(i int, s *seq, id int32) Finish {
	for _, e := range s.req.EOS {
		if id == e {
			s.finish = EOS
			return s.finish
		}
	}
	s.out = append(s.out, id)
	s.hist = append(s.hist, id)
	if d.Detokenize != nil {
		s.text = d.Detokenize(s.out)
		cut := -1
		for _, st := range s.req.Stops {
			if k := strings.Index(s.text, st); st != "" && k >= 0 && (cut < 0 || k < cut) {
				cut = k
			}
		}
		if cut >= 0 {
			s.text = s.text[:cut]
			s.finish = Stop
			return s.finish
		}
	}
	switch {
	case len(s.out) >= s.req.MaxNewTokens:
		s.finish = Length
	case int(d.kc.Len[i]) >= d.kc.MaxT || int(d.kc.Real[i]) >= d.m.Cfg.MaxPositionEmbeddings:
		s.finish = Context // the token just sampled cannot be fed
	}
	return s.finish
}

// Result returns slot's sequence so far (or its final result).
func (d *Decoder) Result(slot int) Result {
	s := d.seqs[slot]
	if s == nil {
		return Result{}
	}
	return Result{Tokens: append([]int32(nil), s.out...), Finish: s.finish, Text: s.text}
}

// Remove frees slot (finished or not) and returns its result.
func (d *Decoder) Remove(slot int) Result {
	r := d.Result(slot)
	d.seqs[slot] = nil
	d.kc.Free(slot)
	return r
}

// Options configure Generate.
type Options struct {
	MaxNewTokens int // > 0
	Sampling     Sampling
	// Seed seeds row i's random stream with Seed+i, unless Seeds (one per
	// prompt) is given.
	Seed  uint64
	Seeds []uint64
	EOS   []int32
	// Stops and Detokenize: see Request.Stops.
	Stops      []string
	Detokenize func([]int32) string
	// BatchSize is the most rows decoded at once (0: all prompts); a
	// finished row's slot takes the next waiting prompt.
	BatchSize int
	// MaxT is a slot's cache positions (0: longest prompt + MaxNewTokens);
	// a row whose cache fills ends with Context.
	MaxT int
}

// Generate decodes every prompt and returns their results in order.
func Generate(m *model.Transformer, prompts [][]int32, opt Options) ([]Result, error) {
	if len(prompts) == 0 {
		return nil, errors.New("decode: no prompts")
	}
	if opt.Seeds != nil && len(opt.Seeds) != len(prompts) {
		return nil, fmt.Errorf("decode: %d seeds for %d prompts", len(opt.Seeds), len(prompts))
	}
	slots := opt.BatchSize
	if slots <= 0 || slots > len(prompts) {
		slots = len(prompts)
	}
	maxT := opt.MaxT
	if maxT <= 0 {
		longest := 0
		for _, p := range prompts {
			longest = max(longest, len(p))
		}
		maxT = longest + max(opt.MaxNewTokens, 1)
	}
	d, err := New(m, slots, maxT, opt.Detokenize)
	if err != nil {
		return nil, err
	}
	req := func(i int) Request {
		seed := opt.Seed + uint64(i)
		if opt.Seeds != nil {
			seed = opt.Seeds[i]
		}
		return Request{Prompt: prompts[i], MaxNewTokens: opt.MaxNewTokens, Sampling: opt.Sampling, Seed: seed, EOS: opt.EOS, Stops: opt.Stops}
	}
	results := make([]Result, len(prompts))
	owner := make([]int, slots) // prompt index per slot
	next := 0
	fill := func() error {
		var rs []Request
		var idx []int
		for n := d.FreeSlots(); n > 0 && next < len(prompts); n-- {
			rs, idx = append(rs, req(next)), append(idx, next)
			next++
		}
		got, err := d.Add(rs...)
		if err != nil {
			return fmt.Errorf("prompt %d: %w", idx[0], err)
		}
		for k, s := range got {
			owner[s] = idx[k]
		}
		return nil
	}
	if err := fill(); err != nil {
		return nil, err
	}
	for len(d.Active()) > 0 {
		toks, err := d.Step()
		if err != nil {
			return nil, err
		}
		freed := false
		for _, t := range toks {
			if t.Finish != Running {
				results[owner[t.Slot]] = d.Remove(t.Slot)
				freed = true
			}
		}
		if freed && next < len(prompts) {
			if err := fill(); err != nil {
				return nil, err
			}
		}
	}
	return results, nil
}
