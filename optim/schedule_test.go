package optim

import (
	"math"
	"strings"
	"testing"
)

func TestSchedules(t *testing.T) {
	const peak, lo = 1e-3, 1e-4
	cos := WarmupCosine{Peak: peak, Min: lo, Warmup: 10, Total: 110}
	lin := WarmupLinear{Peak: peak, Min: lo, Warmup: 10, Total: 110}
	cases := []struct {
		name  string
		s     Schedule
		step  int
		want  float64
		exact bool
	}{
		{"constant 0", Constant(3e-4), 0, 3e-4, true},
		{"constant 1e6", Constant(3e-4), 1_000_000, 3e-4, true},

		{"cosine negative", cos, -5, peak / 10, false},
		{"cosine 0", cos, 0, peak / 10, false},
		{"cosine 4", cos, 4, peak / 2, false},
		{"cosine warmup-1", cos, 9, peak, true},
		{"cosine warmup", cos, 10, peak, true},
		{"cosine middle", cos, 60, (peak + lo) / 2, false},
		{"cosine total-1", cos, 109, lo + (peak-lo)*0.5*(1+math.Cos(math.Pi*0.99)), false},
		{"cosine total", cos, 110, lo, true},
		{"cosine beyond", cos, 5000, lo, true},

		{"linear 0", lin, 0, peak / 10, false},
		{"linear warmup-1", lin, 9, peak, true},
		{"linear warmup", lin, 10, peak, true},
		{"linear quarter", lin, 35, 0.75*peak + 0.25*lo, false},
		{"linear middle", lin, 60, (peak + lo) / 2, false},
		{"linear total-1", lin, 109, lo + (peak-lo)*0.01, false},
		{"linear total", lin, 110, lo, true},
		{"linear beyond", lin, 111, lo, true},

		{"no warmup 0", WarmupCosine{Peak: peak, Min: 0, Warmup: 0, Total: 100}, 0, peak, true},
		{"no warmup total", WarmupCosine{Peak: peak, Min: 0, Warmup: 0, Total: 100}, 100, 0, true},
		{"warmup == total", WarmupLinear{Peak: peak, Min: lo, Warmup: 5, Total: 5}, 4, peak, true},
		{"warmup == total, after", WarmupLinear{Peak: peak, Min: lo, Warmup: 5, Total: 5}, 5, lo, true},
	}
	for _, c := range cases {
		got := c.s.LR(c.step)
		if c.exact && got != c.want || !c.exact && math.Abs(got-c.want) > 1e-15 {
			t.Errorf("%s: LR(%d) = %.17g, want %.17g", c.name, c.step, got, c.want)
		}
	}
	// Monotone: up during warmup, down during decay.
	for _, s := range []Schedule{cos, lin} {
		for i := 1; i < 200; i++ {
			a, b := s.LR(i-1), s.LR(i)
			if i <= 10 && b < a || i > 10 && b > a {
				t.Errorf("%T not monotone at step %d: %v then %v", s, i, a, b)
			}
		}
	}
}

func TestParseSchedule(t *testing.T) {
	s, err := ParseSchedule("Cosine", 1e-3, 1e-4, 10, 100)
	if err != nil || s != (WarmupCosine{Peak: 1e-3, Min: 1e-4, Warmup: 10, Total: 100}) {
		t.Errorf("cosine: %v, %v", s, err)
	}
	s, err = ParseSchedule("linear", 1e-3, 0, 0, 100)
	if err != nil || s != (WarmupLinear{Peak: 1e-3, Min: 0, Warmup: 0, Total: 100}) {
		t.Errorf("linear: %v, %v", s, err)
	}
	s, err = ParseSchedule("constant", 3e-4, 99, 0, 0)
	if err != nil || s != Constant(3e-4) {
		t.Errorf("constant: %v, %v", s, err)
	}
	s, err = ParseSchedule("constant", 3e-4, 0, 4, 0)
	if err != nil {
		t.Fatal(err)
	}
	for step, want := range []float64{0.75e-4, 1.5e-4, 2.25e-4, 3e-4, 3e-4, 3e-4} {
		if got := s.LR(step); math.Abs(got-want) > 1e-18 {
			t.Errorf("constant with warmup: LR(%d) = %v, want %v", step, got, want)
		}
	}
	if got := s.LR(1 << 30); got != 3e-4 {
		t.Errorf("constant with warmup: LR(2^30) = %v", got)
	}

	bad := []struct {
		kind          string
		peak, min     float64
		warmup, total int
		want          string
	}{
		{"step", 1e-3, 0, 0, 10, "unknown lr schedule"},
		{"cosine", -1, 0, 0, 10, "peak"},
		{"cosine", math.NaN(), 0, 0, 10, "peak"},
		{"linear", math.Inf(1), 0, 0, 10, "peak"},
		{"cosine", 1e-3, 2e-3, 0, 10, "min learning rate"},
		{"cosine", 1e-3, -1e-5, 0, 10, "min learning rate"},
		{"linear", 1e-3, 0, -1, 10, "warmup steps -1"},
		{"constant", 1e-3, 0, -1, 10, "warmup steps -1"},
		{"cosine", 1e-3, 0, 0, 0, "total steps 0"},
		{"linear", 1e-3, 0, 20, 10, "warmup steps 20 exceed total steps 10"},
	}
	for _, b := range bad {
		_, err := ParseSchedule(b.kind, b.peak, b.min, b.warmup, b.total)
		if err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("ParseSchedule(%q, %v, %v, %d, %d): err = %v, want %q", b.kind, b.peak, b.min, b.warmup, b.total, err, b.want)
		}
	}
}
