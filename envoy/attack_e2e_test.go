package envoy_test

// Attacks on the rule that the sender and sendguard read the same request:
// the same path, the same JSON, the same phone, the same headers. Each test
// is one class of attack, sent through the real Envoy in front of the
// recording sender. A shape is either refused (by Envoy, or by sendguard
// with its documented answer) and never forwarded, or decided by sendguard
// and forwarded as sendguard read it.

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf16"

	"github.com/sendguard/sendguard/internal/catalog"
	"github.com/sendguard/sendguard/internal/fakesender"
)

// attackPhones hands out a fresh clean recipient per allowed send, so that
// the abuse counters (pair_per_minute) never answer instead of the shape
// under test.
var attackPhones atomic.Int64

func freshRecipient() string {
	return fmt.Sprintf("+96650%07d", 2000000+attackPhones.Add(1))
}

// attack is one request shape and what must become of it.
type attack struct {
	name, method, target string
	header               []string
	body                 string
	// want is the documented answer; empty with status 0: forwarded.
	want    catalog.Code
	details catalog.Details
	// status, when not 0, is Envoy's own refusal (a codec error that is
	// not in the contract's shape); nothing may be forwarded.
	status int
	// sender, for a forwarded shape, checks what the sender received.
	sender func(t *testing.T, got fakesender.Request)
}

// run sends a and checks the answer and what the sender received.
func (a attack) run(t *testing.T, s *stack, send func() rawReply) {
	t.Helper()
	before := s.rec.Len()
	r := send()
	what := fmt.Sprintf("%s %q %q", a.method, a.target, a.header)
	switch {
	case a.status != 0:
		if r.status != a.status {
			t.Errorf("%s = %d %s, want Envoy's %d", what, r.status, r.body, a.status)
		}
	case a.want != "":
		e, _ := catalog.Lookup(a.want)
		if body := catalog.Body(a.want, a.details); r.status != e.Status || !bytes.Equal(r.body, body) {
			t.Errorf("%s = %d %s\nwant %d %s", what, r.status, r.body, e.Status, body)
		}
		if ct := r.header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s: content-type %q, want application/json", what, ct)
		}
	default:
		if r.status != 200 || s.rec.Len() != before+1 {
			t.Fatalf("%s = %d %s, sender saw %d; want allowed and forwarded", what, r.status, r.body, s.rec.Len()-before)
		}
		if a.sender != nil {
			a.sender(t, s.rec.Requests()[before])
		}
		return
	}
	if got := s.rec.Len(); got != before {
		t.Errorf("%s: the sender received %d requests: %+v", what, got-before, s.rec.Requests()[before:])
	}
}

// sawBody checks that the sender received exactly body, and the phone
// sendguard checked in x-sendguard-phone.
func sawBody(body, e164 string) func(t *testing.T, got fakesender.Request) {
	return func(t *testing.T, got fakesender.Request) {
		t.Helper()
		if string(got.Body) != body {
			t.Errorf("sender saw body %q, want %q", got.Body, body)
		}
		if v := got.Header.Values("X-Sendguard-Phone"); len(v) != 1 || v[0] != e164 {
			t.Errorf("sender saw x-sendguard-phone %q, want [%q]", v, e164)
		}
	}
}

func chunked(body string) string {
	return fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", len(body), body)
}

// TestAttackFramingEndToEnd: HTTP/1.1 framing that a second parser could
// read otherwise (request smuggling shapes) is refused by Envoy and never
// forwarded; framing Envoy accepts is forwarded as sendguard read it.
func TestAttackFramingEndToEnd(t *testing.T) {
	s := startStack(t)
	key := "Authorization: Bearer key-demo"
	js := "Content-Type: application/json"
	marketing := sendBody("inst_12345", recipient, okMessage, "marketing")
	tests := []attack{
		{name: "Content-Length twice, same value", header: []string{js, key, fmt.Sprintf("Content-Length: %d", len(marketing)), fmt.Sprintf("Content-Length: %d", len(marketing))},
			body: marketing, want: catalog.InvalidRequestPath},
		{name: "Content-Length list", header: []string{js, key, fmt.Sprintf("Content-Length: %d, %d", len(marketing), len(marketing))},
			body: marketing, want: catalog.InvalidRequestPath},
		{name: "Content-Length twice, different values", header: []string{js, key, fmt.Sprintf("Content-Length: %d", len(marketing)), "Content-Length: 5"},
			body: marketing, want: catalog.InvalidRequestPath},
		{name: "Content-Length and chunked", header: []string{js, key, "Content-Length: 5", "Transfer-Encoding: chunked"},
			body: chunked(marketing), want: catalog.InvalidRequestPath},
		{name: "Transfer-Encoding with a space before the colon", header: []string{js, key, "Transfer-Encoding : chunked"},
			body: chunked(marketing), want: catalog.InvalidRequestPath},
		{name: "Content-Length with a space before the colon", header: []string{js, key, fmt.Sprintf("Content-Length : %d", len(marketing))},
			body: marketing, want: catalog.InvalidRequestPath},
		{name: "Transfer-Encoding xchunked", header: []string{js, key, "Transfer-Encoding: xchunked"}, body: chunked(marketing), status: 501},
		{name: "Transfer-Encoding chunked, identity", header: []string{js, key, "Transfer-Encoding: chunked, identity"}, body: chunked(marketing), status: 501},
		{name: "NUL in a header value", header: []string{js, key, "X-A: a\x00b"}, body: marketing, want: catalog.InvalidRequestPath},
		{name: "lower-case method", method: "post", header: []string{js, key}, body: marketing, want: catalog.InvalidRequestPath},
		// Accepted framings: decided on the body Envoy forwards.
		{name: "chunked", header: []string{js, key, "Transfer-Encoding: chunked"}, body: chunked(marketing), want: catalog.MessagePurposeNotAllowed},
		{name: "Transfer-Encoding Chunked", header: []string{js, key, "Transfer-Encoding: Chunked"}, body: chunked(marketing), want: catalog.MessagePurposeNotAllowed},
		{name: "chunk extensions", header: []string{js, key, "Transfer-Encoding: chunked"},
			body: fmt.Sprintf("%x;a=b\r\n%s\r\n0\r\n\r\n", len(marketing), marketing), want: catalog.MessagePurposeNotAllowed},
		{name: "folded Authorization (obs-fold)", header: []string{js, "Authorization: Bearer", " key-demo"}, body: marketing, want: catalog.MessagePurposeNotAllowed},
		{name: "bare LF between header lines", header: []string{js, key + "\nX-Sendguard-Purpose: transactional"}, body: marketing, want: catalog.MessagePurposeNotAllowed},
		{name: "absolute-form with another host", target: "http://evil.example/api/send-message", header: []string{js, key}, body: marketing, want: catalog.MessagePurposeNotAllowed},
		{name: "absolute-form with ;parameters", target: "http://127.0.0.1/api/send-message;x", header: []string{js, key}, body: marketing, want: catalog.MessagePurposeNotAllowed},
		// A client's partial-body flag is Envoy's to set: true on a short
		// body is ignored, false on a long one does not hide the cut.
		{name: "client says the body is partial", header: []string{js, key, "X-Envoy-Auth-Partial-Body: true"}, body: marketing, want: catalog.MessagePurposeNotAllowed},
	}
	for _, a := range tests {
		if a.method == "" {
			a.method = "POST"
		}
		if a.target == "" {
			a.target = "/api/send-message"
		}
		t.Run(a.name, func(t *testing.T) {
			a.run(t, s, func() rawReply { return s.raw(a.method, a.target, a.header, a.body) })
		})
	}

	t.Run("trailers never reach the sender", func(t *testing.T) {
		phone := freshRecipient()
		body := sendBody("inst_12345", phone, okMessage, "transactional")
		a := attack{method: "POST", target: "/api/send-message", header: []string{js, key, "Transfer-Encoding: chunked", "Trailer: X-Sendguard-Phone, Content-Type"},
			sender: func(t *testing.T, got fakesender.Request) {
				sawBody(body, phone)(t, got)
				if ct := got.Header.Values("Content-Type"); len(ct) != 1 || ct[0] != "application/json" {
					t.Errorf("sender saw content-type %q", ct)
				}
			}}
		trailed := fmt.Sprintf("%x\r\n%s\r\n0\r\nX-Sendguard-Phone: +966500000000\r\nContent-Type: application/x-www-form-urlencoded\r\n\r\n", len(body), body)
		a.run(t, s, func() rawReply { return s.raw(a.method, a.target, a.header, trailed) })
	})

	t.Run("Expect: 100-continue", func(t *testing.T) {
		a := attack{method: "POST", target: "/api/send-message", want: catalog.MessagePurposeNotAllowed}
		a.run(t, s, func() rawReply { return s.rawExpect("/api/send-message", []string{js, key}, marketing) })
		phone := freshRecipient()
		body := sendBody("inst_12345", phone, okMessage, "transactional")
		a = attack{method: "POST", target: "/api/send-message", sender: sawBody(body, phone)}
		a.run(t, s, func() rawReply { return s.rawExpect("/api/send-message", []string{js, key}, body) })
	})

	t.Run("a long body with the contract's fields after the cut", func(t *testing.T) {
		// What sendguard reads (the first 64 KiB) is a padded clean send;
		// the fields a sender would read come after the cut.
		head := `{"instance_id":"inst_12345","pad":"` + strings.Repeat("a", 70000) + `",`
		tail := `"phone":"+966500000000","message":"` + spam + `","message_purpose":"marketing"}`
		for _, h := range [][]string{{js, key}, {js, key, "X-Envoy-Auth-Partial-Body: false"}, {js, key, "Transfer-Encoding: chunked"}} {
			body := head + tail
			if strings.HasPrefix(h[len(h)-1], "Transfer-Encoding") {
				body = chunked(body)
			}
			a := attack{method: "POST", target: "/api/send-message", header: h}
			before := s.rec.Len()
			r := s.raw(a.method, a.target, a.header, body)
			if want := catalog.Body(catalog.ValidationError, catalog.Details{Fields: []catalog.Field{{Name: "body", Reason: "too_large"}}}); r.status != 422 || !bytes.Equal(r.body, want) {
				t.Errorf("%q: %d %s, want 422 %s", h, r.status, r.body, want)
			}
			if s.rec.Len() != before {
				t.Errorf("%q: the sender received a body sendguard saw cut", h)
			}
		}
	})
}

// rawExpect sends a POST with Expect: 100-continue, waits for Envoy's
// interim answer before writing the body, and reads the final answer.
func (s *stack) rawExpect(target string, header []string, body string) rawReply {
	s.t.Helper()
	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", s.listen))
	if err != nil {
		s.t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "POST %s HTTP/1.1\r\nHost: sender\r\nConnection: close\r\nExpect: 100-continue\r\nContent-Length: %d\r\n", target, len(body))
	for _, h := range header {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("\r\n")
	io.WriteString(c, b.String())
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: "POST"})
	if err != nil {
		s.t.Fatalf("read interim answer: %v", err)
	}
	if resp.StatusCode != 100 {
		s.t.Fatalf("interim answer %d, want 100", resp.StatusCode)
	}
	io.WriteString(c, body)
	if resp, err = http.ReadResponse(br, &http.Request{Method: "POST"}); err != nil {
		s.t.Fatalf("read answer: %v", err)
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(resp.Body)
	return rawReply{resp.StatusCode, resp.Header, rb}
}

// TestAttackBodyEncodingEndToEnd: a body that a sender could decode into
// another JSON document than the bytes sendguard read (compressed, UTF-16
// or UTF-32, JSON5 and other lenient syntaxes) is refused with
// invalid_json and never forwarded.
func TestAttackBodyEncodingEndToEnd(t *testing.T) {
	s := startStack(t)
	key := "Authorization: Bearer key-demo"
	js := "Content-Type: application/json"
	suppressed := sendBody("inst_12345", "+966500000000", okMessage, "transactional")
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(suppressed))
	zw.Close()
	utf16le := func(s string, bom bool) string {
		var b []byte
		if bom {
			b = append(b, 0xff, 0xfe)
		}
		for _, r := range utf16.Encode([]rune(s)) {
			b = append(b, byte(r), byte(r>>8))
		}
		return string(b)
	}
	utf16be := func(s string) string {
		var b []byte
		for _, r := range utf16.Encode([]rune(s)) {
			b = append(b, byte(r>>8), byte(r))
		}
		return string(b)
	}
	utf32le := func(s string) string {
		var b []byte
		for _, r := range s {
			b = append(b, byte(r), byte(r>>8), byte(r>>16), byte(r>>24))
		}
		return string(b)
	}
	clean := `"instance_id":"inst_12345","phone":"` + recipient + `","message":"` + okMessage + `","message_purpose":"transactional"`
	tests := []attack{
		{name: "gzip", header: []string{js, key, "Content-Encoding: gzip"}, body: gz.String(), want: catalog.InvalidJSON},
		{name: "gzip without Content-Encoding", header: []string{js, key}, body: gz.String(), want: catalog.InvalidJSON},
		{name: "UTF-16LE with BOM", header: []string{"Content-Type: application/json; charset=utf-16", key}, body: utf16le(suppressed, true), want: catalog.InvalidJSON},
		{name: "UTF-16LE without BOM", header: []string{js, key}, body: utf16le(suppressed, false), want: catalog.InvalidJSON},
		{name: "UTF-16BE without BOM", header: []string{js, key}, body: utf16be(suppressed), want: catalog.InvalidJSON},
		{name: "UTF-32LE", header: []string{js, key}, body: utf32le(suppressed), want: catalog.InvalidJSON},
		{name: "UTF-8 BOM", header: []string{js, key}, body: "\xef\xbb\xbf" + suppressed, want: catalog.InvalidJSON},
		{name: "Latin-1 byte in a string", header: []string{js, key}, body: `{` + clean + `,"x":"caf` + "\xe9" + `"}`, want: catalog.InvalidJSON},
		{name: "comment", header: []string{js, key}, body: `{` + clean + `/*,"phone":"+966500000000"*/}`, want: catalog.InvalidJSON},
		{name: "line comment", header: []string{js, key}, body: "{" + clean + "//x\n}", want: catalog.InvalidJSON},
		{name: "NaN", header: []string{js, key}, body: `{` + clean + `,"x":NaN}`, want: catalog.InvalidJSON},
		{name: "Infinity", header: []string{js, key}, body: `{` + clean + `,"x":-Infinity}`, want: catalog.InvalidJSON},
		{name: "single quotes", header: []string{js, key}, body: `{` + clean + `,'phone':'+966500000000'}`, want: catalog.InvalidJSON},
		{name: "unquoted name", header: []string{js, key}, body: `{` + clean + `,phone:"+966500000000"}`, want: catalog.InvalidJSON},
		{name: "trailing comma", header: []string{js, key}, body: `{` + clean + `,}`, want: catalog.InvalidJSON},
		{name: "hex number", header: []string{js, key}, body: `{` + clean + `,"x":0x10}`, want: catalog.InvalidJSON},
		{name: "leading plus", header: []string{js, key}, body: `{` + clean + `,"x":+1}`, want: catalog.InvalidJSON},
		{name: "a second value after the object", header: []string{js, key}, body: `{` + clean + `} {"phone":"+966500000000"}`, want: catalog.InvalidJSON},
		{name: "NUL after the object", header: []string{js, key}, body: `{` + clean + "}\x00", want: catalog.InvalidJSON},
		{name: "raw tab in a string", header: []string{js, key}, body: `{` + clean + ",\"x\":\"a\tb\"}", want: catalog.InvalidJSON},
		{name: "phone as a number", header: []string{js, key}, body: `{"instance_id":"inst_12345","phone":966500000000,"message":"hi","message_purpose":"transactional"}`,
			want: catalog.ValidationError, details: catalog.Details{Fields: []catalog.Field{{Name: "phone", Reason: "must_be_string"}}}},
		{name: "phone as an array", header: []string{js, key}, body: `{"instance_id":"inst_12345","phone":["+966501234567","+966500000000"],"message":"hi","message_purpose":"transactional"}`,
			want: catalog.ValidationError, details: catalog.Details{Fields: []catalog.Field{{Name: "phone", Reason: "must_be_string"}}}},
		{name: "phone as an object", header: []string{js, key}, body: `{"instance_id":"inst_12345","phone":{"e164":"+966500000000"},"message":"hi","message_purpose":"transactional"}`,
			want: catalog.ValidationError, details: catalog.Details{Fields: []catalog.Field{{Name: "phone", Reason: "must_be_string"}}}},
		{name: "Phone with a capital", header: []string{js, key}, body: `{` + clean + `,"Phone":"+966500000000"}`, want: catalog.InvalidJSON},
		{name: "phone_ with an underscore", header: []string{js, key}, body: `{` + clean + `,"phone_":"+966500000000"}`, want: catalog.InvalidJSON},
		{name: "message-purpose with a hyphen", header: []string{js, key}, body: `{` + clean + `,"message-purpose":"marketing"}`, want: catalog.InvalidJSON},
		// The suppressed number in other digits is the suppressed number, as
		// libphonenumber in a sender reads it.
		{name: "phone with full-width digits", header: []string{js, key}, body: sendBody("inst_12345", "+９６６５００００００００", okMessage, "transactional"),
			want: catalog.RecipientSuppressed},
		{name: "phone with Arabic-Indic digits", header: []string{js, key}, body: sendBody("inst_12345", "+٩٦٦٥٠٠٠٠٠٠٠٠", okMessage, "transactional"),
			want: catalog.RecipientSuppressed},
		{name: "phone with a bidi mark", header: []string{js, key}, body: sendBody("inst_12345", "\u202e+966500000000", okMessage, "transactional"),
			want: catalog.ValidationError, details: catalog.Details{Fields: []catalog.Field{{Name: "phone", Reason: "invalid_phone_number"}}}},
		{name: "phone with a zero-width space", header: []string{js, key}, body: sendBody("inst_12345", "+96650\u200b0000000", okMessage, "transactional"),
			want: catalog.ValidationError, details: catalog.Details{Fields: []catalog.Field{{Name: "phone", Reason: "invalid_phone_number"}}}},
	}
	for _, a := range tests {
		a.method, a.target = "POST", "/api/send-message"
		t.Run(a.name, func(t *testing.T) {
			a.run(t, s, func() rawReply { return s.raw(a.method, a.target, a.header, a.body) })
		})
	}

	t.Run("a large number in another field is forwarded as sent", func(t *testing.T) {
		phone := freshRecipient()
		body := `{"instance_id":"inst_12345","phone":"` + phone + `","message":"` + okMessage + `","message_purpose":"transactional","order":123456789012345678901234567890e400}`
		a := attack{method: "POST", target: "/api/send-message", header: []string{js, key}, sender: sawBody(body, phone)}
		a.run(t, s, func() rawReply { return s.raw(a.method, a.target, a.header, body) })
	})
}

// TestAttackHeadersEndToEnd: Authorization and method-override shapes are
// read by sendguard the way Envoy forwards them.
func TestAttackHeadersEndToEnd(t *testing.T) {
	s := startStack(t)
	js := "Content-Type: application/json"
	marketing := sendBody("inst_12345", recipient, okMessage, "marketing")
	tests := []attack{
		// Two keys: Envoy hands sendguard both, joined, which is no key.
		{name: "Authorization twice", header: []string{js, "Authorization: Bearer key-demo", "Authorization: Bearer key-other"}, body: marketing, want: catalog.InvalidAPIKey},
		{name: "Authorization twice, the same key", header: []string{js, "Authorization: Bearer key-demo", "Authorization: Bearer key-demo"}, body: marketing, want: catalog.InvalidAPIKey},
		{name: "a tab after Bearer", header: []string{js, "Authorization: Bearer\tkey-demo"}, body: marketing, want: catalog.InvalidAPIKey},
		{name: "Basic", header: []string{js, "Authorization: Basic a2V5LWRlbW86"}, body: marketing, want: catalog.InvalidAPIKey},
		{name: "two tokens", header: []string{js, "Authorization: Bearer key-demo key-other"}, body: marketing, want: catalog.InvalidAPIKey},
		{name: "key in a header sendguard does not read", header: []string{js, "X-API-Key: key-demo"}, body: marketing, want: catalog.InvalidAPIKey},
		{name: "key in the query", target: "/api/send-message?api_key=key-demo", header: []string{js}, body: marketing, want: catalog.InvalidAPIKey},
		{name: "lower-case bearer, spaces", header: []string{js, "authorization: bearer   key-demo  "}, body: marketing, want: catalog.MessagePurposeNotAllowed},
		// An empty second Authorization adds nothing: Envoy drops it.
		{name: "Authorization twice, one empty", header: []string{js, "Authorization: Bearer key-demo", "Authorization:"}, body: marketing, want: catalog.MessagePurposeNotAllowed},
		// A method override to a read is still decided as the send it is.
		{name: "POST overridden to GET", header: []string{js, "Authorization: Bearer key-demo", "X-HTTP-Method-Override: GET"}, body: marketing, want: catalog.MessagePurposeNotAllowed},
		{name: "POST overridden to GET by _method", target: "/api/send-message?_method=GET", header: []string{js, "Authorization: Bearer key-demo"}, body: marketing, want: catalog.MessagePurposeNotAllowed},
		{name: "PUT overridden to POST", method: "PUT", header: []string{js, "Authorization: Bearer key-demo", "X-HTTP-Method-Override: POST"}, body: marketing, want: catalog.MessagePurposeNotAllowed},
		{name: "GET with a body overridden to POST", method: "GET", header: []string{js, "X-HTTP-Method-Override: POST"}, body: marketing, want: catalog.InvalidRequestMethod},
		// The inbound webhook route does not lead to the send path.
		{name: "webhook route, Tomcat ..;", target: "/webhooks/..;/api/send-message", header: []string{js}, body: marketing, want: catalog.InvalidAPIKey},
		{name: "webhook route, encoded dots", target: "/webhooks/%2e%2e/api/send-message", header: []string{js}, body: marketing, want: catalog.InvalidAPIKey},
		{name: "webhook route, matrix parameter", target: "/webhooks;x/../api/send-message", header: []string{js}, body: marketing, want: catalog.InvalidAPIKey},
	}
	for _, a := range tests {
		if a.method == "" {
			a.method = "POST"
		}
		if a.target == "" {
			a.target = "/api/send-message"
		}
		t.Run(a.name, func(t *testing.T) {
			a.run(t, s, func() rawReply { return s.raw(a.method, a.target, a.header, a.body) })
		})
	}

	t.Run("the sender gets the Authorization sendguard read", func(t *testing.T) {
		phone := freshRecipient()
		body := sendBody("inst_12345", phone, okMessage, "transactional")
		a := attack{method: "POST", target: "/api/send-message", header: []string{js, "authorization: bearer   key-demo"},
			sender: func(t *testing.T, got fakesender.Request) {
				sawBody(body, phone)(t, got)
				if v := got.Header.Values("Authorization"); len(v) != 1 || v[0] != "bearer   key-demo" {
					t.Errorf("sender saw Authorization %q, want the one sendguard read", v)
				}
			}}
		a.run(t, s, func() rawReply { return s.raw(a.method, a.target, a.header, body) })
	})
}

// TestAttackUnderscoreHeadersEndToEnd: CGI, WSGI and Rack read a header
// name with "_" for "-" (X_Sendguard_Phone and X-Sendguard-Phone are both
// HTTP_X_SENDGUARD_PHONE), so a client's x_sendguard_phone could stand in
// for sendguard's x-sendguard-phone at such a sender. Envoy drops every
// header whose name holds "_", over HTTP/1.1 and HTTP/2, on every route.
func TestAttackUnderscoreHeadersEndToEnd(t *testing.T) {
	s := startStack(t)
	spoof := map[string]string{"X_Sendguard_Phone": "+966500000000", "x-sendguard_purpose": "marketing", "X_SENDGUARD_RISK_SCORE": "0",
		"x_sendguard-decision-id": "spoofed", "X_Forwarded_For": "10.0.0.1", "X-Custom": "kept"}
	check := func(t *testing.T, what string, got fakesender.Request) {
		t.Helper()
		if got.Header.Get("X-Custom") != "kept" {
			t.Errorf("%s: upstream lost X-Custom: %v", what, got.Header)
		}
		for name, v := range got.Header {
			if strings.Contains(name, "_") {
				t.Errorf("%s: upstream saw the client's %s: %q", what, name, v)
			}
		}
	}
	for _, h2 := range []bool{false, true} {
		proto := "HTTP/1.1"
		if h2 {
			proto = "HTTP/2"
		}
		for _, tc := range []struct {
			path    string
			key     bool
			webhook bool
		}{{path: "/api/send-message", key: true}, {path: "/api/other"}, {path: "/webhooks/inbound", webhook: true}} {
			t.Run(proto+" "+tc.path, func(t *testing.T) {
				rec := s.rec
				if tc.webhook {
					rec = s.webhook
				}
				phone := freshRecipient()
				body := sendBody("inst_12345", phone, okMessage, "transactional")
				if tc.webhook {
					body = `{"instance_id":"inst_12345","from":"` + phone + `","message_text":"hello","timestamp":"2026-05-08T10:00:00Z"}`
				}
				header := map[string]string{"Content-Type": "application/json"}
				if tc.key {
					header["Authorization"] = "Bearer key-demo"
				}
				for k, v := range spoof {
					header[k] = v
				}
				before := rec.Len()
				r := s.doProto(h2, "POST", tc.path, header, body)
				if r.status != 200 || rec.Len() != before+1 {
					t.Fatalf("POST %s = %d %s, upstream saw %d; want forwarded", tc.path, r.status, r.body, rec.Len()-before)
				}
				got := rec.Requests()[before]
				check(t, proto+" POST "+tc.path, got)
				if tc.key {
					sawBody(body, phone)(t, got)
				}
			})
		}
	}
}

// doProto sends one request with Go's client, over HTTP/2 with prior
// knowledge when h2 is set. Header names are sent as given.
func (s *stack) doProto(h2 bool, method, path string, header map[string]string, body string) reply {
	s.t.Helper()
	tr := &http.Transport{}
	if h2 {
		var p http.Protocols
		p.SetUnencryptedHTTP2(true)
		tr.Protocols = &p
	}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequest(method, fmt.Sprintf("http://127.0.0.1:%d%s", s.listen, path), strings.NewReader(body))
	if err != nil {
		s.t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = []string{v}
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	if h2 && resp.ProtoMajor != 2 {
		s.t.Fatalf("answered over %s, want HTTP/2", resp.Proto)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatal(err)
	}
	return reply{resp.StatusCode, resp.Header, b}
}

// TestAttackContentTypeEndToEnd: the body is read as JSON by every sender
// only when it is declared as JSON in UTF-8, or not declared at all, and
// not content-coded. Otherwise a framework binds or decodes it otherwise:
// the same bytes as a form are phone=+966500000000 to Spring, Express,
// Flask, PHP and Rails; in UTF-7 (Express's body-parser decodes it)
// "+ACIALAAi-" is `","` and a string hides a second "phone". Such a send
// answers invalid_json and is never forwarded.
func TestAttackContentTypeEndToEnd(t *testing.T) {
	s := startStack(t)
	key := "Authorization: Bearer key-demo"
	clean := `"instance_id":"inst_12345","phone":"` + recipient + `","message":"` + okMessage + `","message_purpose":"transactional"`
	form := `{` + clean + `,"x":"&phone=%2B966500000000&"}`
	utf7 := `{` + clean + `,"x":"+ACIALAAi-phone+ACIAOgAi-+-966500000000"}`
	for _, a := range []attack{
		{name: "form-encoded", header: []string{"Content-Type: application/x-www-form-urlencoded", key}, body: form},
		{name: "form-encoded, charset", header: []string{"Content-Type: application/x-www-form-urlencoded; charset=utf-8", key}, body: form},
		{name: "multipart", header: []string{"Content-Type: multipart/form-data; boundary=x", key}, body: form},
		{name: "text/plain", header: []string{"Content-Type: text/plain", key}, body: form},
		{name: "JSON and form", header: []string{"Content-Type: application/json", "Content-Type: application/x-www-form-urlencoded", key}, body: form},
		{name: "UTF-7", header: []string{"Content-Type: application/json; charset=utf-7", key}, body: utf7},
		{name: "UTF-7, quoted", header: []string{`Content-Type: application/json; charset="UTF-7"`, key}, body: utf7},
		{name: "UTF-8 then UTF-7", header: []string{"Content-Type: application/json; charset=utf-8; charset=utf-7", key}, body: utf7},
		{name: "RFC 2231 charset", header: []string{"Content-Type: application/json; charset*=utf-8''utf-7", key}, body: utf7},
		{name: "Latin-1", header: []string{"Content-Type: application/json; charset=iso-8859-1", key}, body: form},
		{name: "gzip declared, plain body", header: []string{"Content-Type: application/json", "Content-Encoding: gzip", key}, body: form},
		{name: "br declared, plain body", header: []string{"Content-Type: application/json", "Content-Encoding: br", key}, body: form},
		{name: "identity then gzip", header: []string{"Content-Type: application/json", "Content-Encoding: identity", "Content-Encoding: gzip", key}, body: form},
	} {
		a.method, a.target, a.want = "POST", "/api/send-message", catalog.InvalidJSON
		t.Run(a.name, func(t *testing.T) {
			a.run(t, s, func() rawReply { return s.raw(a.method, a.target, a.header, a.body) })
		})
	}
	for _, h2 := range []bool{false, true} {
		t.Run(fmt.Sprintf("form-encoded over HTTP/2 %v", h2), func(t *testing.T) {
			before := s.rec.Len()
			r := s.doProto(h2, "POST", "/api/send-message", map[string]string{"Content-Type": "application/x-www-form-urlencoded", "Authorization": "Bearer key-demo"}, form)
			if want := catalog.Body(catalog.InvalidJSON, catalog.Details{}); r.status != 400 || !bytes.Equal(r.body, want) {
				t.Errorf("= %d %s, want 400 %s", r.status, r.body, want)
			}
			if s.rec.Len() != before {
				t.Error("the sender received it")
			}
		})
	}
	for _, ct := range []string{"", "Content-Type: application/json", "Content-Type: application/json; charset=utf-8", `Content-Type: Application/JSON;charset="UTF-8"`, "Content-Encoding: identity"} {
		t.Run("allowed: "+ct, func(t *testing.T) {
			phone := freshRecipient()
			body := sendBody("inst_12345", phone, okMessage, "transactional")
			header := []string{key}
			if ct != "" {
				header = append(header, ct)
			}
			a := attack{method: "POST", target: "/api/send-message", header: header, sender: sawBody(body, phone)}
			a.run(t, s, func() rawReply { return s.raw(a.method, a.target, a.header, body) })
		})
	}
}

// TestAttackQueryEndToEnd: sendguard reads the contract's fields from the
// body only, so a send whose query string holds a parameter named like one
// of them is refused (invalid_request_query), with or without a key, over
// HTTP/1.1 and HTTP/2: Rails' params merge the query over the JSON body
// (the query's phone wins), and Flask's request.values, Spring's
// @RequestParam and PHP's $_REQUEST read it too. Any other query is
// forwarded as it came.
func TestAttackQueryEndToEnd(t *testing.T) {
	s := startStack(t)
	js := "Content-Type: application/json"
	key := "Authorization: Bearer key-demo"
	for _, q := range []string{
		"phone=%2B966500000000", "phone=+966500000000", "PHONE=%2B966500000000", "Phone=%2B966500000000",
		"x=1&phone=%2B966500000000", "x=1;phone=%2B966500000000", "ph%6Fne=%2B966500000000",
		"phone%5B%5D=%2B966500000000", "phone[]=%2B966500000000", "phone.=1", "instance_id=inst_theirs",
		"instanceId=inst_theirs", "message=" + strings.ReplaceAll(spam, " ", "+"), "message_purpose=marketing",
		"message.purpose=marketing", "message-purpose=marketing",
	} {
		for _, header := range [][]string{{js}, {js, key}} {
			a := attack{name: q, method: "POST", target: "/api/send-message?" + q, header: header, want: catalog.InvalidRequestQuery,
				body: sendBody("inst_12345", recipient, okMessage, "transactional")}
			t.Run(fmt.Sprintf("%s %d", q, len(header)), func(t *testing.T) {
				a.run(t, s, func() rawReply { return s.raw(a.method, a.target, a.header, a.body) })
			})
		}
	}
	t.Run("over HTTP/2", func(t *testing.T) {
		before := s.rec.Len()
		r := s.doProto(true, "POST", "/api/send-message?phone=%2B966500000000", map[string]string{"Content-Type": "application/json", "Authorization": "Bearer key-demo"},
			sendBody("inst_12345", recipient, okMessage, "transactional"))
		if want := catalog.Body(catalog.InvalidRequestQuery, catalog.Details{}); r.status != 400 || !bytes.Equal(r.body, want) {
			t.Errorf("= %d %s, want 400 %s", r.status, r.body, want)
		}
		if s.rec.Len() != before {
			t.Error("the sender received it")
		}
	})
	t.Run("to a spelling of the send path", func(t *testing.T) {
		a := attack{method: "POST", target: "/API//send-message;x/?phone=%2B966500000000", header: []string{js, key}, want: catalog.InvalidRequestQuery,
			body: sendBody("inst_12345", recipient, okMessage, "transactional")}
		a.run(t, s, func() rawReply { return s.raw(a.method, a.target, a.header, a.body) })
	})
	for _, q := range []string{"x=1", "trace=phone", "phone_number=1", "ref=message"} {
		t.Run("forwarded: "+q, func(t *testing.T) {
			phone := freshRecipient()
			body := sendBody("inst_12345", phone, okMessage, "transactional")
			a := attack{method: "POST", target: "/api/send-message?" + q, header: []string{js, key}, sender: func(t *testing.T, got fakesender.Request) {
				sawBody(body, phone)(t, got)
				if got.Query != q {
					t.Errorf("sender saw query %q, want %q", got.Query, q)
				}
			}}
			a.run(t, s, func() rawReply { return s.raw(a.method, a.target, a.header, body) })
		})
	}
	t.Run("another route keeps its query", func(t *testing.T) {
		before := s.rec.Len()
		r := s.raw("POST", "/api/contacts?phone=%2B966500000000", []string{js}, `{"name":"x"}`)
		if r.status != 200 || s.rec.Len() != before+1 || s.rec.Requests()[before].Query != "phone=%2B966500000000" {
			t.Errorf("POST /api/contacts?phone=… = %d %s; want forwarded with its query", r.status, r.body)
		}
	})
}

// TestAttackFormatSuffixEndToEnd: Rails routes POST /api/send-message.json
// (any format suffix) to the send action, and Spring MVC did before 5.3:
// such a path is the send path to sendguard too, checked and never
// forwarded unchecked.
func TestAttackFormatSuffixEndToEnd(t *testing.T) {
	s := startStack(t)
	js := "Content-Type: application/json"
	marketing := sendBody("inst_12345", recipient, okMessage, "marketing")
	for _, p := range []string{"/api/send-message.json", "/api/send-message.xml", "/API/Send-Message.JSON", "/api/send-message.json/",
		"/api/send-message.json;x=1", "/api/send-message%2ejson", "/api/send-message.a.b", "/x/../api/send-message.json"} {
		for _, header := range [][]string{{js}, {js, "Authorization: Bearer key-demo"}} {
			a := attack{method: "POST", target: p, header: header, body: marketing, want: catalog.InvalidAPIKey}
			if len(header) == 2 {
				a.want = catalog.MessagePurposeNotAllowed
			}
			t.Run(fmt.Sprintf("%s %d", p, len(header)), func(t *testing.T) {
				a.run(t, s, func() rawReply { return s.raw(a.method, a.target, a.header, a.body) })
			})
		}
	}
	a := attack{method: "GET", target: "/api/send-message.json", header: []string{js}, body: marketing, want: catalog.InvalidRequestMethod}
	t.Run("GET with a body", func(t *testing.T) {
		a.run(t, s, func() rawReply { return s.raw(a.method, a.target, a.header, a.body) })
	})
}

// TestAttackPathOverrideHeadersEndToEnd: X-Original-URL and X-Rewrite-URL
// make IIS, older Symfony and Zend Framework serve the path they name
// instead of the request's: a POST to an unchecked path naming the send
// path would be a send that sendguard never saw. Envoy removes both on
// every route.
func TestAttackPathOverrideHeadersEndToEnd(t *testing.T) {
	s := startStack(t)
	for _, h2 := range []bool{false, true} {
		for _, tc := range []struct{ method, path string }{{"POST", "/api/other"}, {"GET", "/api/status"}, {"PUT", "/api/contacts/1"}} {
			t.Run(fmt.Sprintf("%s %s HTTP/2 %v", tc.method, tc.path, h2), func(t *testing.T) {
				before := s.rec.Len()
				body := ""
				if tc.method != "GET" {
					body = sendBody("inst_12345", "+966500000000", spam, "marketing")
				}
				r := s.doProto(h2, tc.method, tc.path, map[string]string{"Content-Type": "application/json", "X-Original-URL": "/api/send-message",
					"X-Rewrite-URL": "/api/send-message", "X-Custom": "kept"}, body)
				if r.status != 200 || s.rec.Len() != before+1 {
					t.Fatalf("= %d %s, sender saw %d; want forwarded", r.status, r.body, s.rec.Len()-before)
				}
				got := s.rec.Requests()[before].Header
				if got.Get("X-Custom") != "kept" {
					t.Errorf("sender lost X-Custom: %v", got)
				}
				for _, name := range []string{"X-Original-Url", "X-Rewrite-Url"} {
					if v := got.Values(name); len(v) != 0 {
						t.Errorf("sender saw the client's %s: %q", name, v)
					}
				}
			})
		}
	}
}

// TestAttackHTTP2PathsEndToEnd: over HTTP/2 the path is the :path pseudo
// header, which Envoy normalises like an HTTP/1.1 request target: each
// spelling is checked as the send path or refused, never forwarded
// unchecked.
func TestAttackHTTP2PathsEndToEnd(t *testing.T) {
	s := startStack(t)
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: &p}
	t.Cleanup(tr.CloseIdleConnections)
	c := &http.Client{Transport: tr}
	marketing := sendBody("inst_12345", recipient, okMessage, "marketing")
	for _, tc := range []struct {
		path string
		want catalog.Code // with a key
	}{
		{"/api/send-message", catalog.MessagePurposeNotAllowed},
		{"/API//send-message/", catalog.MessagePurposeNotAllowed},
		{"/api/send-message;x=1", catalog.MessagePurposeNotAllowed},
		{"/api%2Fsend-message", catalog.MessagePurposeNotAllowed},
		{"/x/..%2Fapi/send-message", catalog.MessagePurposeNotAllowed},
		{"/api/send-message.json", catalog.MessagePurposeNotAllowed},
		{`/api\send-message`, catalog.MessagePurposeNotAllowed},
		{"/api/send-message%3Fx", catalog.InvalidRequestPath},
		{"/api/send-message%20", catalog.InvalidRequestPath},
		{"/api/send-message.", catalog.InvalidRequestPath},
		{"/api/send-message%00", catalog.InvalidRequestPath},
		{"/api/send-message#x", catalog.InvalidRequestPath},
		{"/api/send-message?phone=%2B966500000000", catalog.InvalidRequestQuery},
	} {
		t.Run(tc.path, func(t *testing.T) {
			req, err := http.NewRequest("POST", fmt.Sprintf("http://127.0.0.1:%d/", s.listen), strings.NewReader(marketing))
			if err != nil {
				t.Fatal(err)
			}
			req.URL.Opaque = tc.path // sent as :path, byte for byte
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer key-demo")
			before := s.rec.Len()
			resp, err := c.Do(req)
			if err != nil {
				t.Fatalf("POST %q: %v", tc.path, err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.ProtoMajor != 2 {
				t.Fatalf("answered over %s, want HTTP/2", resp.Proto)
			}
			e, _ := catalog.Lookup(tc.want)
			if want := catalog.Body(tc.want, catalog.Details{}); resp.StatusCode != e.Status || !bytes.Equal(b, want) {
				t.Errorf("POST %q over HTTP/2 = %d %s\nwant %d %s", tc.path, resp.StatusCode, b, e.Status, want)
			}
			if s.rec.Len() != before {
				t.Errorf("POST %q over HTTP/2 reached the sender", tc.path)
			}
		})
	}
}
