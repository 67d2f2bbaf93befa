package decisionlog

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/sendguard/sendguard/internal/decision"
)

// BenchmarkDecisionLog reports whole decisions per second on the memory
// store (the fastest, so the log's share is the largest), with the decision
// log off and on (file sink, phones hashed, the default buffer), and the
// records dropped. The bar: on within 10 % of off.
//
// par1 runs one decision per core (b.RunParallel, SetParallelism(1)): the
// cores busy with decisions, nothing queued. par64 runs 64 per core, all
// CPU-bound and never blocking: the log's writer goroutine is then one of
// 129 runnable goroutines and gets its turn seldom, so the buffer fills and
// records are dropped and counted (the decisions never wait). A gRPC server
// is not like that: its goroutines block on the network.
func BenchmarkDecisionLog(b *testing.B) {
	for _, par := range []int{1, 64} {
		for _, on := range []bool{false, true} {
			name := fmt.Sprintf("par%d/off", par)
			if on {
				name = fmt.Sprintf("par%d/on_file", par)
			}
			b.Run(name, func(b *testing.B) { benchLog(b, par, on) })
		}
	}
}

func benchLog(b *testing.B, par int, on bool) {
	var d interface {
		Decide(context.Context, decision.Request) (decision.Result, error)
	} = newDecider(b)
	var l *Logger
	if on {
		sink, err := NewFileSink(filepath.Join(b.TempDir(), "d.log"), 100<<20, 2)
		if err != nil {
			b.Fatal(err)
		}
		l, err = New(Options{Sink: sink, PhoneKey: []byte("bench-key"), PolicyRevision: func() string { return "abcdef012345" }, ConfigRevision: "0123456789ab"})
		if err != nil {
			b.Fatal(err)
		}
		d = Wrap(d, l)
	}
	var n atomic.Int64
	ctx := context.Background()
	b.SetParallelism(par)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := n.Add(1)
		body, _ := json.Marshal(map[string]string{"instance_id": "shop", "phone": fmt.Sprintf("+9665012%05d", i%100000),
			"message": multilingual[i%3], "message_purpose": "transactional"})
		req := decision.Request{Method: "POST", Path: "/api/send-message", Authorization: "Bearer " + apiKey, Body: body}
		for pb.Next() {
			if res, err := d.Decide(ctx, req); err != nil || !res.Allowed {
				b.Fatalf("not allowed: %s %v", res.Body, err)
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "decisions/s")
	b.StopTimer()
	if l != nil {
		if err := l.Close(ctx); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(l.Dropped()), "dropped")
	}
}
