package optim

import (
	"fmt"
	"math"
	"strings"
)

// Schedule maps a step to a learning rate. It is a pure function, so a
// resumed run needs only the step count.
//
// Steps are 0-based: LR(s) is the rate of the update that will make the
// optimizer's StepCount s+1, i.e. call opt.Step(sched.LR(opt.StepCount())).
// With warmup W > 0 the first W steps ramp linearly to the peak with factor
// (s+1)/W, so step 0 already trains (Peak/W) and step W-1 uses the full
// peak, as in llm.c (Hugging Face's get_*_schedule_with_warmup instead give
// 0 at step 0, wasting one step). Decay then runs from Peak at step W to
// Min at step Total; every step >= Total uses Min. A run of Total steps
// (s = 0..Total-1) thus never quite reaches Min. Negative steps count as 0.
type Schedule interface {
	LR(step int) float64
}

// Constant is a fixed learning rate.
type Constant float64

// LR returns the constant rate.
func (c Constant) LR(int) float64 { return float64(c) }

// WarmupCosine warms up linearly to Peak over Warmup steps, then follows a
// half cosine from Peak (step Warmup) to Min (step Total), and stays at Min.
type WarmupCosine struct {
	Peak, Min     float64
	Warmup, Total int
}

// LR implements Schedule.
func (s WarmupCosine) LR(step int) float64 {
	return warmupDecay(s.Peak, s.Min, s.Warmup, s.Total, step, func(p float64) float64 {
		return 0.5 * (1 + math.Cos(math.Pi*p))
	})
}

// WarmupLinear warms up linearly to Peak over Warmup steps, then decays
// linearly from Peak (step Warmup) to Min (step Total), and stays at Min.
type WarmupLinear struct {
	Peak, Min     float64
	Warmup, Total int
}

// LR implements Schedule.
func (s WarmupLinear) LR(step int) float64 {
	return warmupDecay(s.Peak, s.Min, s.Warmup, s.Total, step, func(p float64) float64 {
		return 1 - p
	})
}

// warmupDecay is the shared shape. coef maps decay progress in [0, 1) to a
// weight that is 1 at 0 and falls to 0; blending peak*c + min*(1-c) returns
// exactly Peak at the start of the decay and exactly Min at its end.
func warmupDecay(peak, lo float64, warmup, total, step int, coef func(float64) float64) float64 {
	step = max(step, 0)
	if step < warmup {
		return peak * (float64(step+1) / float64(warmup))
	}
	if step >= total {
		return lo
	}
	c := coef(float64(step-warmup) / float64(total-warmup))
	return peak*c + lo*(1-c)
}

// ParseSchedule builds a schedule from config values. kind is "constant",
// "cosine" or "linear" (case-insensitive). For "constant", min and total are
// ignored and warmup > 0 gives a linear warmup to peak followed by peak
// forever. For "cosine" and "linear", 0 <= min <= peak, 0 <= warmup <= total
// and total >= 1. Errors name the offending value.
func ParseSchedule(kind string, peak, min float64, warmup, total int) (Schedule, error) {
	k := strings.ToLower(strings.TrimSpace(kind))
	if !(peak >= 0) || math.IsInf(peak, 0) {
		return nil, fmt.Errorf("optim: lr schedule %q: peak learning rate %v, want a finite value >= 0", kind, peak)
	}
	if warmup < 0 {
		return nil, fmt.Errorf("optim: lr schedule %q: warmup steps %d, want >= 0", kind, warmup)
	}
	switch k {
	case "constant":
		if warmup == 0 {
			return Constant(peak), nil
		}
		return WarmupLinear{Peak: peak, Min: peak, Warmup: warmup, Total: warmup}, nil
	case "cosine", "linear":
		if !(min >= 0 && min <= peak) {
			return nil, fmt.Errorf("optim: lr schedule %q: min learning rate %v, want 0 <= min <= peak (%v)", kind, min, peak)
		}
		if total < 1 {
			return nil, fmt.Errorf("optim: lr schedule %q: total steps %d, want >= 1", kind, total)
		}
		if warmup > total {
			return nil, fmt.Errorf("optim: lr schedule %q: warmup steps %d exceed total steps %d", kind, warmup, total)
		}
		if k == "cosine" {
			return WarmupCosine{Peak: peak, Min: min, Warmup: warmup, Total: total}, nil
		}
		return WarmupLinear{Peak: peak, Min: min, Warmup: warmup, Total: total}, nil
	}
	return nil, fmt.Errorf("optim: unknown lr schedule %q, want constant, cosine or linear", kind)
}
