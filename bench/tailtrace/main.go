// Command tailtrace reads a Go runtime trace of `sendguard serve` under
// load (the admin port's /debug/pprof/trace) and says where its slowest
// gRPC calls spent their time.
//
//	go run . TRACE        GC mark phases and stop-the-world pauses; time
//	                      runnable (waiting for a CPU) by goroutine kind (gRPC
//	                      reader, loopy writer, stream worker); the calls
//	                      (a stream worker from its wake-up to its next wait
//	                      for work), their p50/p99/p99.9, and for the slowest
//	                      1 %: running, runnable, waiting (and on what), in a
//	                      syscall, and how many overlap a GC mark
//	go run . TRACE sys    the write-ahead log's write(2)s against the fsyncs
//	                      in flight
//
// A call here is the server's part only (decode, decide, hand the answer
// to gRPC's writer); the loopy writer's and the reader's delays come on top.
// It is a separate module (golang.org/x/exp/trace) so that sendguard's own
// go.mod does not carry it.
package main

import (
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"golang.org/x/exp/trace"
)

type span struct {
	g                        trace.GoID
	start, end               trace.Time
	run, runnable, wait, sys int64
	gcOverlap, stw           int64
	waitWhy                  map[string]int64
}

func top(st trace.Stack) string {
	var fs []string
	for f := range st.Frames() {
		fs = append(fs, f.Func)
		if len(fs) == 6 {
			break
		}
	}
	return strings.Join(fs, " < ")
}

func has(st trace.Stack, s string) bool {
	for f := range st.Frames() {
		if strings.Contains(f.Func, s) {
			return true
		}
	}
	return false
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: tailtrace TRACE [sys]")
		os.Exit(2)
	}
	if len(os.Args) > 2 && os.Args[2] == "sys" {
		sysAnalysis(os.Args[1])
		return
	}
	f, err := os.Open(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	r, err := trace.NewReader(f)
	if err != nil {
		panic(err)
	}
	type gst struct {
		state trace.GoState
		since trace.Time
		cur   *span
		kind  string
		why   string
	}
	gs := map[trace.GoID]*gst{}
	var spans []*span
	var gcOn bool
	var gcStart trace.Time
	var gcRanges [][2]trace.Time
	var stwRanges [][2]trace.Time
	var stwStart trace.Time
	// per kind runnable time
	kindRunnable := map[string]int64{}
	kindRunnableMax := map[string]int64{}
	var first, last trace.Time
	for {
		ev, err := r.ReadEvent()
		if err == io.EOF {
			break
		}
		if err != nil {
			panic(err)
		}
		if first == 0 {
			first = ev.Time()
		}
		last = ev.Time()
		switch ev.Kind() {
		case trace.EventRangeBegin:
			rg := ev.Range()
			if strings.Contains(rg.Name, "GC concurrent mark") {
				gcOn, gcStart = true, ev.Time()
			}
			if strings.Contains(rg.Name, "stop-the-world") {
				stwStart = ev.Time()
			}
		case trace.EventRangeEnd:
			rg := ev.Range()
			if strings.Contains(rg.Name, "GC concurrent mark") && gcOn {
				gcOn = false
				gcRanges = append(gcRanges, [2]trace.Time{gcStart, ev.Time()})
			}
			if strings.Contains(rg.Name, "stop-the-world") && stwStart != 0 {
				stwRanges = append(stwRanges, [2]trace.Time{stwStart, ev.Time()})
				stwStart = 0
			}
		case trace.EventStateTransition:
			st := ev.StateTransition()
			if st.Resource.Kind != trace.ResourceGoroutine {
				continue
			}
			id := st.Resource.Goroutine()
			from, to := st.Goroutine()
			g := gs[id]
			if g == nil {
				g = &gst{state: from, since: ev.Time()}
				gs[id] = g
			}
			d := int64(ev.Time() - g.since)
			if g.cur != nil {
				switch g.state {
				case trace.GoRunning:
					g.cur.run += d
				case trace.GoRunnable:
					g.cur.runnable += d
				case trace.GoWaiting:
					g.cur.wait += d
					g.cur.waitWhy[g.why] += d
				case trace.GoSyscall:
					g.cur.sys += d
				}
			}
			if g.state == trace.GoRunnable {
				kindRunnable[g.kind] += d
				if d > kindRunnableMax[g.kind] {
					kindRunnableMax[g.kind] = d
				}
			}
			// classify goroutine by its stack when it blocks
			stk := ev.Stack()
			if g.kind == "" && stk != trace.NoStack && from == trace.GoRunning {
				switch {
				case has(stk, "serverWorker"):
					g.kind = "worker"
				case has(stk, "loopyWriter"):
					g.kind = "loopy"
				case has(stk, "HandleStreams") || has(stk, "serveStreams"):
					g.kind = "reader"
				}
			}
			// span boundaries on workers
			if to == trace.GoWaiting {
				g.why = st.Reason
				if stk != trace.NoStack {
					g.why = st.Reason + " @ " + top(stk)
				}
				if g.cur != nil && has(stk, "serverWorker") && !has(stk, "handleStream") {
					g.cur.end = ev.Time()
					spans = append(spans, g.cur)
					g.cur = nil
				}
			}
			if from == trace.GoWaiting && to == trace.GoRunnable && g.kind == "worker" && g.cur == nil && strings.Contains(g.why, "serverWorker") && !strings.Contains(g.why, "handleStream") {
				g.cur = &span{g: id, start: ev.Time(), waitWhy: map[string]int64{}}
			}
			g.state, g.since = to, ev.Time()
		}
	}
	dur := float64(last-first) / 1e9
	fmt.Printf("trace %.2fs, %d GC mark phases, %d STW\n", dur, len(gcRanges), len(stwRanges))
	var gctot, stwtot, stwmax int64
	for _, g := range gcRanges {
		gctot += int64(g[1] - g[0])
		fmt.Printf("  mark %.1f ms at %.3fs\n", float64(g[1]-g[0])/1e6, float64(g[0]-first)/1e9)
	}
	for _, s := range stwRanges {
		stwtot += int64(s[1] - s[0])
		if int64(s[1]-s[0]) > stwmax {
			stwmax = int64(s[1] - s[0])
		}
	}
	fmt.Printf("  mark total %.1f ms (%.1f%%), STW total %.2f ms max %.2f ms\n", float64(gctot)/1e6, float64(gctot)/1e7/dur, float64(stwtot)/1e6, float64(stwmax)/1e6)
	for k, v := range kindRunnable {
		fmt.Printf("runnable time kind=%-7q %8.1f ms (max single %.2f ms)\n", k, float64(v)/1e6, float64(kindRunnableMax[k])/1e6)
	}
	inGC := func(t trace.Time) bool {
		for _, g := range gcRanges {
			if t >= g[0] && t <= g[1] {
				return true
			}
		}
		return false
	}
	sort.Slice(spans, func(i, j int) bool { return spans[i].end-spans[i].start > spans[j].end-spans[j].start })
	n := len(spans)
	fmt.Printf("%d worker spans\n", n)
	if n == 0 {
		return
	}
	pct := func(p float64) float64 {
		return float64(spans[int(float64(n)*(1-p))].end-spans[int(float64(n)*(1-p))].start) / 1e6
	}
	fmt.Printf("span p50 %.3f p99 %.3f p99.9 %.3f max %.3f ms\n", pct(0.5), pct(0.99), pct(0.999), float64(spans[0].end-spans[0].start)/1e6)
	// aggregate top 1%
	k := n / 100
	var run, rn, wt, sy int64
	gcCount := 0
	why := map[string]int64{}
	for _, s := range spans[:k] {
		run += s.run
		rn += s.runnable
		wt += s.wait
		sy += s.sys
		if inGC(s.start) || inGC(s.end) {
			gcCount++
		}
		for w, d := range s.waitWhy {
			why[w] += d
		}
	}
	fmt.Printf("slowest 1%% (%d): mean running %.3f runnable %.3f waiting %.3f syscall %.3f ms; %d overlap a GC mark\n", k, float64(run)/float64(k)/1e6, float64(rn)/float64(k)/1e6, float64(wt)/float64(k)/1e6, float64(sy)/float64(k)/1e6, gcCount)
	type kv struct {
		k string
		v int64
	}
	var ws []kv
	for w, d := range why {
		ws = append(ws, kv{w, d})
	}
	sort.Slice(ws, func(i, j int) bool { return ws[i].v > ws[j].v })
	for i, w := range ws {
		if i == 6 {
			break
		}
		fmt.Printf("   wait %.3f ms/span: %s\n", float64(w.v)/float64(k)/1e6, w.k)
	}
	gcAll := 0
	for _, s := range spans {
		if inGC(s.start) || inGC(s.end) {
			gcAll++
		}
	}
	fmt.Printf("all spans overlapping a GC mark: %.1f%%\n", 100*float64(gcAll)/float64(n))
	for _, s := range spans[:5] {
		fmt.Printf("  span %.2f ms at %.3fs: run %.2f runnable %.2f wait %.2f sys %.2f gc=%v\n", float64(s.end-s.start)/1e6, float64(s.start-first)/1e9, float64(s.run)/1e6, float64(s.runnable)/1e6, float64(s.wait)/1e6, float64(s.sys)/1e6, inGC(s.start) || inGC(s.end))
	}
}
