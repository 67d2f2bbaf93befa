package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/sendguard/sendguard/internal/keys"
	"github.com/sendguard/sendguard/internal/store"
	"github.com/sendguard/sendguard/internal/testport"
	sgversion "github.com/sendguard/sendguard/internal/version"
)

func noenv(string) string { return "" }

func TestHashKey(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"hash-key", "demo-key-starter"}, noenv, nil, &out, &out); err != nil {
		t.Fatal(err)
	}
	// The demo config's hash for this key.
	if got := strings.TrimSpace(out.String()); got != "3daaab08bf0db4e1e6aabf19c0c2bfcab6021c65969db5ac8ccaae46eec79223" {
		t.Errorf("hash-key = %s", got)
	}
	out.Reset()
	if err := run(context.Background(), []string{"hash-key"}, noenv, strings.NewReader("demo-key-starter\n"), &out, &out); err != nil || strings.TrimSpace(out.String()) != keys.Hash("demo-key-starter") {
		t.Errorf("hash-key from stdin = %q, %v", out.String(), err)
	}
	for _, bad := range [][]string{{"hash-key", "has space"}, {"hash-key", ""}, {"hash-key", "a", "b"}} {
		if err := run(context.Background(), bad, noenv, nil, &out, &out); err == nil {
			t.Errorf("run(%q) accepted a bad key", bad)
		}
	}
}

func TestConfigCheck(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"config", "check", "--config", "../devstack/sendguard.yaml"}, noenv, nil, &out, &out); err != nil {
		t.Fatalf("the demo config: %v", err)
	}
	if !strings.Contains(out.String(), "config ok: 2 accounts, 3 instances, 3 plans") {
		t.Errorf("output = %q", out.String())
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("instances:\n  - {id: a, account: nobody, plan: starter}\n"), 0o600)
	if err := run(context.Background(), []string{"config", "check", "--config", bad}, noenv, nil, &out, &out); err == nil {
		t.Error("config check accepted an instance of an unknown account")
	}
	// The config path falls back to SENDGUARD_CONFIG.
	env := func(k string) string { return map[string]string{"SENDGUARD_CONFIG": bad}[k] }
	if err := run(context.Background(), []string{"config", "check"}, env, nil, &out, &out); err == nil || !strings.Contains(err.Error(), "bad.yaml") {
		t.Errorf("config check with SENDGUARD_CONFIG: %v", err)
	}
	if err := run(context.Background(), []string{"config", "check", "--config", "../devstack/sendguard.yaml", "--policies", t.TempDir()}, noenv, nil, &out, &out); err == nil {
		t.Error("config check accepted an empty policy directory")
	}
}

func TestUnknownCommand(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"bogus"}, noenv, nil, &out, &out); err == nil || !strings.Contains(out.String(), "usage:") {
		t.Errorf("run(bogus) = %v, %q", err, out.String())
	}
	if err := run(context.Background(), nil, noenv, nil, &out, &out); err == nil {
		t.Error("run() without a command succeeded")
	}
}

func freeAddr(t *testing.T) string { t.Helper(); return testport.Addr(t) }

// TestServe starts serve in-process: gRPC health turns SERVING, the admin
// API is ready, SIGHUP with a broken policy directory keeps serving, and
// cancelling the context shuts everything down cleanly.
func TestServe(t *testing.T) {
	grpcAddr, adminAddr := freeAddr(t), freeAddr(t)
	raw, err := os.ReadFile("../devstack/sendguard.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(t.TempDir(), "sendguard.yaml")
	os.WriteFile(cfg, []byte(strings.Replace(string(raw), "path: .run/sendguard.db", "path: "+filepath.Join(t.TempDir(), "state.db"), 1)), 0o600)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var logs bytes.Buffer
	logw := &syncWriter{w: &logs}
	go func() {
		done <- run(ctx, []string{"serve", "--config", cfg, "--grpc-addr", grpcAddr, "--admin-addr", adminAddr}, noenv, nil, io.Discard, logw)
	}()

	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	hc := healthpb.NewHealthClient(conn)
	waitServing(t, ctx, hc, func() string { return "" })
	deadline := time.Now().Add(20 * time.Second)
	resp, err := http.Get(fmt.Sprintf("http://%s/readyz", adminAddr))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("readyz = %v, %v", resp, err)
	}
	resp.Body.Close()

	// A SIGHUP re-prepares the (embedded) policies; serving goes on.
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	for !strings.Contains(logw.String(), "policies reloaded") {
		if time.Now().After(deadline) {
			t.Fatalf("no reload logged after SIGHUP:\n%s", logw.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if r, err := hc.Check(ctx, &healthpb.HealthCheckRequest{}); err != nil || r.Status != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("after SIGHUP: %v %v", r, err)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("serve returned %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("serve did not stop")
	}
	if _, err := net.Dial("tcp", grpcAddr); err == nil {
		t.Error("gRPC port still open after shutdown")
	}
}

// waitServing waits up to 20 s for grpc.health to answer SERVING, and
// fails the test with logs() otherwise.
func waitServing(t *testing.T, ctx context.Context, hc healthpb.HealthClient, logs func() string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		r, err := hc.Check(ctx, &healthpb.HealthCheckRequest{})
		if err == nil && r.Status == healthpb.HealthCheckResponse_SERVING {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("never SERVING: %v %v\n%s", r, err, logs())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// syncWriter lets the test read the logs while serve writes them.
type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func (s *syncWriter) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.String()
}

func TestOptoutClassify(t *testing.T) {
	in := "STOP\nCan you cancel my order?\nإيقاف\nstart\nHALT\n"
	var out bytes.Buffer
	if err := run(context.Background(), []string{"optout", "classify"}, noenv, strings.NewReader(in), &out, &out); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	want := []string{"opt_out", "none", "opt_out", "opt_in", "none"}
	if len(lines) != len(want) {
		t.Fatalf("output:\n%s", out.String())
	}
	for i, l := range lines {
		var r struct{ Text, Intent, Matched string }
		if err := json.Unmarshal([]byte(l), &r); err != nil || r.Intent != want[i] || r.Text != strings.Split(in, "\n")[i] {
			t.Errorf("line %d = %s, want intent %s", i, l, want[i])
		}
	}
	// A platform team's extra keyword, from the config.
	cfg := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(cfg, []byte("inbound: {routes: []}\noptout:\n  extra:\n    opt_out: [HALT]\n"), 0o600)
	out.Reset()
	if err := run(context.Background(), []string{"optout", "classify", "--config", cfg}, noenv, strings.NewReader("halt\n"), &out, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), `"intent":"opt_out"`) {
		t.Errorf("extra keyword: %s", out.String())
	}
}

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	cfg, err := os.ReadFile("../devstack/sendguard.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// A one-a-day plan: a check that consumed would deny the second run.
	conf := strings.Replace(string(cfg), "starter: {daily: 100,", "starter: {daily: 1,", 1)
	conf = strings.Replace(conf, "path: .run/sendguard.db", "path: "+filepath.Join(dir, "state.db"), 1)
	conf += "risk:\n  extra:\n    prize: [golden ticket draw]\n  shorteners: [sho.rt]\n"
	path := filepath.Join(dir, "sendguard.yaml")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	check := func(body string, args ...string) string {
		t.Helper()
		var out, errOut bytes.Buffer
		args = append([]string{"check", "--config", path, "--key", "demo-key-starter"}, args...)
		if err := run(context.Background(), args, noenv, strings.NewReader(body), &out, &errOut); err != nil {
			t.Fatalf("check %v: %v\n%s", args, err, errOut.String())
		}
		return out.String()
	}
	receipt := `{"instance_id":"inst_12345","phone":"+966501234567","message":"Your order #1042 has shipped.","message_purpose":"transactional"}`
	prize := `{"instance_id":"inst_12345","phone":"+966501234567","message":"YOU HAVE WON A PRIZE!!!!!","message_purpose":"transactional"}`
	paused := `{"instance_id":"inst_paused","phone":"+966501234567","message":"Your order #1042 has shipped.","message_purpose":"transactional"}`

	for _, state := range []string{"config", "store"} {
		for range 2 {
			out := check(receipt, "--state", state)
			if !strings.HasPrefix(out, "allowed: forwarded to the sender with\n") || !strings.Contains(out, "x-sendguard-purpose: transactional") || !strings.Contains(out, "x-sendguard-phone: +966501234567\n") {
				t.Errorf("state %s: receipt:\n%s", state, out)
			}
			if !strings.Contains(out, "  transactional ") {
				t.Errorf("state %s: receipt: no transactional evidence in the breakdown:\n%s", state, out)
			}
		}
	}
	// --state store wrote nothing, not even the config's seeds.
	st, err := store.OpenEmbedded(filepath.Join(dir, "state.db"), store.EmbeddedOptions{})
	if err != nil {
		t.Fatal(err)
	}
	isPaused, err := st.Paused(context.Background(), "inst_paused")
	sups, err2 := st.Suppressions(context.Background(), "inst_12345")
	st.Close()
	if err != nil || err2 != nil || isPaused || len(sups) != 0 {
		t.Errorf("check --state store changed the store: paused %v, suppressions %v (%v %v)", isPaused, sups, err, err2)
	}
	out := check(prize)
	if !strings.HasPrefix(out, "HTTP 403\ncontent-type: application/json\nx-sendguard-decision-id: ") ||
		!strings.Contains(out, `{"success":false,"error":"policy_violation"`) || !strings.Contains(out, "PrizeClaims=") || !strings.Contains(out, "  prize_claims ") {
		t.Errorf("prize:\n%s", out)
	}
	if out := check(paused); !strings.HasPrefix(out, "HTTP 423\n") || !strings.Contains(out, `"error":"instance_paused_for_review"`) {
		t.Errorf("paused:\n%s", out)
	}
	// The config extends the vocabulary and the shortener list.
	extended := `{"instance_id":"inst_12345","phone":"+966501234567","message":"You are in the Golden Ticket Draw: https://sho.rt/x","message_purpose":"transactional"}`
	if out := check(extended); !strings.Contains(out, "PrizeClaims=1") || !strings.Contains(out, "ShortenerLinks=1") {
		t.Errorf("extended vocabulary:\n%s", out)
	}
	bodyFile := filepath.Join(dir, "body.json")
	if err := os.WriteFile(bodyFile, []byte(`{"instance_id":`), 0o600); err != nil {
		t.Fatal(err)
	}
	if out := check("", "--body", bodyFile); !strings.HasPrefix(out, "HTTP 400\n") || !strings.Contains(out, `"error":"invalid_json"`) {
		t.Errorf("invalid json from a file:\n%s", out)
	}
	// The key from a header flag instead of --key; a query string is not part of the route.
	var out2, errOut bytes.Buffer
	if err := run(context.Background(), []string{"check", "--config", path, "-H", "Authorization: Bearer demo-key-revoked", "-H", "X-Trace: 1",
		"--path", "/api/send-message?x=1"}, noenv, strings.NewReader(receipt), &out2, &errOut); err != nil {
		t.Fatal(err, errOut.String())
	}
	if !strings.HasPrefix(out2.String(), "HTTP 401\n") || !strings.Contains(out2.String(), `"error":"revoked_api_key"`) {
		t.Errorf("revoked key by header:\n%s", out2.String())
	}
	if err := run(context.Background(), []string{"check", "--config", path, "-H", "no colon"}, noenv, strings.NewReader(receipt), &out2, &errOut); err == nil {
		t.Error("check accepted a header without a colon")
	}
	if out := check("", "--path", "/api/other"); !strings.HasPrefix(out, "not the send path") {
		t.Errorf("other path:\n%s", out)
	}
	// The path and method as Envoy would hand them to sendguard.
	if out := check(receipt, "--path", "/api/send-message%20"); !strings.HasPrefix(out, "HTTP 400\n") || !strings.Contains(out, `"error":"invalid_request_path"`) {
		t.Errorf("path with %%20:\n%s", out)
	}
	if out := check(receipt, "--method", "put", "--path", "/API;v=1/send-message/"); !strings.HasPrefix(out, "allowed: forwarded to the sender with\n") {
		t.Errorf("PUT to a spelling of the send path:\n%s", out)
	}
	if out := check(receipt, "--method", "GET"); !strings.HasPrefix(out, "HTTP 400\n") || !strings.Contains(out, `"error":"invalid_request_method"`) {
		t.Errorf("GET of the send path with a body:\n%s", out)
	}
}

// TestVersionFirstLine: the first line is internal/version's, the
// version the image is tagged with and the chart's appVersion.
func TestVersionFirstLine(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}} {
		var out bytes.Buffer
		if err := run(context.Background(), args, noenv, nil, &out, &out); err != nil {
			t.Fatalf("run(%q) = %v", args, err)
		}
		if first, _, _ := strings.Cut(out.String(), "\n"); first != sgversion.String() {
			t.Errorf("run(%q) printed %q first, want %q", args, first, sgversion.String())
		}
	}
	var out bytes.Buffer
	if err := run(context.Background(), []string{"version", "extra"}, noenv, nil, &out, &out); err == nil {
		t.Error("run(version extra) succeeded")
	}
}
