package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sendguard/sendguard/internal/config"
	"github.com/sendguard/sendguard/internal/policy"
)

func TestBannerHasEveryCurl(t *testing.T) {
	b := banner()
	const send = `curl -si -X POST http://127.0.0.1:10000/api/send-message -H 'Authorization: Bearer `
	for _, want := range []string{
		// allowed
		send + `demo-key-starter' -H 'content-type: application/json' -d '{"instance_id":"inst_12345","phone":"+966501234567","message":"Your order #1042 has shipped.","message_purpose":"transactional"}'`,
		// marketing
		send + `demo-key-starter' -H 'content-type: application/json' -d '{"instance_id":"inst_12345","phone":"+966501234567","message":"Your order #1042 has shipped.","message_purpose":"marketing"}'`,
		// no purpose
		send + `demo-key-starter' -H 'content-type: application/json' -d '{"instance_id":"inst_12345","phone":"+966501234567","message":"Your order #1042 has shipped."}'`,
		// spam
		send + `demo-key-starter' -H 'content-type: application/json' -d '{"instance_id":"inst_12345","phone":"+966501234567","message":"WIN BIG!!! 50% OFF everything today only, use code SAVE50 at bit.ly/deal","message_purpose":"transactional"}'`,
		// suppressed recipient
		send + `demo-key-starter' -H 'content-type: application/json' -d '{"instance_id":"inst_12345","phone":"+966500000000","message":"Your order #1042 has shipped.","message_purpose":"transactional"}'`,
		// paused instance
		send + `demo-key-starter' -H 'content-type: application/json' -d '{"instance_id":"inst_paused","phone":"+966501234567","message":"Your order #1042 has shipped.","message_purpose":"transactional"}'`,
		// bad key
		send + `not-a-demo-key' -H 'content-type: application/json' -d '{"instance_id":"inst_12345","phone":"+966501234567","message":"Your order #1042 has shipped.","message_purpose":"transactional"}'`,
		// admin
		`curl -si http://127.0.0.1:9192/v1/instances/inst_12345/usage -H 'Authorization: Bearer demo-admin-token'`,
		`curl -si -X PUT http://127.0.0.1:9192/v1/instances/inst_12345/suppressions/+966501234567 -H 'Authorization: Bearer demo-admin-token' -H 'content-type: application/json' -d '{"reason":"manual_block"}'`,
		`curl -si -X DELETE http://127.0.0.1:9192/v1/instances/inst_12345/suppressions/+966501234567 -H 'Authorization: Bearer demo-admin-token'`,
		`curl -si -X POST http://127.0.0.1:9192/v1/instances/inst_12345/pause -H 'Authorization: Bearer demo-admin-token'`,
		`curl -si -X POST http://127.0.0.1:9192/v1/instances/inst_12345/resume -H 'Authorization: Bearer demo-admin-token'`,
	} {
		if !strings.Contains(b, want+"\n") {
			t.Errorf("banner lacks the line\n%s", want)
		}
	}
	for _, code := range []string{"message_purpose_not_allowed", "message_purpose_required", "policy_violation", "recipient_suppressed", "instance_paused_for_review", "invalid_api_key"} {
		if !strings.Contains(b, code) {
			t.Errorf("banner does not say which curl gives %s", code)
		}
	}
	// An unbalanced quote would swallow the lines after it when pasted.
	for l := range strings.SplitSeq(b, "\n") {
		if strings.HasPrefix(l, "curl ") && strings.Count(l, "'")%2 != 0 {
			t.Errorf("unbalanced quotes: %s", l)
		}
	}
}

func TestWaitReadyAfterSomePolls(t *testing.T) {
	var polls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/ready" {
			http.NotFound(w, r)
			return
		}
		if polls.Add(1) < 4 {
			http.Error(w, "starting", http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := waitReady(ctx, "envoy", 10*time.Millisecond, httpReady(srv.Client(), srv.URL+"/ready")); err != nil {
		t.Fatal(err)
	}
	if n := polls.Load(); n != 4 {
		t.Errorf("ready after %d polls, want 4", n)
	}
}

func TestWaitReadyNever(t *testing.T) {
	var polls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		polls.Add(1)
		http.Error(w, "not ready", http.StatusServiceUnavailable)
	}))
	defer srv.Close()

	ctx, cancel := context.WithTimeoutCause(context.Background(), 150*time.Millisecond, errors.New("timed out after 150ms"))
	defer cancel()
	start := time.Now()
	err := waitReady(ctx, "sendguard", 10*time.Millisecond, httpReady(srv.Client(), srv.URL+"/readyz"))
	if err == nil {
		t.Fatal("waitReady succeeded against a server that is never ready")
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("waitReady took %s after a 150ms timeout", d)
	}
	for _, want := range []string{"sendguard did not become ready", "timed out after 150ms", "/readyz", "503"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
	if polls.Load() < 2 {
		t.Errorf("polled %d times", polls.Load())
	}
}

func TestWaitReadyNamesTheExitedChild(t *testing.T) {
	live, onExit := context.WithCancelCause(context.Background())
	onExit(&exitError{name: "sendguard", err: errors.New("exit status 1")})
	err := waitReady(live, "sendguard", time.Millisecond, func(context.Context) error { return errors.New("connection refused") })
	if _, ok := errors.AsType[*exitError](err); !ok || !strings.Contains(err.Error(), "sendguard exited unexpectedly: exit status 1") {
		t.Errorf("err = %v", err)
	}
}

func TestTCPReady(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := tcpReady(addr)(context.Background()); err != nil {
		t.Errorf("listening: %v", err)
	}
	if err := checkFree([]string{addr}); err == nil || !strings.Contains(err.Error(), addr) {
		t.Errorf("checkFree on a used address = %v", err)
	}
	ln.Close()
	if err := tcpReady(addr)(context.Background()); err == nil {
		t.Error("closed: ready")
	}
	if err := checkFree([]string{addr}); err != nil {
		t.Errorf("checkFree on a free address = %v", err)
	}
}

func TestStackStopsChildren(t *testing.T) {
	var out lockedWriter
	var buf strings.Builder
	out.w = &buf
	s := newStack(context.Background(), &out)
	if err := s.start("a", []string{"sh", "-c", "echo hello; sleep 10 & wait"}); err != nil {
		t.Fatal(err)
	}
	if err := s.start("b", []string{"sleep", "10"}); err != nil {
		t.Fatal(err)
	}
	if err := waitReady(context.Background(), "a", 5*time.Millisecond, func(context.Context) error {
		out.mu.Lock()
		defer out.mu.Unlock()
		if !strings.Contains(buf.String(), "[a] hello\n") {
			return errors.New("no hello yet")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	s.stop()
	if d := time.Since(start); d > time.Second {
		t.Errorf("stop took %s", d)
	}
	for _, c := range s.children {
		if c.cmd.ProcessState == nil || c.cmd.ProcessState.Success() {
			t.Errorf("%s: state %v, want ended by SIGTERM", c.name, c.cmd.ProcessState)
		}
	}
}

func TestStackSeesAChildExit(t *testing.T) {
	var buf strings.Builder
	out := &lockedWriter{w: &buf}
	s := newStack(context.Background(), out)
	if err := s.start("c", []string{"sh", "-c", "printf 'bye'; exit 3"}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.live.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the child's exit went unnoticed")
	}
	err := context.Cause(s.live)
	if _, ok := errors.AsType[*exitError](err); !ok || err.Error() != "c exited unexpectedly: exit status 3" {
		t.Errorf("cause = %v", err)
	}
	s.stop()
	if got := buf.String(); !strings.Contains(got, "[c] bye\n") {
		t.Errorf("output = %q", got)
	}
	if err := s.start("missing", []string{"/nonexistent/devstack-test"}); err == nil || !strings.Contains(err.Error(), "start missing") {
		t.Errorf("start of a missing executable = %v", err)
	}
}

func TestLineWriter(t *testing.T) {
	var out strings.Builder
	w := &lineWriter{out: &out, prefix: "[x] "}
	for _, s := range []string{"one\ntw", "o\n", "", "three\nfour"} {
		if n, err := w.Write([]byte(s)); n != len(s) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", s, n, err)
		}
	}
	if got, want := out.String(), "[x] one\n[x] two\n[x] three\n"; got != want {
		t.Errorf("before Flush: %q, want %q", got, want)
	}
	w.Flush()
	if got, want := out.String(), "[x] one\n[x] two\n[x] three\n[x] four\n"; got != want {
		t.Errorf("after Flush: %q, want %q", got, want)
	}

	out.Reset()
	w.Write([]byte(strings.Repeat("a", maxLine+5)))
	if got := out.String(); !strings.HasPrefix(got, "[x] aaa") || len(got) != len("[x] ")+maxLine+1 {
		t.Errorf("a long line is held back or split wrongly: %d bytes written", len(got))
	}
}

// TestBannerInboundCurlsSign: the banner's inbound curls are signed with
// the secret cmd/devstack/sendguard.yaml configures (so the demo's signed
// STOP and START are recorded) and its forged START is not.
func TestBannerInboundCurlsSign(t *testing.T) {
	cfg, err := config.Load("sendguard.yaml")
	if err != nil {
		t.Fatal(err)
	}
	secrets, err := cfg.Inbound.Signature.Secrets(func(string) string { return "" })
	if err != nil || len(secrets) != 1 {
		t.Fatalf("demo inbound secrets = %q, %v; want one in the file", secrets, err)
	}
	header := strings.ToLower(cfg.Inbound.Signature.Header) + ": " + *cfg.Inbound.Signature.Prefix
	var signed, forged []string
	for l := range strings.SplitSeq(banner(), "\n") {
		if !strings.HasPrefix(l, "curl ") || !strings.Contains(l, "/webhooks/inbound") {
			continue
		}
		_, body, _ := strings.Cut(l, " -d '")
		body = strings.TrimSuffix(body, "'")
		m := hmac.New(sha256.New, secrets[0])
		m.Write([]byte(body))
		want := header + hex.EncodeToString(m.Sum(nil))
		if strings.Contains(strings.ToLower(l), want) {
			signed = append(signed, body)
		} else {
			forged = append(forged, body)
		}
	}
	if len(signed) != 2 || !strings.Contains(signed[0], `"STOP"`) || !strings.Contains(signed[1], `"START"`) {
		t.Errorf("signed inbound curls = %q, want a STOP then a START", signed)
	}
	if len(forged) != 2 {
		t.Errorf("forged inbound curls = %q, want two (unsigned, wrong secret)", forged)
	}
}

// TestServesRepositoryPolicies: `make run` (devstack's defaults, which the
// Makefile also names) starts sendguard on the repository's policies/
// directory, watched, not on the copy embedded in the binary, so that an
// edit saved there takes effect; that directory loads as it is (from the
// repository root, where make runs devstack); -policies "" serves the
// embedded ones. The banner says how to check an edit and see it live.
func TestServesRepositoryPolicies(t *testing.T) {
	f, err := parseFlags(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	argv := sendguardArgv(f)
	if i := slices.Index(argv, "--policies"); i < 0 || i+1 >= len(argv) || argv[i+1] != "policies" {
		t.Errorf("sendguard argv = %q, want --policies policies", argv)
	}
	mk, err := os.ReadFile("../../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(mk), "-policies policies") {
		t.Error("make run does not pass -policies policies to devstack")
	}
	if _, err := policy.New(context.Background(), policy.Options{Dir: filepath.Join("../..", f.policies)}); err != nil {
		t.Errorf("the repository's %s/ does not load: %v", f.policies, err)
	}
	b := policiesBanner(f.policies)
	for _, want := range []string{"make test-policies", "sendguard config check --config cmd/devstack/sendguard.yaml --policies policies",
		"curl -s http://127.0.0.1:9192/v1/revision -H 'Authorization: Bearer demo-admin-token'"} {
		if !strings.Contains(b, want) {
			t.Errorf("the policies banner lacks %q:\n%s", want, b)
		}
	}

	f, err = parseFlags([]string{"-policies", ""}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if argv := sendguardArgv(f); slices.Contains(argv, "--policies") {
		t.Errorf("with -policies \"\": sendguard argv = %q, want the embedded policies", argv)
	}
}
