package align

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"

	"github.com/shoggo/shoggo/backend"
	"github.com/shoggo/shoggo/internal/atomicfile"
	"github.com/shoggo/shoggo/model"
	"github.com/shoggo/shoggo/safetensors"
	"github.com/shoggo/shoggo/tensor"
)

// ScoreName is the HF name of a sequence-classification head.
const ScoreName = "score.weight"

// RewardHead is a scalar head on the final hidden state of each sequence's
// last non-pad token, as transformers' ...ForSequenceClassification with
// num_labels 1 computes it: r = h_last · w (no bias). The last non-pad
// token is the rightmost position whose id is not Pad (transformers' rule,
// for left or right padding).
type RewardHead struct {
	W, G *tensor.Tensor // (1, C); G nil for a frozen head
	Pad  int32
}

// NewRewardHead returns a head for hidden size c, initialised N(0, std²)
// (transformers: initializer_range) from rng, with a gradient.
func NewRewardHead(c int, pad int32, std float64, rng *rand.Rand) *RewardHead {
	h := &RewardHead{W: tensor.New(tensor.F32, 1, c), G: tensor.New(tensor.F32, 1, c), Pad: pad}
	h.W.Name, h.G.Name = ScoreName, ScoreName
	for i := range h.W.F32 {
		h.W.F32[i] = float32(rng.NormFloat64() * std)
	}
	return h
}

// LastTokens returns, per row of b, the flat index (row·T + t) of the
// rightmost token that is not pad; a row of padding only gives t = 0.
func LastTokens(b *model.Batch, pad int32) []int {
	out := make([]int, b.B)
	for r := range b.B {
		t := b.T - 1
		for t > 0 && b.IDs[r*b.T+t] == pad {
			t--
		}
		out[r] = r*b.T + t
	}
	return out
}

// Scores returns each row's reward from the hidden states of the last
// Forward of m on b (fp32, bf16 or fp16: tensor.At widens each element).
func (h *RewardHead) Scores(m *model.Transformer, b *model.Batch) []float64 {
	hid := backend.ToHost(m.BE, m.Hidden())
	C := h.W.Shape[1]
	out := make([]float64, b.B)
	for r, n := range LastTokens(b, h.Pad) {
		var s float64
		for j := range C {
			s += hid.At(n*C+j) * h.W.At(j)
		}
		out[r] = s
	}
	return out
}

// Score runs m forward on b and returns the rows' rewards.
func (h *RewardHead) Score(m *model.Transformer, b *model.Batch) ([]float64, error) {
	if err := ensurePlan(m, b); err != nil {
		return nil, err
	}
	if err := m.Forward(b); err != nil {
		return nil, err
	}
	return h.Scores(m, b), nil
}

// Backward clears m.DHidden(), writes the gradient of Σ_r dr[r]·r_r into
// it and accumulates the head's gradient (after Scores on the same
// Forward). Call m.Backward(b) next.
func (h *RewardHead) Backward(m *model.Transformer, b *model.Batch, dr []float64) {
	hid, dh := backend.ToHost(m.BE, m.Hidden()), m.DHidden()
	dh.Zero()
	C := h.W.Shape[1]
	for r, n := range LastTokens(b, h.Pad) {
		if dr[r] == 0 {
			continue
		}
		for j := range C {
			dh.Set(n*C+j, dh.At(n*C+j)+dr[r]*h.W.At(j))
			if h.G != nil {
				h.G.Set(j, h.G.At(j)+dr[r]*hid.At(n*C+j))
			}
		}
	}
}

// BTLoss is the Bradley–Terry loss of one pair with margin m:
// -log σ(rc - rr - m), and its gradient with respect to rc and rr.
func BTLoss(rc, rr, margin float64) (loss, dc, dr float64) {
	z := rc - rr - margin
	s := sigmoid(-z)
	return -logSigmoid(z), -s, s
}

// RewardObjective trains a reward model (a train.Objective): batches laid
// out by PairBatch, the Bradley–Terry loss with an optional margin per
// pair; TRL's center_rewards_coefficient adds coef·(rc+rr)². It counts
// pairs. Acc and N accumulate the training pairwise accuracy.
type RewardObjective struct {
	Head          *RewardHead
	Margin        float64
	CenterCoef    float64
	Correct, Seen int
}

// Count counts the pairs.
func (o *RewardObjective) Count(micro []*model.Batch) int { return CountPairs(micro) }

// ForwardBackward scores b's rows and back-propagates gradScale times the
// summed pair losses into the head and the model.
func (o *RewardObjective) ForwardBackward(m *model.Transformer, b *model.Batch, gradScale float64) (float64, error) {
	r, err := o.Head.Score(m, b)
	if err != nil {
		return 0, err
	}
	dr := make([]float64, b.B)
	var sum float64
	for i := 0; 2*i+1 < b.B; i++ {
		if !rowUsed(b, 2*i) {
			continue
		}
		loss, dc, drj := BTLoss(r[2*i], r[2*i+1], o.Margin)
		if o.CenterCoef != 0 {
			s := r[2*i] + r[2*i+1]
			loss += o.CenterCoef * s * s
			dc += 2 * o.CenterCoef * s
			drj += 2 * o.CenterCoef * s
		}
		sum += loss
		dr[2*i], dr[2*i+1] = gradScale*dc, gradScale*drj
		o.Seen++
		if r[2*i] > r[2*i+1] {
			o.Correct++
		}
	}
	o.Head.Backward(m, b, dr)
	m.Backward(b)
	return sum, nil
}

// PairwiseAccuracy scores batches laid out by PairBatch and returns the
// fraction of pairs whose chosen row scores higher, and the mean
// Bradley–Terry loss.
func (h *RewardHead) PairwiseAccuracy(m *model.Transformer, batches []*model.Batch, margin float64) (acc, loss float64, err error) {
	n := 0
	for _, b := range batches {
		r, err := h.Score(m, b)
		if err != nil {
			return 0, 0, err
		}
		for i := 0; 2*i+1 < b.B; i++ {
			if !rowUsed(b, 2*i) {
				continue
			}
			l, _, _ := BTLoss(r[2*i], r[2*i+1], margin)
			loss += l
			if r[2*i] > r[2*i+1] {
				acc++
			}
			n++
		}
	}
	if n == 0 {
		return 0, 0, fmt.Errorf("reward: no pairs to evaluate")
	}
	return acc / float64(n), loss / float64(n), nil
}

// seqClsArch maps a causal-LM architecture to its sequence-classification
// counterpart.
func seqClsArch(arch string) string {
	base := strings.TrimSuffix(strings.TrimSuffix(arch, "ForCausalLM"), "LMHeadModel")
	return base + "ForSequenceClassification"
}

// SaveRewardModel writes m with head h as a Hugging Face
// sequence-classification model directory: config.json
// (...ForSequenceClassification, num_labels 1, pad_token_id), and
// model.safetensors with the transformer's tensors (no LM head) and
// score.weight, in float32. Files are written atomically.
func SaveRewardModel(dir string, m *model.Transformer, h *RewardHead) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	ts, err := m.HFTensors(tensor.F32)
	if err != nil {
		return err
	}
	var keep []*tensor.Tensor
	for _, t := range ts {
		if t.Name != m.Cfg.Spec().Names.LMHead+".weight" {
			keep = append(keep, t)
		}
	}
	w := tensor.New(tensor.F32, h.W.Shape...)
	for i := range w.F32 {
		w.F32[i] = float32(h.W.At(i))
	}
	w.Name = ScoreName
	keep = append(keep, w)
	cj, err := m.Cfg.HFJSON()
	if err != nil {
		return err
	}
	var cm map[string]any
	if err := json.Unmarshal(cj, &cm); err != nil {
		return err
	}
	cm["architectures"] = []string{seqClsArch(m.Cfg.Spec().Architecture)}
	cm["num_labels"] = 1
	cm["id2label"] = map[string]string{"0": "LABEL_0"}
	cm["label2id"] = map[string]int{"LABEL_0": 0}
	cm["pad_token_id"] = h.Pad
	cm["problem_type"] = "regression"
	b, _ := json.MarshalIndent(cm, "", "  ")
	if err := atomicfile.WriteFile(filepath.Join(dir, "config.json"), append(b, '\n'), 0o644); err != nil {
		return err
	}
	return safetensors.Write(filepath.Join(dir, "model.safetensors"), keep, map[string]string{"format": "pt"})
}

// seqClsSource serves a sequence-classification checkpoint to
// Transformer.LoadWeights: score.weight is hidden and an untied LM head
// (which such a checkpoint lacks) reads as zeros.
type seqClsSource struct {
	*safetensors.Set
	head     string
	headInfo safetensors.TensorInfo
}

func (s seqClsSource) Names() []string {
	var out []string
	for _, n := range s.Set.Names() {
		if n != ScoreName {
			out = append(out, n)
		}
	}
	return out
}

func (s seqClsSource) Info(name string) (safetensors.TensorInfo, bool) {
	if name == s.head {
		return s.headInfo, true
	}
	return s.Set.Info(name)
}

func (s seqClsSource) TensorF32(name string) ([]float32, error) {
	if name == s.head {
		return make([]float32, s.headInfo.Numel()), nil
	}
	return s.Set.TensorF32(name)
}

// LoadRewardModel loads an HF sequence-classification directory (as
// SaveRewardModel writes or transformers saves with num_labels 1): the
// transformer (trainable or frozen) and its head (with a gradient when
// trainable). The LM head of an untied model is zero (unused).
func LoadRewardModel(dir string, be backend.Backend, trainable bool) (*model.Transformer, *RewardHead, error) {
	raw, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		return nil, nil, err
	}
	var extra struct {
		NumLabels *int           `json:"num_labels"`
		ID2Label  map[string]any `json:"id2label"`
		Pad       *int32         `json:"pad_token_id"`
	}
	if err := json.Unmarshal(raw, &extra); err != nil {
		return nil, nil, fmt.Errorf("%s/config.json: %w", dir, err)
	}
	if n := len(extra.ID2Label); (extra.NumLabels != nil && *extra.NumLabels != 1) || n > 1 {
		return nil, nil, fmt.Errorf("%s/config.json: a reward model has one label (num_labels %v, %d id2label entries)", dir, extra.NumLabels, n)
	}
	cfg, err := model.LoadConfig(filepath.Join(dir, "config.json"))
	if err != nil {
		return nil, nil, err
	}
	st, err := safetensors.OpenSharded(dir)
	if err != nil {
		return nil, nil, err
	}
	defer st.Close()
	info, ok := st.Info(ScoreName)
	if !ok || !info.Shape.Equal(tensor.Shape{1, cfg.HiddenSize}) {
		return nil, nil, fmt.Errorf("%s: no %s of shape [1 %d] (not a reward model?)", dir, ScoreName, cfg.HiddenSize)
	}
	m, err := model.New(cfg, be, tensor.F32, trainable)
	if err != nil {
		return nil, nil, err
	}
	src := seqClsSource{Set: st}
	if !cfg.TieWordEmbeddings && cfg.Spec().Names.LMHead != "" {
		src.head = cfg.Spec().Names.LMHead + ".weight"
		src.headInfo = safetensors.TensorInfo{Name: src.head, DType: tensor.F32, Shape: tensor.Shape{cfg.VocabSize, cfg.HiddenSize}}
	}
	if _, err := m.LoadWeights(src, dir); err != nil {
		return nil, nil, err
	}
	w, err := st.TensorF32(ScoreName)
	if err != nil {
		return nil, nil, err
	}
	h := &RewardHead{W: tensor.FromF32(w, 1, cfg.HiddenSize), Pad: -1}
	h.W.Name = ScoreName
	if trainable {
		h.G = tensor.New(tensor.F32, 1, cfg.HiddenSize)
		h.G.Name = ScoreName
	}
	if extra.Pad != nil {
		h.Pad = *extra.Pad
	}
	for _, v := range w {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return nil, nil, fmt.Errorf("%s: %s is not finite", dir, ScoreName)
		}
	}
	return m, h, nil
}
