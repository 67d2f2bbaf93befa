package authz

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc"

	"github.com/sendguard/sendguard/internal/decision"
	"github.com/sendguard/sendguard/internal/keys"
	"github.com/sendguard/sendguard/internal/limiter"
	"github.com/sendguard/sendguard/internal/phone"
	"github.com/sendguard/sendguard/internal/policy"
	"github.com/sendguard/sendguard/internal/store"
)

// panickyPolicy is the real policy engine, except that it panics on a
// message that asks it to: a broken dependency, to show that one bad
// request is contained.
type panickyPolicy struct{ engine *policy.Engine }

func (p panickyPolicy) Eval(ctx context.Context, in policy.Input) (policy.Decision, error) {
	if in.Signals.Length == len("PANIC PLEASE") && in.Purpose == "panic" {
		var m map[string]int
		m["boom"]++ // a nil-map write: the kind of bug a dependency has
	}
	return p.engine.Eval(ctx, in)
}

// syncBuffer is a log sink read by the test while the server writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) records(t *testing.T) []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(s.b.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

// panicServer serves Check over bufconn with the real Decider around d's
// dependencies (embedded policies wrapped by panickyPolicy, a memory store,
// the phone normaliser), logging JSON to the returned buffer.
func panicServer(t *testing.T, dec decider) (authv3.AuthorizationClient, *Server, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	srv := NewServer(dec, slog.New(slog.NewJSONHandler(logs, nil))).WithMetrics(prometheus.NewRegistry())
	gs := grpc.NewServer(ServerCodec())
	srv.Register(gs)
	return authv3.NewAuthorizationClient(serveBufconn(t, gs)), srv, logs
}

func panickyDecider(t *testing.T) *decision.Decider {
	t.Helper()
	engine, err := policy.New(context.Background(), policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	phones, err := phone.New(phone.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(phones.Close)
	var n atomic.Int64
	d, err := decision.New(decision.Options{
		Keys: keys.NewKeyring([]keys.Entry{{SHA256: keys.Hash("key-demo"), Key: keys.Key{ID: "k1", Account: "demo"}}}),
		Instances: map[string]decision.Instance{"inst_12345": {ID: "inst_12345", Account: "demo", Plan: "starter",
			Limits: limiter.Limits{Daily: 100, Monthly: 2000, Rate: 1, Burst: 5}}},
		Policy: panickyPolicy{engine}, State: store.NewMemory(limiter.Calendar{}), Phones: phones,
		Now:   func() time.Time { return testNow },
		NewID: func() string { return fmt.Sprintf("dec-%d", n.Add(1)) },
	})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestPanicInDecisionIsContained: a dependency that panics during one
// decision gets that request the documented 503 policy_check_unavailable,
// under the decision id the client sees, logged at error level with that id
// and the stack, and counted; the next request is decided normally.
func TestPanicInDecisionIsContained(t *testing.T) {
	c, srv, logs := panicServer(t, panickyDecider(t))
	ctx := context.Background()

	resp, err := c.Check(ctx, checkRequest("POST", "/api/send-message", "Bearer key-demo", sendBody("inst_12345", recipient, "PANIC PLEASE", "panic")))
	if err != nil {
		t.Fatalf("Check with a panicking policy: %v, want the 503 answer", err)
	}
	denied := resp.GetDeniedResponse()
	if denied == nil {
		t.Fatalf("Check with a panicking policy = %v, want a denial", resp)
	}
	if denied.Status.Code != 503 || resp.Status.Code != 7 {
		t.Errorf("status = %d (grpc %d), want 503 (grpc 7)", denied.Status.Code, resp.Status.Code)
	}
	golden(t, "policy_check_unavailable.json", []byte(denied.Body))
	// The decision id is drawn again when the panic is recovered (the
	// Result under way is lost with the panic).
	id := headerMap(denied.Headers)[HeaderDecisionID]
	want := map[string]string{"content-type": "application/json", HeaderDecisionID: id, "retry-after": "1"}
	if got := headerMap(denied.Headers); id == "" || dump(got) != dump(want) {
		t.Errorf("headers =\n%swant\n%s", dump(got), dump(want))
	}

	var found bool
	for _, rec := range logs.records(t) {
		if rec["msg"] != "decision panicked" {
			continue
		}
		found = true
		stack, _ := rec["stack"].(string)
		if rec["level"] != "ERROR" || rec["decision_id"] != id || !strings.Contains(fmt.Sprint(rec["panic"]), "nil map") ||
			!strings.Contains(stack, "panickyPolicy.Eval") {
			t.Errorf("panic log = %v, want level ERROR, decision_id %s, the panic and a stack through panickyPolicy.Eval", rec, id)
		}
	}
	if !found {
		t.Errorf("no \"decision panicked\" log record in %v", logs.records(t))
	}
	if n := testutil.ToFloat64(srv.Panics("decide")); n != 1 {
		t.Errorf("sendguard_panics_total{where=decide} = %v, want 1", n)
	}
	if n := testutil.ToFloat64(srv.m.failures); n != 1 {
		t.Errorf("sendguard_decision_failures_total = %v, want 1", n)
	}

	resp, err = c.Check(ctx, checkRequest("POST", "/api/send-message", "Bearer key-demo", sendBody("inst_12345", recipient, okMessage, "transactional")))
	if err != nil || resp.GetOkResponse() == nil {
		t.Fatalf("Check after the panic = %v, %v; want the send allowed", resp, err)
	}
	if got := headerMap(resp.GetOkResponse().ResponseHeadersToAdd)[HeaderDecisionID]; got == "" || got == id {
		t.Errorf("decision id after the panic = %q, want a fresh one (not %q)", got, id)
	}
	if n := testutil.ToFloat64(srv.Panics("decide")); n != 1 {
		t.Errorf("sendguard_panics_total{where=decide} after a normal request = %v, want 1", n)
	}
}

type panickingDecider struct{ calls atomic.Int64 }

func (p *panickingDecider) Decide(ctx context.Context, r decision.Request) (decision.Result, error) {
	if p.calls.Add(1) == 1 {
		panic("decider broke its contract")
	}
	return decision.Result{ID: "dec-next", Allowed: true}, nil
}

// TestPanicAroundDecisionIsContained: Check's own backstop answers a panic
// that escapes the decider (here a decider that does not recover) with the
// same 503, under a fresh decision id that the log carries too.
func TestPanicAroundDecisionIsContained(t *testing.T) {
	c, srv, logs := panicServer(t, &panickingDecider{})
	resp, err := c.Check(context.Background(), checkRequest("POST", "/api/send-message", "Bearer key-demo", "{}"))
	if err != nil {
		t.Fatalf("Check with a panicking decider: %v, want the 503 answer", err)
	}
	denied := resp.GetDeniedResponse()
	if denied == nil || denied.Status.Code != 503 {
		t.Fatalf("Check with a panicking decider = %v, want a 503 denial", resp)
	}
	golden(t, "policy_check_unavailable.json", []byte(denied.Body))
	id := headerMap(denied.Headers)[HeaderDecisionID]
	if id == "" {
		t.Fatalf("no %s on the 503", HeaderDecisionID)
	}
	var logged bool
	for _, rec := range logs.records(t) {
		if rec["msg"] == "check panicked" && rec["level"] == "ERROR" && rec["decision_id"] == id && strings.Contains(fmt.Sprint(rec["stack"]), "Decide") {
			logged = true
		}
	}
	if !logged {
		t.Errorf("no ERROR \"check panicked\" record with decision_id %s and a stack in %v", id, logs.records(t))
	}
	if n := testutil.ToFloat64(srv.Panics("check")); n != 1 {
		t.Errorf("sendguard_panics_total{where=check} = %v, want 1", n)
	}
	if n := testutil.ToFloat64(srv.m.failures); n != 1 {
		t.Errorf("sendguard_decision_failures_total = %v, want 1", n)
	}
	resp, err = c.Check(context.Background(), checkRequest("POST", "/api/send-message", "Bearer key-demo", "{}"))
	if err != nil || resp.GetOkResponse() == nil {
		t.Errorf("Check after the panic = %v, %v; want allowed", resp, err)
	}
}
