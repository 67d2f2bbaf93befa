package decision

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/valyala/fastjson"

	"github.com/sendguard/sendguard/internal/inbound"
)

// Inbound observes the customer's inbound-message webhook: a request on one
// of Routes is always allowed untouched, and its payload, read through
// Fields, is recorded (opt-outs and opt-ins) only when its Signature
// verifies. Only when recording a verified message fails is the request
// refused (503), so the webhook sender retries it. An unsigned or badly
// signed request is forwarded like any other, and nothing is recorded:
// the webhook decides its own answer.
type Inbound struct {
	Routes   []Route
	Fields   Fields
	Recorder interface {
		Record(ctx context.Context, m inbound.Message) (inbound.Outcome, error)
	}
	// Signature is how the webhook's sender signs its requests. A nil
	// Signature records every request unverified: anyone who can reach
	// the sidecar can then forge opt-outs and opt-ins (the config allows
	// it only with inbound.unsigned: true).
	Signature *Signature
}

// Signature is an HMAC-SHA256 signature of the raw request body, in hex,
// after Prefix in the request header Header: Meta's X-Hub-Signature-256
// scheme ("sha256=" + hex HMAC-SHA256(app secret, body)), which the
// WhatsApp Cloud API and the providers built on it send.
type Signature struct {
	Header  string   // lower case, as Envoy names headers; e.g. x-hub-signature-256
	Prefix  string   // e.g. "sha256="
	Secrets [][]byte // any one of them verifies (key rotation); at least one
}

// Inbound outcomes: Result.InboundResult of an observed request.
const (
	InboundRecorded     = "recorded"      // verified (or unsigned mode) and recorded: STOP, START or neither
	InboundIgnored      = "ignored"       // verified, but not a message of a known instance sendguard can read
	InboundUnsigned     = "unsigned"      // no signature header: nothing recorded
	InboundBadSignature = "bad_signature" // the signature does not verify: nothing recorded
	InboundPartialBody  = "partial_body"  // Envoy cut the body: it cannot verify, nothing recorded
	InboundFailed       = "failed"        // recording failed (the store); answered 503
)

// verify says whether r carries a valid signature, and if not, why: one of
// InboundUnsigned, InboundPartialBody, InboundBadSignature. A cut body
// never verifies, whatever its signature. The MAC is compared in constant
// time (hmac.Equal), against every secret.
func (s *Signature) verify(r Request) (ok bool, why string) {
	v := r.Header(s.Header)
	switch {
	case v == "":
		return false, InboundUnsigned
	case r.PartialBody:
		return false, InboundPartialBody
	}
	hexMAC, found := strings.CutPrefix(v, s.Prefix)
	if !found {
		return false, InboundBadSignature
	}
	got, err := hex.DecodeString(hexMAC)
	if err != nil || len(got) != sha256.Size {
		return false, InboundBadSignature
	}
	for _, secret := range s.Secrets {
		m := hmac.New(sha256.New, secret)
		m.Write(r.Body)
		if hmac.Equal(m.Sum(nil), got) {
			ok = true // no early return: the time taken does not say which secret matched
		}
	}
	if !ok {
		return false, InboundBadSignature
	}
	return true, ""
}

// Fields are dot paths into the inbound JSON payload.
type Fields struct {
	InstanceID, From, Text, Timestamp string
}

// DefaultFields follow the source contract's event: instance_id, from,
// message_text, timestamp.
var DefaultFields = Fields{InstanceID: "instance_id", From: "from", Text: "message_text", Timestamp: "timestamp"}

// observe records one inbound webhook request; res is allowed, and an
// error means the message could not be recorded.
func (d *Decider) observe(ctx context.Context, r Request, res Result) (Result, error) {
	res.Allowed = true
	res.Inbound = true
	if sig := d.opts.Inbound.Signature; sig != nil {
		if ok, why := sig.verify(r); !ok {
			res.InboundResult = why
			return res, nil // forwarded untouched; the webhook decides its own answer
		}
	}
	res.InboundResult = InboundIgnored
	m, ok := parseInbound(r.Body, d.opts.Inbound.Fields)
	if !ok || r.PartialBody {
		return res, nil // not a message we can read: not ours to refuse
	}
	out, err := d.opts.Inbound.Recorder.Record(ctx, m)
	switch {
	case errors.Is(err, inbound.ErrUnknownInstance), errors.Is(err, inbound.ErrBadPhone):
		return res, nil
	case err != nil:
		res.InboundResult = InboundFailed
		return res, err
	}
	res.InboundResult = InboundRecorded
	res.Instance, res.Intent = m.InstanceID, out.Intent
	return res, nil
}

func parseInbound(body []byte, f Fields) (inbound.Message, bool) {
	var m inbound.Message
	if !utf8.Valid(body) || !shallow(body, 32) {
		return m, false
	}
	p := parsers.Get()
	defer parsers.Put(p)
	v, err := p.ParseBytes(body)
	if err != nil || v.Type() != fastjson.TypeObject {
		return m, false
	}
	get := func(path string) *fastjson.Value {
		if path == "" {
			return nil
		}
		return v.Get(strings.Split(path, ".")...)
	}
	str := func(path string) (string, bool) {
		x := get(path)
		if x == nil || x.Type() != fastjson.TypeString {
			return "", false
		}
		return string(x.GetStringBytes()), true
	}
	var okI, okF, okT bool
	m.InstanceID, okI = str(f.InstanceID)
	m.From, okF = str(f.From)
	m.Text, okT = str(f.Text)
	if !okI || !okF || !okT {
		return m, false
	}
	if ts := get(f.Timestamp); ts != nil {
		switch ts.Type() {
		case fastjson.TypeString:
			s := string(ts.GetStringBytes())
			if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
				m.Timestamp = t
			} else if n, err := strconv.ParseInt(s, 10, 64); err == nil {
				m.Timestamp = unixish(n)
			}
		case fastjson.TypeNumber:
			m.Timestamp = unixish(ts.GetInt64())
		}
	}
	return m, true
}

// unixish reads seconds or, when too large to be seconds, milliseconds.
func unixish(n int64) time.Time {
	if n > 1e12 {
		return time.UnixMilli(n).UTC()
	}
	return time.Unix(n, 0).UTC()
}
