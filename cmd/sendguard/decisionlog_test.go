package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/sendguard/sendguard/internal/model"
	"github.com/sendguard/sendguard/internal/policy"
)

// devstackConfig is the demo config with its store in dir and extra
// appended (top-level keys).
func devstackConfig(t *testing.T, dir, extra string) string {
	t.Helper()
	raw, err := os.ReadFile("../devstack/sendguard.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "sendguard.yaml")
	body := strings.Replace(string(raw), "path: .run/sendguard.db", "path: "+filepath.Join(dir, "state.db"), 1) + "\n" + extra
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestServeDecisionLog: serve with decision_log on stdout writes one line
// per Check, under the decision id Envoy got, flushed by the shutdown, with
// the config's revision and the phone as an HMAC; a missing HMAC key
// variable stops serve before it listens.
func TestServeDecisionLog(t *testing.T) {
	dir := t.TempDir()
	cfg := devstackConfig(t, dir, "decision_log: {sink: stdout}\n")
	env := func(k string) string {
		if k == "SENDGUARD_DECISION_LOG_KEY" {
			return "log-key"
		}
		return ""
	}
	grpcAddr, adminAddr := freeAddr(t), freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, logs bytes.Buffer
	outw, logw := &syncWriter{w: &out}, &syncWriter{w: &logs}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--config", cfg, "--grpc-addr", grpcAddr, "--admin-addr", adminAddr}, env, nil, outw, logw)
	}()
	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	waitServing(t, ctx, healthpb.NewHealthClient(conn), logw.String)
	c := authv3.NewAuthorizationClient(conn)
	ids := map[string]bool{}
	for i := range 20 {
		msg := []string{"Your order #1042 has shipped.", "طلبك رقم 1042 تم شحنه 📦", "YOU HAVE WON A PRIZE!!!!!"}[i%3]
		body, _ := json.Marshal(map[string]string{"instance_id": "inst_12345", "phone": fmt.Sprintf("+9665012340%02d", i), "message": msg, "message_purpose": "transactional"})
		resp, err := c.Check(ctx, &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{
			Http: &authv3.AttributeContext_HttpRequest{Method: "POST", Path: "/api/send-message",
				Headers: map[string]string{"authorization": "Bearer demo-key-starter"}, RawBody: body}}}})
		if err != nil {
			t.Fatal(err)
		}
		hs := resp.GetOkResponse().GetResponseHeadersToAdd()
		if d := resp.GetDeniedResponse(); d != nil {
			hs = d.GetHeaders()
		}
		for _, h := range hs {
			if h.GetHeader().GetKey() == "x-sendguard-decision-id" {
				ids[h.GetHeader().GetValue()] = true
			}
		}
	}
	if len(ids) != 20 {
		t.Fatalf("%d decision ids from 20 checks", len(ids))
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("serve did not stop")
	}
	text := outw.String()
	if strings.Contains(text, "demo-key-starter") || strings.Contains(text, "501234000") {
		t.Errorf("the decision log holds the key or a phone:\n%s", text)
	}
	sc := bufio.NewScanner(strings.NewReader(text))
	n := 0
	for sc.Scan() {
		var ln struct {
			ID, Result, Config, Policy, PhoneHMAC string
		}
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %s: %v", sc.Bytes(), err)
		}
		ln.ID, _ = m["decision_id"].(string)
		ln.Config, _ = m["config_revision"].(string)
		ln.Policy, _ = m["policy_revision"].(string)
		ln.PhoneHMAC, _ = m["phone_hmac"].(string)
		if !ids[ln.ID] || len(ln.Config) != 12 || len(ln.Policy) != 12 || len(ln.PhoneHMAC) != 64 {
			t.Errorf("line %s: want a known decision id, both revisions and a phone_hmac", sc.Bytes())
		}
		delete(ids, ln.ID)
		n++
	}
	if n != 20 || len(ids) != 0 {
		t.Errorf("%d lines, %d decisions without a line; want 20 and 0", n, len(ids))
	}

	err = run(context.Background(), []string{"serve", "--config", cfg, "--grpc-addr", freeAddr(t), "--admin-addr", freeAddr(t)}, noenv, nil, outw, logw)
	if err == nil || !strings.Contains(err.Error(), "SENDGUARD_DECISION_LOG_KEY") {
		t.Errorf("serve without the HMAC key = %v, want an error naming SENDGUARD_DECISION_LOG_KEY", err)
	}
}

// TestVersion: `version` and `--version` print the version, commit and
// build date lines, the embedded policies' revision and both models'.
func TestVersion(t *testing.T) {
	for _, arg := range []string{"version", "--version"} {
		var out bytes.Buffer
		if err := run(context.Background(), []string{arg}, noenv, nil, &out, &out); err != nil {
			t.Fatalf("%s: %v", arg, err)
		}
		for _, want := range []string{"sendguard ", "\ncommit: ", "\nbuilt: ", "\npolicies: embedded@", "\nmodel inbound: ", "\nmodel outbound: "} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("%s printed\n%s\nwant a line with %q", arg, out.String(), want)
			}
		}
	}
}

// TestVersionLdflags: the values `make build` passes with -ldflags -X are
// what `sendguard --version` prints.
func TestVersionLdflags(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "sendguard")
	ld := "-X main.version=v1.2.3-test -X main.commit=0123456789abcdef -X main.buildDate=2026-11-27T12:00:00Z"
	if out, err := exec.Command("go", "build", "-ldflags", ld, "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "--version").CombinedOutput()
	if err != nil {
		t.Fatalf("--version: %v\n%s", err, out)
	}
	for _, want := range []string{"sendguard v1.2.3-test (", "commit: 0123456789abcdef", "built: 2026-11-27T12:00:00Z\n", "policies: embedded@" + policy.EmbeddedRevision() + "\n",
		"model inbound: " + model.EmbeddedVersion(model.Inbound) + "\n", "model outbound: " + model.EmbeddedVersion(model.Outbound) + "\n"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("--version printed\n%s\nwant %q", out, want)
		}
	}
}
