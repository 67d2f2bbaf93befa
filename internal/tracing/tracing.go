// Package tracing names sendguard's OpenTelemetry spans and their
// attributes, once, for the parts that make them (authz, decision, events),
// for dashboards and for tests. It depends on the OpenTelemetry API only;
// the SDK, the OTLP exporter and otelgrpc are in tracing/otlp, which serve
// alone imports.
//
// Nothing is global: serve builds one otlp.Provider when tracing is
// configured and hands its Tracer and Propagator to the parts that make
// spans; with tracing off there is no Provider, those parts hold a nil
// Tracer and create nothing.
//
// The spans of one Check:
//
//	sendguard.check            the decision: decision id, instance, result, code
//	├─ sendguard.store.read    pause and suppression reads
//	├─ sendguard.policy.eval   content scan and Rego: risk score, the policy's code
//	└─ sendguard.store.take    quotas, token and abuse counters, taken atomically
//
// and of each event delivery attempt, sendguard.event.deliver (a new trace;
// its traceparent goes with the POST). No span carries an API key, a phone
// number or a message text.
package tracing

import "go.opentelemetry.io/otel/attribute"

// ScopeName is the instrumentation scope of sendguard's own spans.
const ScopeName = "github.com/sendguard/sendguard"

// Span names.
const (
	SpanCheck        = "sendguard.check"         // one ext_authz Check
	SpanPolicy       = "sendguard.policy.eval"   // content scan and Rego evaluation
	SpanStoreRead    = "sendguard.store.read"    // pause and suppression reads
	SpanStoreTake    = "sendguard.store.take"    // the atomic take of quotas, token (and abuse counters)
	SpanEventDeliver = "sendguard.event.deliver" // one POST of an event to a receiver
)

// Attribute keys.
const (
	AttrDecisionID = attribute.Key("sendguard.decision_id")
	AttrInstanceID = attribute.Key("sendguard.instance_id")
	// AttrResult is allowed, denied, shadowed (a would-be denial forwarded
	// in shadow mode), passthrough (not the send path) or failed (could not
	// decide: answered policy_check_unavailable).
	AttrResult    = attribute.Key("sendguard.result")
	AttrCode      = attribute.Key("sendguard.code") // the documented error code of a denial
	AttrRiskScore = attribute.Key("sendguard.risk_score")
	AttrEventID   = attribute.Key("sendguard.event_id")
	AttrEvent     = attribute.Key("sendguard.event") // the event kind, e.g. recipient.opted_out
	AttrReceiver  = attribute.Key("sendguard.receiver")
)
