package authz

import (
	"context"
	"os"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"google.golang.org/protobuf/proto"

	"github.com/sendguard/sendguard/internal/decision"
	"github.com/sendguard/sendguard/internal/keys"
	"github.com/sendguard/sendguard/internal/limiter"
	"github.com/sendguard/sendguard/internal/model"
	"github.com/sendguard/sendguard/internal/phone"
	"github.com/sendguard/sendguard/internal/policy"
	"github.com/sendguard/sendguard/internal/risk"
	"github.com/sendguard/sendguard/internal/store"
)

// benchServer is the Server as serve builds it (metrics registered, UUIDv7
// decision ids, the content scanner with the embedded content model and
// serve's text caches), on the embedded policies and a memory store.
func benchServer(b testing.TB) *Server {
	b.Helper()
	ctx := context.Background()
	content, err := model.Embedded(model.Outbound)
	if err != nil {
		b.Fatal(err)
	}
	scanner := risk.New(risk.Options{Model: content, CacheSize: 8192})
	engine, err := policy.New(ctx, policy.Options{Scan: scanner.Scan})
	if err != nil {
		b.Fatal(err)
	}
	phones, err := phone.New(phone.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(phones.Close)
	unlimited := limiter.Limits{Daily: 1 << 62, Monthly: 1 << 62, Rate: 1e12, Burst: 1 << 40}
	d, err := decision.New(decision.Options{
		Keys: keys.NewKeyring([]keys.Entry{{SHA256: keys.Hash("key-demo"), Key: keys.Key{ID: "k1", Account: "demo"}}}),
		Instances: map[string]decision.Instance{
			"inst_12345": {ID: "inst_12345", Account: "demo", Plan: "starter", Limits: unlimited},
		},
		Policy: engine, State: store.NewMemory(limiter.Calendar{}), Phones: phones,
		Scanner: scanner, BodyKeyCache: 8192,
	})
	if err != nil {
		b.Fatal(err)
	}
	return NewServer(d, nil).WithMetrics(prometheus.NewRegistry())
}

// BenchmarkCheckServer is Check called in the process, without the gRPC
// wire: the decision plus what Check adds (request conversion, the
// response's protobuf, metrics, logging, the decision id). Compare with
// internal/decision's BenchmarkDecideAllow and BenchmarkDecideDenyPurpose.
func BenchmarkCheckServer(b *testing.B) {
	s := benchServer(b)
	for _, tc := range []struct {
		name string
		req  *authv3.CheckRequest
		ok   bool
	}{
		{"allow", checkRequest("POST", "/api/send-message", "Bearer key-demo", sendBody("inst_12345", recipient, okMessage, "transactional")), true},
		{"deny-purpose", checkRequest("POST", "/api/send-message", "Bearer key-demo", sendBody("inst_12345", recipient, okMessage, "marketing")), false},
		{"deny-key", checkRequest("POST", "/api/send-message", "Bearer nope", sendBody("inst_12345", recipient, okMessage, "transactional")), false},
	} {
		b.Run(tc.name, func(b *testing.B) {
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				resp, err := s.Check(ctx, tc.req)
				if err != nil || (resp.GetOkResponse() != nil) != tc.ok {
					b.Fatal(resp, err)
				}
			}
		})
	}
}

// TestCheckAllocations: what Check adds to the decision (request
// conversion, the response's protobuf, metrics, the debug log that is
// off, the decision id) is at most 2 allocations, on allows and on
// denials: the response is one allocation with the parts every response
// shares built once (a denial's body string is the second), the metric
// counters are looked up without allocating, a disabled debug log builds
// no arguments, and the late-refund check does not move the Result to the
// heap (it did: one allocation of about 800 bytes per Check).
func TestCheckAllocations(t *testing.T) {
	s := benchServer(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		req  *authv3.CheckRequest
	}{
		{"allow", checkRequest("POST", "/api/send-message", "Bearer key-demo", sendBody("inst_12345", recipient, okMessage, "transactional"))},
		{"deny from Rego", checkRequest("POST", "/api/send-message", "Bearer key-demo", sendBody("inst_12345", recipient, okMessage, "marketing"))},
		{"deny unknown key", checkRequest("POST", "/api/send-message", "Bearer nope", sendBody("inst_12345", recipient, okMessage, "transactional"))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := requestOf(tc.req)
			s.Check(ctx, tc.req) // warm the policy memo and the counters
			decide := testing.AllocsPerRun(200, func() { s.decider.Decide(ctx, in) })
			check := testing.AllocsPerRun(200, func() { s.Check(ctx, tc.req) })
			limit := 2.0
			if raceEnabled { // the pools' random drops: about one either way
				limit++
			}
			if check-decide > limit {
				t.Errorf("Check(%s) = %.0f allocations, Decide = %.0f: Check adds %.0f, want at most %.0f", tc.name, check, decide, check-decide, limit)
			}
		})
	}
}

// BenchmarkCheckAllowRateLimit is BenchmarkCheckAllow with the RateLimit
// fields on: what response.ratelimit_headers costs an allowed send.
func BenchmarkCheckAllowRateLimit(b *testing.B) {
	c, _, _ := clientWith(b, limiter.Limits{Daily: 1 << 62, Monthly: 1 << 62, Rate: 1e12, Burst: 1 << 40}, func(o *decision.Options) { o.RateLimitHeaders = true })
	req := checkRequest("POST", "/api/send-message", "Bearer key-demo", sendBody("inst_12345", recipient, okMessage, "transactional"))
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		resp, err := c.Check(ctx, req)
		if err != nil || len(resp.GetOkResponse().GetResponseHeadersToAdd()) != 3 {
			b.Fatal(resp, err)
		}
	}
}

// BenchmarkCheckServerTracing is BenchmarkCheckServer with tracing on, the
// client's traceparent in the request: every request sampled (the Check
// span and its three children, handed to a batch processor whose exporter
// discards them), and none (sample ratio 0, no traceparent: the Check span
// is not recording, so the decision makes no child spans). Compare with
// BenchmarkCheckServer, tracing off.
func BenchmarkCheckServerTracing(b *testing.B) {
	for _, tc := range []struct {
		name        string
		ratio       float64
		traceparent string
	}{
		{"sampled", 1, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
		{"unsampled", 0, ""},
	} {
		b.Run(tc.name, func(b *testing.B) {
			tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(tracetest.NewNoopExporter()),
				sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(tc.ratio))))
			b.Cleanup(func() { tp.Shutdown(context.Background()) })
			s := benchServer(b).WithTracing(tp.Tracer("bench"), propagation.TraceContext{})
			s.decider.(*decision.Decider).SetTracer(tp.Tracer("bench"))
			req := checkRequest("POST", "/api/send-message", "Bearer key-demo", sendBody("inst_12345", recipient, okMessage, "transactional"))
			if tc.traceparent != "" {
				req.Attributes.Request.Http.Headers["traceparent"] = tc.traceparent
			}
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				resp, err := s.Check(ctx, req)
				if err != nil || resp.GetOkResponse() == nil {
					b.Fatal(resp, err)
				}
			}
		})
	}
}

// BenchmarkCheckEnvoy is BenchmarkCheckAllow with a send Envoy sent
// (testdata/envoy-check-1.bin: the peers' addresses, the request time,
// 14 headers, the raw body, metadata): what the gRPC wire costs a real
// request.
func BenchmarkCheckEnvoy(b *testing.B) {
	c, _, _ := clientWith(b, limiter.Limits{Daily: 1 << 62, Monthly: 1 << 62, Rate: 1e12, Burst: 1 << 40})
	msg, err := os.ReadFile("testdata/envoy-check-1.bin")
	if err != nil {
		b.Fatal(err)
	}
	var req authv3.CheckRequest
	if err := proto.Unmarshal(msg, &req); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		resp, err := c.Check(ctx, &req)
		if err != nil || resp.GetOkResponse() == nil {
			b.Fatal(resp, err)
		}
	}
}
