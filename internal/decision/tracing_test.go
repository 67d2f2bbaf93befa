package decision

import (
	"context"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/sendguard/sendguard/internal/tracing"
)

// TestDecideSpans: with a tracer and a recording span in ctx (the Check
// span), Decide makes its children: the store read, the policy evaluation
// (with the risk score, and the policy's code on a denial) and the store
// take on an allow, each naming the instance; without a recording span in
// ctx it makes none and allocates exactly what a Decider without a tracer
// does.
func TestDecideSpans(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer tp.Shutdown(context.Background())
	f := newFixture(t)
	f.d.SetTracer(tp.Tracer("test"))
	for _, tc := range []struct {
		name, purpose string
		want          []string
		code          string
	}{
		{"allow", "transactional", []string{tracing.SpanStoreRead, tracing.SpanPolicy, tracing.SpanStoreTake}, ""},
		{"policy denial", "marketing", []string{tracing.SpanStoreRead, tracing.SpanPolicy}, "message_purpose_not_allowed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, parent := tp.Tracer("test").Start(context.Background(), "check")
			before := len(rec.Ended())
			req := Request{Method: "POST", Path: "/api/send-message", Authorization: keyDemo, Body: send("shop", recipient, "طلبك رقم 1042 تم شحنه 📦", tc.purpose)}
			if _, err := f.d.Decide(ctx, req); err != nil {
				t.Fatal(err)
			}
			parent.End()
			var got []string
			for _, s := range rec.Ended()[before:] {
				if s.Name() == "check" {
					continue
				}
				got = append(got, s.Name())
				if s.Parent().SpanID() != parent.SpanContext().SpanID() {
					t.Errorf("Decide(%s): span %s parent %s, want the Check span %s", tc.name, s.Name(), s.Parent().SpanID(), parent.SpanContext().SpanID())
				}
				attrs := map[string]string{}
				for _, kv := range s.Attributes() {
					attrs[string(kv.Key)] = kv.Value.Emit()
				}
				if attrs["sendguard.instance_id"] != "shop" {
					t.Errorf("Decide(%s): span %s attributes %v, want the instance", tc.name, s.Name(), attrs)
				}
				if s.Name() == tracing.SpanPolicy && (attrs["sendguard.code"] != tc.code || attrs["sendguard.risk_score"] == "") {
					t.Errorf("Decide(%s): policy span attributes %v, want code %q and a risk score", tc.name, attrs, tc.code)
				}
			}
			if len(got) != len(tc.want) {
				t.Fatalf("Decide(%s) spans = %v, want %v", tc.name, got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("Decide(%s) spans = %v, want %v", tc.name, got, tc.want)
				}
			}
		})
	}

	// Not traced (no recording span): nothing, at no cost.
	req := Request{Method: "POST", Path: "/api/send-message", Authorization: keyDemo, Body: send("shop", recipient, "Your order #2041 has shipped.", "marketing")}
	ctx := context.Background()
	before := len(rec.Ended())
	traced := minAllocs(func() { f.d.Decide(ctx, req) })
	if n := len(rec.Ended()) - before; n != 0 {
		t.Errorf("Decide without a recording span made %d spans, want 0", n)
	}
	f.d.SetTracer(nil)
	off := minAllocs(func() { f.d.Decide(ctx, req) })
	if traced != off && !(raceEnabled && traced-off <= 1 && off-traced <= 1) {
		t.Errorf("Decide without a recording span = %.0f allocations, without a tracer %.0f; want equal (within 1 under -race)", traced, off)
	}
}

// minAllocs is the least of three testing.AllocsPerRun(200, f): AllocsPerRun
// counts the whole process's allocations, so a background goroutine (a
// span exporter, a store's sweep) that allocates during one measurement on
// a busy machine adds to it; it cannot make all three high.
func minAllocs(f func()) float64 {
	return min(testing.AllocsPerRun(200, f), testing.AllocsPerRun(200, f), testing.AllocsPerRun(200, f))
}
