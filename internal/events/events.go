// Package events builds, signs and delivers sendguard's events to the
// webhook receivers a platform team configures: recipient.opted_out (the
// source contract's shape, to the byte), recipient.opted_in (the same
// shape), and whatever later issues add.
//
// Events are written to the store's durable outbox before the request that
// caused them is acknowledged; a Dispatcher leases them, POSTs each to its
// receiver, and acknowledges on a 2xx, or retries with exponential backoff
// and full jitter until RetryFor has passed since the event was created.
//
// Each delivery is signed: X-Sendguard-Signature is
// "sha256=" + hex(HMAC-SHA256(secret, timestamp + "." + body)), where
// timestamp is X-Sendguard-Timestamp (unix seconds of this attempt), and
// X-Sendguard-Event-Id names the event for idempotency (the same on every
// attempt and for every receiver).
package events

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strconv"
	"strings"
	"time"
)

// Kinds of events.
const (
	OptedOut = "recipient.opted_out"
	OptedIn  = "recipient.opted_in"
)

// Reasons in recipient events.
const (
	ReasonStop  = "recipient_requested_stop"
	ReasonStart = "recipient_requested_start"
)

// Recipient is a recipient.opted_out or recipient.opted_in event. Its JSON
// has exactly the source contract's fields, in its order.
type Recipient struct {
	Event        string `json:"event"`
	InstanceID   string `json:"instance_id"`
	InstanceName string `json:"instance_name"`
	From         string `json:"from"`
	Reason       string `json:"reason"`
	MessageText  string `json:"message_text"`
	Timestamp    string `json:"timestamp"` // RFC 3339, UTC
}

// Body is the compact JSON of e, HTML characters not escaped.
func (e Recipient) Body() []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(e) // a struct of strings always encodes
	return bytes.TrimRight(b.Bytes(), "\n")
}

// Headers of a delivery.
const (
	HeaderEventID   = "X-Sendguard-Event-Id"
	HeaderEvent     = "X-Sendguard-Event"
	HeaderTimestamp = "X-Sendguard-Timestamp"
	HeaderSignature = "X-Sendguard-Signature"
)

// Sign returns the X-Sendguard-Signature value for body sent at ts.
func Sign(secret []byte, ts time.Time, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(strconv.FormatInt(ts.Unix(), 10)))
	m.Write([]byte("."))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Verify checks a delivery's signature the way a receiver should: the
// timestamp header within tolerance of now, and the HMAC in constant time.
func Verify(secret []byte, timestamp, signature string, body []byte, now time.Time, tolerance time.Duration) bool {
	sec, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return false
	}
	ts := time.Unix(sec, 0)
	if d := now.Sub(ts); d > tolerance || d < -tolerance {
		return false
	}
	want := Sign(secret, ts, body)
	return hmac.Equal([]byte(want), []byte(strings.TrimSpace(signature)))
}

// InstancePaused is sent when sendguard pauses an instance on its own.
const InstancePausedKind = "instance.paused"

// InstancePaused is an instance.paused event: the recipient events' shape
// where it applies.
type InstancePaused struct {
	Event        string `json:"event"` // instance.paused
	InstanceID   string `json:"instance_id"`
	InstanceName string `json:"instance_name"`
	Reason       string `json:"reason"` // repeated_violations
	Violations   int    `json:"violations"`
	Timestamp    string `json:"timestamp"`
}

// Body is the compact JSON of e.
func (e InstancePaused) Body() []byte {
	b, _ := json.Marshal(e) // plain strings and an int always encode
	return b
}
