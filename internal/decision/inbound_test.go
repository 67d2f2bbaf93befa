package decision

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"testing"
	"time"

	"github.com/sendguard/sendguard/internal/inbound"
	"github.com/sendguard/sendguard/internal/store"
)

const (
	inboundSecret = "app-secret-current"
	inboundNext   = "app-secret-next"
)

// metaSign is what Meta sends in X-Hub-Signature-256 for body.
func metaSign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// signedFixture is newFixture observing /webhooks/inbound with a real
// recorder on the fixture's store, verifying Meta's signature with either
// of two secrets (a rotation). The header is configured as Meta spells it:
// New lower-cases it, as Envoy names headers.
func signedFixture(t *testing.T) *fixture {
	t.Helper()
	f := newFixture(t)
	opts := f.d.opts
	opts.Inbound = &Inbound{
		Routes: []Route{{Method: "POST", Path: "/webhooks/inbound"}},
		Fields: DefaultFields,
		Recorder: &inbound.Recorder{
			Instances: map[string]inbound.Instance{"shop": {ID: "shop"}},
			State:     f.store, Phones: opts.Phones,
			Classify: func(text string) (string, string) {
				switch text {
				case "STOP":
					return "opt_out", "stop"
				case "START":
					return "opt_in", "start"
				}
				return "none", ""
			},
			Now: func() time.Time { return testNow },
		},
		Signature: &Signature{Header: "X-Hub-Signature-256", Prefix: "sha256=", Secrets: [][]byte{[]byte(inboundSecret), []byte(inboundNext)}},
	}
	d, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	f.d = d
	return f
}

func inboundReq(body []byte, headers map[string]string) Request {
	return Request{Method: "POST", Path: "/webhooks/inbound", ContentType: "application/json", Body: body, Headers: headers}
}

// TestInboundSignature: only a request whose X-Hub-Signature-256 verifies
// over the whole raw body records an opt-out; every other one is allowed
// untouched (the webhook decides its own answer), records nothing, and
// says why. Before the fix any request on the route was recorded.
func TestInboundSignature(t *testing.T) {
	stop := []byte(`{"instance_id":"shop","from":"+966 50 123 4567","message_text":"STOP"}`)
	good := metaSign(inboundSecret, stop)
	for _, tc := range []struct {
		name    string
		req     Request
		want    string // Result.InboundResult
		records bool
	}{
		{"good", inboundReq(stop, map[string]string{"x-hub-signature-256": good}), InboundRecorded, true},
		{"rotation: the next secret", inboundReq(stop, map[string]string{"x-hub-signature-256": metaSign(inboundNext, stop)}), InboundRecorded, true},
		{"upper-case hex", inboundReq(stop, map[string]string{"x-hub-signature-256": "sha256=" + upper(good[len("sha256="):])}), InboundRecorded, true},
		{"missing header", inboundReq(stop, nil), InboundUnsigned, false},
		{"empty header", inboundReq(stop, map[string]string{"x-hub-signature-256": ""}), InboundUnsigned, false},
		{"another header", inboundReq(stop, map[string]string{"x-hub-signature": good}), InboundUnsigned, false},
		{"wrong secret", inboundReq(stop, map[string]string{"x-hub-signature-256": metaSign("guess", stop)}), InboundBadSignature, false},
		{"another body's signature", inboundReq(stop, map[string]string{"x-hub-signature-256": metaSign(inboundSecret, []byte(`{}`))}), InboundBadSignature, false},
		{"no prefix", inboundReq(stop, map[string]string{"x-hub-signature-256": good[len("sha256="):]}), InboundBadSignature, false},
		{"wrong prefix", inboundReq(stop, map[string]string{"x-hub-signature-256": "sha1=" + good[len("sha256="):]}), InboundBadSignature, false},
		{"upper-case prefix", inboundReq(stop, map[string]string{"x-hub-signature-256": "SHA256=" + good[len("sha256="):]}), InboundBadSignature, false},
		{"truncated", inboundReq(stop, map[string]string{"x-hub-signature-256": good[:len(good)-2]}), InboundBadSignature, false},
		{"not hex", inboundReq(stop, map[string]string{"x-hub-signature-256": "sha256=" + string(make([]byte, 64))}), InboundBadSignature, false},
		{"repeated header, joined", inboundReq(stop, map[string]string{"x-hub-signature-256": good + "," + good}), InboundBadSignature, false},
		{"the secret itself", inboundReq(stop, map[string]string{"x-hub-signature-256": "sha256=" + hex.EncodeToString([]byte(inboundSecret))}), InboundBadSignature, false},
		{"partial body, signed as received", func() Request {
			r := inboundReq(stop, map[string]string{"x-hub-signature-256": good})
			r.PartialBody = true
			return r
		}(), InboundPartialBody, false},
		{"partial body, signed as cut", func() Request {
			cut := stop[:40]
			r := inboundReq(cut, map[string]string{"x-hub-signature-256": metaSign(inboundSecret, cut)})
			r.PartialBody = true
			return r
		}(), InboundPartialBody, false},
		{"verified, not a message", inboundReq([]byte(`{"object":"x"}`), map[string]string{"x-hub-signature-256": metaSign(inboundSecret, []byte(`{"object":"x"}`))}), InboundIgnored, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := signedFixture(t)
			res, err := f.d.Decide(context.Background(), tc.req)
			if err != nil {
				t.Fatalf("Decide(%q) error: %v", tc.req.Body, err)
			}
			if !res.Allowed || !res.Inbound || res.Send || res.InboundResult != tc.want {
				t.Errorf("Decide(%q) = allowed %v inbound %v send %v result %q, want allowed inbound %q", tc.req.Body, res.Allowed, res.Inbound, res.Send, res.InboundResult, tc.want)
			}
			_, err = f.store.Suppression(context.Background(), "shop", recipient)
			switch {
			case tc.records && err != nil:
				t.Errorf("Decide(%q): not suppressed (%v), want the signed STOP recorded", tc.req.Body, err)
			case !tc.records && !errors.Is(err, store.ErrNotFound):
				t.Errorf("Decide(%q): suppression read %v, want none: a request that does not verify records nothing", tc.req.Body, err)
			}
		})
	}
}

// TestInboundForgedStartKeepsSuppression is the red team's attack: a
// START on the webhook route, unsigned or wrongly signed, does not lift a
// recipient's STOP; the signed START does.
func TestInboundForgedStartKeepsSuppression(t *testing.T) {
	ctx := context.Background()
	f := signedFixture(t)
	if err := f.store.PutSuppression(ctx, store.Suppression{Instance: "shop", Phone: recipient, Reason: "recipient_requested_stop"}); err != nil {
		t.Fatal(err)
	}
	start := []byte(`{"instance_id":"shop","from":"+966501234567","message_text":"START"}`)
	for _, h := range []map[string]string{nil, {"x-hub-signature-256": metaSign("guess", start)}} {
		res, err := f.d.Decide(ctx, inboundReq(start, h))
		if err != nil || !res.Allowed || res.InboundResult == InboundRecorded {
			t.Errorf("Decide(forged START, %v) = %+v, %v; want allowed, not recorded", h, res, err)
		}
		if _, err := f.store.Suppression(ctx, "shop", recipient); err != nil {
			t.Fatalf("after a forged START (%v): suppression %v, want it kept", h, err)
		}
		if res, _ := f.d.Decide(ctx, Request{Method: "POST", Path: "/api/send-message", Authorization: keyDemo, Body: send("shop", recipient, "Your code is 123456", "authentication")}); res.Code != "recipient_suppressed" {
			t.Errorf("send after a forged START = %q, want recipient_suppressed", res.Code)
		}
	}
	res, err := f.d.Decide(ctx, inboundReq(start, map[string]string{"x-hub-signature-256": metaSign(inboundSecret, start)}))
	if err != nil || res.InboundResult != InboundRecorded || res.Intent != "opt_in" {
		t.Fatalf("Decide(signed START) = %+v, %v", res, err)
	}
	if _, err := f.store.Suppression(ctx, "shop", recipient); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("after a signed START: suppression %v, want lifted", err)
	}
}

// TestInboundSignatureOptions: New refuses a Signature that could verify
// nothing, or anything (an empty secret).
func TestInboundSignatureOptions(t *testing.T) {
	f := newFixture(t)
	for _, sig := range []*Signature{
		{Header: "x-hub-signature-256", Prefix: "sha256="},
		{Header: "", Prefix: "sha256=", Secrets: [][]byte{[]byte("s")}},
		{Header: "x-hub-signature-256", Prefix: "sha256=", Secrets: [][]byte{[]byte("s"), {}}},
	} {
		opts := f.d.opts
		opts.Inbound = &Inbound{Routes: []Route{{Method: "POST", Path: "/webhooks/inbound"}}, Fields: DefaultFields, Signature: sig}
		if _, err := New(opts); err == nil {
			t.Errorf("New(Signature %+v) = nil error, want refused", sig)
		}
	}
}

// TestInboundVerifyConstantTime: verify compares MACs only with
// hmac.Equal (constant time), never with ==, bytes.Equal or a string
// comparison that returns at the first differing byte. Timing cannot be
// asserted in a test, so this reads the source.
func TestInboundVerifyConstantTime(t *testing.T) {
	fset := token.NewFileSet()
	file, err := parser.ParseFile(fset, "inbound.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var fn *ast.FuncDecl
	for _, d := range file.Decls {
		if f, ok := d.(*ast.FuncDecl); ok && f.Name.Name == "verify" {
			fn = f
		}
	}
	if fn == nil {
		t.Fatal("no func verify in inbound.go")
	}
	var hmacEqual int
	ast.Inspect(fn.Body, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.SelectorExpr:
			if x, ok := n.X.(*ast.Ident); ok {
				switch x.Name + "." + n.Sel.Name {
				case "hmac.Equal", "subtle.ConstantTimeCompare":
					hmacEqual++
				case "bytes.Equal", "bytes.Compare", "strings.EqualFold", "strings.Compare":
					t.Errorf("verify uses %s.%s at %s: not constant time", x.Name, n.Sel.Name, fset.Position(n.Pos()))
				}
			}
		case *ast.BinaryExpr:
			if (n.Op == token.EQL || n.Op == token.NEQ) && !isLen(n.X) && !isLen(n.Y) && (mentions(n.X, "got") || mentions(n.Y, "got") || mentions(n.X, "hexMAC") || mentions(n.Y, "hexMAC")) {
				t.Errorf("verify compares the received signature with %s at %s: not constant time", n.Op, fset.Position(n.Pos()))
			}
		}
		return true
	})
	if hmacEqual == 0 {
		t.Error("verify does not compare with hmac.Equal")
	}
}

// isLen says whether e is len(...): comparing lengths leaks nothing.
func isLen(e ast.Expr) bool {
	c, ok := e.(*ast.CallExpr)
	if !ok {
		return false
	}
	id, ok := c.Fun.(*ast.Ident)
	return ok && id.Name == "len"
}

func mentions(e ast.Expr, name string) bool {
	found := false
	ast.Inspect(e, func(n ast.Node) bool {
		if id, ok := n.(*ast.Ident); ok && id.Name == name {
			found = true
		}
		return !found
	})
	return found
}

func upper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'a' && c <= 'f' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}
