package align

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/shoggo/shoggo/internal/gradcheck"
)

type grpoFixture struct {
	B, T, G             int
	MaxCompletionLength int `json:"max_completion_length"`
	Rewards             []float64
	Mask, LP, Old, Ref  []float64
	Cases               []struct {
		ScaleRewards bool    `json:"scale_rewards"`
		LossType     string  `json:"loss_type"`
		UseOld       bool    `json:"use_old"`
		Beta         float64 `json:"beta"`
		Epsilon      float64 `json:"epsilon"`
		EpsilonHigh  float64 `json:"epsilon_high"`
		Advantages   []float64
		Loss         float64
		Grad         []float64
	}
}

// TestGRPOParityTRL compares advantages, loss and gradient with TRL 1.16
// (reference/make_grpo_fixture.py). Tolerance 1e-12: both sides compute in
// float64.
func TestGRPOParityTRL(t *testing.T) {
	raw, err := os.ReadFile("../testdata/align/grpo_parity.json")
	if err != nil {
		t.Fatal(err)
	}
	var f grpoFixture
	if err := json.Unmarshal(raw, &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Cases) == 0 {
		t.Fatal("fixture has no cases")
	}
	for _, c := range f.Cases {
		name := c.LossType
		adv, err := GroupAdvantages(f.Rewards, f.G, c.ScaleRewards)
		if err != nil {
			t.Fatal(err)
		}
		for i := range adv {
			if math.Abs(adv[i]-c.Advantages[i]) > 1e-12 {
				t.Fatalf("%s scale=%v: advantage %d = %v, TRL %v", name, c.ScaleRewards, i, adv[i], c.Advantages[i])
			}
		}
		cfg := GRPOConfig{Beta: c.Beta, Epsilon: c.Epsilon, EpsilonHigh: c.EpsilonHigh, LossType: c.LossType, MaxCompletionLength: f.MaxCompletionLength}
		if err := cfg.Validate(); err != nil {
			t.Fatal(err)
		}
		var old []float64
		if c.UseOld {
			old = f.Old
		}
		sum, dlp, _ := GRPOLoss(cfg, f.LP, old, f.Ref, f.Mask, adv, f.B, f.T)
		n := float64(GRPOCount(cfg, [][]float64{f.Mask}, []int{f.B}))
		if got := sum / n; math.Abs(got-c.Loss) > 1e-12 {
			t.Errorf("%s old=%v beta=%v scale=%v: loss %v, TRL %v", name, c.UseOld, c.Beta, c.ScaleRewards, got, c.Loss)
		}
		for i := range dlp {
			if math.Abs(dlp[i]/n-c.Grad[i]) > 1e-12 {
				t.Fatalf("%s old=%v beta=%v: grad[%d] %v, TRL %v", name, c.UseOld, c.Beta, i, dlp[i]/n, c.Grad[i])
			}
		}
	}
}

// TestGRPOLossGradFD checks GRPOLoss's gradient by finite differences with
// fixed old log-probs, for every loss type, inside and outside the clip
// range.
func TestGRPOLossGradFD(t *testing.T) {
	B, T := 4, 5
	rng := rand.New(rand.NewPCG(1, 2))
	lp, old, ref, mask := make([]float64, B*T), make([]float64, B*T), make([]float64, B*T), make([]float64, B*T)
	for i := range lp {
		lp[i] = -3 * rng.Float64()
		old[i] = lp[i] + 0.4*rng.NormFloat64()
		ref[i] = lp[i] + 0.3*rng.NormFloat64()
		if rng.IntN(5) > 0 {
			mask[i] = 1
		}
	}
	adv := []float64{1.2, -0.7, 0.3, -1.5}
	for _, lt := range []string{"grpo", "bnpo", "dr_grpo", "dapo"} {
		for _, beta := range []float64{0, 0.1} {
			cfg := GRPOConfig{Beta: beta, Epsilon: 0.2, LossType: lt, MaxCompletionLength: T}
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			_, dlp, st := GRPOLoss(cfg, lp, old, ref, mask, adv, B, T)
			if st.Clipped == 0 {
				t.Fatalf("%s: no token clipped; the test would not cover the clipped branch", lt)
			}
			f := func() float64 { s, _, _ := GRPOLoss(cfg, lp, old, ref, mask, adv, B, T); return s }
			if err := gradcheck.Check(lt, lp, dlp, nil, 1e-6, 1e-7, 1e-5, f); err != nil {
				t.Error(err)
			}
		}
	}
}

func TestGroupAdvantages(t *testing.T) {
	for _, tc := range []struct {
		name    string
		rewards []float64
		G       int
		scale   bool
		want    []float64
		bad     bool
	}{
		{"centred", []float64{1, 0, 0, 1}, 2, false, []float64{0.5, -0.5, -0.5, 0.5}, false},
		{"equal rewards", []float64{1, 1, 1}, 3, true, []float64{0, 0, 0}, false},
		{"group of one", []float64{2, 3}, 1, true, []float64{0, 0}, false},
		{"ragged", []float64{1, 2, 3}, 2, true, nil, true},
	} {
		got, err := GroupAdvantages(tc.rewards, tc.G, tc.scale)
		if (err != nil) != tc.bad {
			t.Fatalf("%s: err %v", tc.name, err)
		}
		for i := range tc.want {
			if math.Abs(got[i]-tc.want[i]) > 1e-12 {
				t.Errorf("%s: adv[%d] = %v, want %v", tc.name, i, got[i], tc.want[i])
			}
		}
	}
}

func TestRewardFns(t *testing.T) {
	fn, err := ParseRewardFns("exact-match,format:0.5,length:0.25")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		got, want string
		r         float64
	}{
		{"42", "42", 1.75},
		{" 42", "42", 1 + 0 + 0.25},
		{"41", "42", 0.75},
		{"the answer is 42 because", "42", 0.5},
		{"42\n", "42", 1 + 0 + 0.25},
	} {
		if r := fn("q", tc.got, tc.want); math.Abs(r-tc.r) > 1e-12 {
			t.Errorf("reward(%q, %q) = %v, want %v", tc.got, tc.want, r, tc.r)
		}
	}
	for _, tc := range []struct {
		got, want string
		r         float64
	}{{"42", "42", 1}, {"41", "42", 0.5}, {"45", "42", 0.25}, {"4x", "42", 0}, {"42", "abc", 0}} {
		if r := NumericReward("q", tc.got, tc.want); r != tc.r {
			t.Errorf("NumericReward(%q, %q) = %v, want %v", tc.got, tc.want, r, tc.r)
		}
	}
	for _, bad := range []string{"", "nope", "exact-match:x"} {
		if _, err := ParseRewardFns(bad); err == nil {
			t.Errorf("ParseRewardFns(%q): no error", bad)
		}
	}
}
