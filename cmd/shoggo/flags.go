package main

import (
	"flag"
	"fmt"
	"math"
	"strconv"

	"github.com/shoggo/shoggo/recipe"
)

// bound is the allowed range of one numeric flag.
type bound struct {
	name           string
	lo, hi         float64
	loOpen, hiOpen bool
	note           string // what the edge values mean, for the message
}

// atLeast: [lo, +inf).
func atLeast(name string, lo float64, note ...string) bound {
	return bound{name: name, lo: lo, hi: math.Inf(1), hiOpen: true, note: join(note)}
}

// above: (lo, +inf).
func above(name string, lo float64, note ...string) bound {
	return bound{name: name, lo: lo, hi: math.Inf(1), loOpen: true, hiOpen: true, note: join(note)}
}

// within: [lo, hi] with each end open or closed.
func within(name string, lo, hi float64, loOpen, hiOpen bool, note ...string) bound {
	return bound{name, lo, hi, loOpen, hiOpen, join(note)}
}

func join(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

func (b bound) String() string {
	l, r := "[", "]"
	if b.loOpen {
		l = "("
	}
	if b.hiOpen {
		r = ")"
	}
	hi := strconv.FormatFloat(b.hi, 'g', -1, 64)
	if math.IsInf(b.hi, 1) {
		hi = "inf"
	}
	s := l + strconv.FormatFloat(b.lo, 'g', -1, 64) + ", " + hi + r
	if b.note != "" {
		s += "; " + b.note
	}
	return s
}

// checkBounds validates the flags' values (the defaults and recipe values
// too, not only what was typed): each must be a finite number in its
// range. The error names the flag, its value and the range.
func checkBounds(fs *flag.FlagSet, bounds ...bound) error {
	for _, b := range bounds {
		f := fs.Lookup(b.name)
		if f == nil {
			panic("checkBounds: no flag " + b.name)
		}
		s := f.Value.String()
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return fmt.Errorf("--%s %s: not a number", b.name, s)
		}
		ok := !math.IsNaN(v) && !math.IsInf(v, 0) &&
			(v > b.lo || (!b.loOpen && v == b.lo)) && (v < b.hi || (!b.hiOpen && v == b.hi))
		if !ok {
			return fmt.Errorf("--%s %s: must be in %s", b.name, s, b)
		}
	}
	return nil
}

// typed is the set of flags given on the command line (flag.Visit).
func typed(fs *flag.FlagSet) map[string]bool {
	m := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { m[f.Name] = true })
	return m
}

// trainBounds are the ranges of the flags every training command shares.
func trainBounds() []bound {
	return []bound{
		atLeast("steps", 1), atLeast("grad-accum", 1), atLeast("batch", 1),
		atLeast("lr", 0), atLeast("min-lr", 0, "0: decay to 0"), atLeast("warmup", 0, "0: no warmup"),
		atLeast("weight-decay", 0), within("adam-beta2", 0, 1, true, true), atLeast("clip", 0, "0: no clipping"),
		atLeast("eval-every", 0, "0: every steps/5"), atLeast("save-every", 0, "0: only when the run ends or stops"),
		atLeast("stop-after", 0, "0: no limit"), atLeast("threads", 0, "0: all cores"),
	}
}

// checkFinite refuses model or adapter directories holding NaN or
// infinite weights (--check-finite).
func checkFinite(dirs ...string) error {
	for _, d := range dirs {
		if err := recipe.CheckFiniteModel(d); err != nil {
			return err
		}
	}
	return nil
}
