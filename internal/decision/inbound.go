package decision

import (
	"context"
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
// Fields, is recorded (opt-outs and opt-ins). Only when recording a message
// fails is the request refused (503), so the webhook sender retries it.
type Inbound struct {
	Routes   []Route
	Fields   Fields
	Recorder interface {
		Record(ctx context.Context, m inbound.Message) (inbound.Outcome, error)
	}
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
	m, ok := parseInbound(r.Body, d.opts.Inbound.Fields)
	if !ok || r.PartialBody {
		return res, nil // not a message we can read: not ours to refuse
	}
	out, err := d.opts.Inbound.Recorder.Record(ctx, m)
	switch {
	case errors.Is(err, inbound.ErrUnknownInstance), errors.Is(err, inbound.ErrBadPhone):
		return res, nil
	case err != nil:
		return res, err
	}
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
