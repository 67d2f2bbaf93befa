package benchreport

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"strings"
	"testing"
)

// line is a loadgen result line with the fields loadgen writes (and some it
// writes that this package ignores).
func line(label, mode string, x, rps, p50, p99, cpu float64, mism int) string {
	load := fmt.Sprintf(`"concurrency":%g`, x)
	if mode == "open" {
		load = fmt.Sprintf(`"rate":%g`, x)
	}
	return fmt.Sprintf(`{"label":%q,"target":"127.0.0.1:9191","mode":%q,%s,"duration_s":10,"mix":"/m/default.json","started":"2026-11-27T10:11:07Z","requests":1000,"allowed":900,"denied":100,"errors":0,"mismatches":%d,"mismatch_kinds":{"x":1},"rps":%g,"latency_ms":{"p50":%g,"p90":1,"p99":%g,"p99_9":9,"max":11,"mean":0.9},"server_cpu_us_per_req":%g,"loadgen_cpu_us_per_req":82,"nproc":2,"gomaxprocs":2,"go_version":"go1.26.8"}`,
		label, mode, load, mism, rps, p50, p99, cpu)
}

// twoRounds is a harness run of noop and sendguard, two rounds each; the
// medians are: noop c=64 10,000/s, 40 µs; sendguard 7,000/s, 60 µs;
// noop at 1,000/s 0.4 / 1.0 ms, sendguard 0.6 / 2.5 ms; at 5,000/s noop
// 0.5 / 2.0 ms and sendguard answered 3,000/s (overloaded).
var twoRounds = strings.Join([]string{
	line("noop", "closed", 8, 8000, 0.3, 1, 30, 5),
	line("noop", "closed", 64, 9000, 0.3, 1, 30, 5),
	line("noop", "open", 1000, 1000, 0.3, 0.8, 30, 5),
	line("noop", "open", 5000, 5000, 0.5, 2.0, 30, 5),
	line("sendguard", "closed", 64, 6000, 1, 3, 50, 0),
	line("sendguard", "open", 1000, 1000, 0.5, 2.0, 50, 0),
	line("sendguard", "open", 5000, 3000, 900, 2000, 50, 0),
	"",
	line("noop", "closed", 64, 11000, 0.3, 1, 50, 5),
	line("noop", "open", 1000, 1000, 0.5, 1.2, 30, 5),
	line("noop", "open", 5000, 5000, 0.5, 2.0, 30, 5),
	line("sendguard", "closed", 64, 8000, 1, 3, 70, 0),
	line("sendguard", "open", 1000, 1000, 0.7, 3.0, 50, 0),
	line("sendguard", "open", 5000, 3000, 1100, 2000, 50, 0),
}, "\n")

func summary(t *testing.T) Summary {
	t.Helper()
	rs, err := ReadJSONL(strings.NewReader(twoRounds))
	if err != nil {
		t.Fatalf("ReadJSONL: %v", err)
	}
	if len(rs) != 13 {
		t.Fatalf("ReadJSONL: %d results, want 13", len(rs))
	}
	return Summarize(rs)
}

func TestReadJSONLRejects(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"malformed", line("noop", "open", 1000, 1, 1, 1, 1, 0) + "\n{\"label\":", "result line 2"},
		{"not a result", `{"hello":"world"}`, "not a loadgen result"},
		{"unknown mode", `{"label":"x","mode":"sideways"}`, "not a loadgen result"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ReadJSONL(strings.NewReader(tc.in))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("ReadJSONL(%q) = %v, want an error containing %q", tc.in, err, tc.want)
			}
		})
	}
}

func TestSummarizeMedians(t *testing.T) {
	s := summary(t)
	if got, want := fmt.Sprint(s.Rates), "[1000 5000]"; got != want {
		t.Errorf("Rates = %s, want %s", got, want)
	}
	if len(s.Targets) != 2 || s.Targets[0].Label != "noop" || s.Targets[1].Label != "sendguard" {
		t.Fatalf("Targets = %+v, want noop then sendguard", s.Targets)
	}
	sg := s.Targets[1]
	for _, tc := range []struct {
		name      string
		got, want float64
	}{
		{"noop c=64", s.Targets[0].C64, 10000},
		{"noop cpu", s.Targets[0].CPUUs, 40},
		{"sendguard c=64", sg.C64, 7000},
		{"sendguard cpu", sg.CPUUs, 60},
		{"sendguard p50 at 1000", sg.Open[0].P50, 0.6},
		{"sendguard p99 at 1000", sg.Open[0].P99, 2.5},
		{"sendguard answered at 5000", sg.Open[1].Answered, 3000},
	} {
		if tc.got < tc.want-1e-9 || tc.got > tc.want+1e-9 {
			t.Errorf("%s = %g, want %g", tc.name, tc.got, tc.want)
		}
	}
	if sg.Open[0].Overloaded() || !sg.Open[1].Overloaded() {
		t.Errorf("Overloaded() = %v, %v, want false, true", sg.Open[0].Overloaded(), sg.Open[1].Overloaded())
	}
	if s.Targets[0].Mismatches != 35 || sg.Mismatches != 0 || sg.Rounds != 2 {
		t.Errorf("noop mismatches %d, sendguard %d, rounds %d; want 35, 0, 2", s.Targets[0].Mismatches, sg.Mismatches, sg.Rounds)
	}
}

func TestMarkdown(t *testing.T) {
	var b bytes.Buffer
	if err := Markdown(&b, summary(t), "noop"); err != nil {
		t.Fatal(err)
	}
	want := `| target | c=64 req/s | server CPU µs/req | p50 / p99 ms at 1,000/s | at 5,000/s | errors / mismatches |
|---|--:|--:|--:|--:|--:|
| no-op (floor) | 10,000 | 40 | 0.40 / 1.00 | 0.50 / 2.00 | 0 / 35 |
| sendguard, embedded (default) | 7,000 (0.70×) | 60 (1.50×) | 0.60 (1.50×) / 2.50 (2.50×) | overloaded (3,000/s answered) | 0 / 0 |
`
	if got := b.String(); got != want {
		t.Errorf("Markdown() =\n%s\nwant\n%s", got, want)
	}
}

func TestMarkdownWithoutFloor(t *testing.T) {
	var b bytes.Buffer
	if err := Markdown(&b, summary(t), "absent"); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "×") {
		t.Errorf("Markdown() without the floor shows ratios:\n%s", b.String())
	}
}

func TestChartPNG(t *testing.T) {
	s := summary(t)
	// a third target that has no open-loop run: legend only
	s.Targets = append(s.Targets, Target{Label: "closedonly", C64: 1})
	c := Draw(s, "test chart", 960, 560)
	var buf bytes.Buffer
	if err := c.WritePNG(&buf); err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(&buf)
	if err != nil {
		t.Fatalf("png.Decode: %v", err)
	}
	if got := img.Bounds(); got != image.Rect(0, 0, 960, 560) {
		t.Fatalf("chart bounds = %v, want 960×560", got)
	}
	same := func(a color.Color, b color.RGBA) bool {
		r, g, bl, _ := a.RGBA()
		br, bg, bb, _ := b.RGBA()
		return r == br && g == bg && bl == bb
	}
	colors := map[color.RGBA]string{}
	for _, tgt := range s.Targets {
		col, ok := c.Color(tgt.Label)
		if !ok {
			t.Fatalf("Color(%q): not drawn", tgt.Label)
		}
		if other, dup := colors[col]; dup {
			t.Errorf("Color(%q) = Color(%q) = %v, want distinct", tgt.Label, other, col)
		}
		colors[col] = tgt.Label
		for _, p := range tgt.Open {
			for _, v := range []float64{p.P50, p.P99} {
				at := c.Pos(p.Rate, v)
				if !at.In(img.Bounds()) {
					t.Errorf("Pos(%g, %g) = %v, outside the image", p.Rate, v, at)
					continue
				}
				if p.Overloaded() {
					// hollow marker: white in the middle, the colour at its edge
					if got, edge := img.At(at.X, at.Y), img.At(at.X-4, at.Y); !same(got, white) || !same(edge, col) {
						t.Errorf("%s at (%g req/s, %g ms), overloaded: pixels %v, %v = %v, %v; want white inside, %v at the edge", tgt.Label, p.Rate, v, at, at.Add(image.Pt(-4, 0)), got, edge, col)
					}
					continue
				}
				if got := img.At(at.X, at.Y); !same(got, col) {
					t.Errorf("%s at (%g req/s, %g ms): pixel %v = %v, want the series colour %v", tgt.Label, p.Rate, v, at, got, col)
				}
			}
		}
	}
	// higher latency is drawn higher, and a higher rate further right
	if a, b := c.Pos(1000, 1), c.Pos(1000, 10); b.Y >= a.Y {
		t.Errorf("Pos(1000, 10).Y = %d, want above Pos(1000, 1).Y = %d", b.Y, a.Y)
	}
	if a, b := c.Pos(1000, 1), c.Pos(5000, 1); b.X <= a.X {
		t.Errorf("Pos(5000, 1).X = %d, want right of Pos(1000, 1).X = %d", b.X, a.X)
	}
	// the series are drawn: count each target's pixels in the plot area
	closedOnly, _ := c.Color("closedonly")
	count := map[string]int{}
	for y := c.plot.Min.Y; y <= c.plot.Max.Y; y++ {
		for x := c.plot.Min.X; x <= c.plot.Max.X; x++ {
			for col, l := range colors {
				if same(img.At(x, y), col) {
					count[l]++
				}
			}
		}
	}
	for _, l := range []string{"noop", "sendguard"} {
		if count[l] < 200 { // 4 markers of 9×9 at least, less overlap
			t.Errorf("%s: %d pixels of its colour in the plot, want its lines and markers (≥ 200)", l, count[l])
		}
	}
	if count["closedonly"] != 0 {
		t.Errorf("closedonly (%v): %d pixels in the plot, want none (no open-loop points)", closedOnly, count["closedonly"])
	}
}

func TestThousands(t *testing.T) {
	for _, tc := range []struct {
		in   float64
		want string
	}{{0, "0"}, {999, "999"}, {1000, "1,000"}, {28408.4, "28,408"}, {1234567, "1,234,567"}, {-1500, "-1,500"}} {
		if got := thousands(tc.in); got != tc.want {
			t.Errorf("thousands(%g) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
