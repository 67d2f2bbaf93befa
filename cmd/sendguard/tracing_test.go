package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	collectorpb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"

	"github.com/sendguard/sendguard/internal/tracing"
)

// collector is an in-process OTLP/gRPC trace collector that records every
// span it is sent.
type collector struct {
	collectorpb.UnimplementedTraceServiceServer
	mu       sync.Mutex
	requests int
	spans    []collected
}

// collected is one exported span with its resource's service.name.
type collected struct {
	service string
	span    *tracepb.Span
}

func (c *collector) Export(_ context.Context, req *collectorpb.ExportTraceServiceRequest) (*collectorpb.ExportTraceServiceResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.requests++
	for _, rs := range req.GetResourceSpans() {
		service := ""
		for _, kv := range rs.GetResource().GetAttributes() {
			if kv.GetKey() == "service.name" {
				service = kv.GetValue().GetStringValue()
			}
		}
		for _, ss := range rs.GetScopeSpans() {
			for _, sp := range ss.GetSpans() {
				c.spans = append(c.spans, collected{service, sp})
			}
		}
	}
	return &collectorpb.ExportTraceServiceResponse{}, nil
}

func (c *collector) snapshot() (int, []collected) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.requests, append([]collected(nil), c.spans...)
}

// startCollector serves a collector on a loopback port until the test ends.
func startCollector(t *testing.T) (*collector, string) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &collector{}
	gs := grpc.NewServer()
	collectorpb.RegisterTraceServiceServer(gs, c)
	go gs.Serve(lis)
	t.Cleanup(gs.Stop)
	return c, lis.Addr().String()
}

// served is one `sendguard serve` run in the process.
type served struct {
	t         *testing.T
	client    authv3.AuthorizationClient
	adminAddr string
	logs      *syncWriter
	stop      func()
}

// serveFor runs serve on cfg with env until stop (or the test's end), and
// waits for it to serve. stop cancels it and waits for it to return nil.
func serveFor(t *testing.T, cfg string, env map[string]string) *served {
	t.Helper()
	grpcAddr, adminAddr := freeAddr(t), freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	logs := &syncWriter{w: &bytes.Buffer{}}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--config", cfg, "--grpc-addr", grpcAddr, "--admin-addr", adminAddr},
			func(k string) string { return env[k] }, nil, &syncWriter{w: &bytes.Buffer{}}, logs)
	}()
	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	s := &served{t: t, client: authv3.NewAuthorizationClient(conn), adminAddr: adminAddr, logs: logs}
	s.stop = func() {
		once.Do(func() {
			conn.Close()
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("serve: %v\n%s", err, logs.String())
				}
			case <-time.After(30 * time.Second):
				t.Error("serve did not stop")
			}
		})
	}
	t.Cleanup(s.stop)
	waitServing(t, ctx, healthpb.NewHealthClient(conn), logs.String)
	return s
}

// check sends one CheckRequest for method path with headers and body, and
// returns the decision id of the answer.
func (s *served) check(ctx context.Context, method, path string, headers map[string]string, body []byte) string {
	s.t.Helper()
	resp, err := s.client.Check(ctx, &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{
		Http: &authv3.AttributeContext_HttpRequest{Method: method, Path: path, Headers: headers, RawBody: body}}}})
	if err != nil {
		s.t.Fatalf("Check(%s %s): %v", method, path, err)
	}
	hs := resp.GetOkResponse().GetResponseHeadersToAdd()
	if d := resp.GetDeniedResponse(); d != nil {
		hs = d.GetHeaders()
	}
	for _, h := range hs {
		if h.GetHeader().GetKey() == "x-sendguard-decision-id" {
			return h.GetHeader().GetValue()
		}
	}
	s.t.Fatalf("Check(%s %s) = %v: no decision id", method, path, resp)
	return ""
}

// traceparent is a sampled W3C traceparent with a random trace and span id.
func traceparent() (header, traceID, spanID string) {
	var b [24]byte
	rand.Read(b[:])
	traceID, spanID = hex.EncodeToString(b[:16]), hex.EncodeToString(b[16:])
	return "00-" + traceID + "-" + spanID + "-01", traceID, spanID
}

func sendHeaders(tp string) map[string]string {
	h := map[string]string{"authorization": "Bearer demo-key-starter", "content-type": "application/json"}
	if tp != "" {
		h["traceparent"] = tp
	}
	return h
}

func sendJSON(phone, message, purpose string) []byte {
	b, _ := json.Marshal(map[string]string{"instance_id": "inst_12345", "phone": phone, "message": message, "message_purpose": purpose})
	return b
}

func attrs(sp *tracepb.Span) map[string]string {
	m := map[string]string{}
	for _, kv := range sp.GetAttributes() {
		switch v := kv.GetValue().GetValue().(type) {
		case *commonpb.AnyValue_StringValue:
			m[kv.GetKey()] = v.StringValue
		case *commonpb.AnyValue_IntValue:
			m[kv.GetKey()] = fmt.Sprint(v.IntValue)
		case *commonpb.AnyValue_BoolValue:
			m[kv.GetKey()] = fmt.Sprint(v.BoolValue)
		default:
			m[kv.GetKey()] = fmt.Sprint(v)
		}
	}
	return m
}

func hexID(b []byte) string { return hex.EncodeToString(b) }

// byTrace indexes spans by trace id, then by name.
func byTrace(spans []collected) map[string]map[string][]*tracepb.Span {
	out := map[string]map[string][]*tracepb.Span{}
	for _, c := range spans {
		tid := hexID(c.span.GetTraceId())
		if out[tid] == nil {
			out[tid] = map[string][]*tracepb.Span{}
		}
		out[tid][c.span.GetName()] = append(out[tid][c.span.GetName()], c.span)
	}
	return out
}

// checkTrace asserts that trace holds exactly one Check span with parent
// (hex; "" for a root), the decision id, instance, result and code, and
// one child span of it for each of children.
func checkTrace(t *testing.T, trace map[string][]*tracepb.Span, parent, id, instance, result, code string, children ...string) *tracepb.Span {
	t.Helper()
	checks := trace[tracing.SpanCheck]
	if len(checks) != 1 {
		t.Errorf("decision %s: %d %s spans in its trace, want 1 (trace: %v)", id, len(checks), tracing.SpanCheck, trace)
		return nil
	}
	sp := checks[0]
	if got := hexID(sp.GetParentSpanId()); got != parent {
		t.Errorf("decision %s: Check span's parent = %q, want %q", id, got, parent)
	}
	a := attrs(sp)
	want := map[string]string{"sendguard.decision_id": id, "sendguard.result": result}
	if instance != "" {
		want["sendguard.instance_id"] = instance
	}
	if code != "" {
		want["sendguard.code"] = code
	}
	for k, v := range want {
		if a[k] != v {
			t.Errorf("decision %s: Check span attribute %s = %q, want %q (all: %v)", id, k, a[k], v, a)
		}
	}
	if code == "" && a["sendguard.code"] != "" {
		t.Errorf("decision %s: Check span has code %q, want none", id, a["sendguard.code"])
	}
	for _, name := range children {
		kids := trace[name]
		if len(kids) != 1 || !bytes.Equal(kids[0].GetParentSpanId(), sp.GetSpanId()) {
			t.Errorf("decision %s: %d %s spans, want 1 child of the Check span", id, len(kids), name)
			continue
		}
		if got := attrs(kids[0])["sendguard.instance_id"]; got != instance {
			t.Errorf("decision %s: %s span instance = %q, want %q", id, name, got, instance)
		}
	}
	return sp
}

// noSecrets fails when any span attribute holds the API key, a phone's
// digits or a message text.
func noSecrets(t *testing.T, spans []collected, secrets ...string) {
	t.Helper()
	for _, c := range spans {
		for k, v := range attrs(c.span) {
			for _, s := range secrets {
				if strings.Contains(v, s) {
					t.Errorf("span %s attribute %s = %q holds %q", c.span.GetName(), k, v, s)
				}
			}
		}
	}
}

func metaSignature(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// TestServeTracing: with tracing pointed at an in-process OTLP collector,
// a Check carrying the client's traceparent in the CheckRequest's HTTP
// headers reaches the collector as a span of that trace whose parent is
// the client's span, with the decision id, instance, result and code, and
// child spans for the store read, the policy evaluation and the store
// take; a denial carries its code; a Check without a traceparent starts a
// trace; a trace context in the gRPC metadata (Envoy tracing) is the
// parent when it is of the client's trace, and only linked when not; an
// event delivery is traced and its POST carries the span's traceparent.
// Serve's shutdown flushes every span. No attribute holds the key, a phone
// or a text.
func TestServeTracing(t *testing.T) {
	col, addr := startCollector(t)
	var (
		mu       sync.Mutex
		received []string // traceparents of the event POSTs
	)
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		received = append(received, r.Header.Get("traceparent"))
		mu.Unlock()
	}))
	defer receiver.Close()
	cfg := devstackConfig(t, t.TempDir(), fmt.Sprintf("tracing: {otlp_endpoint: %q, insecure: true, service_name: sendguard-test}\n"+
		"events: {receivers: [{name: hooks, url: %q, secret: hook-secret}]}\n", addr, receiver.URL))
	s := serveFor(t, cfg, nil)
	ctx := context.Background()

	const (
		phoneAllowed = "+966501234001"
		phoneDenied  = "+966501234002"
		phoneStop    = "+966501234003"
		textAllowed  = "طلبك رقم 1042 تم شحنه 📦"
		textDenied   = "आपका ऑर्डर भेज दिया गया है"
	)
	tpAllow, traceAllow, parentAllow := traceparent()
	idAllow := s.check(ctx, "POST", "/api/send-message", sendHeaders(tpAllow), sendJSON(phoneAllowed, textAllowed, "transactional"))
	tpDeny, traceDeny, parentDeny := traceparent()
	idDeny := s.check(ctx, "POST", "/api/send-message", sendHeaders(tpDeny), sendJSON(phoneDenied, textDenied, "marketing"))
	idRoot := s.check(ctx, "POST", "/api/send-message", sendHeaders(""), sendJSON(phoneAllowed, textAllowed, "transactional"))

	// Envoy tracing: its ext_authz span in the gRPC metadata, of the
	// client's trace; then of another trace than the client's.
	tpSame, traceSame, _ := traceparent()
	_, _, envoySpan := traceparent()
	mdSame := "00-" + traceSame + "-" + envoySpan + "-01"
	idSame := s.check(metadata.AppendToOutgoingContext(ctx, "traceparent", mdSame), "POST", "/api/send-message", sendHeaders(tpSame), sendJSON(phoneAllowed, textAllowed, "transactional"))
	tpOther, traceOther, parentOther := traceparent()
	mdOther, traceEnvoy, envoyOther := traceparent()
	idOther := s.check(metadata.AppendToOutgoingContext(ctx, "traceparent", mdOther), "POST", "/api/send-message", sendHeaders(tpOther), sendJSON(phoneAllowed, textAllowed, "transactional"))

	// An inbound STOP: the recipient.opted_out event is delivered.
	inbound, _ := json.Marshal(map[string]string{"instance_id": "inst_12345", "from": phoneStop, "message_text": "STOP", "timestamp": "2026-05-08T10:00:00Z"})
	s.check(ctx, "POST", "/webhooks/inbound", map[string]string{"content-type": "application/json",
		"x-hub-signature-256": metaSignature("demo-inbound-secret", inbound)}, inbound)
	deadline := time.Now().Add(20 * time.Second)
	for {
		mu.Lock()
		n := len(received)
		mu.Unlock()
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no event delivered\n%s", s.logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}

	s.stop() // flushes the batch: everything must be at the collector now
	_, spans := col.snapshot()
	traces := byTrace(spans)
	for _, c := range spans {
		if c.service != "sendguard-test" {
			t.Errorf("span %s of service %q, want sendguard-test", c.span.GetName(), c.service)
		}
	}
	if sp := checkTrace(t, traces[traceAllow], parentAllow, idAllow, "inst_12345", "allowed", "",
		tracing.SpanStoreRead, tracing.SpanPolicy, tracing.SpanStoreTake); sp != nil && sp.GetKind() != tracepb.Span_SPAN_KIND_SERVER {
		t.Errorf("Check span kind = %v, want server", sp.GetKind())
	}
	checkTrace(t, traces[traceDeny], parentDeny, idDeny, "inst_12345", "denied", "message_purpose_not_allowed",
		tracing.SpanStoreRead, tracing.SpanPolicy)
	if p := traces[traceDeny][tracing.SpanPolicy]; len(p) == 1 && attrs(p[0])["sendguard.code"] != "message_purpose_not_allowed" {
		t.Errorf("policy span attributes = %v, want its code", attrs(p[0]))
	}
	if len(traces[traceDeny][tracing.SpanStoreTake]) != 0 {
		t.Errorf("a policy denial took from the store: %v", traces[traceDeny][tracing.SpanStoreTake])
	}
	var rootTrace string
	for tid, tr := range traces {
		for _, sp := range tr[tracing.SpanCheck] {
			if attrs(sp)["sendguard.decision_id"] == idRoot {
				rootTrace = tid
			}
		}
	}
	if rootTrace == "" {
		t.Errorf("no Check span for the decision %s without a traceparent", idRoot)
	} else {
		checkTrace(t, traces[rootTrace], "", idRoot, "inst_12345", "allowed", "", tracing.SpanStoreRead, tracing.SpanPolicy, tracing.SpanStoreTake)
	}

	// Same trace: client → Envoy's span → otelgrpc's server span → Check.
	rpcName := "envoy.service.auth.v3.Authorization/Check"
	if rpc := traces[traceSame][rpcName]; len(rpc) != 1 || hexID(rpc[0].GetParentSpanId()) != envoySpan {
		t.Errorf("gRPC server span of the Envoy-traced Check = %v, want one, child of Envoy's span %s", rpc, envoySpan)
	} else if sp := checkTrace(t, traces[traceSame], hexID(rpc[0].GetSpanId()), idSame, "inst_12345", "allowed", "",
		tracing.SpanStoreRead, tracing.SpanPolicy, tracing.SpanStoreTake); sp != nil && sp.GetKind() != tracepb.Span_SPAN_KIND_INTERNAL {
		t.Errorf("Check span under otelgrpc's: kind %v, want internal", sp.GetKind())
	}
	// Another trace: the client's traceparent wins; Envoy's is linked.
	if sp := checkTrace(t, traces[traceOther], parentOther, idOther, "inst_12345", "allowed", ""); sp != nil {
		if l := sp.GetLinks(); len(l) != 1 || hexID(l[0].GetTraceId()) != traceEnvoy {
			t.Errorf("Check span links = %v, want one to Envoy's trace %s", l, traceEnvoy)
		}
	}
	if rpc := traces[traceEnvoy][rpcName]; len(rpc) != 1 || hexID(rpc[0].GetParentSpanId()) != envoyOther {
		t.Errorf("gRPC server span in Envoy's trace = %v, want one, child of %s", rpc, envoyOther)
	}

	// The event delivery: a client span whose traceparent the POST carried.
	var deliveries []*tracepb.Span
	for _, c := range spans {
		if c.span.GetName() == tracing.SpanEventDeliver {
			deliveries = append(deliveries, c.span)
		}
	}
	mu.Lock()
	first := received[0]
	mu.Unlock()
	if len(deliveries) == 0 {
		t.Errorf("no %s span", tracing.SpanEventDeliver)
	} else {
		d := deliveries[0]
		a := attrs(d)
		want := "00-" + hexID(d.GetTraceId()) + "-" + hexID(d.GetSpanId()) + "-01"
		if first != want || a["sendguard.event"] != "recipient.opted_out" || a["sendguard.receiver"] != "hooks" ||
			a["sendguard.event_id"] == "" || a["http.response.status_code"] != "200" || d.GetKind() != tracepb.Span_SPAN_KIND_CLIENT {
			t.Errorf("delivery span %v (kind %v) with POST traceparent %q, want the span's %q, the event, receiver, id and status", a, d.GetKind(), first, want)
		}
	}
	noSecrets(t, spans, "demo-key-starter", "501234001", "501234002", "501234003", textAllowed, textDenied, "STOP")
}

// TestServeTracingOff: with tracing off (no endpoint anywhere; a tracing
// block without one; OTEL_SDK_DISABLED=true over an endpoint variable)
// nothing reaches the collector; the endpoint variable alone turns it on.
func TestServeTracingOff(t *testing.T) {
	for _, tc := range []struct {
		name  string
		extra string
		env   func(addr string) map[string]string
		on    bool
	}{
		{name: "no tracing", env: func(string) map[string]string { return nil }},
		{name: "tracing block without an endpoint", extra: "tracing: {service_name: sendguard-test, sample_ratio: 1}\n",
			env: func(string) map[string]string { return nil }},
		{name: "OTEL_SDK_DISABLED", env: func(addr string) map[string]string {
			return map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://" + addr, "OTEL_SDK_DISABLED": "true"}
		}},
		{name: "OTEL_EXPORTER_OTLP_ENDPOINT turns it on", on: true, env: func(addr string) map[string]string {
			return map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://" + addr, "OTEL_SERVICE_NAME": "from-env"}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			col, addr := startCollector(t)
			s := serveFor(t, devstackConfig(t, t.TempDir(), tc.extra), tc.env(addr))
			tp, traceID, parent := traceparent()
			id := s.check(context.Background(), "POST", "/api/send-message", sendHeaders(tp), sendJSON("+966501234001", "Your order #1042 has shipped.", "transactional"))
			s.stop()
			requests, spans := col.snapshot()
			if !tc.on {
				if requests != 0 || len(spans) != 0 {
					t.Errorf("tracing off: the collector got %d requests, %d spans; want none", requests, len(spans))
				}
				return
			}
			checkTrace(t, byTrace(spans)[traceID], parent, id, "inst_12345", "allowed", "", tracing.SpanStoreRead, tracing.SpanPolicy, tracing.SpanStoreTake)
			if len(spans) == 0 || spans[0].service != "from-env" {
				t.Errorf("spans %v: want service from-env", spans)
			}
		})
	}
}

// TestServeTracingConcurrent: 32 goroutines send Checks at once, each with
// its own traceparent, Arabic, Hindi, Turkish, emoji and combining-mark
// messages, allowed and denied: every decision reaches the collector as
// exactly one Check span in its own trace, under its own parent, with its
// own decision id and children, and no attribute holds a phone or a text.
func TestServeTracingConcurrent(t *testing.T) {
	col, addr := startCollector(t)
	cfg := devstackConfig(t, t.TempDir(), fmt.Sprintf("tracing: {otlp_endpoint: %q, insecure: true}\nabuse: {auto_pause: {violations: -1}}\n", addr))
	s := serveFor(t, cfg, nil)
	texts := []string{"طلبك رقم 1042 تم شحنه 📦", "आपका ऑर्डर भेज दिया गया है", "Siparişiniz kargoya verildi 🚚", "Pedido 1042: su café está listo para recoger en la tienda de Espan\u0303a ✅"}
	type sent struct{ id, trace, parent, result, code string }
	const workers, each = 32, 4
	var mu sync.Mutex
	var all []sent
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				purpose, result, code := "transactional", "", ""
				if i%2 == 1 {
					purpose, result, code = "marketing", "denied", "message_purpose_not_allowed"
				}
				tp, tid, parent := traceparent()
				id := s.check(context.Background(), "POST", "/api/send-message", sendHeaders(tp),
					sendJSON(fmt.Sprintf("+9665098%02d%03d", w, i), texts[(w+i)%len(texts)], purpose))
				mu.Lock()
				all = append(all, sent{id, tid, parent, result, code})
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	s.stop()
	_, spans := col.snapshot()
	traces := byTrace(spans)
	for _, d := range all {
		tr := traces[d.trace]
		if d.result == "" { // allowed, or throttled by the starter plan's bucket
			checks := tr[tracing.SpanCheck]
			if len(checks) != 1 {
				t.Errorf("decision %s: %d Check spans", d.id, len(checks))
				continue
			}
			d.result, d.code = attrs(checks[0])["sendguard.result"], attrs(checks[0])["sendguard.code"]
			if d.result == "allowed" && d.code != "" || d.result == "denied" && d.code != "sending_throttled" {
				t.Errorf("decision %s: result %s code %s, want allowed or sending_throttled", d.id, d.result, d.code)
			}
			checkTrace(t, tr, d.parent, d.id, "inst_12345", d.result, d.code, tracing.SpanStoreRead, tracing.SpanPolicy, tracing.SpanStoreTake)
			continue
		}
		checkTrace(t, tr, d.parent, d.id, "inst_12345", d.result, d.code, tracing.SpanStoreRead, tracing.SpanPolicy)
	}
	if len(traces) != workers*each {
		t.Errorf("%d traces for %d decisions", len(traces), workers*each)
	}
	noSecrets(t, spans, append(texts, "demo-key-starter", "+9665098", "9665098")...)
}
