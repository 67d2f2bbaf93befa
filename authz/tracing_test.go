package authz

import (
	"context"
	"errors"
	"testing"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/sendguard/sendguard/internal/catalog"
	"github.com/sendguard/sendguard/internal/decision"
)

type decideFunc func(ctx context.Context, r decision.Request) (decision.Result, error)

func (f decideFunc) Decide(ctx context.Context, r decision.Request) (decision.Result, error) {
	return f(ctx, r)
}

// TestCheckSpan: the Check span continues the client's traceparent from
// the CheckRequest's headers (or starts a trace), the decision runs inside
// it, and it ends with the decision id, instance, result and code of every
// kind of answer: allowed, denied, shadowed, passthrough, and failed (a
// store error or a panic: an error status, the documented code, never the
// error's text).
func TestCheckSpan(t *testing.T) {
	const traceID, parentID = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	for _, tc := range []struct {
		name        string
		res         decision.Result
		err         error
		panics      bool
		traceparent bool
		result      string
		code        catalog.Code
	}{
		{name: "allowed", res: decision.Result{ID: "d1", Send: true, Allowed: true, Instance: "i1"}, traceparent: true, result: "allowed"},
		{name: "denied", res: decision.Result{ID: "d2", Send: true, Instance: "i1", Code: catalog.SendingThrottled, Status: 429, Body: []byte("{}")}, traceparent: true, result: "denied", code: catalog.SendingThrottled},
		{name: "shadowed", res: decision.Result{ID: "d3", Send: true, Instance: "i1", Code: catalog.PolicyViolation, Status: 403, Shadow: true}, result: "shadowed", code: catalog.PolicyViolation},
		{name: "passthrough", res: decision.Result{ID: "d4", Allowed: true}, result: "passthrough"},
		{name: "failed", res: decision.Result{ID: "d5", Send: true, Instance: "i1"}, err: errors.New("redis suppressed i1: +966501234567 timeout"), traceparent: true, result: "failed", code: catalog.PolicyCheckUnavailable},
		{name: "panic", panics: true, traceparent: true, result: "failed", code: catalog.PolicyCheckUnavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := tracetest.NewSpanRecorder()
			tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
			defer tp.Shutdown(context.Background())
			var inside trace.SpanContext
			s := NewServer(decideFunc(func(ctx context.Context, _ decision.Request) (decision.Result, error) {
				inside = trace.SpanContextFromContext(ctx)
				if tc.panics {
					panic("boom")
				}
				return tc.res, tc.err
			}), nil).WithTracing(tp.Tracer("test"), propagation.TraceContext{})
			req := checkRequest("POST", "/api/send-message", "Bearer key-demo", sendBody("i1", recipient, okMessage, "transactional"))
			if tc.traceparent {
				req.Attributes.Request.Http.Headers["traceparent"] = "00-" + traceID + "-" + parentID + "-01"
			}
			if _, err := s.Check(context.Background(), req); err != nil {
				t.Fatal(err)
			}
			spans := rec.Ended()
			if len(spans) != 1 {
				t.Fatalf("Check(%s) ended %d spans, want 1", tc.name, len(spans))
			}
			sp := spans[0]
			if inside.SpanID() != sp.SpanContext().SpanID() {
				t.Errorf("Check(%s): the decision ran in span %s, want the Check span %s", tc.name, inside.SpanID(), sp.SpanContext().SpanID())
			}
			if tc.traceparent && (sp.SpanContext().TraceID().String() != traceID || sp.Parent().SpanID().String() != parentID || !sp.Parent().IsRemote()) {
				t.Errorf("Check(%s) span trace %s parent %s, want %s %s", tc.name, sp.SpanContext().TraceID(), sp.Parent().SpanID(), traceID, parentID)
			}
			if !tc.traceparent && sp.Parent().IsValid() {
				t.Errorf("Check(%s) without a traceparent: parent %s, want a new trace", tc.name, sp.Parent().SpanID())
			}
			attrs := map[string]string{}
			for _, kv := range sp.Attributes() {
				attrs[string(kv.Key)] = kv.Value.Emit()
			}
			if tc.panics && attrs["sendguard.decision_id"] == "" {
				t.Errorf("Check(%s) span attributes = %v, want the decision id the client gets", tc.name, attrs)
			}
			if attrs["sendguard.result"] != tc.result || attrs["sendguard.code"] != string(tc.code) ||
				(tc.res.ID != "" && attrs["sendguard.decision_id"] != tc.res.ID) || attrs["sendguard.instance_id"] != tc.res.Instance {
				t.Errorf("Check(%s) span attributes = %v, want result %s code %q id %q instance %q", tc.name, attrs, tc.result, tc.code, tc.res.ID, tc.res.Instance)
			}
			if failed := tc.result == "failed"; failed != (sp.Status().Code == codes.Error) || sp.Status().Description == "boom" || len(sp.Events()) != 0 {
				t.Errorf("Check(%s) span status = %+v, events %v; want an error status only when failed, without the error's text", tc.name, sp.Status(), sp.Events())
			}
		})
	}
}
