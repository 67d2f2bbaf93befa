// Package benchreport turns the JSON lines that the side-by-side harness
// (../shared/bench/compare.sh, its loadgen) writes into the Markdown results
// table and the latency-versus-rate chart that `make bench-compare` keeps in
// bench/. It reads only the harness's result files, never its stdout text.
//
// Every function is pure (results in, table or image out) and safe for
// concurrent use.
package benchreport

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
)

// Result is one loadgen run: the fields of a loadgen JSON line this package
// uses (loadgen writes more; unknown fields are ignored).
type Result struct {
	Label       string  `json:"label"`
	Mode        string  `json:"mode"` // "closed" or "open"
	Concurrency int     `json:"concurrency,omitempty"`
	Rate        float64 `json:"rate,omitempty"`
	Mix         string  `json:"mix"`
	Started     string  `json:"started"`
	Requests    int     `json:"requests"`
	Errors      int     `json:"errors"`
	Mismatches  int     `json:"mismatches"`
	RPS         float64 `json:"rps"`
	LatencyMs   struct {
		P50 float64 `json:"p50"`
		P99 float64 `json:"p99"`
	} `json:"latency_ms"`
	ServerCPUUsPerReq float64 `json:"server_cpu_us_per_req,omitempty"`
	Nproc             int     `json:"nproc"`
	GoVersion         string  `json:"go_version"`
}

// ReadJSONL parses loadgen's result lines (one JSON object a line; blank
// lines are skipped). A malformed line is an error naming its line number.
func ReadJSONL(r io.Reader) ([]Result, error) {
	var rs []Result
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		var res Result
		if err := json.Unmarshal([]byte(line), &res); err != nil {
			return nil, fmt.Errorf("result line %d: %w", n, err)
		}
		if res.Label == "" || (res.Mode != "closed" && res.Mode != "open") {
			return nil, fmt.Errorf("result line %d: not a loadgen result (label %q, mode %q)", n, res.Label, res.Mode)
		}
		rs = append(rs, res)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read results: %w", err)
	}
	return rs, nil
}

// Point is one open-loop load of one target: medians over the rounds.
type Point struct {
	Rate     float64 // offered, req/s
	Answered float64 // answered req/s
	P50, P99 float64 // ms, from the scheduled send
}

// Overloaded reports whether the target answered less than 97 % of the
// offered rate (the harness's own rule): its latencies are then queueing.
func (p Point) Overloaded() bool { return p.Answered < 0.97*p.Rate }

// Target is one label's summary: medians over the rounds.
type Target struct {
	Label      string
	Rounds     int
	C64        float64 // closed-loop c=64 req/s; 0 when not run
	CPUUs      float64 // server CPU µs per request at c=64; 0 when not measured
	Open       []Point // by rising rate
	Errors     int     // summed over every run
	Mismatches int     // summed over every run
}

// Summary is every target of one harness run, in the order they first appear.
type Summary struct {
	Targets []Target
	Rates   []float64 // every open-loop rate, rising
	Mix     string
	Nproc   int
	Go      string
	First   string // earliest run start (RFC 3339, from loadgen)
}

// Summarize groups results by label and load and takes the median of the
// rounds, as `loadgen report -summary` does.
func Summarize(rs []Result) Summary {
	var s Summary
	type key struct {
		label string
		mode  string
		x     float64
	}
	groups := map[key][]Result{}
	idx := map[string]int{}
	rates := map[float64]bool{}
	for _, r := range rs {
		if _, ok := idx[r.Label]; !ok {
			idx[r.Label] = len(s.Targets)
			s.Targets = append(s.Targets, Target{Label: r.Label})
		}
		t := &s.Targets[idx[r.Label]]
		t.Errors += r.Errors
		t.Mismatches += r.Mismatches
		k := key{r.Label, r.Mode, float64(r.Concurrency)}
		if r.Mode == "open" {
			k.x = r.Rate
			rates[r.Rate] = true
		}
		groups[k] = append(groups[k], r)
		t.Rounds = max(t.Rounds, len(groups[k]))
		if s.Mix == "" {
			s.Mix, s.Nproc, s.Go = r.Mix, r.Nproc, r.GoVersion
		}
		if r.Started != "" && (s.First == "" || r.Started < s.First) {
			s.First = r.Started
		}
	}
	for x := range rates {
		s.Rates = append(s.Rates, x)
	}
	sort.Float64s(s.Rates)
	for i := range s.Targets {
		t := &s.Targets[i]
		c64 := groups[key{t.Label, "closed", 64}]
		t.C64 = median(c64, func(r Result) float64 { return r.RPS })
		t.CPUUs = median(c64, func(r Result) float64 { return r.ServerCPUUsPerReq })
		for _, x := range s.Rates {
			g := groups[key{t.Label, "open", x}]
			if len(g) == 0 {
				continue
			}
			t.Open = append(t.Open, Point{
				Rate:     x,
				Answered: median(g, func(r Result) float64 { return r.RPS }),
				P50:      median(g, func(r Result) float64 { return r.LatencyMs.P50 }),
				P99:      median(g, func(r Result) float64 { return r.LatencyMs.P99 }),
			})
		}
	}
	return s
}

func median(rs []Result, f func(Result) float64) float64 {
	if len(rs) == 0 {
		return 0
	}
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = f(r)
	}
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

// Target returns the summary of label and whether it is present.
func (s Summary) Target(label string) (Target, bool) {
	for _, t := range s.Targets {
		if t.Label == label {
			return t, true
		}
	}
	return Target{}, false
}

func (t Target) point(rate float64) (Point, bool) {
	for _, p := range t.Open {
		if p.Rate == rate {
			return p, true
		}
	}
	return Point{}, false
}

// Names maps harness labels to the names the table and the chart show;
// a label not in it is shown as is.
var Names = map[string]string{
	"noop":      "no-op (floor)",
	"opa":       "OPA-Envoy (peer)",
	"sendguard": "sendguard, embedded (default)",
}

// Name returns the display name of a harness label.
func Name(label string) string {
	if n, ok := Names[label]; ok {
		return n
	}
	return label
}

// Markdown writes the results table: c=64 throughput, server CPU per
// request, and p50 / p99 at each open-loop rate, each with its ratio to the
// floor target (label floor) in parentheses when the floor is present (the
// floor's own row has none).
// Throughput's ratio is target / floor (higher is better); CPU's and
// latency's are target / floor (lower is better). An overloaded load shows
// the rate it answered instead of latencies.
func Markdown(w io.Writer, s Summary, floor string) error {
	base, hasBase := s.Target(floor)
	var label string // the row being written
	ratio := func(v, b float64) string {
		if !hasBase || label == floor || b <= 0 || v <= 0 {
			return ""
		}
		return fmt.Sprintf(" (%.2f×)", v/b)
	}
	var b strings.Builder
	b.WriteString("| target | c=64 req/s | server CPU µs/req |")
	sep := "|---|--:|--:|"
	for i, x := range s.Rates {
		if i == 0 {
			fmt.Fprintf(&b, " p50 / p99 ms at %s/s |", thousands(x))
		} else {
			fmt.Fprintf(&b, " at %s/s |", thousands(x))
		}
		sep += "--:|"
	}
	b.WriteString(" errors / mismatches |\n")
	b.WriteString(sep + "--:|\n")
	for _, t := range s.Targets {
		label = t.Label
		fmt.Fprintf(&b, "| %s | %s%s | %s%s |", Name(t.Label),
			num(t.C64), ratio(t.C64, base.C64), num(t.CPUUs), ratio(t.CPUUs, base.CPUUs))
		for _, x := range s.Rates {
			p, ok := t.point(x)
			switch {
			case !ok:
				b.WriteString(" - |")
			case p.Overloaded():
				fmt.Fprintf(&b, " overloaded (%s/s answered) |", num(p.Answered))
			default:
				bp, _ := base.point(x)
				fmt.Fprintf(&b, " %s%s / %s%s |", ms(p.P50), ratio(p.P50, bp.P50), ms(p.P99), ratio(p.P99, bp.P99))
			}
		}
		fmt.Fprintf(&b, " %d / %d |\n", t.Errors, t.Mismatches)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func num(v float64) string {
	if v <= 0 {
		return "-"
	}
	return thousands(v)
}

// thousands formats v rounded to an integer with comma thousands separators.
func thousands(v float64) string {
	s := fmt.Sprintf("%.0f", v)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var out []byte
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	if neg {
		return "-" + string(out)
	}
	return string(out)
}

// ms formats milliseconds as loadgen does: 3 significant figures or so.
func ms(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}
