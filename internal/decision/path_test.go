package decision

import (
	"context"
	"strings"
	"testing"

	"github.com/sendguard/sendguard/internal/catalog"
)

// TestCanonicalPath: the canonical form of each spelling, or its refusal
// ("" below). Envoy has normalised the path before sendguard sees it, but
// the canonicaliser must stand on its own: a config without normalize_path,
// or an upstream that reads what Envoy left, must not open a bypass.
func TestCanonicalPath(t *testing.T) {
	tests := []struct{ in, want string }{
		// Already canonical: returned as is.
		{"/", "/"},
		{"/api/send-message", "/api/send-message"},
		{"/API/Send-Message", "/API/Send-Message"}, // case is folded when matching
		{"/v1/file.json", "/v1/file.json"},
		{"/api/~user", "/api/~user"},
		// Separators and dot segments.
		{"api/send-message", "/api/send-message"},
		{"//api//send-message", "/api/send-message"},
		{"/api/send-message/", "/api/send-message"},
		{"/./api/./send-message", "/api/send-message"},
		{"/x/../api/send-message", "/api/send-message"},
		{"/../../api/send-message", "/api/send-message"},
		{"/api%2Fsend-message", "/api/send-message"},
		{"/api%2fsend-message", "/api/send-message"},
		{"/api/%2e/send-message", "/api/send-message"},
		{"/x/%2E%2E/api/send-message", "/api/send-message"},
		{"/api/%73end-message", "/api/send-message"},
		{"/api/send%2Dmessage", "/api/send-message"},
		// ;parameters dropped from every segment, as Tomcat and Spring do.
		{"/api/send-message;x=1", "/api/send-message"},
		{"/api;a=b/send-message", "/api/send-message"},
		{"/api;a=b/send-message;c=d/", "/api/send-message"},
		{"/x/..;/api/send-message", "/api/send-message"},
		{"/api/x/..;a=b/send-message", "/api/send-message"},
		{"/api/send-message%3Bx", "/api/send-message"},
		{"/api/;x/send-message", "/api/send-message"},
		// Non-ASCII: NFKC, so a fullwidth solidus is a separator.
		{"/api/%EF%BC%8Fsend-message", "/api/send-message"},
		{"/api/ｓｅｎｄ-message", "/api/send-message"},
		{"/caf%C3%A9", "/café"},
		{"/+966500000000", "/+966500000000"},
		{"/discount/50%25", "/discount/50%"},
		// Refused: cannot be read one way only.
		{"/api/send-message%3Fx", ""},
		{"/api/send-message%3f", ""},
		{"/api/send-message%23x", ""},
		{"/api/send-message#", ""},
		{"/api/send-message%20", ""},
		{"/api/send-message ", ""},
		{"/api/send%20message", ""},
		{"/api/send-message%09", ""},
		{"/api/send-message\t", ""},
		{"/api/send-message%0a", ""},
		{"/api/send-message%0D%0A", ""},
		{"/api/send-message%00", ""},
		{"/api/send-message%7f", ""},
		{"/api/send-message%C2%85", ""},          // NEL, a C1 control
		{"/api/send-message%C2%A0", ""},          // no-break space
		{"/api/send-message%E2%80%8B", ""},       // zero-width space
		{"/api/send-message%E2%80%AE", ""},       // right-to-left override
		{"/api/send-message%EF%BC%9F", ""},       // fullwidth "?" is "?" after NFKC
		{"/api\\send-message", ""},               // raw backslash
		{"/api%5Csend-message", ""},              // encoded backslash
		{"/api%5csend-message", ""},              //
		{"/api/send-message.", ""},               // trailing dot
		{"/api/send-message%2e", ""},             // encoded trailing dot
		{"/api/send-message%2E/", ""},            //
		{"/api./send-message", ""},               // on any segment
		{"/api/send-message...", ""},             //
		{"/api/send-message..;/", ""},            // "send-message.." once ;/ is dropped
		{"/api/send-message+", ""},               // "+" read as a space, trimmed
		{"/api%252Fsend-message", ""},            // double encoding
		{"/api%25%32%46send-message", ""},        //
		{"/api/send-message%252e", ""},           //
		{"/api%C0%AFsend-message", ""},           // overlong "/"
		{"/api%E0%80%AFsend-message", ""},        // overlong "/", three bytes
		{"/api%C0%AEsend-message", ""},           // overlong "."
		{"/api/send-message%ff", ""},             // invalid UTF-8
		{"/api/send-message%ED%A0%80", ""},       // a surrogate
		{"/api/send-message\xff", ""},            // raw invalid UTF-8
		{"/api/send-message%", ""},               // bad escapes
		{"/api/send-message%2", ""},              //
		{"/api/send-message%zz", ""},             //
		{"/api/send-message%EF%BF%BD", ""},       // U+FFFD, a decoding error upstream
		{"/api%2F..%2F..%2Fsend-message%09", ""}, // mixed
	}
	for _, tc := range tests {
		got, ok := canonicalPath(tc.in)
		if tc.want == "" {
			if ok {
				t.Errorf("canonicalPath(%q) = %q, want refused", tc.in, got)
			}
			continue
		}
		if !ok || got != tc.want {
			t.Errorf("canonicalPath(%q) = %q, %v; want %q", tc.in, got, ok, tc.want)
		}
	}
}

func TestCanonicalPathDoesNotAllocateWhenCanonical(t *testing.T) {
	for _, p := range []string{"/api/send-message", "/api/status", "/v1/file.json"} {
		if n := testing.AllocsPerRun(100, func() { canonicalPath(p) }); n != 0 {
			t.Errorf("canonicalPath(%q) allocates %v times, want 0", p, n)
		}
	}
}

// FuzzCanonicalPath: never panics, the canonical form is a fixed point, and
// it holds nothing the refusals name.
func FuzzCanonicalPath(f *testing.F) {
	for _, s := range []string{"/api/send-message", "/api;a=b/send-message%3F", "/x/..;/%2e%2E/a%2F", "/ｓ%C0%AF", "/a+/b."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		c, ok := canonicalPath(p)
		if !ok {
			return
		}
		if strings.ContainsAny(c, "?#\\ \t\r\n\x00;") {
			t.Errorf("canonicalPath(%q) = %q, holds a refused character", p, c)
		}
		if strings.Contains(c, "%") {
			return // a lone %25 decodes to "%", which is not an escape
		}
		if again, ok := canonicalPath(c); !ok || again != c {
			t.Errorf("canonicalPath(%q) = %q, but canonicalPath(%q) = %q, %v", p, c, c, again, ok)
		}
	})
}

// TestRefusedPaths: a path that cannot be read one way only is refused
// with invalid_request_path on any path and any method, before the key is
// looked at and without consuming anything.
func TestRefusedPaths(t *testing.T) {
	f := newFixture(t)
	body := []byte(`{"instance_id":"shop","phone":"` + recipient + `","message":"hi","message_purpose":"support"}`)
	for _, p := range []string{"/api/send-message%20", "/api/send-message.", "/api/send-message%3Fx", "/api/other%09", "/webhooks/inbound%00", "/a%252F"} {
		for _, m := range []string{"POST", "PUT", "GET"} {
			res, err := f.d.Decide(context.Background(), Request{Method: m, Path: p, Authorization: keyDemo, Body: body})
			if err != nil || res.Allowed || res.Code != catalog.InvalidRequestPath || res.Status != 400 ||
				string(res.Body) != string(catalog.Body(catalog.InvalidRequestPath, catalog.Details{})) {
				t.Errorf("Decide(%s %q) = %v %q %d, %v; want invalid_request_path 400", m, p, res.Allowed, res.Code, res.Status, err)
			}
		}
	}
	if u := f.usage(t); u.DailyUsed != 0 {
		t.Errorf("refused paths consumed quota: %+v", u)
	}
}

// TestSendRouteMethods: on a send route, any method but a read is decided
// like POST; a read with a body is refused; a read without one passes.
func TestSendRouteMethods(t *testing.T) {
	f := newFixture(t)
	marketing := []byte(`{"instance_id":"shop","phone":"` + recipient + `","message":"hi","message_purpose":"marketing"}`)
	tests := []struct {
		method, path string
		auth         string
		body         []byte
		want         catalog.Code // "" means passed through
	}{
		{"PUT", "/api/send-message", "", marketing, catalog.InvalidAPIKey},
		{"PATCH", "/api/send-message", "", marketing, catalog.InvalidAPIKey},
		{"DELETE", "/api/send-message", "", nil, catalog.InvalidAPIKey},
		{"put", "/api/Send-Message;x=1", "", marketing, catalog.InvalidAPIKey},
		{"get", "/api/send-message", "", nil, catalog.InvalidAPIKey}, // not GET
		{"PROPFIND", "/api/send-message", "", nil, catalog.InvalidAPIKey},
		{"PUT", "/api/send-message", keyDemo, marketing, catalog.MessagePurposeNotAllowed},
		{"PATCH", "/api/send-message/", keyDemo, marketing, catalog.MessagePurposeNotAllowed},
		{"DELETE", "/api/send-message", keyDemo, marketing, catalog.MessagePurposeNotAllowed},
		{"GET", "/api/send-message", "", marketing, catalog.InvalidRequestMethod},
		{"HEAD", "/api/send-message", keyDemo, marketing, catalog.InvalidRequestMethod},
		{"OPTIONS", "/API/send-message;x", "", []byte("x"), catalog.InvalidRequestMethod},
		{"GET", "/api/send-message", "", nil, ""},
		{"HEAD", "/api/send-message", "", nil, ""},
		{"OPTIONS", "/api/send-message", "", nil, ""},
		// A format suffix, as Rails and older Spring read it.
		{"POST", "/api/send-message.json", "", marketing, catalog.InvalidAPIKey},
		{"POST", "/API/Send-Message.XML", keyDemo, marketing, catalog.MessagePurposeNotAllowed},
		{"POST", "/api/send-message.a.b", "", marketing, catalog.InvalidAPIKey},
		{"GET", "/api/send-message.json", "", marketing, catalog.InvalidRequestMethod},
		{"GET", "/api/send-message.json", "", nil, ""},
		{"POST", "/api/send-message.json/x", "", marketing, ""}, // another path
		{"POST", "/api/send-messages", "", marketing, ""},
		{"GET", "/api/other", "", marketing, ""}, // not a send route
		{"PUT", "/api/other", "", marketing, ""},
	}
	for _, tc := range tests {
		res, err := f.d.Decide(context.Background(), Request{Method: tc.method, Path: tc.path, Authorization: tc.auth, Body: tc.body})
		if err != nil {
			t.Fatalf("Decide(%s %s) error %v", tc.method, tc.path, err)
		}
		if tc.want == "" {
			if !res.Allowed || res.Send {
				t.Errorf("Decide(%s %s) = %q, want passed through", tc.method, tc.path, res.Code)
			}
			continue
		}
		if res.Allowed || res.Code != tc.want || !res.Send {
			t.Errorf("Decide(%s %s) = %v %q, want %q", tc.method, tc.path, res.Allowed, res.Code, tc.want)
		}
	}
	if u := f.usage(t); u.DailyUsed != 0 {
		t.Errorf("denied sends consumed quota: %+v", u)
	}
}

func TestNewRefusesRouteWithoutCanonicalForm(t *testing.T) {
	f := newFixture(t)
	opts := f.d.opts
	opts.Routes = []Route{{Method: "POST", Path: "/api/send message"}}
	if _, err := New(opts); err == nil {
		t.Error("New with send route path \"/api/send message\" succeeded, want an error")
	}
}

// BenchmarkCanonicalPath: the send path as Envoy hands it over (no
// allocation) and a spelling that takes the slow path.
func BenchmarkCanonicalPath(b *testing.B) {
	for _, p := range []string{"/api/send-message", "/API;v=1/x/..;/Send-Message%2f"} {
		b.Run(p, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				canonicalPath(p)
			}
		})
	}
}
