package model

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/shoggo/shoggo/backend"
	"github.com/shoggo/shoggo/backend/cpu"
	"github.com/shoggo/shoggo/safetensors"
	"github.com/shoggo/shoggo/tensor"
)

// stepResult is one training step's loss, logits (N·V) and parameter
// gradients (transformers' names and layouts), all as float64.
type stepResult struct {
	loss   float64
	logits []float64
	grads  map[string][]float64
}

// readStep reads a fixture file: loss, logits and every grad.<name>.
func readStep(t *testing.T, path string) (*stepResult, []int32, []int32, tensor.Shape) {
	t.Helper()
	f, err := safetensors.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ids, shape := ints(t, f, "input_ids")
	labels, _ := ints(t, f, "labels")
	r := &stepResult{loss: float64(floats(t, f, "loss")[0]), logits: f64(floats(t, f, "logits")), grads: map[string][]float64{}}
	for _, name := range f.Names() {
		if p, ok := strings.CutPrefix(name, "grad."); ok {
			r.grads[p] = f64(floats(t, f, name))
		}
	}
	return r, ids, labels, shape
}

func f64(x []float32) []float64 {
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = float64(v)
	}
	return out
}

// shoggoStep loads the HF model in dir and runs one forward + loss +
// backward at precision prec, the loss gradient multiplied by lossScale
// and the gradients by 1/lossScale afterwards (GradScaler's unscale).
func shoggoStep(t *testing.T, dir string, prec tensor.DType, lossScale float64, ids, labels []int32, B, T int) *stepResult {
	t.Helper()
	m, _, err := LoadHF(dir, cpu.New(), tensor.F32, true)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.SetPrecision(prec); err != nil {
		t.Fatal(err)
	}
	if err := m.Plan(B, T); err != nil {
		t.Fatal(err)
	}
	b := &Batch{B: B, T: T, IDs: ids, Targets: ShiftLabels(labels, B, T)}
	m.ZeroGrad()
	if err := m.Forward(b); err != nil {
		t.Fatal(err)
	}
	lg, err := tensor.ToF32(backend.ToHost(m.BE, m.Logits()))
	if err != nil {
		t.Fatal(err)
	}
	count := 0
	for _, x := range b.Targets {
		if x != backend.IgnoreIndex {
			count++
		}
	}
	sum, n, err := m.Loss(b, lossScale/float64(count), true)
	if err != nil {
		t.Fatal(err)
	}
	m.Backward(b)
	r := &stepResult{loss: sum / float64(n), logits: f64(lg), grads: map[string][]float64{}}
	for _, g := range m.Grads.Tensors() {
		h := backend.ToHost(m.BE, g)
		v, err := tensor.ToF32(h)
		if err != nil {
			t.Fatal(err)
		}
		if m.Cfg.Spec().Transposed(g.Name) {
			v = transpose(v, g.Shape[0], g.Shape[1])
		}
		out := make([]float64, len(v))
		for i, x := range v {
			out[i] = float64(x) / lossScale
		}
		r.grads[g.Name] = out
	}
	return r
}

// flatGrads concatenates the gradients named in names.
func flatGrads(t *testing.T, r *stepResult, names []string) []float64 {
	t.Helper()
	var out []float64
	for _, n := range names {
		g, ok := r.grads[n]
		if !ok {
			t.Fatalf("no gradient for %s", n)
		}
		out = append(out, g...)
	}
	return out
}

func sub(a, b []float64) []float64 {
	out := make([]float64, len(a))
	for i := range a {
		out[i] = a[i] - b[i]
	}
	return out
}

func norm2(a []float64) float64 {
	var s float64
	for _, v := range a {
		s += v * v
	}
	return math.Sqrt(s)
}

func dot(a, b []float64) float64 {
	var s float64
	for i := range a {
		s += a[i] * b[i]
	}
	return s
}

func maxAbs(a []float64) float64 {
	var m float64
	for _, v := range a {
		m = math.Max(m, math.Abs(v))
	}
	return m
}

// TestAutocastParity compares one training step of the GPT-2, Llama and
// Qwen2 fixture models under SetPrecision(BF16) and SetPrecision(F16) with
// the same step under PyTorch CPU autocast (testdata/autocast, made by
// reference/make_autocast_fixture.py; fp16 with a fixed loss scale of 1024,
// unscaled gradients).
//
// Notation, per model and precision P: torch_P and torch_32 are torch's
// autocast and fp32 results (the fp32 ones are testdata/models/<m>/
// fixtures.safetensors), shoggo_P and shoggo_32 shoggo's. All gradients are
// concatenated into one vector (transformers' layout). D = ||torch_P -
// torch_32|| / ||torch_32|| is the half-precision noise floor: how far
// autocast moves torch itself. e_P = ||shoggo_P - torch_P|| / ||torch_32||,
// e_32 the same for shoggo_32 (≈ D, since shoggo_32 matches torch_32 to
// ~1e-6), a = shoggo_P - torch_32 and b = torch_P - torch_32 the two
// implementations' half-precision error vectors. u_P is the unit roundoff
// (bf16 2^-9, fp16 2^-11).
//
// Why these tolerances. shoggo's rounding points (the issue 13 contract)
// differ from torch's autocast of the transformers models: torch's eager
// attention rounds scores and probabilities to P (GPT-2 even runs softmax
// and gelu_new's elementwise chain in P), autocast's backward rounds every
// linear's dx and dW to P, while shoggo keeps attention math, activation
// functions and every gradient result in fp32. So shoggo_P cannot match
// torch_P bit for bit, and its remaining distance is of the order of D
// itself. reference/emulate_autocast_contract.py re-implements the three
// models with exactly the contract's rounding (checked against transformers
// in fp32 to 1e-5; its results equal shoggo's lead+ops implementation to
// ~1e-7 except GPT-2 fp16, where fp32-level differences flip a few fp16
// roundings, 0.3·D apart). Over the six model/precision pairs, shoggo
// (measured on main+lead+ops) and the emulation give: e_P/D 0.54-0.93,
// |a|/|b| 0.83-0.99, cos(a, b) 0.49-0.85, loss |Δ|/D_loss 0.36-1.47 (≤ 0.93
// of D_loss + u_P), logits max-abs 0.61-1.35 of D_logits, per tensor
// max-abs ≤ 2.03 of (D_t + u_P·max|g_t|). The bounds leave margin over
// those numbers:
//
//	gradients   e_P ≤ 1.5·D + 1e-4
//	loss        |loss_shoggo_P - loss_torch_P| ≤ 3·D_loss + u_P
//	logits      max-abs ≤ 2.5·D_logits + 1e-4
//	per tensor  max-abs ≤ 4·(D_t + u_P·max|g_t|) (D_t: that tensor's max-abs D)
//
// An implementation that silently stays in fp32 passes those (its distance
// is ≈ D), so when D is large enough to tell (D ≥ 1e-4, 100× shoggo's fp32
// noise; the fixtures have D ≥ 1.7e-3) the test also requires that half
// precision is really applied and points torch's way. "Markedly closer to
// torch_P than fp32" is not attainable under the contract (GPT-2 bf16 is at
// 0.93·e_32), so the distance check only asks for closer, and the magnitude
// and direction of the half-precision error do the discriminating:
//
//	closer      e_P ≤ 0.99·e_32 (fp32 gives exactly 1; measured ≤ 0.93)
//	magnitude   0.25 ≤ |a|/|b| ≤ 4 (fp32 gives 3e-5..4e-4; measured ≥ 0.83)
//	direction   cos(a, b) ≥ 0.25 (shared rounding of the same weights and
//	            activations; measured ≥ 0.49, fp32's noise -0.24..0.27)
func TestAutocastParity(t *testing.T) {
	const dir = "../testdata/autocast"
	man, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if os.IsNotExist(err) {
		t.Skip("testdata/autocast missing (run reference/make_autocast_fixture.py)")
	}
	if err != nil {
		t.Fatal(err)
	}
	var manifest struct {
		LossScale map[string]float64 `json:"loss_scale"`
	}
	if err := json.Unmarshal(man, &manifest); err != nil {
		t.Fatal(err)
	}
	precs := []struct {
		name string
		dt   tensor.DType
		u    float64
	}{{"bf16", tensor.BF16, 0x1p-9}, {"fp16", tensor.F16, 0x1p-11}}
	for _, family := range []string{"gpt2", "llama", "qwen2"} {
		t.Run(family, func(t *testing.T) {
			modelDir := filepath.Join("../testdata/models", family)
			refPath := filepath.Join(modelDir, "fixtures.safetensors")
			if _, err := os.Stat(refPath); err != nil {
				t.Skipf("%s missing (run reference/make_fixtures.py)", refPath)
			}
			t32, ids, labels, shape := readStep(t, refPath)
			B, T := shape[0], shape[1]
			names := make([]string, 0, len(t32.grads))
			for n := range t32.grads {
				names = append(names, n)
			}
			sort.Strings(names)
			s32 := shoggoStep(t, modelDir, tensor.F32, 1, ids, labels, B, T)
			g32, gs32 := flatGrads(t, t32, names), flatGrads(t, s32, names)
			n32 := norm2(g32)
			t.Logf("fp32: shoggo vs torch grads rel-L2 %.2g, loss %.2g", norm2(sub(gs32, g32))/n32, math.Abs(s32.loss-t32.loss))
			for _, p := range precs {
				t.Run(p.name, func(t *testing.T) {
					path := filepath.Join(dir, family+"_"+p.name+".safetensors")
					if _, err := os.Stat(path); err != nil {
						t.Skipf("%s missing (run reference/make_autocast_fixture.py)", path)
					}
					tp, _, _, _ := readStep(t, path)
					scale := manifest.LossScale[p.name]
					if scale == 0 {
						t.Fatalf("manifest.json has no loss_scale for %s", p.name)
					}
					sp := shoggoStep(t, modelDir, p.dt, scale, ids, labels, B, T)
					gp, gsp := flatGrads(t, tp, names), flatGrads(t, sp, names)
					a, b := sub(gsp, g32), sub(gp, g32)
					D := norm2(b) / n32
					eP := norm2(sub(gsp, gp)) / n32
					e32 := norm2(sub(gs32, gp)) / n32
					mag := norm2(a) / norm2(b)
					cos := 0.0
					if na := norm2(a); na > 0 {
						cos = dot(a, b) / (na * norm2(b))
					}
					dLoss := math.Abs(tp.loss - t32.loss)
					eLoss := math.Abs(sp.loss - tp.loss)
					dLogits := maxAbs(sub(tp.logits, t32.logits))
					eLogits := maxAbs(sub(sp.logits, tp.logits))
					t.Logf("D %.3g | e_P %.3g = %.2f·D, e_32 %.3g, e_P/e_32 %.2f, |a|/|b| %.2f, cos %.2f | loss %.6f torch %.6f (|Δ| %.2g, D_loss %.2g) | logits max-abs %.2g (D %.2g)",
						D, eP, eP/D, e32, eP/e32, mag, cos, sp.loss, tp.loss, eLoss, dLoss, eLogits, dLogits)
					if eP > 1.5*D+1e-4 {
						t.Errorf("gradients: rel-L2 distance to torch %s %.3g > 1.5·D + 1e-4 = %.3g", p.name, eP, 1.5*D+1e-4)
					}
					if eLoss > 3*dLoss+p.u {
						t.Errorf("loss %.6f, torch %s %.6f: |Δ| %.3g > 3·D_loss + u = %.3g", sp.loss, p.name, tp.loss, eLoss, 3*dLoss+p.u)
					}
					if eLogits > 2.5*dLogits+1e-4 {
						t.Errorf("logits: max-abs distance to torch %s %.3g > 2.5·D_logits + 1e-4 = %.3g", p.name, eLogits, 2.5*dLogits+1e-4)
					}
					worst, worstName := 0.0, ""
					for _, n := range names {
						ref, tor, got := t32.grads[n], tp.grads[n], sp.grads[n]
						lim := 4 * (maxAbs(sub(tor, ref)) + p.u*maxAbs(ref))
						d := maxAbs(sub(got, tor))
						if d/lim > worst {
							worst, worstName = d/lim, n
						}
						if d > lim {
							t.Errorf("grad %s: max-abs distance to torch %s %.3g > 4·(D_t + u·max|g|) = %.3g", n, p.name, d, lim)
						}
					}
					t.Logf("worst tensor %s at %.2f of its bound", worstName, worst)
					if D < 1e-4 {
						t.Logf("D %.2g too small to tell half precision from fp32", D)
						return
					}
					if eP > 0.99*e32 {
						t.Errorf("SetPrecision(%s) is not closer to torch autocast than fp32 is: e_P %.3g, e_32 %.3g (ratio %.3f > 0.99): half precision not applied?", p.name, eP, e32, eP/e32)
					}
					if mag < 0.25 || mag > 4 {
						t.Errorf("SetPrecision(%s) moves the gradients by %.3g·D from fp32 (want 0.25 to 4): half precision not applied, or wrongly?", p.name, mag)
					}
					if cos < 0.25 {
						t.Errorf("SetPrecision(%s): the gradients' half-precision error has cosine %.2f with torch's (want ≥ 0.25)", p.name, cos)
					}
				})
			}
		})
	}
}
