// Package catalog is the one place that knows the documented error catalogue:
// every error code sendguard (or its Envoy sidecar) can answer with, its HTTP
// status, its exact message text and its default details, and how its JSON
// body is written, byte for byte.
//
// The codes, statuses, messages and default details of the first fourteen
// entries come from the source contract and must not change. The last four
// are sendguard's own, in the same shape: PolicyCheckUnavailable, which
// Envoy answers when it cannot reach sendguard (see envoy/sidecar.yaml);
// InvalidRequestPath, for a path that cannot be read one way only (sendguard
// on any checked request, and Envoy for a path it cannot normalise);
// InvalidRequestMethod, for a GET, HEAD or OPTIONS to the send path that
// carries a body; and InvalidRequestQuery, for a send whose query string
// holds a parameter named like a contract field, which frameworks that
// merge the query into the body's parameters (Rails' params, where the
// query wins) would read instead of the body's value.
package catalog

import (
	"encoding/json"
	"strconv"
)

// Code is a documented error code, the value of the body's "error" field.
type Code string

// The documented error codes.
const (
	InvalidAPIKey            Code = "invalid_api_key"
	RevokedAPIKey            Code = "revoked_api_key"
	InvalidJSON              Code = "invalid_json"
	ValidationError          Code = "validation_error"
	InvalidInstance          Code = "invalid_instance"
	MessagePurposeRequired   Code = "message_purpose_required"
	MessagePurposeNotAllowed Code = "message_purpose_not_allowed"
	DailyLimitExceeded       Code = "daily_message_limit_exceeded"
	MonthlyLimitExceeded     Code = "monthly_message_limit_exceeded"
	RecipientSuppressed      Code = "recipient_suppressed"
	SendingThrottled         Code = "sending_throttled"
	InstancePaused           Code = "instance_paused_for_review"
	PolicyViolation          Code = "policy_violation"
	GatewaySendFailed        Code = "gateway_send_failed"
	PolicyCheckUnavailable   Code = "policy_check_unavailable"
	InvalidRequestPath       Code = "invalid_request_path"
	InvalidRequestMethod     Code = "invalid_request_method"
	InvalidRequestQuery      Code = "invalid_request_query"
)

// Actions used in details.action.
const (
	ActionBlock         = "block"
	ActionThrottle      = "throttle"
	ActionPauseInstance = "pause_instance"
	ActionRetry         = "retry"
)

// Entry is one row of the catalogue.
type Entry struct {
	Code    Code
	Status  int    // HTTP status
	Message string // exact human-readable text
	Action  string // default details.action
	Risk    int    // default details.risk_score
}

var entries = []Entry{
	{InvalidAPIKey, 401, "A valid API key is required.", ActionBlock, 0},
	{RevokedAPIKey, 401, "This API key has been revoked.", ActionBlock, 0},
	{InvalidJSON, 400, "Request body must be valid JSON.", ActionBlock, 0},
	{ValidationError, 422, "The request payload is missing required fields.", ActionBlock, 0},
	{InvalidInstance, 404, "The requested instance was not found for this API key.", ActionBlock, 0},
	{MessagePurposeRequired, 422, "message_purpose is required. Allowed values are transactional, operational, support, internal_team, and authentication.", ActionBlock, 0},
	{MessagePurposeNotAllowed, 422, "WhatsApp Gateway does not support marketing, cold outreach, political, or bulk campaign messaging.", ActionBlock, 100},
	{DailyLimitExceeded, 429, "Your daily transactional message limit has been reached. Please try again tomorrow or request a higher reviewed limit.", ActionBlock, 90},
	{MonthlyLimitExceeded, 429, "Your monthly fair-use message limit has been reached. Please contact support for a reviewed higher limit.", ActionBlock, 90},
	{RecipientSuppressed, 403, "This recipient has opted out or has been blocked from non-essential messages.", ActionBlock, 100},
	{SendingThrottled, 429, "Sending speed has been temporarily limited to protect gateway reliability and prevent bulk messaging.", ActionThrottle, 65},
	{InstancePaused, 423, "This instance has been paused for responsible messaging review.", ActionPauseInstance, 100},
	{PolicyViolation, 403, "This message appears to violate WhatsApp Gateway responsible messaging rules. Bulk marketing, spam, and cold outreach are not allowed.", ActionBlock, 90},
	{GatewaySendFailed, 502, "The message passed responsible messaging checks, but delivery could not be completed. Please try again or contact support.", ActionRetry, 0},
	{PolicyCheckUnavailable, 503, "Responsible messaging checks are temporarily unavailable, so the message was not sent. Please try again shortly.", ActionBlock, 0},
	{InvalidRequestPath, 400, "The request path is not valid. Use the documented path without encoded separators, control characters, spaces or trailing dots.", ActionBlock, 0},
	{InvalidRequestMethod, 400, "Messages are sent with POST. A GET, HEAD or OPTIONS request to the send path must not carry a body.", ActionBlock, 0},
	{InvalidRequestQuery, 400, "Send instance_id, phone, message and message_purpose in the JSON body only, not in the query string.", ActionBlock, 0},
}

// prefix holds, per code, the constant start of its body, up to and
// including `"details":{"action":"`.
var (
	byCode = make(map[Code]Entry, len(entries))
	prefix = make(map[Code][]byte, len(entries))
)

func init() {
	for _, e := range entries {
		byCode[e.Code] = e
		msg, _ := json.Marshal(e.Message)
		p := []byte(`{"success":false,"error":"` + string(e.Code) + `","message":`)
		p = append(p, msg...)
		p = append(p, `,"details":{"action":"`...)
		prefix[e.Code] = p
	}
}

// All returns every entry, in catalogue order. The caller may not modify it.
func All() []Entry { return entries }

// Lookup returns the entry for code and whether it is documented.
func Lookup(code Code) (Entry, bool) {
	e, ok := byCode[code]
	return e, ok
}

// Field names one offending request field and why it was rejected.
type Field struct {
	Name   string
	Reason string
}

// Details are the values of a body's "details" object. The zero value of each
// field means "the catalogue's default" except Limit/Used, which are written
// only when Quota is true, and Fields, written only when non-empty.
type Details struct {
	Action    string
	RiskScore *int
	Quota     bool
	Limit     int64
	Used      int64
	Fields    []Field
}

// Body returns the documented JSON body for code with details d:
// {"success":false,"error":…,"message":…,"details":{"action":…,"risk_score":…}}
// followed, for quota errors, by "limit" and "used", and for validation errors
// by "fields" (an object of field name → reason, in the order given).
// It panics if code is not in the catalogue: that is a programming error.
func Body(code Code, d Details) []byte {
	e, ok := byCode[code]
	if !ok {
		panic("catalog: unknown code " + string(code))
	}
	action, risk := e.Action, e.Risk
	if d.Action != "" {
		action = d.Action
	}
	if d.RiskScore != nil {
		risk = *d.RiskScore
	}
	p := prefix[code]
	b := make([]byte, 0, len(p)+96)
	b = append(b, p...)
	b = append(b, action...)
	b = append(b, `","risk_score":`...)
	b = strconv.AppendInt(b, int64(risk), 10)
	if d.Quota {
		b = append(b, `,"limit":`...)
		b = strconv.AppendInt(b, d.Limit, 10)
		b = append(b, `,"used":`...)
		b = strconv.AppendInt(b, d.Used, 10)
	}
	if len(d.Fields) > 0 {
		b = append(b, `,"fields":{`...)
		for i, f := range d.Fields {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, f.Name)
			b = append(b, ':')
			b = appendString(b, f.Reason)
		}
		b = append(b, '}')
	}
	return append(b, "}}"...)
}

func appendString(b []byte, s string) []byte {
	q, _ := json.Marshal(s) // cannot fail for a string
	return append(b, q...)
}
