package align

import "math"

// KLController sets PPO's KL penalty coefficient.
type KLController interface {
	Value() float64
	// Update adapts the coefficient to the batch's mean per-sequence KL
	// after nSteps more samples.
	Update(current float64, nSteps int)
}

// FixedKL is a constant coefficient.
type FixedKL struct{ Coef float64 }

// Value returns the coefficient.
func (k *FixedKL) Value() float64 { return k.Coef }

// Update does nothing.
func (k *FixedKL) Update(float64, int) {}

// AdaptiveKL is the adaptive controller of Ziegler et al. (2019) as TRL's
// PPOTrainer had it: coef *= 1 + clip(KL/Target - 1, ±0.2)·nSteps/Horizon.
// TRL's defaults: initial 0.2, target 6, horizon 10000.
type AdaptiveKL struct {
	Coef, Target, Horizon float64
}

// Value returns the coefficient.
func (k *AdaptiveKL) Value() float64 { return k.Coef }

// Update adapts the coefficient.
func (k *AdaptiveKL) Update(current float64, nSteps int) {
	e := math.Max(-0.2, math.Min(0.2, current/k.Target-1))
	k.Coef *= 1 + e*float64(nSteps)/k.Horizon
}
