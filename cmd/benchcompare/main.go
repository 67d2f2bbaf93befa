// Command benchcompare is the repository's side of `make bench-compare`:
//
//	benchcompare report -results F.jsonl -md F.md -png F.png [-loadavg-start "…"] [-mix NAME] [-scrapes S.jsonl]
//	benchcompare watch -url http://127.0.0.1:9291/metrics -out S.jsonl
//	benchcompare uniquemix -in ../shared/bench/mixes/default.json -out bench/mixes/unique.json [-seed N]
//
// report reads the JSON lines the shared harness (../shared/bench/compare.sh)
// wrote and writes the results table (Markdown, ratios to the no-op floor)
// and the latency-versus-rate chart (PNG); with -scrapes, also the hit rates
// of sendguard's caches (the policy memo's, the text caches') over its
// rounds. watch reads a server's /metrics every second until it is
// stopped, for -scrapes. uniquemix writes the all-unique message mix
// (internal/benchmix) from the harness's default mix.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/sendguard/sendguard/internal/benchmix"
	"github.com/sendguard/sendguard/internal/benchreport"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: benchcompare report|watch|uniquemix [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "report":
		err = report(os.Args[2:])
	case "uniquemix":
		err = uniqueMix(os.Args[2:])
	case "watch":
		err = watch(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q (report, watch or uniquemix)", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchcompare:", err)
		os.Exit(1)
	}
}

func report(args []string) error {
	fs := flag.NewFlagSet("report", flag.ExitOnError)
	results := fs.String("results", "", "the harness's JSON lines (compare.sh's RESULTS)")
	mdOut := fs.String("md", "bench/compare-default.md", "Markdown table output")
	pngOut := fs.String("png", "bench/compare-default.png", "PNG chart output")
	loadStart := fs.String("loadavg-start", "", "the load average (/proc/loadavg) when the run started")
	mixName := fs.String("mix", "", "the mix file, as named in the table header (default: the results' own)")
	floor := fs.String("floor", "noop", "the label of the floor target")
	scrapes := fs.String("scrapes", "", "sendguard's /metrics readings during the run (benchcompare watch), for the caches' hit rates")
	fs.Parse(args)
	if *results == "" {
		return fmt.Errorf("report: -results is required")
	}
	f, err := os.Open(*results)
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	rs, err := benchreport.ReadJSONL(f)
	f.Close()
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	if len(rs) == 0 {
		return fmt.Errorf("report: %s holds no results", *results)
	}
	s := benchreport.Summarize(rs)
	mix := s.Mix
	if *mixName != "" {
		mix = *mixName
	}

	var md bytes.Buffer
	fmt.Fprintf(&md, "# `make bench-compare`: latest run\n\n")
	fmt.Fprintf(&md, "Started %s; mix `%s`; median of %d alternating rounds per target; %d cores (%s), %s.\n",
		s.First, mix, maxRounds(s), s.Nproc, cpuModel(), s.Go)
	fmt.Fprintf(&md, "Load average (1/5/15 min) at the start: %s; at the end: %s.\n", trimLoad(*loadStart), trimLoad(readLoad()))
	fmt.Fprintf(&md, "The machine is shared with other work: compare the ratios to the no-op floor (in parentheses), not the absolute times.\n\n")
	if err := benchreport.Markdown(&md, s, *floor); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	fmt.Fprintf(&md, "\nRatios: target ÷ floor (throughput: higher is better; CPU and latency: lower is better). "+
		"Open loop: latency from the scheduled send; \"overloaded\" when under 97 %% of the offered rate was answered. "+
		"The no-op floor allows everything, so its mismatches are the mix's denials. Chart: `%s`. Raw results: `%s`.\n",
		filepath.Base(*pngOut), filepath.Base(*results))
	if *scrapes != "" {
		if err := cacheRates(&md, *scrapes); err != nil {
			return fmt.Errorf("report: %w", err)
		}
	}
	if err := os.WriteFile(*mdOut, md.Bytes(), 0o644); err != nil {
		return fmt.Errorf("report: %w", err)
	}

	var png bytes.Buffer
	title := fmt.Sprintf("p50 / p99 latency vs offered rate (%s, %s UTC)", mixBase(mix), strings.TrimSuffix(firstDate(s.First), "Z"))
	if err := benchreport.Draw(s, title, 960, 560).WritePNG(&png); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	if err := os.WriteFile(*pngOut, png.Bytes(), 0o644); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	os.Stdout.Write(md.Bytes())
	fmt.Printf("\nwrote %s and %s\n", *mdOut, *pngOut)
	return nil
}

// cacheRates writes the hit rate of each of sendguard's caches over its
// rounds, from the scrapes file.
func cacheRates(w io.Writer, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	scrapes, err := benchreport.ReadScrapes(f)
	f.Close()
	if err != nil {
		return err
	}
	benchreport.CacheMarkdown(w, benchreport.HitRates(benchreport.CacheTotals(scrapes)), len(scrapes))
	return nil
}

// watch reads url every second and writes one Scrape per line to out,
// until SIGTERM or SIGINT.
func watch(args []string) error {
	fs := flag.NewFlagSet("watch", flag.ExitOnError)
	url := fs.String("url", "", "the server's /metrics")
	out := fs.String("out", "", "the JSON lines file to write")
	every := fs.Duration("every", time.Second, "how often to read")
	fs.Parse(args)
	if *url == "" || *out == "" {
		return fmt.Errorf("watch: -url and -out are required")
	}
	f, err := os.Create(*out)
	if err != nil {
		return fmt.Errorf("watch: %w", err)
	}
	defer f.Close()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	client := &http.Client{Timeout: *every / 2}
	enc := json.NewEncoder(f)
	tick := time.NewTicker(*every)
	defer tick.Stop()
	for {
		s := benchreport.Scrape{At: time.Now().UTC()}
		if resp, err := client.Get(*url); err == nil {
			if resp.StatusCode == http.StatusOK {
				s.Values, err = benchreport.ParseCacheCounters(resp.Body)
				s.Up = err == nil
			}
			resp.Body.Close()
		}
		if err := enc.Encode(s); err != nil {
			return fmt.Errorf("watch: %w", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

func uniqueMix(args []string) error {
	fs := flag.NewFlagSet("uniquemix", flag.ExitOnError)
	in := fs.String("in", "../shared/bench/mixes/default.json", "the harness's default mix")
	out := fs.String("out", "bench/mixes/unique.json", "output")
	seed := fs.Uint64("seed", 20261127, "PRNG seed")
	fs.Parse(args)
	data, err := os.ReadFile(*in)
	if err != nil {
		return fmt.Errorf("uniquemix: %w", err)
	}
	m, err := benchmix.Decode(data)
	if err != nil {
		return fmt.Errorf("uniquemix: %s: %w", *in, err)
	}
	u, err := benchmix.Unique(m, *seed)
	if err != nil {
		return fmt.Errorf("uniquemix: %w", err)
	}
	b, err := benchmix.Encode(u)
	if err != nil {
		return fmt.Errorf("uniquemix: %w", err)
	}
	if err := os.WriteFile(*out, b, 0o644); err != nil {
		return fmt.Errorf("uniquemix: %w", err)
	}
	fmt.Fprintf(os.Stderr, "wrote %s (%d requests)\n", *out, len(u.Requests))
	return nil
}

func maxRounds(s benchreport.Summary) int {
	n := 0
	for _, t := range s.Targets {
		n = max(n, t.Rounds)
	}
	return n
}

func readLoad() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return string(b)
}

// trimLoad keeps the three load averages of a /proc/loadavg line.
func trimLoad(s string) string {
	f := strings.Fields(s)
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}

func mixBase(p string) string {
	if i := strings.LastIndex(p, "/"); i >= 0 {
		return p[i+1:]
	}
	return p
}

func firstDate(rfc string) string {
	t, err := time.Parse(time.RFC3339Nano, rfc)
	if err != nil {
		return rfc
	}
	return t.UTC().Format("2006-01-02 15:04")
}
