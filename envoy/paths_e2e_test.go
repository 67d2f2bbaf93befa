package envoy_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sendguard/sendguard/internal/catalog"
)

// rawReply is one answer to a request written byte for byte.
type rawReply struct {
	status int
	header http.Header
	body   []byte
}

// raw writes one HTTP/1.1 request exactly as given, request target
// included (Go's client would clean or refuse most of the spellings below),
// and reads the answer. header lines are written as they are; a non-empty
// body gets a Content-Length unless a header line sets the framing.
func (s *stack) raw(method, target string, header []string, body string) rawReply {
	s.t.Helper()
	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", s.listen))
	if err != nil {
		s.t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: sender\r\nConnection: close\r\n", method, target)
	framed := false
	for _, h := range header {
		b.WriteString(h + "\r\n")
		l := strings.ToLower(h)
		framed = framed || strings.HasPrefix(l, "content-length:") || strings.HasPrefix(l, "transfer-encoding:")
	}
	if body != "" && !framed {
		fmt.Fprintf(&b, "Content-Length: %d\r\n", len(body))
	}
	b.WriteString("\r\n" + body)
	if _, err := io.WriteString(c, b.String()); err != nil {
		s.t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: method})
	if err != nil {
		s.t.Fatalf("%s %q: read answer: %v", method, target, err)
	}
	defer resp.Body.Close()
	rb, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatalf("%s %q: read body: %v", method, target, err)
	}
	return rawReply{resp.StatusCode, resp.Header, rb}
}

// want checks that r is the documented answer code, in the contract's
// shape, byte for byte.
func (r rawReply) want(t *testing.T, what string, code catalog.Code, method string) {
	t.Helper()
	e, _ := catalog.Lookup(code)
	if r.status != e.Status {
		t.Errorf("%s = %d %s, want %d %s", what, r.status, r.body, e.Status, code)
		return
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s: content-type %q, want application/json", what, ct)
	}
	if method == "HEAD" {
		return // no body on the wire
	}
	if want := catalog.Body(code, catalog.Details{}); !bytes.Equal(r.body, want) {
		t.Errorf("%s body =\n%s\nwant\n%s", what, r.body, want)
	}
}

// TestPathSpellingsEndToEnd: no spelling of the send path reaches the
// sender unchecked. Each one, with no API key and with a valid key and a
// denied body, is either decided as the send path (401 invalid_api_key,
// 422 message_purpose_required) or refused as a path that cannot be
// read one way only (400 invalid_request_path, by sendguard or by Envoy's
// own normalisation), and the recording sender receives nothing.
func TestPathSpellingsEndToEnd(t *testing.T) {
	s := startStack(t)
	const (
		checked = "checked as the send path"
		refused = "refused"
	)
	spellings := []struct{ path, want string }{
		// The four of issue 8.
		{"/api/send-message;x=1", checked},
		{"/api/send-message.", refused},
		{"/api/send-message%20", refused},
		{"/api/send-message%3Fx", refused},
		// Case.
		{"/API/Send-Message", checked},
		{"/api/SEND-MESSAGE/", checked},
		// Encoded separators and dots.
		{"/api%2Fsend-message", checked},
		{"/api%2fsend-message", checked},
		{"/api/%2e/send-message", checked},
		{"/x/%2E%2E/api/send-message", checked},
		{"/api/send%2Dmessage", checked},
		{"/api/%73end-message", checked},
		{"/api%252Fsend-message", refused}, // double encoding
		{"/api/send-message%252e", refused},
		// Slashes and dot segments.
		{"//api//send-message", checked},
		{"/./api/send-message", checked},
		{"/x/../api/send-message", checked},
		{"/api/send-message/", checked},
		{"/api/send-message//", checked},
		// ;parameters on each segment, and Tomcat's "..;".
		{"/api;a=b/send-message", checked},
		{"/api/send-message;a=b/", checked},
		{"/api;a=b/send-message;c=d", checked},
		{"/x/..;/api/send-message", checked},
		{"/api/send-message%3Bx", checked},
		{"/api/send-message..;/", refused},
		// Overlong and invalid UTF-8, Unicode look-alikes.
		{"/api%C0%AFsend-message", refused},
		{"/api%E0%80%AFsend-message", refused},
		{"/api/send-message%C0%AE", refused},
		{"/api/send-message%ff", refused},
		{"/api/%EF%BC%8Fsend-message", checked}, // fullwidth solidus, NFKC "/"
		{"/api/send-message%E2%80%8B", refused}, // zero-width space
		// Backslashes: Envoy reads them as "/".
		{`/api\send-message`, checked},
		{"/api%5Csend-message", checked},
		{"/api%5csend-message", checked},
		// Controls, spaces, "+".
		{"/api/send-message%09", refused},
		{"/api/send-message%0a", refused},
		{"/api/send-message%0D%0A", refused},
		{"/api/send-message%00", refused}, // Envoy's own 400
		{"/api/send-message%7f", refused},
		{"/api/send-message%C2%85", refused},
		{"/api/send%20message", refused},
		{"/api/send-message x", refused}, // a raw space: Envoy's codec refuses the request line
		{"/api/send-message+", refused},
		// Encoded "?" and "#", and a raw "#".
		{"/api/send-message%3f", refused},
		{"/api/send-message%23x", refused},
		{"/api/send-message#x", refused}, // Envoy's own 400
		// Trailing dots.
		{"/api/send-message%2e", refused},
		{"/api/send-message%2E/", refused},
		{"/api./send-message", refused},
		// Bad escapes: Envoy's own 400.
		{"/api/send-message%", refused},
		{"/api/send-message%zz", refused},
		// Mixed.
		{"/API;v=1//x/..%2F.%2fSend-Message;y", checked},
		{"/a/..%2F%2E%2E/api;x/SEND-message%2e", refused},
		{"/api/send-message?x=1", checked}, // a query is not the path
		{"http://sender/api/send-message", checked},
	}
	if len(spellings) < 30 {
		t.Fatalf("%d spellings, want at least 30", len(spellings))
	}
	// Denied without counting as a violation: ten of those would pause
	// the instance (auto_pause) and change the answer.
	noPurpose := sendBody("inst_12345", recipient, okMessage, "")
	for _, sp := range spellings {
		for _, key := range []string{"", "key-demo"} {
			header := []string{"Content-Type: application/json"}
			want := catalog.InvalidRequestPath
			if sp.want == checked {
				want = catalog.InvalidAPIKey
			}
			if key != "" {
				header = append(header, "Authorization: Bearer "+key)
				if sp.want == checked {
					want = catalog.MessagePurposeRequired
				}
			}
			what := fmt.Sprintf("POST %q (key %q, %s)", sp.path, key, sp.want)
			before := s.rec.Len()
			r := s.raw("POST", sp.path, header, noPurpose)
			r.want(t, what, want, "POST")
			if got := s.rec.Len(); got != before {
				t.Errorf("%s: the sender received %d requests: %+v", what, got-before, s.rec.Requests()[before:])
			}
		}
	}
}

// TestSendRouteMethodsEndToEnd: on the send path, every method but a read
// is decided like POST; a read with a body is refused; a read without one
// is forwarded as before.
func TestSendRouteMethodsEndToEnd(t *testing.T) {
	s := startStack(t)
	marketing := sendBody("inst_12345", recipient, okMessage, "marketing")
	json := "Content-Type: application/json"
	tests := []struct {
		name, method, path string
		header             []string
		body               string
		want               catalog.Code // "" means forwarded to the sender
	}{
		{"GET", "GET", "/api/send-message", nil, "", ""},
		{"HEAD", "HEAD", "/api/send-message", nil, "", ""},
		{"OPTIONS", "OPTIONS", "/api/send-message", nil, "", ""},
		{"GET with content-length 0", "GET", "/api/send-message", []string{"Content-Length: 0"}, "", ""},
		{"GET with a body", "GET", "/api/send-message", []string{json}, marketing, catalog.InvalidRequestMethod},
		{"GET with a body and a key", "GET", "/api/send-message", []string{json, "Authorization: Bearer key-demo"}, marketing, catalog.InvalidRequestMethod},
		{"GET with a chunked body", "GET", "/api/send-message", []string{json, "Transfer-Encoding: chunked"},
			fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", len(marketing), marketing), catalog.InvalidRequestMethod},
		{"GET with a body to a spelling", "GET", "/API/send-message;x=1/", []string{json}, marketing, catalog.InvalidRequestMethod},
		{"HEAD with a body", "HEAD", "/api/send-message", []string{json}, marketing, catalog.InvalidRequestMethod},
		{"OPTIONS with a body", "OPTIONS", "/api/send-message", []string{json}, marketing, catalog.InvalidRequestMethod},
		{"PUT", "PUT", "/api/send-message", []string{json}, marketing, catalog.InvalidAPIKey},
		{"PATCH", "PATCH", "/api/send-message", []string{json}, marketing, catalog.InvalidAPIKey},
		{"DELETE", "DELETE", "/api/send-message", []string{json}, marketing, catalog.InvalidAPIKey},
		{"PUT with a key", "PUT", "/api/send-message", []string{json, "Authorization: Bearer key-demo"}, marketing, catalog.MessagePurposeNotAllowed},
		{"PATCH with a key", "PATCH", "/api/send-message", []string{json, "Authorization: Bearer key-demo"}, marketing, catalog.MessagePurposeNotAllowed},
		{"DELETE with a key", "DELETE", "/api/send-message", []string{json, "Authorization: Bearer key-demo"}, marketing, catalog.MessagePurposeNotAllowed},
		{"PUT without a body", "PUT", "/api/send-message", nil, "", catalog.InvalidAPIKey},
		{"DELETE without a body", "DELETE", "/api/send-message", nil, "", catalog.InvalidAPIKey},
		{"PUT without a body, with a key", "PUT", "/api/send-message", []string{"Authorization: Bearer key-demo"}, "", catalog.InvalidJSON},
		{"PUT to a spelling", "PUT", "/api;x/Send-Message/", []string{json}, marketing, catalog.InvalidAPIKey},
		// Elsewhere, reads with a body and other methods still pass.
		{"GET with a body elsewhere", "GET", "/api/status", []string{json}, `{"q":1}`, ""},
		{"PUT elsewhere", "PUT", "/api/contacts/+966501234567", []string{json}, `{"name":"x"}`, ""},
	}
	// HTTP/2 (prior knowledge, as codec_type AUTO accepts): a GET whose
	// body comes in DATA frames has neither content-length nor
	// transfer-encoding.
	t.Run("HTTP/2 GET with a body and no content-length", func(t *testing.T) {
		var p http.Protocols
		p.SetUnencryptedHTTP2(true)
		c := &http.Client{Transport: &http.Transport{Protocols: &p}}
		req, err := http.NewRequest("GET", fmt.Sprintf("http://127.0.0.1:%d/api/send-message", s.listen), io.NopCloser(strings.NewReader(marketing)))
		if err != nil {
			t.Fatal(err)
		}
		before := s.rec.Len()
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.ProtoMajor != 2 {
			t.Fatalf("answered over %s, want HTTP/2", resp.Proto)
		}
		rawReply{resp.StatusCode, resp.Header, b}.want(t, "HTTP/2 GET /api/send-message with a body", catalog.InvalidRequestMethod, "GET")
		if got := s.rec.Len(); got != before {
			t.Errorf("the sender received %d requests", got-before)
		}
	})
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := s.rec.Len()
			r := s.raw(tc.method, tc.path, tc.header, tc.body)
			what := fmt.Sprintf("%s %s", tc.method, tc.path)
			if tc.want == "" {
				if r.status != 200 || s.rec.Len() != before+1 {
					t.Fatalf("%s = %d %s, sender saw %d; want forwarded", what, r.status, r.body, s.rec.Len()-before)
				}
				if got := s.rec.Requests()[before]; got.Method != tc.method {
					t.Errorf("%s reached the sender as %s", what, got.Method)
				}
				return
			}
			r.want(t, what, tc.want, tc.method)
			if got := s.rec.Len(); got != before {
				t.Errorf("%s: the sender received %d requests", what, got-before)
			}
		})
	}
}

// TestClientSendguardHeadersEndToEnd: a client header named x-sendguard-*,
// any name and any case, never reaches the sender or the webhook, on any
// route; on an allowed send the sender sees only sendguard's own values.
func TestClientSendguardHeadersEndToEnd(t *testing.T) {
	s := startStack(t)
	spoof := []string{"X-Sendguard-Anything: x", "x-sendguard-risk-score: 0", "X-SENDGUARD-PURPOSE: marketing",
		"x-sendguard-decision-id: spoofed", "X-SendGuard-Allowed: true", "x-sendguard-phone: +966500000000", "x-sendguard-instance-id: inst_theirs", "X-Custom: kept"}
	tests := []struct {
		name, method, path string
		header             []string
		body               string
		webhook            bool
		ours               map[string]bool // x-sendguard-* sendguard itself sets
	}{
		{name: "allowed send", method: "POST", path: "/api/send-message",
			header: []string{"Content-Type: application/json", "Authorization: Bearer key-demo"},
			body:   sendBody("inst_12345", recipient, okMessage, "transactional"),
			ours:   map[string]bool{"X-Sendguard-Decision-Id": true, "X-Sendguard-Risk-Score": true, "X-Sendguard-Purpose": true, "X-Sendguard-Phone": true, "X-Sendguard-Instance-Id": true}},
		{name: "another POST route", method: "POST", path: "/api/other", header: []string{"Content-Type: application/json"}, body: `{"a":1}`},
		{name: "read route", method: "GET", path: "/api/status"},
		{name: "read of the send path", method: "GET", path: "/api/send-message"},
		{name: "read with a chunked body", method: "GET", path: "/api/status", header: []string{"Transfer-Encoding: chunked"}, body: "2\r\n{}\r\n0\r\n\r\n"},
		{name: "webhook route", method: "POST", path: "/webhooks/inbound", header: []string{"Content-Type: application/json"},
			body: `{"instance_id":"inst_12345","from":"+966501112233","message_text":"hello","timestamp":"2026-05-08T10:00:00Z"}`, webhook: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := s.rec
			if tc.webhook {
				rec = s.webhook
			}
			before := rec.Len()
			r := s.raw(tc.method, tc.path, append(append([]string{}, tc.header...), spoof...), tc.body)
			if r.status != 200 || rec.Len() != before+1 {
				t.Fatalf("%s %s = %d %s, upstream saw %d; want forwarded", tc.method, tc.path, r.status, r.body, rec.Len()-before)
			}
			got := rec.Requests()[before].Header
			if got.Get("X-Custom") != "kept" {
				t.Errorf("%s %s: upstream lost X-Custom: %v", tc.method, tc.path, got)
			}
			for name, v := range got {
				if !strings.HasPrefix(strings.ToLower(name), "x-sendguard-") {
					continue
				}
				if !tc.ours[name] {
					t.Errorf("%s %s: upstream saw the client's %s: %q", tc.method, tc.path, name, v)
				}
			}
			if tc.ours == nil {
				return
			}
			id := r.header.Get("X-Sendguard-Decision-Id")
			for name, want := range map[string]string{"X-Sendguard-Decision-Id": id, "X-Sendguard-Purpose": "transactional", "X-Sendguard-Risk-Score": "", "X-Sendguard-Phone": "+966501234567", "X-Sendguard-Instance-Id": "inst_12345"} {
				v := got.Values(name)
				if len(v) != 1 || (want != "" && v[0] != want) || v[0] == "spoofed" {
					t.Errorf("upstream saw %s = %q, want exactly sendguard's value %q", name, v, want)
				}
			}
		})
	}
}
