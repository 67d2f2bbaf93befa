package main

// Policy trees that must not pass: config check, start-up and a SIGHUP
// reload refuse data that does not match its schema and policies that answer
// the probe sends otherwise than expected.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/sendguard/sendguard/policies"
)

const policyData = "sendguard/config/data.json"

// policyTree copies the shipped policy tree to a directory the test edits.
func policyTree(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.CopyFS(dir, policies.FS); err != nil {
		t.Fatal(err)
	}
	return dir
}

// replaceIn replaces old with new in the file name under dir.
// modelOff takes the content model out of the score: no weights, no block
// lines.
func modelOff(t *testing.T, dir string) {
	t.Helper()
	p := filepath.Join(dir, policyData)
	raw, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var data map[string]any
	if err := json.Unmarshal(raw, &data); err != nil {
		t.Fatal(err)
	}
	data["model"] = map[string]any{"weights": map[string]any{}, "block_at": map[string]any{}}
	out, err := json.MarshalIndent(data, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, out, 0o600); err != nil {
		t.Fatal(err)
	}
}

func replaceIn(t *testing.T, dir, name, old, new string) {
	t.Helper()
	p := filepath.Join(dir, name)
	raw, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(raw), old) {
		t.Fatalf("%s does not hold %q", name, old)
	}
	if err := os.WriteFile(p, []byte(strings.Replace(string(raw), old, new, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
}

// brokenTrees are policy trees each of which once passed config check and
// loaded, and changed what sendguard decides.
var brokenTrees = []struct {
	name string
	edit func(t *testing.T, dir string)
	want []string
}{
	{"block_threshold as a string", func(t *testing.T, dir string) {
		replaceIn(t, dir, policyData, `"block_threshold": 70`, `"block_threshold": "70"`)
	}, []string{"sendguard/config/data.json: /risk/block_threshold: expected integer, got string"}},
	{"block_threshold misspelt", func(t *testing.T, dir string) {
		replaceIn(t, dir, policyData, `"block_threshold"`, `"block_treshold"`)
	}, []string{"/risk/block_treshold: unknown key", "/risk/block_threshold: required key is missing"}},
	{"marketing allowed", func(t *testing.T, dir string) {
		replaceIn(t, dir, policyData, `"allowed": [`, `"allowed": ["marketing",`)
	}, []string{`probe "marketing purpose": answered allowed (risk score 0), want message_purpose_not_allowed`}},
	{"threshold above the spam", func(t *testing.T, dir string) {
		modelOff(t, dir) // the content model's block line alone would still hold the spam
		replaceIn(t, dir, policyData, `"block_threshold": 70`, `"block_threshold": 95`)
	}, []string{`probe "prize spam declared transactional": answered allowed (risk score 90), want policy_violation`}},
	// The layout mistake: every file one directory down. Before, every
	// send answered 422 message_purpose_required.
	{"tree one directory down", func(t *testing.T, dir string) {
		for _, d := range []string{"sendguard", "schemas"} {
			os.MkdirAll(filepath.Join(dir, "policies"), 0o755)
			if err := os.Rename(filepath.Join(dir, d), filepath.Join(dir, "policies", d)); err != nil {
				t.Fatal(err)
			}
		}
	}, []string{"sendguard/probes.json is missing"}},
	// The data alone one directory down, with the probes in place:
	// data.sendguard.config.v2 is not in the schema.
	{"data file misplaced", func(t *testing.T, dir string) {
		os.MkdirAll(filepath.Join(dir, "sendguard/config/v2"), 0o755)
		if err := os.Rename(filepath.Join(dir, policyData), filepath.Join(dir, "sendguard/config/v2/data.json")); err != nil {
			t.Fatal(err)
		}
	}, []string{"data.sendguard.config: /risk: required key is missing", "data.sendguard.config: /v2: unknown key"}},
}

// TestConfigCheckRefusesBrokenPolicies: config check fails for each broken
// tree, naming the field or each probe at fault, and passes the shipped one.
func TestConfigCheckRefusesBrokenPolicies(t *testing.T) {
	var out bytes.Buffer
	err := run(context.Background(), []string{"config", "check", "--config", "../devstack/sendguard.yaml", "--policies", policyTree(t)}, noenv, nil, &out, &out)
	if err != nil || !strings.Contains(out.String(), "probes answered as expected") {
		t.Fatalf("config check of the shipped tree = %v, %q", err, out.String())
	}
	for _, tt := range brokenTrees {
		t.Run(tt.name, func(t *testing.T) {
			dir := policyTree(t)
			tt.edit(t, dir)
			var out bytes.Buffer
			err := run(context.Background(), []string{"config", "check", "--config", "../devstack/sendguard.yaml", "--policies", dir}, noenv, nil, &out, &out)
			for _, w := range tt.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("config check (%s) = %v, %q; want an error naming %q", tt.name, err, out.String(), w)
				}
			}
		})
	}
}

// serveConfig is the demo config with its store in a temporary directory.
func serveConfig(t *testing.T) string {
	t.Helper()
	raw, err := os.ReadFile("../devstack/sendguard.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(t.TempDir(), "sendguard.yaml")
	// No watcher: these tests edit files and count SIGHUP reloads; a poll
	// seeing the same edit would reload too.
	os.WriteFile(cfg, []byte(strings.Replace(string(raw), "path: .run/sendguard.db", "path: "+filepath.Join(t.TempDir(), "state.db"), 1)+"reload: {watch: false}\n"), 0o600)
	return cfg
}

// TestServeRefusesBrokenPolicies: serve does not start on a broken tree; it
// returns the error before listening.
func TestServeRefusesBrokenPolicies(t *testing.T) {
	for _, tt := range brokenTrees {
		t.Run(tt.name, func(t *testing.T) {
			dir := policyTree(t)
			tt.edit(t, dir)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			err := run(ctx, []string{"serve", "--config", serveConfig(t), "--policies", dir, "--grpc-addr", freeAddr(t), "--admin-addr", freeAddr(t)}, noenv, nil, io.Discard, io.Discard)
			for _, w := range tt.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("serve (%s) = %v, want an error naming %q", tt.name, err, w)
				}
			}
		})
	}
}

// TestSIGHUPKeepsRunningPolicies: a SIGHUP reload of a broken tree is
// refused, logged with the field at fault, and sends are still decided by
// the running policies; a valid edit then applies.
func TestSIGHUPKeepsRunningPolicies(t *testing.T) {
	dir := policyTree(t)
	grpcAddr, adminAddr := freeAddr(t), freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	logw := &syncWriter{w: &bytes.Buffer{}}
	go func() {
		done <- run(ctx, []string{"serve", "--config", serveConfig(t), "--policies", dir, "--grpc-addr", grpcAddr, "--admin-addr", adminAddr}, noenv, nil, io.Discard, logw)
	}()
	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	hc := healthpb.NewHealthClient(conn)
	waitServing(t, ctx, hc, logw.String)
	ac := authv3.NewAuthorizationClient(conn)
	// decide answers "allowed" or the error code of the denial.
	phone := 0
	decide := func(purpose, message string) string {
		t.Helper()
		phone++ // a new recipient each time: no pair or fan-out limit applies
		body := fmt.Sprintf(`{"instance_id":"inst_12345","phone":"+9665012345%02d","message":%q,"message_purpose":%q}`, phone, message, purpose)
		resp, err := ac.Check(ctx, &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{
			Http: &authv3.AttributeContext_HttpRequest{Method: "POST", Path: "/api/send-message",
				Headers: map[string]string{"authorization": "Bearer demo-key-starter", "content-type": "application/json"}, RawBody: []byte(body)},
		}}})
		if err != nil {
			t.Fatal(err)
		}
		if resp.GetOkResponse() != nil {
			return "allowed"
		}
		for _, code := range []string{"policy_violation", "message_purpose_required", "message_purpose_not_allowed"} {
			if strings.Contains(resp.GetDeniedResponse().GetBody(), `"`+code+`"`) {
				return code
			}
		}
		return resp.GetDeniedResponse().GetBody()
	}
	check := func(when string) {
		t.Helper()
		if got := decide("transactional", "YOU HAVE WON A PRIZE!!!!!"); got != "policy_violation" {
			t.Errorf("%s: prize spam = %s, want policy_violation", when, got)
		}
		if got := decide("newsletter", "Your order #1042 has shipped."); got != "message_purpose_required" {
			t.Errorf("%s: newsletter = %s, want message_purpose_required", when, got)
		}
	}
	hup := func(want string) {
		t.Helper()
		before := strings.Count(logw.String(), want)
		syscall.Kill(os.Getpid(), syscall.SIGHUP)
		deadline := time.Now().Add(20 * time.Second)
		for strings.Count(logw.String(), want) == before {
			if time.Now().After(deadline) {
				t.Fatalf("no %q logged after SIGHUP:\n%s", want, logw.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	check("before")

	replaceIn(t, dir, policyData, `"block_threshold": 70`, `"block_threshold": "70"`)
	hup("policy reload failed")
	if !strings.Contains(logw.String(), `/risk/block_threshold: expected integer, got string`) {
		t.Errorf("the failed reload's log does not name the field:\n%s", logw.String())
	}
	check("after a refused reload")

	modelOff(t, dir)
	replaceIn(t, dir, policyData, `"block_threshold": "70"`, `"block_threshold": 95`)
	hup("policy reload failed")
	check("after a reload that fails a probe")

	// A valid edit applies: newsletter is now a known, forbidden purpose.
	replaceIn(t, dir, policyData, `"block_threshold": 95`, `"block_threshold": 70`)
	replaceIn(t, dir, policyData, `"known": [`, `"known": ["newsletter",`)
	hup("policies reloaded")
	if got := decide("newsletter", "Your order #1042 has shipped."); got != "message_purpose_not_allowed" {
		t.Errorf("after a valid reload: newsletter = %s, want message_purpose_not_allowed", got)
	}
	resp, err := http.Get("http://" + adminAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, w := range []string{`sendguard_policy_reloads_total{result="refused"} 2`, `sendguard_policy_reloads_total{result="applied"} 1`} {
		if !strings.Contains(string(metrics), w) {
			t.Errorf("/metrics does not hold %s:\n%s", w, metrics)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("serve returned %v", err)
	}
}

// TestServeRefusesAdminTokenWithWhitespace: an admin token from the
// environment with a trailing newline (a Secret mounted from a file) can
// never be presented; serve refuses to start and names the variable.
func TestServeRefusesAdminTokenWithWhitespace(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "sendguard.yaml")
	os.WriteFile(cfg, []byte("store: {type: memory}\ninbound: {routes: []}\n"), 0o600)
	env := func(k string) string { return map[string]string{"SENDGUARD_ADMIN_TOKEN": "s3cret\n"}[k] }
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := run(ctx, []string{"serve", "--config", cfg, "--grpc-addr", freeAddr(t), "--admin-addr", freeAddr(t)}, env, nil, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "SENDGUARD_ADMIN_TOKEN") || !strings.Contains(err.Error(), "whitespace") {
		t.Errorf("serve with SENDGUARD_ADMIN_TOKEN=%q = %v, want an error naming the variable", "s3cret\n", err)
	}
}

// TestServeInboundSecrets: serve refuses to start when a variable
// inbound.signature names is empty or ends in a newline (it would verify
// nothing, so no STOP would ever be recorded), naming the variable;
// `config check` does not need the deployment's variables.
func TestServeInboundSecrets(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "sendguard.yaml")
	os.WriteFile(cfg, []byte("store: {type: memory}\ninbound: {signature: {secret_env: INBOUND_CUR, secrets_env: [INBOUND_NEXT]}}\n"), 0o600)
	for _, env := range []map[string]string{
		{"INBOUND_CUR": "cur"},
		{"INBOUND_CUR": "cur", "INBOUND_NEXT": "next\n"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		err := run(ctx, []string{"serve", "--config", cfg, "--grpc-addr", freeAddr(t), "--admin-addr", freeAddr(t)}, func(k string) string { return env[k] }, nil, io.Discard, io.Discard)
		cancel()
		if err == nil || !strings.Contains(err.Error(), "INBOUND_NEXT") {
			t.Errorf("serve with %q = %v, want an error naming INBOUND_NEXT", env, err)
		}
	}
	var out bytes.Buffer
	if err := run(context.Background(), []string{"config", "check", "--config", cfg}, noenv, nil, &out, &out); err != nil {
		t.Errorf("config check without the variables = %v, want ok", err)
	}
}

// TestServeWarnsUnsigned: inbound.unsigned: true starts, with a warning
// that anyone reaching the sidecar can forge opt-outs and opt-ins.
func TestServeWarnsUnsigned(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "sendguard.yaml")
	os.WriteFile(cfg, []byte("store: {type: memory}\ninbound: {unsigned: true}\n"), 0o600)
	var logs syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	adminAddr := freeAddr(t)
	go func() {
		done <- run(ctx, []string{"serve", "--config", cfg, "--grpc-addr", freeAddr(t), "--admin-addr", adminAddr}, noenv, nil, io.Discard, &logs)
	}()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(logs.String(), "inbound.unsigned") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("serve with inbound.unsigned: true = %v, want it to start", err)
	}
	if l := logs.String(); !strings.Contains(l, `"level":"WARN"`) || !strings.Contains(l, "forge opt-outs") {
		t.Errorf("serve with inbound.unsigned: true logged\n%s\nwant a warning that anyone can forge opt-outs", l)
	}
}

// syncBuffer is a bytes.Buffer safe to write from serve's goroutines
// while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestServeCancelledDuringStart: a cancel that arrives while serve is still
// starting is a stop, never "grpc: the server has been stopped" (the
// shutdown ran before the gRPC server began to accept). Before the servers
// start, serve may still answer the cancel itself (context canceled).
func TestServeCancelledDuringStart(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "sendguard.yaml")
	if err := os.WriteFile(cfg, []byte("store: {type: memory}\ninbound: {routes: []}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		var logs syncBuffer
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			done <- run(ctx, []string{"serve", "--config", cfg, "--grpc-addr", freeAddr(t), "--admin-addr", freeAddr(t)}, noenv, nil, io.Discard, &logs)
		}()
		// Cancel at a different point of the start each time: as soon as
		// the config is built (its warnings logged), then 0.1 ms later…
		for !strings.Contains(logs.String(), "no admin token") && len(done) == 0 {
			time.Sleep(50 * time.Microsecond)
		}
		time.Sleep(time.Duration(i%20) * 100 * time.Microsecond)
		cancel()
		if err := <-done; err != nil && !strings.Contains(err.Error(), "context canceled") {
			t.Fatalf("run %d: serve cancelled during start = %v, want nil", i, err)
		}
	}
}
