// Package decision is sendguard's decision: one send request in, one
// documented answer out. The order of the steps lives in Decide and nowhere
// else; the policy engine, the stores and the catalogue are injected.
//
// A denial or a throttle is a Result, not an error. Decide returns an error
// only when it could not decide (the policy failed to evaluate, a store
// failed); the caller then fails closed.
package decision

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	otelcodes "go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/sendguard/sendguard/internal/abuse"
	"github.com/sendguard/sendguard/internal/catalog"
	"github.com/sendguard/sendguard/internal/keys"
	"github.com/sendguard/sendguard/internal/limiter"
	"github.com/sendguard/sendguard/internal/policy"
	"github.com/sendguard/sendguard/internal/risk"
	"github.com/sendguard/sendguard/internal/textcache"
	"github.com/sendguard/sendguard/internal/tracing"
)

// Instance is what the decision knows of a configured instance.
type Instance struct {
	ID, Name, Account, Plan string
	Limits                  limiter.Limits
	Abuse                   abuse.Limits   // fan-out and pair limits
	SlowLane                limiter.Limits // the bucket risky-but-allowed content draws from; zero Rate: none
	Shadow                  bool           // shadow mode from the config: see Options.Shadow
}

// AutoPause pauses an instance that keeps violating: Violations
// policy_violation or message_purpose_not_allowed answers within Window.
type AutoPause struct {
	Violations int
	Window     time.Duration
	// OnPause runs after the pause is stored (to emit instance.paused).
	OnPause func(ctx context.Context, inst Instance, violations int) error
}

// Route is one method and path that is the send path.
type Route struct{ Method, Path string }

type evaluator interface {
	Eval(ctx context.Context, in policy.Input) (policy.Decision, error)
}

type state interface {
	Paused(ctx context.Context, instance string) (bool, error)
	SetPaused(ctx context.Context, instance string, paused bool) error
	Suppressed(ctx context.Context, instance, e164 string) (bool, error)
	Take(ctx context.Context, instance string, l limiter.Limits, now time.Time) (limiter.Outcome, error)
}

// counters are the abuse counters, kept by the state store (store.Memory,
// store.Embedded and store.Redis implement them; see package abuse).
// TakeSend checks and counts a send's abuse limits and takes its slow lane
// and quotas in one atomic step, counting the send only when all allow it.
type counters interface {
	TakeSend(ctx context.Context, s abuse.Send, now time.Time) (abuse.Outcome, error)
	Violation(ctx context.Context, instance string, window time.Duration, now time.Time) (int, error)
	ResetViolations(ctx context.Context, instance string) error
}

type phones interface {
	E164(raw string) (string, bool)
}

// Options wire a Decider. Keys, Instances, Policy, State and Phones are
// required; the rest default as documented.
type Options struct {
	Keys      *keys.Keyring
	Instances map[string]Instance
	Policy    evaluator
	State     state
	Phones    phones
	Scanner   *risk.Scanner    // default risk.New(risk.Options{})
	Routes    []Route          // default POST /api/send-message
	Now       func() time.Time // default time.Now
	NewID     func() string    // decision ids; default UUIDv7

	MaxBodyBytes    int // default 65536
	MaxJSONDepth    int // default 16
	MaxMessageRunes int // default 4096

	Inbound *Inbound // the inbound webhook routes to observe; nil: none

	Abuse     counters  // fan-out, pair and violation counters (the store); nil: no abuse checks
	AutoPause AutoPause // zero Violations: never
	// BodyKeyCache is how many messages' fan-out body keys
	// (abuse.BodyKey) the Decider remembers, keyed on a hash of the
	// message (internal/textcache: about 40 bytes each, allocated at New,
	// a message cached the second time it is seen); 0: none.
	BodyKeyCache int

	// Shadow puts every send in shadow mode: a denial is decided as usual
	// but answered as Result.Shadow, to be forwarded. Instance.Shadow and
	// the run-time flag in the state store (store.ShadowKey) do the same
	// for one instance once the request names it (after step 4).
	Shadow bool

	// RateLimitHeaders: an allowed send also answers the IETF RateLimit and
	// RateLimit-Policy fields of the instance's tightest limit (see
	// limiter.Calendar.Tightest), in Result.Headers, for the client. Calendar
	// places its quota periods; it must be the store's.
	RateLimitHeaders bool
	Calendar         limiter.Calendar

	// Tracer makes child spans of the recording span in Decide's ctx (the
	// Check span): tracing.SpanStoreRead, SpanPolicy and SpanStoreTake.
	// nil, or no recording span in ctx: none, at no cost.
	Tracer trace.Tracer
}

// Decider decides. It is safe for concurrent use.
type Decider struct {
	opts     Options
	bodyKeys *textcache.Cache[[16]byte] // nil: none
}

// New returns a Decider, or an error naming a missing dependency.
func New(opts Options) (*Decider, error) {
	switch {
	case opts.Keys == nil:
		return nil, fmt.Errorf("decision: Keys is required")
	case opts.Policy == nil:
		return nil, fmt.Errorf("decision: Policy is required")
	case opts.State == nil:
		return nil, fmt.Errorf("decision: State is required")
	case opts.Phones == nil:
		return nil, fmt.Errorf("decision: Phones is required")
	}
	if opts.Scanner == nil {
		opts.Scanner = risk.New(risk.Options{})
	}
	if len(opts.Routes) == 0 {
		opts.Routes = []Route{{Method: "POST", Path: "/api/send-message"}}
	}
	var err error
	if opts.Routes, err = canonicalRoutes(opts.Routes); err != nil {
		return nil, err
	}
	if opts.Inbound != nil {
		in := *opts.Inbound
		if in.Routes, err = canonicalRoutes(in.Routes); err != nil {
			return nil, err
		}
		if sig := in.Signature; sig != nil {
			if sig.Header == "" || len(sig.Secrets) == 0 {
				return nil, fmt.Errorf("decision: Inbound.Signature needs a Header and at least one secret")
			}
			for _, s := range sig.Secrets {
				if len(s) == 0 {
					return nil, fmt.Errorf("decision: Inbound.Signature has an empty secret")
				}
			}
			c := *sig
			c.Header = strings.ToLower(c.Header)
			in.Signature = &c
		}
		opts.Inbound = &in
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.NewID == nil {
		opts.NewID = func() string { return NewID(time.Now()) }
	}
	if opts.MaxBodyBytes == 0 {
		opts.MaxBodyBytes = 64 << 10
	}
	if opts.MaxJSONDepth == 0 {
		opts.MaxJSONDepth = 16
	}
	if opts.MaxMessageRunes == 0 {
		opts.MaxMessageRunes = 4096
	}
	return &Decider{opts: opts, bodyKeys: textcache.New[[16]byte](opts.BodyKeyCache)}, nil
}

// Request is one HTTP request as Envoy describes it.
type Request struct {
	Method, Path  string // Path without the query string
	Query         string // the raw query string, without "?"
	Authorization string
	// ContentType and ContentEncoding are the request's headers of those
	// names, repeated ones joined with "," as Envoy joins them; empty when
	// absent.
	ContentType, ContentEncoding string
	Body                         []byte
	PartialBody                  bool // Envoy cut the body at its max_request_bytes
	// Headers are the request's headers by lower-case name, as Envoy
	// sends them (repeated ones joined with ","); read for the inbound
	// webhook's signature. May be nil. Read them with Header.
	Headers map[string]string
	// HeaderList holds the headers instead when Headers is nil (the gRPC
	// wire path reads them so, without building a map), in the order
	// sent: of two entries with one name, the last counts, as in a map
	// built from them.
	HeaderList []Header
}

// Header returns the value of the request's header named key (lower
// case), from Headers, else from HeaderList; "" when there is none.
func (r *Request) Header(key string) string {
	if r.Headers != nil {
		return r.Headers[key]
	}
	for i := len(r.HeaderList) - 1; i >= 0; i-- {
		if h := &r.HeaderList[i]; h.Key == key {
			return h.Value
		}
	}
	return ""
}

// Header is one response header.
type Header struct{ Key, Value string }

// Result is the answer to one request.
type Result struct {
	ID string // decision id, sent to the client and upstream
	// Send is false when the request is not on the send path; it is then
	// allowed untouched and nothing else is set but ID. A refused path or
	// a read of the send path with a body is answered like a send: Send
	// true, with its Code.
	Send    bool
	Allowed bool

	// On a denial: the code, its HTTP status, the exact body and the extra
	// response headers (Retry-After, RateLimit-Policy, RateLimit). On an
	// allowed send with Options.RateLimitHeaders: RateLimit-Policy and
	// RateLimit, for the client's response; otherwise none.
	Code    catalog.Code
	Status  int
	Body    []byte
	Headers []Header

	RiskScore int    // computed content risk (on allow and policy_violation)
	Purpose   string // normalised message_purpose, once known
	Account   string
	Instance  string
	KeyID     string
	Usage     limiter.Usage // after the decision, when the limiter ran

	// Phone is the recipient as sendguard checked it, in E.164, once the
	// body is valid; an allowed send forwards it as x-sendguard-phone.
	Phone string

	Inbound bool   // an observed inbound webhook request
	Intent  string // its opt-out/opt-in intent, when it was read
	// InboundResult is what became of an observed inbound request: one of
	// InboundRecorded, InboundIgnored, InboundUnsigned,
	// InboundBadSignature, InboundPartialBody, InboundFailed.
	InboundResult string

	AutoPaused bool // this answer paused the instance for review

	// TakeFailed is set with an error from the store's take of a send
	// with a receipt (the abuse path): the store may have counted it
	// before failing (a Redis reply past the timeout, a WAIT that missed
	// its replicas), so a refund of ID gives back whatever it took.
	TakeFailed bool

	// For the decision log: the canonical path decided on; the policy's
	// input and its own answer (PolicyCode: "" allowed, or its error code;
	// the final Code may come from a later step), both set when the policy
	// ran (Scored); the message as read (once the body is valid); the time
	// spent in the state store.
	Path        string
	PolicyInput policy.Input
	PolicyCode  catalog.Code
	Scored      bool
	Message     string
	StoreTime   time.Duration

	// Shadow is set on a denial (Code, Status, Body as usual) in shadow
	// mode: the request is to be forwarded with the code in
	// x-sendguard-shadow-decision. Like every denial it consumed nothing,
	// and it counts no violation toward the auto-pause.
	Shadow bool
}

// Decide answers one request. First the route, on any path and method:
//
//   - a path that cannot be read one way only (see canonicalPath)   invalid_request_path (400)
//   - an inbound route: observed (see Inbound; recorded only when its
//     signature verifies), allowed
//   - a send route's path with a read method (GET, HEAD, OPTIONS) and a
//     body                                                          invalid_request_method (400)
//   - not a send (onSendRoute): allowed untouched
//   - a send whose query string holds a parameter named like a
//     contract field (contractInQuery)                            invalid_request_query (400)
//
// Then the send's steps, in order; the first that fails answers, and
// nothing is consumed unless every step passes:
//
//  1. Authorization: Bearer <key> is a known key    invalid_api_key / revoked_api_key (401)
//  2. the body is one JSON object every reader reads
//     alike (parseBody: I-JSON, no repeated names),
//     declared as JSON or not at all, not encoded
//     (readAsJSON)                                    invalid_json (400)
//  3. instance_id, phone, message are non-empty
//     strings, phone a valid number                   validation_error (422)
//  4. the instance belongs to the key's account       invalid_instance (404)
//  5. to 9. the Rego policy: instance not paused (423), message_purpose
//     known (422) and allowed (422), recipient not suppressed (403),
//     content risk below the block threshold (403)
//  10. monthly quota left                             monthly_message_limit_exceeded (429)
//  11. daily quota left                               daily_message_limit_exceeded (429)
//  12. a token in the instance's bucket               sending_throttled (429)
//
// Steps 10 to 12 are one atomic Take on the state store. With Abuse set,
// the abuse checks come first (one body to more distinct recipients than
// the plan's fan-out limits within its window: sending_throttled 429 or
// policy_violation 403; more than pair_per_minute to one recipient:
// sending_throttled), then the slow lane for risky content, then 10 to 12,
// all one atomic TakeSend on the store, which counts the send for the abuse
// limits only when every step allows it.
//
// In shadow mode (Options.Shadow, Instance.Shadow, or the instance's
// run-time flag) a denial comes back with Shadow set; it went through the
// same steps as a real denial, so it consumed nothing either.
//
// A panic in any step is recovered: Decide then returns an error wrapping
// ErrPanic (a *PanicError with the stack) and a Result whose ID is set.
func (d *Decider) Decide(ctx context.Context, r Request) (res Result, err error) {
	defer func() {
		if p := recover(); p != nil {
			res, err = d.recovered(p, res)
		}
	}()
	res, err = d.decide(ctx, r)
	if err == nil && res.Send && !res.Allowed {
		if res.Shadow, err = d.shadowed(ctx, res.Instance); err != nil || res.Shadow {
			return res, err // a would-be denial writes nothing: no violation counted
		}
	}
	if err != nil || d.opts.Abuse == nil || d.opts.AutoPause.Violations <= 0 {
		return res, err
	}
	if res.Code != catalog.PolicyViolation && res.Code != catalog.MessagePurposeNotAllowed {
		return res, nil
	}
	inst := d.opts.Instances[res.Instance]
	n, err := d.opts.Abuse.Violation(ctx, inst.ID, d.opts.AutoPause.Window, d.opts.Now())
	if err != nil {
		return res, fmt.Errorf("count violation of %s: %w", inst.ID, err)
	}
	if n < d.opts.AutoPause.Violations {
		return res, nil
	}
	// The answer to this request stands; the pause holds every later one.
	if err := d.opts.State.SetPaused(ctx, inst.ID, true); err != nil {
		return res, fmt.Errorf("auto-pause %s: %w", inst.ID, err)
	}
	if err := d.opts.Abuse.ResetViolations(ctx, inst.ID); err != nil {
		return res, fmt.Errorf("auto-pause %s: %w", inst.ID, err)
	}
	res.AutoPaused = true
	if d.opts.AutoPause.OnPause != nil {
		if err := d.opts.AutoPause.OnPause(ctx, inst, n); err != nil {
			return res, fmt.Errorf("auto-pause %s: %w", inst.ID, err)
		}
	}
	return res, nil
}

// SetState replaces the state the decider reads and consumes (for
// `sendguard check`, which must not change state). Not safe while deciding.
func (d *Decider) SetState(s state) { d.opts.State = s }

// SetAbuse replaces the abuse counters, as SetState the state.
func (d *Decider) SetAbuse(c counters) { d.opts.Abuse = c }

// SetTracer sets Options.Tracer (serve builds the tracer after the
// decider). Not safe while deciding.
func (d *Decider) SetTracer(t trace.Tracer) { d.opts.Tracer = t }

// startSpan starts the child span name of the recording span in ctx, for
// instance; with no tracer, or when this request is not traced, it returns
// ctx and a nil span without allocating.
func (d *Decider) startSpan(ctx context.Context, name, instance string) (context.Context, trace.Span) {
	if d.opts.Tracer == nil || !trace.SpanFromContext(ctx).IsRecording() {
		return ctx, nil
	}
	return d.opts.Tracer.Start(ctx, name, trace.WithAttributes(tracing.AttrInstanceID.String(instance)))
}

// endSpan ends span (nil: none), marked failed when err is not nil. The
// error's text stays in the log: a store's may name keys.
func endSpan(span trace.Span, err error) {
	if span == nil {
		return
	}
	if err != nil {
		span.SetStatus(otelcodes.Error, "failed")
	}
	span.End()
}

func (d *Decider) decide(ctx context.Context, r Request) (Result, error) {
	res := Result{ID: d.opts.NewID()}
	path, ok := canonicalPath(r.Path)
	if !ok {
		// On any path: what sendguard cannot read one way only might be
		// the send path to the sender.
		res.Send = true
		return d.deny(res, catalog.InvalidRequestPath, catalog.Details{}), nil
	}
	res.Path = path
	if d.opts.Inbound != nil && matchRoute(d.opts.Inbound.Routes, r.Method, path) {
		return d.observe(ctx, r, res)
	}
	send, read := onSendRoute(d.opts.Routes, r.Method, path)
	if !send {
		if read && (len(r.Body) > 0 || r.PartialBody) {
			res.Send = true
			return d.deny(res, catalog.InvalidRequestMethod, catalog.Details{}), nil
		}
		res.Allowed = true
		return res, nil
	}
	res.Send = true
	if contractInQuery(r.Query) {
		return d.deny(res, catalog.InvalidRequestQuery, catalog.Details{}), nil
	}

	key, status := d.opts.Keys.Lookup(r.Authorization)
	switch status {
	case keys.Unknown:
		return d.deny(res, catalog.InvalidAPIKey, catalog.Details{}), nil
	case keys.Revoked:
		res.Account, res.KeyID = key.Account, key.ID
		return d.deny(res, catalog.RevokedAPIKey, catalog.Details{}), nil
	}
	res.Account, res.KeyID = key.Account, key.ID

	if !readAsJSON(r.ContentType, r.ContentEncoding) {
		return d.deny(res, catalog.InvalidJSON, catalog.Details{}), nil
	}
	req, code, fields := d.parseBody(r.Body, r.PartialBody)
	if code != "" {
		return d.deny(res, code, catalog.Details{Fields: fields}), nil
	}
	res.Phone, res.Message = req.e164, req.message

	inst, ok := d.opts.Instances[req.instanceID]
	if !ok || inst.Account != key.Account {
		return d.deny(res, catalog.InvalidInstance, catalog.Details{}), nil
	}
	res.Instance = inst.ID

	storeStart := time.Now()
	sctx, span := d.startSpan(ctx, tracing.SpanStoreRead, inst.ID)
	paused, err := d.opts.State.Paused(sctx, inst.ID)
	if err != nil {
		endSpan(span, err)
		return res, fmt.Errorf("read pause state of %s: %w", inst.ID, err)
	}
	suppressed, err := d.opts.State.Suppressed(sctx, inst.ID, req.e164)
	res.StoreTime = time.Since(storeStart)
	endSpan(span, err)
	if err != nil {
		return res, fmt.Errorf("read suppression of %s: %w", inst.ID, err)
	}
	pctx, span := d.startSpan(ctx, tracing.SpanPolicy, inst.ID)
	res.PolicyInput = policy.Input{
		InstanceID:     inst.ID,
		Plan:           inst.Plan,
		Paused:         paused,
		Purpose:        req.purpose,
		PurposePresent: req.purposePresent,
		Phone:          req.e164,
		Suppressed:     suppressed,
		Signals:        d.opts.Scanner.Scan(req.message),
	}
	res.Scored = true
	pd, err := d.opts.Policy.Eval(pctx, res.PolicyInput)
	if span != nil && err == nil {
		span.SetAttributes(tracing.AttrRiskScore.Int(pd.RiskScore))
		if !pd.Allow {
			span.SetAttributes(tracing.AttrCode.String(pd.Error))
		}
	}
	endSpan(span, err)
	if err != nil {
		return res, fmt.Errorf("evaluate policy: %w", err)
	}
	res.PolicyCode = catalog.Code(pd.Error)
	res.RiskScore, res.Purpose = pd.RiskScore, pd.Purpose
	if !pd.Allow {
		code := catalog.Code(pd.Error)
		if _, ok := catalog.Lookup(code); !ok {
			return res, fmt.Errorf("policy denied with undocumented error %q", pd.Error)
		}
		var det catalog.Details
		if code == catalog.PolicyViolation {
			det.RiskScore = &pd.RiskScore
		}
		return d.deny(res, code, det), nil
	}

	now := d.opts.Now()
	tctx, span := d.startSpan(ctx, tracing.SpanStoreTake, inst.ID)
	if d.opts.Abuse == nil {
		storeStart = time.Now()
		res, err := d.take(tctx, res, inst, pd.Throttle, now)
		res.StoreTime += time.Since(storeStart)
		endSpan(span, err)
		return res, err
	}
	// Checked and counted with the slow lane and the quotas in one atomic
	// step (one round trip on Redis); counted only when all allow.
	// The receipt under the decision id lets a failed delivery give back
	// what this send takes (the response path's Refund).
	snd := abuse.Send{Instance: inst.ID, Body: d.bodyKey(req.message), Phone: req.e164, Abuse: inst.Abuse, Quota: inst.Limits, Decision: res.ID}
	if pd.Throttle {
		snd.SlowLane = inst.SlowLane
	}
	storeStart = time.Now()
	out, err := d.opts.Abuse.TakeSend(tctx, snd, now)
	res.StoreTime += time.Since(storeStart)
	endSpan(span, err)
	if err != nil {
		res.TakeFailed = true
		return res, fmt.Errorf("take send of %s: %w", inst.ID, err)
	}
	switch {
	case out.Verdict == abuse.Block:
		score := 100
		res.RiskScore = score
		return d.deny(res, catalog.PolicyViolation, catalog.Details{RiskScore: &score}), nil
	case out.Verdict == abuse.Throttle:
		return d.throttled(res, out.RetryAfter), nil
	case out.SlowLane:
		return d.throttled(res, out.Taken.RetryAfter), nil
	}
	return d.quota(res, out.Taken, inst.Limits, now), nil
}

// BodyKeyCacheStats returns the fan-out body keys' cache counters
// (Options.BodyKeyCache); all 0 without a cache.
func (d *Decider) BodyKeyCacheStats() textcache.Stats { return d.bodyKeys.Stats() }

// bodyKey is abuse.BodyKey(msg), from the cache when it holds msg's.
func (d *Decider) bodyKey(msg string) [16]byte { return d.bodyKeys.Do(msg, abuse.BodyKey) }

// take consumes a slow-lane token when the content is risky, then the
// instance's quotas and token, and allows the send when all are there.
func (d *Decider) take(ctx context.Context, res Result, inst Instance, risky bool, now time.Time) (Result, error) {
	if risky && inst.SlowLane.Rate > 0 {
		out, err := d.opts.State.Take(ctx, abuse.SlowLaneID(inst.ID), inst.SlowLane, now)
		if err != nil {
			return res, fmt.Errorf("take slow lane of %s: %w", inst.ID, err)
		}
		if out.Verdict != limiter.Allowed {
			return d.throttled(res, out.RetryAfter), nil
		}
	}
	out, err := d.opts.State.Take(ctx, inst.ID, inst.Limits, now)
	if err != nil {
		return res, fmt.Errorf("take quota of %s: %w", inst.ID, err)
	}
	return d.quota(res, out, inst.Limits, now), nil
}

// quota answers the instance's quota outcome at now under its limits l.
func (d *Decider) quota(res Result, out limiter.Outcome, l limiter.Limits, now time.Time) Result {
	res.Usage = out.Usage
	switch out.Verdict {
	case limiter.MonthlyExceeded:
		return d.denyQuota(res, catalog.MonthlyLimitExceeded, "monthly", out)
	case limiter.DailyExceeded:
		return d.denyQuota(res, catalog.DailyLimitExceeded, "daily", out)
	case limiter.Throttled:
		return d.throttled(res, out.RetryAfter)
	}
	res.Allowed = true
	if d.opts.RateLimitHeaders {
		res.Headers = rateLimitHeaders(d.opts.Calendar.Tightest(out.Usage, l, now))
	}
	return res
}

// rateLimitHeaders are the RateLimit-Policy and RateLimit fields
// (draft-ietf-httpapi-ratelimit-headers) of one limit:
//
//	ratelimit-policy: "daily";q=100;w=86400
//	ratelimit: "daily";r=57;t=3600
func rateLimitHeaders(r limiter.Remaining) []Header {
	name := `"` + r.Name + `"`
	return []Header{
		{"ratelimit-policy", name + ";q=" + strconv.FormatInt(r.Quota, 10) + ";w=" + strconv.FormatInt(r.Window, 10)},
		{"ratelimit", name + ";r=" + strconv.FormatInt(r.Remaining, 10) + ";t=" + strconv.FormatInt(r.ResetInSeconds, 10)},
	}
}

func (d *Decider) throttled(res Result, retry time.Duration) Result {
	res = d.deny(res, catalog.SendingThrottled, catalog.Details{})
	res.Headers = append(res.Headers, Header{"retry-after", strconv.FormatInt(limiter.RetryAfterSeconds(retry), 10)})
	return res
}

// canonicalRoutes returns routes with their paths canonical, once at New,
// or an error naming a path that has no canonical form.
func canonicalRoutes(routes []Route) ([]Route, error) {
	out := make([]Route, len(routes))
	for i, rt := range routes {
		p, ok := canonicalPath(rt.Path)
		if !ok {
			return nil, fmt.Errorf("decision: route path %q has no canonical form", rt.Path)
		}
		out[i] = Route{Method: rt.Method, Path: p}
	}
	return out, nil
}

// matchRoute reports whether method and the canonical path p (see
// canonicalPath) are on one of routes, both compared case-insensitively, so
// that /API//send-message/ cannot slip past. It matches the inbound routes;
// onSendRoute matches the send routes.
func matchRoute(routes []Route, method, p string) bool {
	for _, rt := range routes {
		if strings.EqualFold(rt.Path, p) && (rt.Method == "*" || strings.EqualFold(rt.Method, method)) {
			return true
		}
	}
	return false
}

// onSendRoute reports whether a request with method on the canonical path p
// is a send: p is a send route's path (case-insensitively, see
// sendRoutePath) and method is the route's own, or any method but a read
// (GET, HEAD, OPTIONS), which an upstream may serve like POST. Otherwise
// read reports that p is a send route's path and method a read; such a
// request must not carry a body.
func onSendRoute(routes []Route, method, p string) (send, read bool) {
	for _, rt := range routes {
		if !sendRoutePath(rt.Path, p) {
			continue
		}
		if rt.Method == "*" || strings.EqualFold(rt.Method, method) || !isRead(method) {
			return true, false
		}
		read = true
	}
	return false, read
}

// sendRoutePath reports whether the canonical path p is the send route's
// path route, compared case-insensitively, also with a format suffix on
// its last segment: Rails routes /api/send-message.json (and .xml, .anything)
// to the action of /api/send-message (its optional "(.:format)"), as
// Spring MVC did by default before 5.3 (suffix pattern matching).
func sendRoutePath(route, p string) bool {
	if len(p) > len(route) && p[len(route)] == '.' {
		return strings.EqualFold(route, p[:len(route)]) && !strings.Contains(p[len(route):], "/")
	}
	return strings.EqualFold(route, p)
}

// isRead reports whether method is GET, HEAD or OPTIONS, exactly: "get" is
// not, so a lenient upstream's reading of it is checked as a send.
func isRead(method string) bool {
	return method == "GET" || method == "HEAD" || method == "OPTIONS"
}

func (d *Decider) deny(res Result, code catalog.Code, det catalog.Details) Result {
	e, _ := catalog.Lookup(code)
	res.Code, res.Status = code, e.Status
	res.Body = catalog.Body(code, det)
	return res
}

// denyQuota answers a spent quota with limit and used in the body, and
// Retry-After plus the IETF RateLimit-Policy and RateLimit fields
// (draft-ietf-httpapi-ratelimit-headers) naming the period.
func (d *Decider) denyQuota(res Result, code catalog.Code, name string, out limiter.Outcome) Result {
	res = d.deny(res, code, catalog.Details{Quota: true, Limit: out.Limit, Used: out.Used})
	retry := strconv.FormatInt(limiter.RetryAfterSeconds(out.RetryAfter), 10)
	res.Headers = append(res.Headers,
		Header{"retry-after", retry},
		Header{"ratelimit-policy", `"` + name + `";q=` + strconv.FormatInt(out.Limit, 10) + ";w=" + strconv.FormatInt(int64(out.Window/time.Second), 10)},
		Header{"ratelimit", `"` + name + `";r=0;t=` + retry},
	)
	return res
}
