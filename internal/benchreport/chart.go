package benchreport

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"io"
	"math"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

// Chart is the latency-versus-rate chart of a Summary: for every target, its
// p50 (solid line, square markers) and p99 (dashed line, round markers)
// against the offered open-loop rate, the latency axis logarithmic. The
// marker of an overloaded point (under 97 % of the rate answered) is hollow.
type Chart struct {
	Img              *image.RGBA
	plot             image.Rectangle // the plotting area
	xMax             float64         // rate at the right edge (the left edge is 0)
	yLogMin, yLogMax float64         // log10(ms) at the bottom and top edges
	colors           map[string]color.RGBA
}

// Palette holds the series colours, assigned to targets in order.
var Palette = []color.RGBA{
	{0x55, 0x55, 0x55, 0xff}, // grey: the floor comes first
	{0xd6, 0x27, 0x28, 0xff}, // red
	{0x1f, 0x77, 0xb4, 0xff}, // blue
	{0x2c, 0xa0, 0x2c, 0xff}, // green
	{0xff, 0x7f, 0x0e, 0xff}, // orange
	{0x94, 0x67, 0xbd, 0xff}, // purple
}

var (
	white = color.RGBA{0xff, 0xff, 0xff, 0xff}
	black = color.RGBA{0x00, 0x00, 0x00, 0xff}
	grid  = color.RGBA{0xe0, 0xe0, 0xe0, 0xff}
)

// Draw renders the chart of s at width × height pixels (at least 400 × 300;
// smaller sizes are raised to that), with title as its heading. A target
// without open-loop points gets a legend entry and no line.
func Draw(s Summary, title string, width, height int) *Chart {
	width, height = max(width, 400), max(height, 300)
	c := &Chart{
		Img:    image.NewRGBA(image.Rect(0, 0, width, height)),
		plot:   image.Rect(64, 48, width-230, height-48),
		colors: map[string]color.RGBA{},
	}
	draw.Draw(c.Img, c.Img.Bounds(), image.NewUniform(white), image.Point{}, draw.Src)

	lo, hi := math.Inf(1), math.Inf(-1)
	for i, t := range s.Targets {
		c.colors[t.Label] = Palette[i%len(Palette)]
		for _, p := range t.Open {
			for _, v := range []float64{p.P50, p.P99} {
				if v > 0 {
					lo, hi = min(lo, v), max(hi, v)
				}
			}
		}
	}
	if math.IsInf(lo, 1) {
		lo, hi = 0.1, 10
	}
	c.yLogMin, c.yLogMax = math.Floor(math.Log10(lo)), math.Ceil(math.Log10(hi))
	if c.yLogMax <= c.yLogMin {
		c.yLogMax = c.yLogMin + 1
	}
	c.xMax = 1000
	for _, x := range s.Rates {
		c.xMax = max(c.xMax, x*1.1)
	}

	// grid and axes
	for d := c.yLogMin; d <= c.yLogMax; d++ {
		for m := 1; m < 10; m++ {
			v := math.Pow(10, d) * float64(m)
			if math.Log10(v) > c.yLogMax+1e-9 {
				break
			}
			y := c.Pos(0, v).Y
			col := grid
			if m == 1 {
				col = color.RGBA{0xbb, 0xbb, 0xbb, 0xff}
				c.text(c.plot.Min.X-8-7*len(axisMs(v)), y+4, axisMs(v), black)
			}
			c.hline(c.plot.Min.X, c.plot.Max.X, y, col)
		}
	}
	for _, x := range s.Rates {
		p := c.Pos(x, math.Pow(10, c.yLogMin))
		c.vline(p.X, c.plot.Min.Y, c.plot.Max.Y, grid)
		l := thousands(x)
		c.text(p.X-7*len(l)/2, c.plot.Max.Y+16, l, black)
	}
	c.hline(c.plot.Min.X, c.plot.Max.X, c.plot.Max.Y, black)
	c.vline(c.plot.Min.X, c.plot.Min.Y, c.plot.Max.Y, black)
	c.text(c.plot.Min.X, 16, title, black)
	c.text(c.plot.Min.X+c.plot.Dx()/2-70, c.plot.Max.Y+36, "offered rate, req/s", black)
	c.text(4, c.plot.Min.Y-10, "latency, ms (log)", black)

	// series
	for _, t := range s.Targets {
		col := c.colors[t.Label]
		for pass, get := range []func(Point) float64{
			func(p Point) float64 { return p.P50 },
			func(p Point) float64 { return p.P99 },
		} {
			var prev image.Point
			for i, p := range t.Open {
				v := get(p)
				if v <= 0 {
					continue
				}
				q := c.Pos(p.Rate, v)
				if i > 0 {
					c.line(prev, q, col, pass == 1)
				}
				prev = q
			}
			for _, p := range t.Open {
				if v := get(p); v > 0 {
					q := c.Pos(p.Rate, v)
					c.marker(q, col, pass == 1)
					if p.Overloaded() {
						c.hollow(q)
					}
				}
			}
		}
	}

	// legend
	lx, ly := c.plot.Max.X+16, c.plot.Min.Y+8
	for _, t := range s.Targets {
		col := c.colors[t.Label]
		c.text(lx, ly+4, Name(t.Label), black)
		ly += 16
		c.line(image.Pt(lx+4, ly), image.Pt(lx+34, ly), col, false)
		c.marker(image.Pt(lx+19, ly), col, false)
		c.text(lx+42, ly+4, "p50", black)
		c.line(image.Pt(lx+84, ly), image.Pt(lx+114, ly), col, true)
		c.marker(image.Pt(lx+99, ly), col, true)
		c.text(lx+122, ly+4, "p99", black)
		ly += 26
	}
	c.marker(image.Pt(lx+4, ly), Palette[0], false)
	c.hollow(image.Pt(lx+4, ly))
	c.text(lx+16, ly+4, "overloaded: under 97% of", black)
	c.text(lx+16, ly+18, "the rate answered; the", black)
	c.text(lx+16, ly+32, "latency is queueing", black)
	return c
}

// Color returns the series colour of label and whether label is drawn.
func (c *Chart) Color(label string) (color.RGBA, bool) {
	col, ok := c.colors[label]
	return col, ok
}

// Pos returns the pixel where the chart draws latency ms at rate req/s.
func (c *Chart) Pos(rate, ms float64) image.Point {
	fx := rate / c.xMax
	fy := (math.Log10(ms) - c.yLogMin) / (c.yLogMax - c.yLogMin)
	return image.Pt(
		c.plot.Min.X+int(math.Round(fx*float64(c.plot.Dx()))),
		c.plot.Max.Y-int(math.Round(fy*float64(c.plot.Dy()))),
	)
}

// WritePNG encodes the chart as PNG.
func (c *Chart) WritePNG(w io.Writer) error {
	if err := png.Encode(w, c.Img); err != nil {
		return fmt.Errorf("encode chart: %w", err)
	}
	return nil
}

func axisMs(v float64) string {
	if v >= 1 {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%g", v)
}

func (c *Chart) text(x, y int, s string, col color.Color) {
	d := font.Drawer{Dst: c.Img, Src: image.NewUniform(col), Face: basicfont.Face7x13, Dot: fixed.P(x, y)}
	d.DrawString(s)
}

func (c *Chart) hline(x0, x1, y int, col color.RGBA) {
	for x := x0; x <= x1; x++ {
		c.Img.SetRGBA(x, y, col)
	}
}

func (c *Chart) vline(x, y0, y1 int, col color.RGBA) {
	for y := y0; y <= y1; y++ {
		c.Img.SetRGBA(x, y, col)
	}
}

// hollow clears the middle of a marker: the point is overloaded.
func (c *Chart) hollow(p image.Point) {
	for y := -2; y <= 2; y++ {
		for x := -2; x <= 2; x++ {
			c.Img.SetRGBA(p.X+x, p.Y+y, white)
		}
	}
}

// line draws a 2-pixel-wide segment from a to b; dashed leaves gaps of 5
// pixels after every 7.
func (c *Chart) line(a, b image.Point, col color.RGBA, dashed bool) {
	dx, dy := float64(b.X-a.X), float64(b.Y-a.Y)
	n := int(math.Max(math.Abs(dx), math.Abs(dy)))
	if n == 0 {
		n = 1
	}
	for i := 0; i <= n; i++ {
		if dashed && i%12 >= 7 {
			continue
		}
		x := a.X + int(math.Round(dx*float64(i)/float64(n)))
		y := a.Y + int(math.Round(dy*float64(i)/float64(n)))
		c.Img.SetRGBA(x, y, col)
		c.Img.SetRGBA(x+1, y, col)
		c.Img.SetRGBA(x, y+1, col)
	}
}

// marker draws a filled 9 × 9 square, or a filled disc of radius 4 (round).
func (c *Chart) marker(p image.Point, col color.RGBA, round bool) {
	for y := -4; y <= 4; y++ {
		for x := -4; x <= 4; x++ {
			if round && x*x+y*y > 17 {
				continue
			}
			c.Img.SetRGBA(p.X+x, p.Y+y, col)
		}
	}
}
