package align

import (
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/shoggo/shoggo/safetensors"
)

func floats64(t *testing.T, f *safetensors.File, name string) []float64 {
	t.Helper()
	x, err := f.Tensor(name)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]float64, x.Shape.Numel())
	for i := range out {
		out[i] = x.At(i)
	}
	return out
}

// TestDPOParity compares the DPO losses, their gradients with respect to
// the policy log-probs and TRL's reward metrics with TRL 1.16's
// DPOTrainer._compute_loss on the fixed log-probs of
// reference/make_dpo_fixture.py (float64 on both sides: tolerance 1e-12
// relative to the value's magnitude; 1e-7 for the accuracy, which TRL
// averages in float32).
func TestDPOParity(t *testing.T) {
	f, err := safetensors.Open("../testdata/align/dpo_parity.safetensors")
	if err != nil {
		t.Fatalf("%v (run reference/make_dpo_fixture.py)", err)
	}
	defer f.Close()
	pc, pr := floats64(t, f, "policy_chosen"), floats64(t, f, "policy_rejected")
	rc, rr := floats64(t, f, "ref_chosen"), floats64(t, f, "ref_rejected")
	nc, nr := floats64(t, f, "n_chosen"), floats64(t, f, "n_rejected")
	N := len(pc)
	meta := f.Metadata()
	cases, _ := strconv.Atoi(meta["cases"])
	if cases == 0 {
		t.Fatal("fixture has no cases")
	}
	close := func(a, b float64) bool { return math.Abs(a-b) <= 1e-12*math.Max(1, math.Abs(b)) }
	for k := range cases {
		key := "case" + strconv.Itoa(k)
		parts := strings.Split(meta[key], ",")
		beta, _ := strconv.ParseFloat(parts[1], 64)
		eps, _ := strconv.ParseFloat(parts[2], 64)
		l := DPOLoss{Type: parts[0], Beta: beta, LabelSmoothing: eps}
		if err := l.Validate(); err != nil {
			t.Fatal(err)
		}
		gc, gr := floats64(t, f, key+".grad_chosen"), floats64(t, f, key+".grad_rejected")
		var s PairStats
		var loss float64
		for i := range N {
			p := PairTerms{pc[i], pr[i], rc[i], rr[i], int(nc[i]), int(nr[i])}
			v, dc, dr := l.Pair(p)
			s.Add(l, p, v)
			loss += v / float64(N)
			if !close(dc/float64(N), gc[i]) || !close(dr/float64(N), gr[i]) {
				t.Errorf("%s %+v pair %d: gradient (%.15g, %.15g), TRL (%.15g, %.15g)", key, l, i, dc/float64(N), dr/float64(N), gc[i], gr[i])
			}
		}
		if want := floats64(t, f, key+".loss")[0]; !close(loss, want) {
			t.Errorf("%s %+v: loss %.15g, TRL %.15g", key, l, loss, want)
		}
		met, want := s.Metrics(""), floats64(t, f, key+".metrics")
		for j, name := range []string{"rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins", "loss"} {
			tol := 1e-12
			if name == "rewards/accuracies" {
				tol = 1e-7 // TRL takes this mean in float32
			}
			if math.Abs(met[name]-want[j]) > tol*math.Max(1, math.Abs(want[j])) {
				t.Errorf("%s %+v: %s %.15g, TRL %.15g", key, l, name, met[name], want[j])
			}
		}
	}
}
