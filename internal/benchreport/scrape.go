package benchreport

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Scrape is one reading of a server's /metrics during a run: the counters
// of its caches (every series whose name ends in _hits_total or
// _misses_total), or Up false when the server did not answer (between the
// harness's rounds, each of which starts a fresh process).
type Scrape struct {
	At     time.Time          `json:"at"`
	Up     bool               `json:"up"`
	Values map[string]float64 `json:"values,omitempty"`
}

// ParseCacheCounters reads the Prometheus text exposition format and keeps
// the samples of the series named …_hits_total or …_misses_total, keyed by
// the series as written (name and labels).
func ParseCacheCounters(r io.Reader) (map[string]float64, error) {
	out := map[string]float64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if l == "" || l[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(l, ' ')
		if i < 0 {
			continue
		}
		series, v := l[:i], l[i+1:]
		name, _, _ := strings.Cut(series, "{")
		if !strings.HasSuffix(name, "_hits_total") && !strings.HasSuffix(name, "_misses_total") {
			continue
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return nil, fmt.Errorf("metrics: %q: %w", l, err)
		}
		out[series] = f
	}
	return out, sc.Err()
}

// ReadScrapes reads the JSON lines `benchcompare watch` wrote.
func ReadScrapes(r io.Reader) ([]Scrape, error) {
	var out []Scrape
	dec := json.NewDecoder(r)
	for {
		var s Scrape
		if err := dec.Decode(&s); err == io.EOF {
			return out, nil
		} else if err != nil {
			return nil, fmt.Errorf("scrapes: %w", err)
		}
		out = append(out, s)
	}
}

// CacheTotals adds up each counter over the processes the scrapes saw: a
// process's count is its last reading, and a new process begins after a
// scrape the server did not answer or where a counter went down. The last
// second or so of each process (after its last scrape) is not counted.
func CacheTotals(scrapes []Scrape) map[string]float64 {
	total, last := map[string]float64{}, map[string]float64{}
	flush := func() {
		for k, v := range last {
			total[k] += v
		}
		last = map[string]float64{}
	}
	for _, s := range scrapes {
		if !s.Up {
			flush()
			continue
		}
		for k, v := range s.Values {
			if v < last[k] {
				flush()
				break
			}
		}
		for k, v := range s.Values {
			last[k] = v
		}
	}
	flush()
	return total
}

// HitRate is one cache's hits and misses over a run.
type HitRate struct {
	Series       string // the hits series without _hits_total, with its labels
	Hits, Misses float64
}

// Rate is Hits / (Hits + Misses), 0 when there were none.
func (h HitRate) Rate() float64 {
	if h.Hits+h.Misses == 0 {
		return 0
	}
	return h.Hits / (h.Hits + h.Misses)
}

// HitRates pairs each …_hits_total series of totals with its
// …_misses_total (same name stem and labels), ordered by series.
func HitRates(totals map[string]float64) []HitRate {
	var out []HitRate
	for k, hits := range totals {
		name, labels, _ := strings.Cut(k, "{")
		stem, ok := strings.CutSuffix(name, "_hits_total")
		if !ok {
			continue
		}
		miss := stem + "_misses_total"
		if labels != "" {
			miss += "{" + labels
			stem += "{" + labels
		}
		out = append(out, HitRate{Series: stem, Hits: hits, Misses: totals[miss]})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Series < out[j].Series })
	return out
}

// CacheMarkdown writes rates as a Markdown table after a paragraph saying
// what they are; n is how many scrapes they came from.
func CacheMarkdown(w io.Writer, rates []HitRate, n int) {
	if len(rates) == 0 {
		fmt.Fprintf(w, "\nsendguard's cache counters were not read during the run (%d scrapes).\n", n)
		return
	}
	fmt.Fprintf(w, "\nsendguard's caches over its rounds (all its closed- and open-loop runs; /metrics read each second):\n\n| cache | hits | misses | hit rate |\n|---|--:|--:|--:|\n")
	for _, r := range rates {
		fmt.Fprintf(w, "| `%s` | %s | %s | %.1f %% |\n", r.Series, thousands(r.Hits), thousands(r.Misses), 100*r.Rate())
	}
}
