package decision

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/sendguard/sendguard/internal/inbound"
	"github.com/sendguard/sendguard/internal/policy"
)

// panickingEvaluator is the real policy engine, except that a message
// purpose of "panic" makes it index past a slice's end.
type panickingEvaluator struct{ evaluator }

func (p panickingEvaluator) Eval(ctx context.Context, in policy.Input) (policy.Decision, error) {
	if in.Purpose == "panic" {
		var s []int
		_ = s[len(in.Purpose)]
	}
	return p.evaluator.Eval(ctx, in)
}

// panickingRecorder is an inbound recorder with a bug.
type panickingRecorder struct{}

func (panickingRecorder) Record(context.Context, inbound.Message) (inbound.Outcome, error) {
	var p *inbound.Outcome
	return *p, nil // nil dereference
}

// TestDecidePanicIsAnError: a panic in a dependency, on the send path or
// the inbound observe path, comes back from Decide as an error wrapping
// ErrPanic, with the stack and a decision id, and the next request is
// decided normally.
func TestDecidePanicIsAnError(t *testing.T) {
	f := newFixture(t)
	f.d.opts.Inbound = &Inbound{Routes: []Route{{Method: "POST", Path: "/webhooks/inbound"}}, Fields: DefaultFields, Recorder: panickingRecorder{}}
	routes, err := canonicalRoutes(f.d.opts.Inbound.Routes)
	if err != nil {
		t.Fatal(err)
	}
	f.d.opts.Inbound.Routes = routes
	f.d.opts.Policy = panickingEvaluator{f.d.opts.Policy}
	tests := []struct {
		name string
		req  Request
		in   string // a function the stack must go through
	}{
		{"policy", Request{Method: "POST", Path: "/api/send-message", Authorization: keyDemo, Body: send("shop", recipient, "طلبك رقم 1042 تم شحنه", "panic")}, "panickingEvaluator.Eval"},
		{"inbound", Request{Method: "POST", Path: "/webhooks/inbound", Body: []byte(`{"instance_id":"shop","from":"+966501234567","message_text":"STOP"}`)}, "panickingRecorder.Record"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, err := f.d.Decide(context.Background(), tc.req)
			var pe *PanicError
			if !errors.Is(err, ErrPanic) || !errors.As(err, &pe) {
				t.Fatalf("Decide(%q) = %v, want an error wrapping ErrPanic", tc.req.Body, err)
			}
			if res.ID == "" || res.Allowed {
				t.Errorf("Decide(%q) = %+v, want a decision id and not allowed", tc.req.Body, res)
			}
			if !strings.Contains(string(pe.Stack), tc.in) {
				t.Errorf("panic stack does not go through %s:\n%s", tc.in, pe.Stack)
			}
		})
	}
	if res := f.decide(t, keyDemo, send("shop", recipient, "طلبك رقم 1042 تم شحنه", "transactional")); !res.Allowed {
		t.Errorf("Decide after a panic = %s %s, want allowed", res.Code, res.Body)
	}
	if _, err := f.d.Decide(context.Background(), Request{Method: "GET", Path: "/api/status"}); err != nil {
		t.Errorf("Decide(GET /api/status) after a panic: %v", err)
	}
}
