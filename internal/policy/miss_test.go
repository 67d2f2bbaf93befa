package policy

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
)

// evaluators are the two ways a decision is evaluated, for benchmarks: the
// IR VM (the default) and OPA's topdown evaluator.
var evaluators = []struct {
	name    string
	topdown bool
}{{"irvm", false}, {"topdown", true}}

// BenchmarkEvalMiss is the cost of a memo miss: the memo off, cycling over
// the policy inputs of bench/mixes/unique.json (allowed sends and every
// denial the policies answer), so each evaluation is a first-seen input's,
// on each evaluator. cpu-ns/op is the process's CPU time per evaluation,
// steadier than ns/op on a shared machine.
func BenchmarkEvalMiss(b *testing.B) {
	for _, ev := range evaluators {
		b.Run(ev.name, func(b *testing.B) { benchEvalMiss(b, ev.topdown) })
	}
}

func benchEvalMiss(b *testing.B, topdown bool) {
	ins, _, sc := uniqueMix(b)
	e := engine(b, Options{CacheEntries: -1, Scan: sc.Scan, Topdown: topdown})
	if name, why := e.Evaluator(); (name == "topdown") != topdown {
		b.Fatalf("evaluator %s (%s)", name, why)
	}
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	cpu0 := cpuTime(b)
	for b.Loop() {
		if _, err := e.Eval(ctx, ins[i%len(ins)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
	b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(b.N), "cpu-ns/op")
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkEvalMissStream is the cost of a first-seen decision input in a
// stream of them: the distinct decision inputs of bench/mixes/unique.json,
// in the mix's order, each evaluated once with the rule values that the
// inputs before it in the stream left (the rule cache emptied at the start
// of every pass), on each evaluator. The decision memo is bypassed: every
// evaluation is a decision the memo has not seen.
func BenchmarkEvalMissStream(b *testing.B) {
	for _, ev := range evaluators {
		b.Run(ev.name, func(b *testing.B) { benchEvalMissStream(b, ev.topdown) })
	}
}

func benchEvalMissStream(b *testing.B, topdown bool) {
	ins, _, sc := uniqueMix(b)
	e := engine(b, Options{Scan: sc.Scan, Topdown: topdown})
	p := e.cur.Load()
	if p.rules == nil || (p.vm == nil) != topdown {
		b.Fatalf("topdown %v: rule cache %v, VM %v", topdown, p.rules != nil, p.vm != nil)
	}
	var distinct []Input
	seen := map[string]bool{}
	for _, in := range ins {
		k := string(p.fields.key(nil, in))
		if !seen[k] {
			seen[k] = true
			distinct = append(distinct, in)
		}
	}
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	cpu0 := cpuTime(b)
	for b.Loop() {
		if i%len(distinct) == 0 {
			b.StopTimer()
			p.rules.memo = newMemo[*ast.Term](1 << 16)
			b.StartTimer()
		}
		if _, err := p.eval(ctx, distinct[i%len(distinct)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
	b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(b.N), "cpu-ns/op")
	b.ReportMetric(float64(len(distinct)), "inputs")
}
