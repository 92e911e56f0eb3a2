package train

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"

	"github.com/shoggo/shoggo/data"
	"github.com/shoggo/shoggo/internal/plot"
	"github.com/shoggo/shoggo/model"
)

// PlotMetrics draws train and validation loss from a metrics.jsonl file.
func PlotMetrics(metricsPath, pngPath string) error {
	f, err := os.Open(metricsPath)
	if err != nil {
		return err
	}
	defer f.Close()
	dec := json.NewDecoder(f)
	var tr, va plot.Series
	tr.Name, va.Name = "train loss", "validation loss"
	for {
		var m Metric
		if err := dec.Decode(&m); err == io.EOF {
			break
		} else if err != nil {
			return fmt.Errorf("%s: %w", metricsPath, err)
		}
		if m.Loss != 0 {
			tr.X, tr.Y = append(tr.X, float64(m.Step)), append(tr.Y, m.Loss)
		}
		if m.ValLoss != 0 && !math.IsNaN(m.ValLoss) {
			va.X, va.Y = append(va.X, float64(m.Step)), append(va.Y, m.ValLoss)
		}
	}
	return plot.LinePNG(pngPath, "shoggo loss", "step", "loss (nats/token)", []plot.Series{tr, va})
}

// LoaderSource serves pre-training micro-batches from a data.Loader: each
// (B, T+1)-token window becomes IDs = window[:T] and Targets = window[1:].
// The batches are allocated once and refilled in place.
type LoaderSource struct {
	Loader *data.Loader
	window []int32
}

// Fill refills each micro-batch with the loader's next windows.
func (s *LoaderSource) Fill(micro []*model.Batch) error {
	B, T := s.Loader.BatchSize(), s.Loader.SeqLen()
	if s.window == nil {
		s.window = make([]int32, B*(T+1))
	}
	for i, b := range micro {
		if b == nil || b.B != B || b.T != T {
			b = &model.Batch{B: B, T: T, IDs: make([]int32, B*T), Targets: make([]int32, B*T)}
			micro[i] = b
		}
		s.Loader.Next(s.window)
		FillWindows(b, s.window)
	}
	return nil
}

// MarshalState returns the loader's position as JSON.
func (s *LoaderSource) MarshalState() ([]byte, error) { return json.Marshal(s.Loader.Position()) }

// RestoreState moves the loader to a position MarshalState returned.
func (s *LoaderSource) RestoreState(b []byte) error {
	var ls data.LoaderState
	if err := json.Unmarshal(b, &ls); err != nil {
		return fmt.Errorf("loader state: %w", err)
	}
	return s.Loader.Restore(ls)
}

// FillWindows lays out b.B windows of b.T+1 tokens as inputs and shifted
// targets.
func FillWindows(b *model.Batch, w []int32) {
	T := b.T
	for r := 0; r < b.B; r++ {
		copy(b.IDs[r*T:(r+1)*T], w[r*(T+1):r*(T+1)+T])
		copy(b.Targets[r*T:(r+1)*T], w[r*(T+1)+1:(r+1)*(T+1)])
	}
}

// ValBatches returns up to n of the loader's validation batches.
func ValBatches(l *data.Loader, n int) []*model.Batch {
	B, T := l.BatchSize(), l.SeqLen()
	w := make([]int32, B*(T+1))
	var out []*model.Batch
	for i := 0; i < min(n, l.ValBatchCount()); i++ {
		b := &model.Batch{B: B, T: T, IDs: make([]int32, B*T), Targets: make([]int32, B*T)}
		l.ValBatch(i, w)
		FillWindows(b, w)
		out = append(out, b)
	}
	return out
}
