// Package authz is sendguard's Envoy ext_authz v3 gRPC service. It is thin:
// Check turns a CheckRequest into a decision.Request, decides, and turns the
// decision.Result into a CheckResponse. Envoy protobuf types stay here.
// Over gRPC (Register, ServerCodec) the decision.Request is read straight
// from the wire bytes (decodeCheck, wire.go), not from an unmarshalled
// CheckRequest; both roads meet before the decision.
//
// An allowed send goes upstream with x-sendguard-decision-id,
// x-sendguard-risk-score, x-sendguard-purpose and x-sendguard-phone (the
// recipient in E.164, as sendguard checked it) set with overwrite
// semantics, so a client cannot spoof them; in shadow mode a would-be
// denial is forwarded like that too, with x-sendguard-shadow-decision: <code>.
// Every response to the client, allowed or denied, carries
// x-sendguard-decision-id; an allowed send's also carries the Result's
// Headers (RateLimit and RateLimit-Policy, when the decider is configured to
// answer them). When the decision
// itself fails (a store or the policy is broken) Check fails closed with the
// documented policy_check_unavailable body; so it does when the decision
// panics: the panic is recovered per request, logged at error level with
// the decision id and the stack, and counted, and the process carries on.
//
// With tracing on (WithTracing), each Check runs in a sendguard.check span
// that continues the client's W3C traceparent, read from the HTTP request
// headers Envoy sends in the CheckRequest (see startSpan for when Envoy's
// own span wins), and ends with the decision id, instance, result and code.
package authz

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/genproto/googleapis/rpc/code"
	"google.golang.org/genproto/googleapis/rpc/status"

	"github.com/sendguard/sendguard/internal/catalog"
	"github.com/sendguard/sendguard/internal/decision"
	"github.com/sendguard/sendguard/internal/tracing"
)

// Header names sendguard sets.
const (
	HeaderDecisionID = "x-sendguard-decision-id"
	HeaderRiskScore  = "x-sendguard-risk-score"
	HeaderPurpose    = "x-sendguard-purpose"
	// HeaderPhone is the recipient sendguard checked, in E.164: a sender
	// that sends to it sends to exactly the number that was checked.
	HeaderPhone = "x-sendguard-phone"
	// HeaderInstance is the instance an allowed send was decided for: with
	// the decision id it names the refund receipt on the response path
	// (see ResponseServer and AttrInstance).
	HeaderInstance = "x-sendguard-instance-id"
	// headerPartialBody is set by Envoy when with_request_body cut the body.
	headerPartialBody = "x-envoy-auth-partial-body"
)

type decider interface {
	Decide(ctx context.Context, r decision.Request) (decision.Result, error)
}

// Server implements envoy.service.auth.v3.Authorization.
type Server struct {
	authv3.UnimplementedAuthorizationServer
	decider decider
	log     *slog.Logger
	m       *metrics

	tracer trace.Tracer // nil: tracing off, Check creates nothing
	prop   propagation.TextMapPropagator

	late         *ResponseServer // nil: a decision Envoy gave up on keeps what it took
	storeRefunds chan struct{}   // a slot per refund of a failed take in flight
}

// WithLateRefunds makes a send that Envoy gave up on before it was decided
// give back what its decision took, through r's refunds (see
// ResponseServer.WithRefunds): when Check's context is done by the time the
// decision is made (Envoy's ext_authz timeout passed; the grpc-timeout it
// sends is the call's deadline here), Envoy has already answered the client
// 403 or 503 and will never forward the send, so a decision that counted it
// (allowed, or failed after the store may have counted it) is refunded at
// once. A decision answered just before Envoy's own timer fired is not:
// sendguard's deadline is the later of the two.
func (s *Server) WithLateRefunds(r *ResponseServer) *Server {
	s.late, s.storeRefunds = r, make(chan struct{}, maxStoreRefunds)
	return s
}

// lateRefund refunds res when Envoy gave up on it (see WithLateRefunds),
// and when the store's take failed after it may have counted the send
// (decision.Result.TakeFailed): the client is answered
// policy_check_unavailable and may send again, which must not cost twice.
// That refund runs in the background, at most maxStoreRefunds at once (a
// store that fails every take is not sent twice the calls), so the 503
// does not wait for it; one that finds no receipt refunds nothing.
func (s *Server) lateRefund(ctx context.Context, res decision.Result, failed bool) {
	if s.late == nil || !res.Send || res.Instance == "" || res.ID == "" {
		return
	}
	switch {
	case ctx.Err() != nil && (res.Allowed || failed):
		s.late.refund(ctx, res.Instance, res.ID, 0, "ext_authz_timeout")
	case failed && res.TakeFailed:
		select {
		case s.storeRefunds <- struct{}{}:
		default:
			s.late.skipped("store_error")
			return
		}
		// The goroutine takes the two strings, not res: a closure over res
		// moved every Check's Result (about 800 bytes) to the heap.
		instance, id := res.Instance, res.ID
		go func() {
			defer func() { <-s.storeRefunds }()
			s.late.refund(context.WithoutCancel(ctx), instance, id, 0, "store_error")
		}()
	}
}

// maxStoreRefunds bounds the refunds of failed takes in flight.
const maxStoreRefunds = 64

type metrics struct {
	results  *prometheus.CounterVec
	byResult sync.Map // result label -> prometheus.Counter, so a decision looks its counter up without allocating
	failures prometheus.Counter
	seconds  prometheus.Histogram
	panics   *prometheus.CounterVec
	inbound  *prometheus.CounterVec
	shadow   *prometheus.CounterVec
}

// WithMetrics registers the server's Prometheus metrics on reg:
//
//	sendguard_decisions_total{result}     allowed, passthrough, or the error code
//	sendguard_decision_failures_total     could not decide (a store or the policy
//	                                      failed); answered policy_check_unavailable
//	sendguard_decision_seconds            time to decide, Envoy's wait excluded
//	sendguard_panics_total{where}         panics recovered: decide (inside the
//	                                      decision), check (in Check around it),
//	                                      admin (an admin handler, see Panics)
//	sendguard_inbound_total{result}       observed inbound webhook requests:
//	                                      recorded, ignored, unsigned,
//	                                      bad_signature, partial_body, failed
//	sendguard_shadow_denials_total{code}  would-be denials forwarded in shadow
//	                                      mode (also in decisions_total)
func (s *Server) WithMetrics(reg prometheus.Registerer) *Server {
	s.m = &metrics{
		results: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sendguard_decisions_total", Help: "Decisions by result: allowed, passthrough, or the error code.",
		}, []string{"result"}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sendguard_decision_failures_total", Help: "Requests sendguard could not decide (store or policy failure), answered policy_check_unavailable.",
		}),
		seconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "sendguard_decision_seconds", Help: "Time to decide one request.",
			Buckets: []float64{.00001, .000025, .00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25},
		}),
	}
	s.m.panics = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sendguard_panics_total", Help: "Panics recovered, by where: decide, check, admin. Each request was answered with an error and the process carried on.",
	}, []string{"where"})
	for _, w := range []string{"decide", "check", "admin"} {
		s.m.panics.WithLabelValues(w) // export zeros, so that an alert on increase() sees the first one
	}
	s.m.inbound = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sendguard_inbound_total", Help: "Inbound webhook requests observed, by result: recorded, ignored (verified but not a readable message of a known instance), unsigned, bad_signature, partial_body (none of these three recorded anything), failed (the store failed; answered 503).",
	}, []string{"result"})
	for _, r := range []string{decision.InboundRecorded, decision.InboundIgnored, decision.InboundUnsigned, decision.InboundBadSignature, decision.InboundPartialBody, decision.InboundFailed} {
		s.m.inbound.WithLabelValues(r) // export zeros: an alert on increase() sees the first forgery
	}
	s.m.shadow = newShadowMetric()
	reg.MustRegister(s.m.results, s.m.failures, s.m.seconds, s.m.panics, s.m.inbound, s.m.shadow)
	return s
}

// Panics returns the sendguard_panics_total counter for where ("admin":
// pass it to admin.Options.Panics), or nil before WithMetrics.
func (s *Server) Panics(where string) prometheus.Counter {
	if s.m == nil {
		return nil
	}
	return s.m.panics.WithLabelValues(where)
}

func (s *Server) observe(start time.Time, res decision.Result, err error) {
	if s.m == nil {
		return
	}
	s.m.seconds.Observe(time.Since(start).Seconds())
	if res.Inbound && res.InboundResult != "" {
		s.m.inbound.WithLabelValues(res.InboundResult).Inc()
	}
	switch {
	case err != nil:
		s.m.failures.Inc()
		s.m.result(string(catalog.PolicyCheckUnavailable)).Inc()
	case !res.Send:
		s.m.result("passthrough").Inc()
	case res.Allowed:
		s.m.result("allowed").Inc()
	default:
		s.m.result(string(res.Code)).Inc()
		if res.Shadow {
			s.m.shadow.WithLabelValues(string(res.Code)).Inc()
		}
	}
}

// result is the sendguard_decisions_total counter of one result.
func (m *metrics) result(r string) prometheus.Counter {
	if c, ok := m.byResult.Load(r); ok {
		return c.(prometheus.Counter)
	}
	c := m.results.WithLabelValues(r)
	m.byResult.Store(r, c)
	return c
}

// NewServer returns a Server deciding with d and logging to log (nil: discard).
func NewServer(d decider, log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{decider: d, log: log}
}

// Check answers one ext_authz request. It never returns an error: a failure
// to decide is answered as a denial, so the client gets the documented JSON.
// A panic, in the decision (decision.ErrPanic) or around it here, is
// answered the same way (503 policy_check_unavailable), logged with the
// decision id the client sees and the stack, and counted. With tracing on
// (WithTracing) it runs in the Check span.
func (s *Server) Check(ctx context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	return s.check(ctx, requestOf(req))
}

// check is Check of the request in, read from a CheckRequest: by
// requestOf in the process, by decodeCheck from the gRPC wire (Register).
func (s *Server) check(ctx context.Context, in decision.Request) (resp *authv3.CheckResponse, err error) {
	var res decision.Result
	var span trace.Span
	failed := false
	if s.tracer != nil {
		// Its own copy of the headers: &in would move every Check's
		// request to the heap, traced or not.
		hs := decision.Request{Headers: in.Headers, HeaderList: in.HeaderList}
		ctx, span = s.startSpan(ctx, &hs)
	}
	defer func() {
		if p := recover(); p != nil {
			if res.ID == "" {
				res.ID = newID() // the id the client gets, for the span too
			}
			resp, err = s.recovered(ctx, res.ID, p), nil
			failed = true
		}
		if span != nil {
			endSpan(span, res, failed)
		}
	}()
	start := time.Now()
	res, err = s.decider.Decide(ctx, in)
	s.observe(start, res, err)
	s.lateRefund(ctx, res, err != nil)
	if err != nil {
		failed = true
		if pe := (*decision.PanicError)(nil); errors.As(err, &pe) {
			s.countPanic("decide")
			s.log.ErrorContext(ctx, "decision panicked", "decision_id", res.ID, "instance_id", res.Instance,
				"panic", fmt.Sprint(pe.Value), "stack", string(pe.Stack))
		} else {
			s.log.ErrorContext(ctx, "decision failed", "decision_id", res.ID, "instance_id", res.Instance, "err", err)
		}
		return unavailable(res.ID), nil
	}
	switch res.InboundResult {
	case decision.InboundUnsigned, decision.InboundBadSignature, decision.InboundPartialBody:
		// Never the body: it is someone's message, or a forger's.
		s.log.WarnContext(ctx, "inbound webhook request not recorded: its signature does not verify; forwarded untouched",
			"decision_id", res.ID, "result", res.InboundResult, "method", in.Method, "path", in.Path, "body_bytes", len(in.Body))
	}
	if res.Send && s.log.Enabled(ctx, slog.LevelDebug) { // not even the arguments otherwise
		s.log.DebugContext(ctx, "decision", "decision_id", res.ID, "allowed", res.Allowed, "error", res.Code,
			"account_id", res.Account, "instance_id", res.Instance, "key_id", res.KeyID, "risk_score", res.RiskScore)
	}
	if res.Allowed || res.Shadow {
		return allow(res), nil
	}
	return deny(res.ID, res.Status, res.Body, res.Headers), nil
}

// WithTracing makes Check trace with tracer, continuing the trace context
// that prop reads (nil: W3C traceparent and tracestate; see startSpan for
// which parent wins). A nil tracer leaves tracing off: Check then creates
// nothing at all.
func (s *Server) WithTracing(tracer trace.Tracer, prop propagation.TextMapPropagator) *Server {
	if prop == nil {
		prop = propagation.TraceContext{}
	}
	s.tracer, s.prop = tracer, prop
	return s
}

// startSpan starts the Check span. Its parent:
//
//  1. the span in ctx, when the gRPC metadata carried a trace context
//     (Envoy traces: that is Envoy's ext_authz span, under otelgrpc's
//     server span; see tracing.Provider.ServerHandler), unless the
//     client's traceparent names another trace;
//  2. otherwise the traceparent (and tracestate) of the client's HTTP
//     request, in the CheckRequest's headers: it ties sendguard's span to
//     the sender's trace whether or not Envoy traces. When Envoy's span is
//     of another trace, the Check span links to it;
//  3. otherwise none: a new trace, sampled at the configured ratio.
//
// A span of the client's trace is the server span of sendguard's part; a
// child of Envoy's (otelgrpc's) is internal.
func (s *Server) startSpan(ctx context.Context, headers *decision.Request) (context.Context, trace.Span) {
	rpc := trace.SpanContextFromContext(ctx)
	client := trace.SpanContextFromContext(s.prop.Extract(context.Background(), headerCarrier{headers}))
	switch {
	case rpc.IsValid() && (!client.IsValid() || client.TraceID() == rpc.TraceID()):
		return s.tracer.Start(ctx, tracing.SpanCheck, trace.WithSpanKind(trace.SpanKindInternal))
	case client.IsValid():
		opts := []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindServer)}
		if rpc.IsValid() {
			opts = append(opts, trace.WithLinks(trace.Link{SpanContext: rpc}))
		}
		return s.tracer.Start(trace.ContextWithRemoteSpanContext(ctx, client), tracing.SpanCheck, opts...)
	}
	return s.tracer.Start(ctx, tracing.SpanCheck, trace.WithSpanKind(trace.SpanKindServer), trace.WithNewRoot())
}

// endSpan sets the decision's attributes on the Check span and ends it:
// the decision id, the instance, the result and the code; never the key,
// the phone or the text.
func endSpan(span trace.Span, res decision.Result, failed bool) {
	attrs := make([]attribute.KeyValue, 0, 4)
	if res.ID != "" {
		attrs = append(attrs, tracing.AttrDecisionID.String(res.ID))
	}
	if res.Instance != "" {
		attrs = append(attrs, tracing.AttrInstanceID.String(res.Instance))
	}
	result, code := "", res.Code
	switch {
	case failed:
		result, code = "failed", catalog.PolicyCheckUnavailable
		span.SetStatus(otelcodes.Error, "decision failed") // the error's text is in the log
	case !res.Send:
		result = "passthrough"
	case res.Allowed:
		result = "allowed"
	case res.Shadow:
		result = "shadowed"
	default:
		result = "denied"
	}
	attrs = append(attrs, tracing.AttrResult.String(result))
	if code != "" {
		attrs = append(attrs, tracing.AttrCode.String(string(code)))
	}
	span.SetAttributes(attrs...)
	span.End()
}

// recovered answers a panic in Check outside the decision: the documented
// 503 under the request's decision id (Check gives it a fresh one when the
// decision never named one), logged with the stack and counted.
func (s *Server) recovered(ctx context.Context, id string, p any) *authv3.CheckResponse {
	s.log.ErrorContext(ctx, "check panicked", "decision_id", id, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
	s.countPanic("check")
	if s.m != nil {
		s.m.failures.Inc()
		s.m.result(string(catalog.PolicyCheckUnavailable)).Inc()
	}
	return unavailable(id)
}

func (s *Server) countPanic(where string) {
	if s.m != nil {
		s.m.panics.WithLabelValues(where).Inc()
	}
}

func newID() string { return decision.NewID(time.Now()) }

// requestOf is what sendguard reads of a CheckRequest (decodeCheck reads
// the same from the wire).
func requestOf(req *authv3.CheckRequest) decision.Request {
	h := req.GetAttributes().GetRequest().GetHttp()
	body := h.GetRawBody()
	if body == nil && h.GetBody() != "" {
		body = []byte(h.GetBody())
	}
	return httpRequest(h.GetMethod(), h.GetPath(), body, h.GetHeaders(), nil)
}

// httpRequest is the decision.Request of an HttpRequest's method, path
// (with its query), body (raw_body, else body) and headers, as a map
// (requestOf) or as the list of the wire's entries (decodeCheck): the one
// place both build it, so the two roads cannot read a request differently.
func httpRequest(method, pathQuery string, body []byte, headers map[string]string, list []decision.Header) decision.Request {
	path, query, _ := strings.Cut(pathQuery, "?")
	r := decision.Request{
		Method:     method,
		Path:       path,
		Query:      query,
		Body:       body,
		Headers:    headers,
		HeaderList: list,
	}
	r.Authorization = r.Header("authorization")
	r.ContentType = r.Header("content-type")
	r.ContentEncoding = r.Header("content-encoding")
	r.PartialBody = r.Header(headerPartialBody) == "true"
	return r
}

// headerCarrier reads a request's headers (Header) for a propagator.
type headerCarrier struct{ r *decision.Request }

func (c headerCarrier) Get(key string) string { return c.r.Header(key) }
func (c headerCarrier) Set(string, string)    {}

func (c headerCarrier) Keys() []string {
	if c.r.Headers != nil {
		return propagation.MapCarrier(c.r.Headers).Keys()
	}
	keys := make([]string, 0, len(c.r.HeaderList))
	for _, h := range c.r.HeaderList {
		if !slices.Contains(keys, h.Key) {
			keys = append(keys, h.Key)
		}
	}
	return keys
}

func overwrite(key, value string) *corev3.HeaderValueOption {
	return &corev3.HeaderValueOption{
		Header:       &corev3.HeaderValue{Key: key, Value: value},
		AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
	}
}

// setOverwrite makes o a header set with overwrite semantics, in place.
func setOverwrite(o *corev3.HeaderValueOption, v *corev3.HeaderValue, key, value string) *corev3.HeaderValueOption {
	v.Key, v.Value = key, value
	o.Header, o.AppendAction = v, corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD
	return o
}

var ourHeaders = []string{HeaderDecisionID, HeaderRiskScore, HeaderPurpose, HeaderPhone, HeaderInstance, HeaderShadowDecision}

// The parts every response of a kind shares, built once. gRPC only reads
// a response (it marshals it, and protobuf's size cache is atomic), so
// concurrent responses can point at the same immutable messages.
var (
	statusOK        = &status.Status{Code: int32(code.Code_OK)}
	statusDenied    = &status.Status{Code: int32(code.Code_PERMISSION_DENIED)}
	contentTypeJSON = overwrite("content-type", "application/json")
	httpStatuses    = func() map[int]*typev3.HttpStatus {
		m := map[int]*typev3.HttpStatus{}
		for _, e := range catalog.All() {
			m[e.Status] = &typev3.HttpStatus{Code: typev3.StatusCode(e.Status)}
		}
		return m
	}()
)

// allowed is every message of an allow, in one allocation.
type allowed struct {
	resp    authv3.CheckResponse
	oneof   authv3.CheckResponse_OkResponse
	ok      authv3.OkHttpResponse
	opts    [6]corev3.HeaderValueOption
	values  [6]corev3.HeaderValue
	headers [7]*corev3.HeaderValueOption
}

func allow(res decision.Result) *authv3.CheckResponse {
	a := new(allowed)
	id := setOverwrite(&a.opts[0], &a.values[0], HeaderDecisionID, res.ID)
	a.headers[0] = id
	a.ok.ResponseHeadersToAdd = a.headers[0:1:1]
	if res.Send {
		a.headers[1] = id
		a.headers[2] = setOverwrite(&a.opts[1], &a.values[1], HeaderRiskScore, strconv.Itoa(res.RiskScore))
		a.headers[3] = setOverwrite(&a.opts[2], &a.values[2], HeaderPurpose, res.Purpose)
		a.headers[4] = setOverwrite(&a.opts[3], &a.values[3], HeaderPhone, res.Phone)
		a.headers[5] = setOverwrite(&a.opts[4], &a.values[4], HeaderInstance, res.Instance)
		a.ok.Headers = a.headers[1:6:6]
		if res.Shadow {
			// A would-be denial forwarded in shadow mode: the sender
			// learns the code (see shadow.go).
			a.headers[6] = setOverwrite(&a.opts[5], &a.values[5], HeaderShadowDecision, string(res.Code))
			a.ok.Headers = a.headers[1:7:7]
		}
		if len(res.Headers) > 0 && !res.Shadow {
			// A shadowed denial's headers (Retry-After, RateLimit of a
			// 429) describe a denial the client never gets.
			a.ok.ResponseHeadersToAdd = clientHeaders(id, res.Headers)
		}
	} else {
		// Not the send path: forward untouched, except that a client must
		// not hand the sender x-sendguard-* values sendguard never set.
		a.ok.HeadersToRemove = ourHeaders
	}
	a.oneof.OkResponse = &a.ok
	a.resp.Status = statusOK
	a.resp.HttpResponse = &a.oneof
	return &a.resp
}

// clientHeaders is the decision id and the allow's extra headers for the
// client (RateLimit, RateLimit-Policy), in one allocation beside allow's:
// only an allow with extra headers pays for it.
func clientHeaders(id *corev3.HeaderValueOption, extra []decision.Header) []*corev3.HeaderValueOption {
	type header struct {
		opt corev3.HeaderValueOption
		val corev3.HeaderValue
	}
	hs := make([]header, len(extra))
	out := make([]*corev3.HeaderValueOption, 1, 1+len(extra))
	out[0] = id
	for i, h := range extra {
		out = append(out, setOverwrite(&hs[i].opt, &hs[i].val, h.Key, h.Value))
	}
	return out
}

// denied is every message of a denial with up to 3 extra headers, in one
// allocation.
type denied struct {
	resp    authv3.CheckResponse
	oneof   authv3.CheckResponse_DeniedResponse
	denied  authv3.DeniedHttpResponse
	status  typev3.HttpStatus
	opts    [4]corev3.HeaderValueOption
	values  [4]corev3.HeaderValue
	headers [5]*corev3.HeaderValueOption
}

func deny(id string, httpStatus int, body []byte, extra []decision.Header) *authv3.CheckResponse {
	d := new(denied)
	headers := d.headers[:0]
	if len(extra) > len(d.opts)-1 {
		headers = make([]*corev3.HeaderValueOption, 0, 2+len(extra))
	}
	headers = append(headers, contentTypeJSON, setOverwrite(&d.opts[0], &d.values[0], HeaderDecisionID, id))
	for i, h := range extra {
		if i+1 < len(d.opts) {
			headers = append(headers, setOverwrite(&d.opts[i+1], &d.values[i+1], h.Key, h.Value))
		} else {
			headers = append(headers, overwrite(h.Key, h.Value))
		}
	}
	d.denied.Status = httpStatuses[httpStatus]
	if d.denied.Status == nil {
		d.status.Code = typev3.StatusCode(httpStatus)
		d.denied.Status = &d.status
	}
	d.denied.Headers = headers
	d.denied.Body = string(body)
	d.oneof.DeniedResponse = &d.denied
	d.resp.Status = statusDenied
	d.resp.HttpResponse = &d.oneof
	return &d.resp
}

var unavailableBody = catalog.Body(catalog.PolicyCheckUnavailable, catalog.Details{})

func unavailable(id string) *authv3.CheckResponse {
	e, _ := catalog.Lookup(catalog.PolicyCheckUnavailable)
	return deny(id, e.Status, unavailableBody, []decision.Header{{Key: "retry-after", Value: "1"}})
}
