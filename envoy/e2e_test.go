// End-to-end tests of the shipped sidecar config: a real Envoy binary in
// front of a recording fake sender, asking a real `sendguard serve` child
// process. They prove each documented answer reaches the client exactly and
// that a denied request never reaches the sender.
//
// Envoy is found through ENVOY_BIN, then PATH, then ../.venv/bin/envoy (what
// `make envoy` installs). Without it the tests fail under CI=true and skip
// elsewhere, saying why.
package envoy_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sendguard/sendguard/envoy"
	"github.com/sendguard/sendguard/envoy/envoytest"
	"github.com/sendguard/sendguard/internal/catalog"
	"github.com/sendguard/sendguard/internal/fakesender"
	"github.com/sendguard/sendguard/internal/keys"
	"github.com/sendguard/sendguard/internal/testport"
)

func envoyBinary(t testing.TB) string { return envoytest.Binary(t) }

func freePort(t testing.TB) int { t.Helper(); return testport.Get(t) }

type build struct {
	sync.Once
	path string
	err  error
}

// buildOnce is the -race build every test runs; plainOnce the optimised
// build the benchmarks run (a race build measures the race detector).
var buildOnce, plainOnce build

// TestMain removes the sendguard binary built for the package's tests (about
// 100 MB with -race) when they end.
func TestMain(m *testing.M) {
	code := m.Run()
	for _, b := range []*build{&buildOnce, &plainOnce} {
		if b.path != "" {
			os.RemoveAll(filepath.Dir(b.path))
		}
	}
	os.Exit(code)
}

// sendguardBinary builds cmd/sendguard with -race once per test binary.
func sendguardBinary(t testing.TB) string { t.Helper(); return buildOnce.get(t, "-race") }

// get builds cmd/sendguard with flags once.
func (b *build) get(t testing.TB, flags ...string) string {
	t.Helper()
	b.Do(func() {
		dir, err := os.MkdirTemp("", "sendguard-e2e")
		if err != nil {
			b.err = err
			return
		}
		b.path = filepath.Join(dir, "sendguard")
		args := append(append([]string{"build"}, flags...), "-o", b.path, "../cmd/sendguard")
		out, err := exec.Command("go", args...).CombinedOutput()
		if err != nil {
			b.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

// stack is one running Envoy + sendguard + fake sender.
type stack struct {
	t                                       testing.TB
	dir                                     string
	listen, grpc, admin, sender, envoyAdmin int
	webhookPort                             int
	sendguard                               *exec.Cmd
	cfgPath                                 string
	senderSrv                               *http.Server
	bin                                     string // the sendguard binary
	rec                                     *fakesender.Recorder
	webhook                                 *fakesender.Recorder // the customer's inbound webhook
	events                                  *eventReceiver
}

const e2eConfig = `
listen: {grpc: "127.0.0.1:%d", admin: "127.0.0.1:%d"}
admin: {token: e2e-admin}
store: {type: embedded, path: %s}
events:
  receivers:
    - {name: e2e, url: "%s", secret: e2e-secret}
plans:
  starter: {daily: 100, monthly: 2000, throttle: {rate: 1000, burst: 1000}}
  month1: {daily: 1, monthly: 1, throttle: {rate: 1000, burst: 1000}}
  day1: {daily: 1, monthly: 100, throttle: {rate: 1000, burst: 1000}}
  slow: {daily: 100, monthly: 2000, throttle: {rate: 0.001, burst: 1}}
accounts:
  - id: demo
    keys:
      - {id: good, sha256: %s}
      - {id: old, sha256: %s, revoked: true}
  - id: other
    keys:
      - {id: theirs, sha256: %s}
instances:
  - {id: inst_12345, name: Demo Shop, account: demo, plan: starter}
  - {id: demo-support-line, name: Demo Support Line, account: demo, plan: starter}
  - {id: inst_month, account: demo, plan: month1}
  - {id: inst_day, account: demo, plan: day1}
  - {id: inst_slow, account: demo, plan: slow}
  - {id: inst_paused, account: demo, plan: starter, paused: true}
  - {id: inst_theirs, account: other, plan: starter}
suppressions:
  - {instance: inst_12345, phone: "+966500000000", reason: recipient_requested_stop}
inbound:
  signature: {secret_env: E2E_INBOUND_SECRET, secrets_env: [E2E_INBOUND_SECRET_NEXT]}
`

// startStack starts Envoy, sendguard and the fake sender. Each edit, when
// given, rewrites the sendguard config (e2eConfig, filled in) first.
func startStack(t testing.TB, edits ...func(cfg string) string) *stack {
	t.Helper()
	return startStackWith(t, "", edits...)
}

// startStackWith is startStack with extra YAML appended to e2eConfig
// before the edits.
func startStackWith(t testing.TB, extra string, edits ...func(cfg string) string) *stack {
	t.Helper()
	return startStackFault(t, nil, extra, edits...)
}

// startStackFault is startStackWith with the fake sender's Fault set
// (nil: none) before it serves anything.
func startStackFault(t testing.TB, fault func(fakesender.Request) fakesender.Fault, extra string, edits ...func(cfg string) string) *stack {
	t.Helper()
	return startStackOpts(t, stackOpts{fault: fault, extra: extra, edits: edits})
}

// stackOpts are startStackOpts's choices; the zero value is startStack's.
type stackOpts struct {
	fault     func(fakesender.Request) fakesender.Fault // the fake sender's; nil: none
	extra     string                                    // YAML appended to e2eConfig
	edits     []func(cfg string) string                 // rewrite the sendguard config
	envoyEdit func(yaml string) string                  // rewrites the rendered Envoy config
	sendguard string                                    // the sendguard binary; "": the -race build
}

// startStackOpts starts Envoy, sendguard and the fake sender as o says.
func startStackOpts(t testing.TB, o stackOpts) *stack {
	t.Helper()
	fault, extra, edits := o.fault, o.extra, o.edits
	envoyBin := envoyBinary(t)
	s := &stack{t: t, dir: t.TempDir(), listen: freePort(t), grpc: freePort(t), admin: freePort(t), sender: freePort(t), envoyAdmin: freePort(t), webhookPort: freePort(t), bin: o.sendguard}
	if s.bin == "" {
		s.bin = sendguardBinary(t)
	}
	s.events = startEventReceiver(t)

	cfg := fmt.Sprintf(e2eConfig, s.grpc, s.admin, filepath.Join(s.dir, "state.db"), s.events.url(), keys.Hash("key-demo"), keys.Hash("key-revoked"), keys.Hash("key-other")) + extra
	for _, edit := range edits {
		cfg = edit(cfg)
	}
	cfgPath := filepath.Join(s.dir, "sendguard.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	s.rec = &fakesender.Recorder{Fault: fault}
	s.startSender()
	s.webhook = &fakesender.Recorder{}
	wl, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", s.webhookPort))
	if err != nil {
		t.Fatal(err)
	}
	wsrv := &http.Server{Handler: s.webhook}
	go wsrv.Serve(wl)
	t.Cleanup(func() { wsrv.Close() })
	s.cfgPath = cfgPath
	s.startSendguard(cfgPath)

	yaml, err := envoy.Render(envoy.Ports{Listen: s.listen, GRPC: s.grpc, Sender: s.sender, Webhook: s.webhookPort, Admin: s.envoyAdmin}, envoy.Options{ListenAddress: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	if o.envoyEdit != nil {
		yaml = o.envoyEdit(yaml)
	}
	envoyCfg := filepath.Join(s.dir, "envoy.yaml")
	if err := os.WriteFile(envoyCfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	envoyLog, _ := os.Create(filepath.Join(s.dir, "envoy.log"))
	cmd := exec.Command(envoyBin, "-c", envoyCfg, "--base-id", fmt.Sprint(s.envoyAdmin), "--log-level", "warn", "--concurrency", "1")
	cmd.Stdout, cmd.Stderr = envoyLog, envoyLog
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(s.dir, "envoy.log"))
			t.Logf("envoy log:\n%s", tail(b, 4000))
		}
	})
	// Ready when Envoy is live and sees sendguard healthy.
	s.waitFor("envoy ready with a healthy sendguard", func() bool {
		body, err := get(fmt.Sprintf("http://127.0.0.1:%d/clusters", s.envoyAdmin))
		return err == nil && strings.Contains(body, fmt.Sprintf("sendguard::127.0.0.1:%d::health_flags::healthy", s.grpc))
	})
	return s
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

func (s *stack) startSender() {
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", s.sender))
	if err != nil {
		s.t.Fatal(err)
	}
	s.senderSrv = &http.Server{Handler: s.rec}
	go s.senderSrv.Serve(l)
	s.t.Cleanup(func() { s.senderSrv.Close() })
}

func (s *stack) stopSender() { s.senderSrv.Close() }

func (s *stack) startSendguard(cfgPath string) {
	out, _ := os.Create(filepath.Join(s.dir, "sendguard.log"))
	s.sendguard = exec.Command(s.bin, "serve", "--config", cfgPath)
	// inbound.signature's variables (e2eConfig): the webhook's signing
	// secret and, mid-rotation, the next one.
	s.sendguard.Env = append(os.Environ(), "E2E_INBOUND_SECRET="+inboundSecret, "E2E_INBOUND_SECRET_NEXT="+inboundSecretNext)
	s.sendguard.Stdout, s.sendguard.Stderr = out, out
	if err := s.sendguard.Start(); err != nil {
		s.t.Fatal(err)
	}
	cmd := s.sendguard
	s.t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		if s.t.Failed() {
			b, _ := os.ReadFile(filepath.Join(s.dir, "sendguard.log"))
			s.t.Logf("sendguard log:\n%s", tail(b, 4000))
		}
	})
	s.waitFor("sendguard ready", func() bool {
		_, err := get(fmt.Sprintf("http://127.0.0.1:%d/readyz", s.admin))
		return err == nil
	})
}

func (s *stack) waitFor(what string, ok func() bool) {
	s.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			s.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func get(url string) (string, error) {
	resp, err := http.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return string(b), fmt.Errorf("%s: %s", url, resp.Status)
	}
	return string(b), nil
}

type reply struct {
	status int
	header http.Header
	body   []byte
}

func (s *stack) do(method, path string, header map[string]string, body []byte) reply {
	s.t.Helper()
	req, err := http.NewRequest(method, fmt.Sprintf("http://127.0.0.1:%d%s", s.listen, path), bytes.NewReader(body))
	if err != nil {
		s.t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatal(err)
	}
	return reply{resp.StatusCode, resp.Header, b}
}

func (s *stack) send(key string, body string) reply {
	s.t.Helper()
	h := map[string]string{"Content-Type": "application/json"}
	if key != "" {
		h["Authorization"] = "Bearer " + key
	}
	return s.do("POST", "/api/send-message", h, []byte(body))
}

func sendBody(instance, phone, msg, purpose string) string {
	m := map[string]string{"instance_id": instance, "phone": phone, "message": msg}
	if purpose != "" {
		m["message_purpose"] = purpose
	}
	b, _ := json.Marshal(m)
	return string(b)
}

const (
	recipient = "+966501234567"
	okMessage = "Your order #2041 has been shipped."
	// spam scores 100 on the native signals alone (two prize claims, a
	// shortener, shouting), so its risk_score does not move when the
	// content model is retrained.
	spam = "YOU HAVE WON A PRIZE!!!!! Claim it at bit.ly/win"
)

func TestEndToEnd(t *testing.T) {
	s := startStack(t)
	hundred := 100

	t.Run("documented errors never reach the sender", func(t *testing.T) {
		tests := []struct {
			name    string
			key     string
			body    string
			prepare func() // sends that must pass first
			code    catalog.Code
			details catalog.Details
			headers []string // header names that must be present
		}{
			{name: "no key", body: sendBody("inst_12345", recipient, okMessage, "transactional"), code: catalog.InvalidAPIKey},
			{name: "unknown key", key: "nope", body: sendBody("inst_12345", recipient, okMessage, "transactional"), code: catalog.InvalidAPIKey},
			{name: "revoked key", key: "key-revoked", body: sendBody("inst_12345", recipient, okMessage, "transactional"), code: catalog.RevokedAPIKey},
			{name: "invalid JSON", key: "key-demo", body: `{"instance_id":`, code: catalog.InvalidJSON},
			{name: "JSON array", key: "key-demo", body: `[1,2]`, code: catalog.InvalidJSON},
			{name: "missing phone", key: "key-demo", body: `{"instance_id":"inst_12345","message":"hi"}`, code: catalog.ValidationError,
				details: catalog.Details{Fields: []catalog.Field{{Name: "phone", Reason: "required"}}}},
			{name: "over-limit body", key: "key-demo", body: sendBody("inst_12345", recipient, strings.Repeat("x", 70000), "transactional"), code: catalog.ValidationError,
				details: catalog.Details{Fields: []catalog.Field{{Name: "body", Reason: "too_large"}}}},
			{name: "other account's instance", key: "key-other", body: sendBody("inst_12345", recipient, okMessage, "transactional"), code: catalog.InvalidInstance},
			{name: "paused", key: "key-demo", body: sendBody("inst_paused", recipient, spam, "marketing"), code: catalog.InstancePaused},
			{name: "no purpose", key: "key-demo", body: sendBody("inst_12345", recipient, okMessage, ""), code: catalog.MessagePurposeRequired},
			{name: "marketing", key: "key-demo", body: sendBody("inst_12345", recipient, okMessage, "marketing"), code: catalog.MessagePurposeNotAllowed},
			{name: "suppressed", key: "key-demo", body: sendBody("inst_12345", "00966 50 000 0000", okMessage, "support"), code: catalog.RecipientSuppressed},
			{name: "spam declared transactional", key: "key-demo", body: sendBody("inst_12345", recipient, spam, "transactional"), code: catalog.PolicyViolation,
				details: catalog.Details{RiskScore: &hundred}},
			{name: "month spent", key: "key-demo", body: sendBody("inst_month", recipient, okMessage, "transactional"),
				prepare: func() { s.mustPass(sendBody("inst_month", recipient, okMessage, "transactional")) },
				code:    catalog.MonthlyLimitExceeded, details: catalog.Details{Quota: true, Limit: 1, Used: 1},
				headers: []string{"Retry-After", "Ratelimit-Policy", "Ratelimit"}},
			{name: "day spent", key: "key-demo", body: sendBody("inst_day", recipient, okMessage, "transactional"),
				prepare: func() { s.mustPass(sendBody("inst_day", recipient, okMessage, "transactional")) },
				code:    catalog.DailyLimitExceeded, details: catalog.Details{Quota: true, Limit: 1, Used: 1},
				headers: []string{"Retry-After", "Ratelimit-Policy", "Ratelimit"}},
			{name: "too fast", key: "key-demo", body: sendBody("inst_slow", recipient, okMessage, "transactional"),
				prepare: func() { s.mustPass(sendBody("inst_slow", recipient, okMessage, "transactional")) },
				code:    catalog.SendingThrottled, headers: []string{"Retry-After"}},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				if tc.prepare != nil {
					tc.prepare()
				}
				before := s.rec.Len()
				r := s.send(tc.key, tc.body)
				e, _ := catalog.Lookup(tc.code)
				if r.status != e.Status {
					t.Errorf("status = %d, want %d", r.status, e.Status)
				}
				if want := catalog.Body(tc.code, tc.details); !bytes.Equal(r.body, want) {
					t.Errorf("body =\n%s\nwant\n%s", r.body, want)
				}
				if ct := r.header.Get("Content-Type"); ct != "application/json" {
					t.Errorf("content-type = %q", ct)
				}
				if r.header.Get("X-Sendguard-Decision-Id") == "" {
					t.Error("no x-sendguard-decision-id on the denial")
				}
				for _, h := range tc.headers {
					if r.header.Get(h) == "" {
						t.Errorf("no %s header; headers: %v", h, r.header)
					}
				}
				if got := s.rec.Len(); got != before {
					t.Errorf("the sender received %d requests for a denied send", got-before)
				}
			})
		}
	})

	t.Run("allowed send reaches the sender with unspoofable headers", func(t *testing.T) {
		before := s.rec.Len()
		r := s.do("POST", "/api/send-message", map[string]string{
			"Authorization":           "Bearer key-demo",
			"Content-Type":            "application/json",
			"X-Sendguard-Purpose":     "marketing",
			"X-Sendguard-Risk-Score":  "0",
			"X-Sendguard-Decision-Id": "spoofed",
		}, []byte(sendBody("inst_12345", recipient, okMessage, " Transactional ")))
		if r.status != 200 {
			t.Fatalf("status = %d, body %s", r.status, r.body)
		}
		if !bytes.Contains(r.body, []byte(`"success":true`)) {
			t.Errorf("body = %s, want the sender's answer", r.body)
		}
		reqs := s.rec.Requests()
		if len(reqs) != before+1 {
			t.Fatalf("sender received %d requests, want 1", len(reqs)-before)
		}
		got := reqs[len(reqs)-1]
		id := r.header.Get("X-Sendguard-Decision-Id")
		if id == "" || id == "spoofed" {
			t.Errorf("client decision id = %q", id)
		}
		for name, want := range map[string]string{"X-Sendguard-Purpose": "transactional", "X-Sendguard-Risk-Score": "0", "X-Sendguard-Decision-Id": id} {
			if v := got.Header.Values(name); len(v) != 1 || v[0] != want {
				t.Errorf("sender saw %s = %q, want exactly [%q]", name, v, want)
			}
		}
		if got.Header.Get("Authorization") != "Bearer key-demo" {
			t.Errorf("sender lost the Authorization header: %v", got.Header)
		}
	})

	t.Run("other traffic passes untouched", func(t *testing.T) {
		spoof := map[string]string{"X-Sendguard-Decision-Id": "spoofed", "X-Sendguard-Purpose": "transactional", "X-Custom": "kept"}
		for _, req := range []struct{ method, path string }{{"GET", "/api/status"}, {"POST", "/api/other"}, {"GET", "/api/send-message"}} {
			before := s.rec.Len()
			var body []byte // a read of the send path with a body is refused (paths_e2e_test.go)
			if req.method != "GET" {
				body = []byte(`{"anything":1}`)
			}
			r := s.do(req.method, req.path, spoof, body)
			if r.status != 200 || s.rec.Len() != before+1 {
				t.Fatalf("%s %s = %d, sender saw %d", req.method, req.path, r.status, s.rec.Len()-before)
			}
			got := s.rec.Requests()[before]
			if got.Header.Get("X-Custom") != "kept" || got.Header.Get("X-Sendguard-Decision-Id") != "" || got.Header.Get("X-Sendguard-Purpose") != "" {
				t.Errorf("%s %s reached the sender with %v: want client headers kept and x-sendguard-* removed", req.method, req.path, got.Header)
			}
		}
	})

	t.Run("spellings of the send path are checked", func(t *testing.T) {
		for _, p := range []string{"/API/send-message", "/api//send-message", "/api/./send-message", "/api/%73end-message", "/api/send-message/", "/api/send-message?x=1"} {
			before := s.rec.Len()
			r := s.do("POST", p, map[string]string{"Content-Type": "application/json"}, []byte(sendBody("inst_12345", recipient, okMessage, "transactional")))
			if r.status != 401 || !bytes.Equal(r.body, catalog.Body(catalog.InvalidAPIKey, catalog.Details{})) {
				t.Errorf("POST %s without a key = %d %s, want 401 invalid_api_key", p, r.status, r.body)
			}
			if s.rec.Len() != before {
				t.Errorf("POST %s without a key reached the sender", p)
			}
		}
	})

	t.Run("a stopped sender gives gateway_send_failed", func(t *testing.T) {
		s.stopSender()
		r := s.send("key-demo", sendBody("inst_12345", recipient, okMessage, "transactional"))
		if want := catalog.Body(catalog.GatewaySendFailed, catalog.Details{}); r.status != 502 || !bytes.Equal(r.body, want) {
			t.Errorf("with the sender down: %d %s\nwant 502 %s", r.status, r.body, want)
		}
		if ct := r.header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("content-type = %q", ct)
		}
		if r.header.Get("X-Sendguard-Decision-Id") == "" {
			t.Errorf("the 502 of an allowed send has no x-sendguard-decision-id: %v", r.header)
		}
		s.startSender()
	})

	t.Run("a stopped sendguard forwards nothing", func(t *testing.T) {
		s.sendguard.Process.Signal(syscall.SIGKILL)
		s.sendguard.Wait()
		before := s.rec.Len()
		for range 3 {
			r := s.send("key-demo", sendBody("inst_12345", recipient, okMessage, "transactional"))
			want := catalog.Body(catalog.PolicyCheckUnavailable, catalog.Details{})
			if r.status != 503 || !bytes.Equal(r.body, want) {
				t.Errorf("with sendguard down: %d %s\nwant 503 %s", r.status, r.body, want)
			}
		}
		if got := s.rec.Len(); got != before {
			t.Errorf("sender received %d requests while sendguard was down", got-before)
		}
		// Reads never depend on sendguard.
		if r := s.do("GET", "/api/status", nil, nil); r.status != 200 || s.rec.Len() != before+1 {
			t.Errorf("GET /api/status with sendguard down = %d %s", r.status, r.body)
		}
	})
}

func (s *stack) mustPass(body string) {
	s.t.Helper()
	if r := s.send("key-demo", body); r.status != 200 {
		s.t.Fatalf("preparatory send = %d %s", r.status, r.body)
	}
}
