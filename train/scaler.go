package train

import (
	"encoding/json"
	"fmt"
	"math"
)

// GradScaler is fp16 dynamic loss scaling with the semantics of
// torch.amp.GradScaler: the loss (and so every gradient) is multiplied by
// Scale before backward; the gradients are unscaled (×1/Scale) before
// clipping; a step whose gradients hold an inf or NaN is skipped and the
// scale multiplied by BackoffFactor; after GrowthInterval consecutive clean
// steps the scale is multiplied by GrowthFactor.
type GradScaler struct {
	Scale          float64 `json:"scale"`
	GrowthFactor   float64 `json:"growth_factor"`
	BackoffFactor  float64 `json:"backoff_factor"`
	GrowthInterval int     `json:"growth_interval"`
	// GrowthTracker counts the clean steps since the last change of scale.
	GrowthTracker int `json:"growth_tracker"`
	// Skipped counts the steps skipped for non-finite gradients.
	Skipped int `json:"skipped"`
}

// NewGradScaler returns a scaler with torch's defaults: initial scale 2^16,
// growth ×2 every 2000 clean steps, backoff ×0.5.
func NewGradScaler() *GradScaler {
	return &GradScaler{Scale: 65536, GrowthFactor: 2, BackoffFactor: 0.5, GrowthInterval: 2000}
}

// Update records one step's outcome (foundInf: some gradient was inf or
// NaN, the step was skipped) and adjusts the scale as torch's
// GradScaler.update does. torch keeps the scale in a float32 tensor: each
// new scale is rounded to float32, and growth that would overflow float32
// (past 2^127 with the default factor) leaves the scale as it is (the
// growth tracker still restarts).
func (s *GradScaler) Update(foundInf bool) {
	if foundInf {
		s.Scale = float64(float32(s.Scale * s.BackoffFactor))
		s.GrowthTracker = 0
		s.Skipped++
		return
	}
	s.GrowthTracker++
	if s.GrowthTracker == s.GrowthInterval {
		if g := s.Scale * s.GrowthFactor; g < f32Overflow {
			s.Scale = float64(float32(g))
		}
		s.GrowthTracker = 0
	}
}

// f32Overflow is the smallest float64 that rounds to +Inf in float32:
// MaxFloat32 plus half of its ulp (2^104).
const f32Overflow = math.MaxFloat32 + 0x1p103

// MarshalBinary implements Stateful (checkpoints).
func (s *GradScaler) MarshalBinary() ([]byte, error) { return json.Marshal(s) }

// UnmarshalBinary implements Stateful.
func (s *GradScaler) UnmarshalBinary(b []byte) error {
	var t GradScaler
	if err := json.Unmarshal(b, &t); err != nil {
		return fmt.Errorf("grad scaler state: %w", err)
	}
	if !(t.Scale > 0) || t.GrowthInterval <= 0 {
		return fmt.Errorf("grad scaler state: scale %v, growth interval %d", t.Scale, t.GrowthInterval)
	}
	*s = t
	return nil
}
