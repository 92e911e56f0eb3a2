// Package plot draws simple line charts (loss curves) as PNG files.
package plot

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

// Series is one named line of (x, y) points.
type Series struct {
	Name  string
	X, Y  []float64
	Color color.RGBA
}

// Colors for successive series.
var Colors = []color.RGBA{{31, 119, 180, 255}, {255, 127, 14, 255}, {44, 160, 44, 255}, {214, 39, 40, 255}}

// LinePNG renders the series on shared axes and writes a PNG to path.
func LinePNG(path, title, xlabel, ylabel string, series []Series) error {
	const W, H = 900, 560
	const left, right, top, bottom = 80, 30, 40, 60
	img := image.NewRGBA(image.Rect(0, 0, W, H))
	for i := range img.Pix {
		img.Pix[i] = 255
	}
	xmin, xmax, ymin, ymax := math.Inf(1), math.Inf(-1), math.Inf(1), math.Inf(-1)
	for _, s := range series {
		for i := range s.X {
			if math.IsNaN(s.Y[i]) || math.IsInf(s.Y[i], 0) {
				continue
			}
			xmin, xmax = math.Min(xmin, s.X[i]), math.Max(xmax, s.X[i])
			ymin, ymax = math.Min(ymin, s.Y[i]), math.Max(ymax, s.Y[i])
		}
	}
	if math.IsInf(xmin, 0) {
		xmin, xmax, ymin, ymax = 0, 1, 0, 1
	}
	if xmax == xmin {
		xmax = xmin + 1
	}
	if ymax == ymin {
		ymax = ymin + 1
	}
	pad := (ymax - ymin) * 0.05
	ymin, ymax = ymin-pad, ymax+pad
	px := func(x float64) int { return left + int((x-xmin)/(xmax-xmin)*float64(W-left-right)) }
	py := func(y float64) int { return H - bottom - int((y-ymin)/(ymax-ymin)*float64(H-top-bottom)) }
	grey := color.RGBA{200, 200, 200, 255}
	black := color.RGBA{0, 0, 0, 255}
	for i := 0; i <= 5; i++ {
		y := ymin + (ymax-ymin)*float64(i)/5
		line(img, left, py(y), W-right, py(y), grey)
		text(img, 5, py(y)+4, fmt.Sprintf("%.3g", y), black)
		x := xmin + (xmax-xmin)*float64(i)/5
		line(img, px(x), top, px(x), H-bottom, grey)
		text(img, px(x)-15, H-bottom+18, fmt.Sprintf("%.4g", x), black)
	}
	line(img, left, H-bottom, W-right, H-bottom, black)
	line(img, left, top, left, H-bottom, black)
	text(img, left, 25, title, black)
	text(img, W/2-len(xlabel)*3, H-15, xlabel, black)
	text(img, 5, top-8, ylabel, black)
	for si, s := range series {
		c := s.Color
		if c.A == 0 {
			c = Colors[si%len(Colors)]
		}
		for i := 1; i < len(s.X); i++ {
			line(img, px(s.X[i-1]), py(s.Y[i-1]), px(s.X[i]), py(s.Y[i]), c)
		}
		if len(s.X) == 1 {
			line(img, px(s.X[0])-2, py(s.Y[0]), px(s.X[0])+2, py(s.Y[0]), c)
		}
		lx := W - right - 200
		ly := top + 20 + 18*si
		line(img, lx, ly-4, lx+25, ly-4, c)
		line(img, lx, ly-3, lx+25, ly-3, c)
		text(img, lx+32, ly, s.Name, black)
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return err
	}
	return os.WriteFile(path, buf.Bytes(), 0o644)
}

func line(img *image.RGBA, x0, y0, x1, y1 int, c color.RGBA) {
	dx, dy := abs(x1-x0), -abs(y1-y0)
	sx, sy := 1, 1
	if x0 > x1 {
		sx = -1
	}
	if y0 > y1 {
		sy = -1
	}
	err := dx + dy
	for {
		img.SetRGBA(x0, y0, c)
		if x0 == x1 && y0 == y1 {
			return
		}
		e2 := 2 * err
		if e2 >= dy {
			err += dy
			x0 += sx
		}
		if e2 <= dx {
			err += dx
			y0 += sy
		}
	}
}

func abs(a int) int {
	if a < 0 {
		return -a
	}
	return a
}

func text(img *image.RGBA, x, y int, s string, c color.RGBA) {
	d := &font.Drawer{Dst: img, Src: image.NewUniform(c), Face: basicfont.Face7x13, Dot: fixed.P(x, y)}
	d.DrawString(s)
}
