package train

import (
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"time"
)

// Progress draws a one-line progress bar with loss, tokens/s and ETA. On a
// terminal it redraws in place; otherwise it prints a line every few seconds.
type Progress struct {
	w     io.Writer
	total int
	start time.Time
	last  time.Time
	tty   bool
	first int
}

// NewProgress starts a bar for total steps.
func NewProgress(w io.Writer, total int) *Progress {
	tty := false
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			tty = true
		}
	}
	return &Progress{w: w, total: total, start: time.Now(), tty: tty, first: -1}
}

// Update redraws the bar after step (1-based) with the latest numbers.
func (p *Progress) Update(step int, loss, valLoss, tokPerSec float64) {
	if p.first < 0 {
		p.first = step - 1
		p.start = time.Now()
	}
	now := time.Now()
	if !p.tty && now.Sub(p.last) < 5*time.Second && step != p.total {
		return
	}
	p.last = now
	frac := float64(step) / float64(p.total)
	const width = 24
	filled := int(frac * width)
	bar := strings.Repeat("█", filled) + strings.Repeat("░", width-filled)
	eta := "?"
	if done := step - p.first; done > 0 {
		rem := time.Duration(float64(now.Sub(p.start)) / float64(done) * float64(p.total-step))
		eta = rem.Round(time.Second).String()
	}
	val := ""
	if !math.IsNaN(valLoss) && valLoss != 0 {
		val = fmt.Sprintf(" val %.3f", valLoss)
	}
	line := fmt.Sprintf("%s %5d/%d loss %.3f%s %6.0f tok/s ETA %s", bar, step, p.total, loss, val, tokPerSec, eta)
	if p.tty {
		fmt.Fprintf(p.w, "\r\033[K%s", line)
	} else {
		fmt.Fprintln(p.w, line)
	}
}

// Message prints a line above the bar.
func (p *Progress) Message(s string) {
	if p.tty {
		fmt.Fprintf(p.w, "\r\033[K%s\n", s)
	} else {
		fmt.Fprintln(p.w, s)
	}
}

// Done ends the bar's line.
func (p *Progress) Done() {
	if p.tty {
		fmt.Fprintln(p.w)
	}
}
