package align

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/shoggo/shoggo/internal/gradcheck"
)

type ppoFixture struct {
	B, T                           int
	Gamma                          float64
	Lambda                         float64 `json:"lambda"`
	KLCoef                         float64 `json:"kl_coef"`
	ClipRange                      float64 `json:"cliprange"`
	ClipRangeValue                 float64 `json:"cliprange_value"`
	VFCoef                         float64 `json:"vf_coef"`
	Mask, Ref, Values, Scores      []float64
	LogpOld                        []float64 `json:"logp_old"`
	Rewards                        []float64
	AdvRaw                         []float64 `json:"advantages_raw"`
	Returns, Advantages, LP, VPred []float64
	Loss                           float64
	PGLoss                         float64      `json:"pg_loss"`
	VFLoss                         float64      `json:"vf_loss"`
	PGClipfrac                     float64      `json:"pg_clipfrac"`
	VFClipfrac                     float64      `json:"vf_clipfrac"`
	GradLP                         []float64    `json:"grad_lp"`
	GradV                          []float64    `json:"grad_v"`
	KLUpdates                      [][2]float64 `json:"kl_ctl_updates"`
	KLValue                        float64      `json:"kl_ctl_value"`
}

func near(t *testing.T, what string, got, want []float64, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	for i := range got {
		if math.Abs(got[i]-want[i]) > tol {
			t.Fatalf("%s[%d] = %.12g, reference %.12g", what, i, got[i], want[i])
		}
	}
}

// TestPPOParityTorch compares per-token rewards, GAE, whitening, the
// clipped losses, their gradients and the adaptive KL controller with the
// plain PyTorch implementation in reference/make_ppo_fixture.py (float64
// on both sides: tolerance 1e-12).
func TestPPOParityTorch(t *testing.T) {
	raw, err := os.ReadFile("../testdata/align/ppo_parity.json")
	if err != nil {
		t.Fatal(err)
	}
	var f ppoFixture
	if err := json.Unmarshal(raw, &f); err != nil {
		t.Fatal(err)
	}
	rw, _ := PPORewards(f.LogpOld, f.Ref, f.Mask, f.Scores, f.KLCoef, f.B, f.T)
	near(t, "rewards", rw, f.Rewards, 1e-12)
	adv, ret := GAE(rw, f.Values, f.Mask, f.B, f.T, f.Gamma, f.Lambda)
	near(t, "advantages (raw)", adv, f.AdvRaw, 1e-12)
	near(t, "returns", ret, f.Returns, 1e-12)
	w := Whiten(adv, f.Mask, true)
	near(t, "whitened advantages", w, f.Advantages, 1e-10)
	c := PPOConfig{ClipRange: f.ClipRange, ClipRangeValue: f.ClipRangeValue, VFCoef: f.VFCoef}
	sum, dlp, dv, st := PPOLoss(c, f.LP, f.LogpOld, f.VPred, f.Values, f.Advantages, f.Returns, f.Mask)
	n := st.Tokens
	for _, x := range []struct {
		name      string
		got, want float64
	}{{"loss", sum / n, f.Loss}, {"pg_loss", st.PGLoss / n, f.PGLoss}, {"vf_loss", st.VFLoss / n, f.VFLoss},
		{"pg_clipfrac", st.PGClipped / n, f.PGClipfrac}, {"vf_clipfrac", st.VFClipped / n, f.VFClipfrac}} {
		if math.Abs(x.got-x.want) > 1e-12 {
			t.Errorf("%s = %.12g, reference %.12g", x.name, x.got, x.want)
		}
	}
	if st.PGClipped == 0 || st.VFClipped == 0 {
		t.Fatalf("fixture clips nothing (pg %v, vf %v): the clipped branches are untested", st.PGClipped, st.VFClipped)
	}
	for i := range dlp {
		dlp[i] /= n
		dv[i] /= n
	}
	near(t, "d loss/d lp", dlp, f.GradLP, 1e-12)
	near(t, "d loss/d v", dv, f.GradV, 1e-12)
	k := &AdaptiveKL{Coef: 0.2, Target: 6, Horizon: 10000}
	for _, u := range f.KLUpdates {
		k.Update(u[0], int(u[1]))
	}
	if math.Abs(k.Value()-f.KLValue) > 1e-15 {
		t.Errorf("adaptive KL %.17g, reference %.17g", k.Value(), f.KLValue)
	}
}

// TestPPOLossGradFD checks PPOLoss's gradients in lp and v by finite
// differences, with clipped and unclipped tokens.
func TestPPOLossGradFD(t *testing.T) {
	n := 40
	rng := rand.New(rand.NewPCG(3, 4))
	lp, old, v, vOld, adv, ret, mask := make([]float64, n), make([]float64, n), make([]float64, n), make([]float64, n), make([]float64, n), make([]float64, n), make([]float64, n)
	for i := range lp {
		old[i] = -2 * rng.Float64()
		lp[i] = old[i] + 0.4*rng.NormFloat64()
		vOld[i] = rng.NormFloat64()
		v[i] = vOld[i] + 0.5*rng.NormFloat64()
		adv[i], ret[i] = rng.NormFloat64(), rng.NormFloat64()
		if rng.IntN(6) > 0 {
			mask[i] = 1
		}
	}
	c := PPOConfig{ClipRange: 0.2, ClipRangeValue: 0.2, VFCoef: 0.1}
	_, dlp, dv, st := PPOLoss(c, lp, old, v, vOld, adv, ret, mask)
	if st.PGClipped == 0 || st.VFClipped == 0 {
		t.Fatal("nothing clipped: the clipped branches are untested")
	}
	loss := func() float64 { s, _, _, _ := PPOLoss(c, lp, old, v, vOld, adv, ret, mask); return s }
	if err := gradcheck.Check("lp", lp, dlp, nil, 1e-6, 1e-7, 1e-5, loss); err != nil {
		t.Error(err)
	}
	if err := gradcheck.Check("v", v, dv, nil, 1e-6, 1e-7, 1e-5, loss); err != nil {
		t.Error(err)
	}
}

// TestValueHeadGradFD checks the value head's backward (weights, bias,
// hidden states) by finite differences of sum_n c_n·v_n.
func TestValueHeadGradFD(t *testing.T) {
	N, C := 3, 5
	rng := rand.New(rand.NewPCG(5, 6))
	h := NewValueHead(C)
	hid := make([]float32, N*C)
	for i := range hid {
		hid[i] = float32(rng.NormFloat64())
	}
	for i := range h.W.F32 {
		h.W.F32[i] = float32(rng.NormFloat64())
	}
	coef := []float64{0.5, -1, 2}
	dh := make([]float32, N*C)
	h.Backward(hid, dh, coef)
	f := func() float64 {
		v := h.Forward(hid, N)
		var s float64
		for i := range v {
			s += coef[i] * v[i]
		}
		return s
	}
	// Check through float64 copies (the head stores float32).
	check := func(name string, x []float32, g []float32) {
		xs, gs := make([]float64, len(x)), make([]float64, len(x))
		for i := range x {
			xs[i], gs[i] = float64(x[i]), float64(g[i])
		}
		loss := func() float64 {
			for i := range x {
				x[i] = float32(xs[i])
			}
			return f()
		}
		if err := gradcheck.Check(name, xs, gs, nil, 1e-2, 1e-3, 1e-3, loss); err != nil {
			t.Error(err)
		}
		for i := range x {
			x[i] = float32(xs[i])
		}
	}
	check("W", h.W.F32, h.DW.F32)
	check("b", h.B.F32, h.DB.F32)
	check("hidden", hid, dh)
}

func TestGAEAndWhiten(t *testing.T) {
	// One row, gamma = lambda = 1: advantages are reward-to-go minus value.
	mask := []float64{0, 1, 1, 1}
	r := []float64{0, 0, 0, 1}
	v := []float64{0, 0.5, 0.25, 0}
	adv, ret := GAE(r, v, mask, 1, 4, 1, 1)
	near(t, "adv", adv, []float64{0, 0.5, 0.75, 1}, 1e-12)
	near(t, "ret", ret, []float64{0, 1, 1, 1}, 1e-12)
	w := Whiten([]float64{1, 2, 3, 99}, []float64{1, 1, 1, 0}, true)
	near(t, "whiten", w, []float64{-1 / math.Sqrt(1+1e-8), 0, 1 / math.Sqrt(1+1e-8), 0}, 1e-12)
}
