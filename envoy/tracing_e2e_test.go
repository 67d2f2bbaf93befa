package envoy_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"sync"
	"syscall"
	"testing"

	collectorpb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"

	"github.com/sendguard/sendguard/internal/tracing"
)

// otlpCollector records the spans an OTLP/gRPC exporter sends it.
type otlpCollector struct {
	collectorpb.UnimplementedTraceServiceServer
	mu    sync.Mutex
	spans []*tracepb.Span
}

func (c *otlpCollector) Export(_ context.Context, req *collectorpb.ExportTraceServiceRequest) (*collectorpb.ExportTraceServiceResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, rs := range req.GetResourceSpans() {
		for _, ss := range rs.GetScopeSpans() {
			c.spans = append(c.spans, ss.GetSpans()...)
		}
	}
	return &collectorpb.ExportTraceServiceResponse{}, nil
}

// checkSpans returns the Check spans of trace (hex).
func (c *otlpCollector) checkSpans(trace string) []*tracepb.Span {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*tracepb.Span
	for _, sp := range c.spans {
		if sp.GetName() == tracing.SpanCheck && hex.EncodeToString(sp.GetTraceId()) == trace {
			out = append(out, sp)
		}
	}
	return out
}

// TestTracingThroughEnvoy: through the shipped sidecar config (Envoy does
// not trace), the traceparent a client sends with its HTTP request reaches
// sendguard inside the CheckRequest, and sendguard's Check span, exported
// to an OTLP collector, is a child of the client's span, with the decision
// id the client got; a denial's span carries its code and the denied
// request never reaches the sender. Stopping sendguard flushes the spans.
func TestTracingThroughEnvoy(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	col := &otlpCollector{}
	gs := grpc.NewServer()
	collectorpb.RegisterTraceServiceServer(gs, col)
	go gs.Serve(lis)
	defer gs.Stop()
	s := startStackWith(t, fmt.Sprintf("tracing: {otlp_endpoint: %q, insecure: true}\n", lis.Addr().String()))

	type sent struct {
		trace, parent, id, result, code string
	}
	var all []sent
	for _, tc := range []struct {
		body, result, code string
	}{
		{sendBody("inst_12345", recipient, "طلبك رقم 1042 تم شحنه 📦", "transactional"), "allowed", ""},
		{sendBody("inst_12345", recipient, "आपका ऑर्डर भेज दिया गया है", "marketing"), "denied", "message_purpose_not_allowed"},
	} {
		var b [24]byte
		rand.Read(b[:])
		trace, parent := hex.EncodeToString(b[:16]), hex.EncodeToString(b[16:])
		before := s.rec.Len()
		r := s.do("POST", "/api/send-message", map[string]string{"Content-Type": "application/json", "Authorization": "Bearer key-demo",
			"traceparent": "00-" + trace + "-" + parent + "-01"}, []byte(tc.body))
		if (r.status == 200) != (tc.result == "allowed") {
			t.Fatalf("send (%s) = %d %s", tc.result, r.status, r.body)
		}
		if got := s.rec.Len() - before; (got == 1) != (tc.result == "allowed") {
			t.Errorf("send (%s): the sender got %d requests", tc.result, got)
		}
		all = append(all, sent{trace, parent, r.header.Get("x-sendguard-decision-id"), tc.result, tc.code})
	}

	// SIGTERM: serve's shutdown flushes the batch.
	s.sendguard.Process.Signal(syscall.SIGTERM)
	s.sendguard.Wait()
	for _, d := range all {
		spans := col.checkSpans(d.trace)
		if len(spans) != 1 {
			t.Errorf("trace %s (%s): %d Check spans at the collector, want 1", d.trace, d.result, len(spans))
			continue
		}
		sp := spans[0]
		attrs := map[string]string{}
		for _, kv := range sp.GetAttributes() {
			attrs[kv.GetKey()] = kv.GetValue().GetStringValue()
		}
		if got := hex.EncodeToString(sp.GetParentSpanId()); got != d.parent {
			t.Errorf("trace %s: Check span parent = %s, want the client's span %s", d.trace, got, d.parent)
		}
		if d.id == "" || attrs["sendguard.decision_id"] != d.id || attrs["sendguard.result"] != d.result || attrs["sendguard.code"] != d.code || attrs["sendguard.instance_id"] != "inst_12345" {
			t.Errorf("trace %s: Check span attributes = %v, want decision id %q, result %s, code %q, instance inst_12345", d.trace, attrs, d.id, d.result, d.code)
		}
	}
}
