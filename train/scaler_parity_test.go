package train

import (
	"encoding/json"
	"math"
	"os"
	"strconv"
	"testing"
)

// gradScalerFixture is testdata/autocast/gradscaler.json, written by
// reference/make_autocast_fixture.py from torch.amp.GradScaler("cpu").
type gradScalerFixture struct {
	Torch     string `json:"torch"`
	Sequences []struct {
		Name           string  `json:"name"`
		About          string  `json:"about"`
		InitScale      float64 `json:"init_scale"`
		GrowthFactor   float64 `json:"growth_factor"`
		BackoffFactor  float64 `json:"backoff_factor"`
		GrowthInterval int     `json:"growth_interval"`
		Steps          []struct {
			Step          int      `json:"step"`
			Grad          []string `json:"grad"` // "inf", "-inf", "nan" or a float
			ScaleBefore   float64  `json:"scale_before"`
			FoundInf      bool     `json:"found_inf"`
			Skipped       bool     `json:"skipped"`
			ScaleAfter    float64  `json:"scale_after"`
			GrowthTracker int      `json:"growth_tracker_after"`
		} `json:"steps"`
	} `json:"sequences"`
}

// TestGradScalerTorchParity replays torch's GradScaler sequences through
// GradScaler and requires the same decisions and the same scale values.
//
// Each step's gradient g (unscaled) is multiplied by the scaler's current
// scale in float32, as backward of the scaled loss does (torch:
// w.grad = g * scale, a float32 tensor); the step has found an inf when any
// product is inf or NaN (g itself non-finite, or a finite g that overflows
// float32 once scaled). That decision must equal torch's found_inf and its
// skipped optimizer step; then Update(foundInf) must leave the scale, the
// growth tracker and the skip count where torch's update() leaves them.
//
// torch keeps the scale in a float32 tensor, so the comparison is of the
// float32 values: exact for every sequence (the scale is a power of two in
// "default" and "saturation"; "custom_factors", growth 3 and backoff 0.3,
// checks that each update rounds to float32 as torch does). "saturation"
// checks that growth stops at 2^127, where scale·growth is not finite in
// float32: torch then keeps the scale (and resets the tracker).
func TestGradScalerTorchParity(t *testing.T) {
	data, err := os.ReadFile("../testdata/autocast/gradscaler.json")
	if os.IsNotExist(err) {
		t.Skip("testdata/autocast/gradscaler.json missing (run reference/make_autocast_fixture.py)")
	}
	if err != nil {
		t.Fatal(err)
	}
	var fx gradScalerFixture
	if err := json.Unmarshal(data, &fx); err != nil {
		t.Fatal(err)
	}
	if len(fx.Sequences) == 0 {
		t.Fatal("no sequences in gradscaler.json")
	}
	for _, seq := range fx.Sequences {
		t.Run(seq.Name, func(t *testing.T) {
			s := NewGradScaler()
			s.Scale = seq.InitScale
			s.GrowthFactor = seq.GrowthFactor
			s.BackoffFactor = seq.BackoffFactor
			s.GrowthInterval = seq.GrowthInterval
			skipped := 0
			for _, st := range seq.Steps {
				if got := float32(s.Scale); float64(got) != st.ScaleBefore {
					t.Fatalf("step %d: scale before %v (float32 %v), torch %v", st.Step, s.Scale, got, st.ScaleBefore)
				}
				foundInf := false
				scale := float32(s.Scale)
				for _, gs := range st.Grad {
					g, err := strconv.ParseFloat(gs, 32)
					if err != nil {
						t.Fatalf("step %d: gradient %q: %v", st.Step, gs, err)
					}
					v := float32(g) * scale
					if math.IsInf(float64(v), 0) || math.IsNaN(float64(v)) {
						foundInf = true
					}
				}
				if foundInf != st.FoundInf || foundInf != st.Skipped {
					t.Fatalf("step %d (grad %v, scale %v): found inf %v, torch found inf %v and skipped %v",
						st.Step, st.Grad, s.Scale, foundInf, st.FoundInf, st.Skipped)
				}
				if foundInf {
					skipped++
				}
				s.Update(foundInf)
				if got := float32(s.Scale); float64(got) != st.ScaleAfter || s.Scale != st.ScaleAfter {
					t.Fatalf("step %d (found inf %v): scale after update %v, torch %v (torch keeps a float32 scale)",
						st.Step, foundInf, s.Scale, st.ScaleAfter)
				}
				if s.GrowthTracker != st.GrowthTracker {
					t.Fatalf("step %d: growth tracker %d, torch %d", st.Step, s.GrowthTracker, st.GrowthTracker)
				}
				if s.Skipped != skipped {
					t.Fatalf("step %d: Skipped %d, want %d", st.Step, s.Skipped, skipped)
				}
			}
			t.Logf("%d steps, %d skipped, final scale %g: as torch %s", len(seq.Steps), skipped, s.Scale, fx.Torch)
		})
	}
}
