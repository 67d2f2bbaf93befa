package authz

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc"

	"github.com/sendguard/sendguard/internal/decision"
)

// inboundDecider answers every request as an observed inbound one with a
// fixed outcome, and keeps the requests it was asked about.
type inboundDecider struct {
	result string
	mu     sync.Mutex
	got    []decision.Request
}

func (d *inboundDecider) Decide(_ context.Context, r decision.Request) (decision.Result, error) {
	d.mu.Lock()
	d.got = append(d.got, r)
	d.mu.Unlock()
	return decision.Result{ID: "dec-in", Allowed: true, Inbound: true, InboundResult: d.result}, nil
}

// TestInboundSignatureHeaderReachesDecision: the request's headers, by
// the lower-case names Envoy sends, reach the decision (it reads the
// webhook's signature there).
func TestInboundSignatureHeaderReachesDecision(t *testing.T) {
	d := &inboundDecider{result: decision.InboundRecorded}
	req := checkRequest("POST", "/webhooks/inbound", "", `{"message_text":"STOP"}`)
	req.Attributes.Request.Http.Headers["x-hub-signature-256"] = "sha256=abc"
	if _, err := NewServer(d, nil).Check(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	if len(d.got) != 1 || d.got[0].Header("x-hub-signature-256") != "sha256=abc" {
		t.Errorf("decision.Request headers = %v, want x-hub-signature-256 passed", d.got)
	}
}

// TestInboundSignatureHeaderOverTheWire: so they do over gRPC, where the
// server reads them from the wire as a list (decision.Request.HeaderList).
func TestInboundSignatureHeaderOverTheWire(t *testing.T) {
	d := &inboundDecider{result: decision.InboundRecorded}
	gs := grpc.NewServer(ServerCodec())
	NewServer(d, nil).Register(gs)
	c := authv3.NewAuthorizationClient(serveBufconn(t, gs))
	req := checkRequest("POST", "/webhooks/inbound", "", `{"message_text":"STOP"}`)
	req.Attributes.Request.Http.Headers["x-hub-signature-256"] = "sha256=مرحبا"
	if _, err := c.Check(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	if len(d.got) != 1 || d.got[0].Header("x-hub-signature-256") != "sha256=مرحبا" || d.got[0].Header("content-type") != "application/json" {
		t.Errorf("decision.Request headers = %v, want x-hub-signature-256 and content-type passed", d.got)
	}
}

// TestInboundMetricsAndWarnings: every observed inbound request is counted
// in sendguard_inbound_total by its result; one whose signature does not
// verify is still allowed (forwarded to the webhook) and logged at warn,
// never with its body.
func TestInboundMetricsAndWarnings(t *testing.T) {
	const secretText = "STOP-from-a-forger-إيقاف"
	for _, tc := range []struct {
		result string
		warn   bool
	}{
		{decision.InboundRecorded, false},
		{decision.InboundIgnored, false},
		{decision.InboundUnsigned, true},
		{decision.InboundBadSignature, true},
		{decision.InboundPartialBody, true},
	} {
		t.Run(tc.result, func(t *testing.T) {
			var logs bytes.Buffer
			reg := prometheus.NewRegistry()
			srv := NewServer(&inboundDecider{result: tc.result}, slog.New(slog.NewJSONHandler(&logs, nil))).WithMetrics(reg)
			resp, err := srv.Check(context.Background(), checkRequest("POST", "/webhooks/inbound", "", `{"message_text":"`+secretText+`"}`))
			if err != nil {
				t.Fatal(err)
			}
			if resp.GetOkResponse() == nil {
				t.Errorf("Check(inbound %s) = %v, want allowed: the webhook decides its own answer", tc.result, resp)
			}
			if n := testutil.ToFloat64(srv.m.inbound.WithLabelValues(tc.result)); n != 1 {
				t.Errorf("sendguard_inbound_total{result=%q} = %v, want 1", tc.result, n)
			}
			if n := testutil.CollectAndCount(srv.m.inbound); n != 6 {
				t.Errorf("sendguard_inbound_total has %d series, want all 6 results exported", n)
			}
			l := logs.String()
			if got := strings.Contains(l, `"level":"WARN"`) && strings.Contains(l, tc.result); got != tc.warn {
				t.Errorf("Check(inbound %s) logged %q; want a warning: %v", tc.result, l, tc.warn)
			}
			if strings.Contains(l, "STOP-from") {
				t.Errorf("Check(inbound %s) logged the body: %s", tc.result, l)
			}
		})
	}
}
