package main

import (
	"fmt"
	"io"
	"os"
	"sort"

	"golang.org/x/exp/trace"
)

// sysAnalysis: write(2) of the log (flushLocked) against fsyncs in flight.
func sysAnalysis(path string) {
	f, err := os.Open(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	r, err := trace.NewReader(f)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	type iv struct {
		s, e trace.Time
		kind string
	}
	open := map[trace.GoID]iv{}
	var first, last trace.Time
	var ivs []iv
	for {
		ev, err := r.ReadEvent()
		if err == io.EOF {
			break
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		if first == 0 {
			first = ev.Time()
		}
		last = ev.Time()
		if ev.Kind() != trace.EventStateTransition {
			continue
		}
		st := ev.StateTransition()
		if st.Resource.Kind != trace.ResourceGoroutine {
			continue
		}
		id := st.Resource.Goroutine()
		from, to := st.Goroutine()
		if to == trace.GoSyscall {
			k := ""
			switch {
			case has(ev.Stack(), "flushLocked"): // the group write of waitWritten
				k = "logwrite"
			case has(ev.Stack(), "Fsync") || has(ev.Stack(), "Fdatasync"):
				k = "fsync"
				if has(ev.Stack(), "bbolt") {
					k = "bboltsync"
				}
			}
			if k != "" {
				open[id] = iv{s: ev.Time(), kind: k}
			}
		}
		if from == trace.GoSyscall {
			if v, ok := open[id]; ok {
				v.e = ev.Time()
				ivs = append(ivs, v)
				delete(open, id)
			}
		}
	}
	var fs []iv
	for _, v := range ivs {
		if v.kind != "logwrite" {
			fs = append(fs, v)
		}
	}
	var w []int64
	var slowN, slowDuringSync int
	byKind := map[string]int{}
	for _, v := range ivs {
		if v.kind != "logwrite" {
			continue
		}
		d := int64(v.e - v.s)
		w = append(w, d)
		if d > 1e6 {
			slowN++
			hit := false
			for _, x := range fs {
				if v.s < x.e && x.s < v.e {
					byKind[x.kind]++
					hit = true
				}
			}
			if hit {
				slowDuringSync++
			}
		}
	}
	sort.Slice(w, func(i, j int) bool { return w[i] < w[j] })
	span := int64(last - first)
	var fsd []int64
	var fsTot int64
	for _, x := range fs {
		fsd = append(fsd, int64(x.e-x.s))
		fsTot += int64(x.e - x.s)
	}
	sort.Slice(fsd, func(i, j int) bool { return fsd[i] < fsd[j] })
	if len(w) == 0 || len(fsd) == 0 {
		fmt.Println("no data", len(w), len(fsd))
		return
	}
	q := func(a []int64, p float64) float64 { return float64(a[int(float64(len(a)-1)*p)]) / 1e6 }
	fmt.Printf("log writes %d: p50 %.3f p99 %.3f max %.3f ms; %d over 1 ms, %d of them overlap an fsync (the log's: %d, bbolt's: %d)\n", len(w), q(w, .5), q(w, .99), q(w, 1), slowN, slowDuringSync, byKind["fsync"], byKind["bboltsync"])
	fmt.Printf("fsyncs %d: p50 %.3f p99 %.3f max %.3f ms, in flight %.1f%% of the time\n", len(fsd), q(fsd, .5), q(fsd, .99), q(fsd, 1), 100*float64(fsTot)/float64(span))
}
