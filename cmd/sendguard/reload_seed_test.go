package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
)

// TestReloadKeepsOperatorChanges: the config's seeds (paused: true, the
// suppressions list) apply at start, and a reload applies only the seeds
// the edit added. An instance the operator resumed and a suppression the
// operator lifted through the admin API stay so across an unrelated edit
// (here a new key); a pause and a suppression the edit adds take effect.
func TestReloadKeepsOperatorChanges(t *testing.T) {
	cfgPath := devstackConfig(t, t.TempDir(), "reload: {watch_interval: 100ms}\n")
	raw, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	base := string(raw)
	write := func(cfg string) {
		t.Helper()
		tmp := cfgPath + ".tmp"
		if err := os.WriteFile(tmp, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, cfgPath); err != nil {
			t.Fatal(err)
		}
	}
	srv := serveFor(t, cfgPath, nil)
	adminAddr, logw, ctx, ac := srv.adminAddr, srv.logs, context.Background(), srv.client

	n := 0
	decide := func(instance, to string) string {
		t.Helper()
		if to == "" {
			n++
			to = fmt.Sprintf("+9665012346%02d", n)
		}
		body := fmt.Sprintf(`{"instance_id":%q,"phone":%q,"message":"طلبك رقم 1042 في الطريق إليك 🚚 आपका ऑर्डर भेज दिया गया है","message_purpose":"transactional"}`, instance, to)
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
		b := resp.GetDeniedResponse().GetBody()
		for _, code := range []string{"instance_paused_for_review", "recipient_suppressed", "daily_limit_exceeded"} {
			if strings.Contains(b, `"`+code+`"`) {
				return code
			}
		}
		return b
	}
	admin := func(method, path string) {
		t.Helper()
		req, _ := http.NewRequest(method, "http://"+adminAddr+path, strings.NewReader(`{"reason":"reviewed by support"}`))
		req.Header.Set("Authorization", "Bearer demo-admin-token")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			t.Fatalf("%s %s = %d %s", method, path, resp.StatusCode, b)
		}
	}
	applied := func() string {
		t.Helper()
		resp, err := http.Get("http://" + adminAddr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		m, _ := io.ReadAll(resp.Body)
		for _, l := range strings.Split(string(m), "\n") {
			if v, ok := strings.CutPrefix(l, `sendguard_reloads_total{result="applied",trigger="watch"} `); ok {
				return v
			}
		}
		return ""
	}
	waitApplied := func(want string) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for applied() != want {
			if time.Now().After(deadline) {
				t.Fatalf("reloads applied = %q, want %s\n%s", applied(), want, logw.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	const suppressed = "+966500000000"
	check := func(when, instance, to, want string) {
		t.Helper()
		if got := decide(instance, to); got != want {
			t.Errorf("%s: send on %s to %q = %s, want %s", when, instance, to, got, want)
		}
	}

	check("seeded at start", "inst_paused", "", "instance_paused_for_review")
	check("seeded at start", "inst_12345", suppressed, "recipient_suppressed")

	admin("POST", "/v1/instances/inst_paused/resume")
	admin("DELETE", "/v1/instances/inst_12345/suppressions/"+suppressed)
	check("resumed by the operator", "inst_paused", "", "allowed")
	check("lifted by the operator", "inst_12345", suppressed, "allowed")

	// An unrelated edit: a new key for the demo account.
	edited := strings.Replace(base, "      - id: demo-revoked\n", "      - id: demo-second\n        sha256: "+strings.Repeat("ab", 32)+"\n      - id: demo-revoked\n", 1)
	if edited == base {
		t.Fatal("the key edit did not apply to the devstack config")
	}
	write(edited)
	waitApplied("1")
	check("after an unrelated reload", "inst_paused", "", "allowed")
	check("after an unrelated reload", "inst_12345", suppressed, "allowed")

	// An edit that adds seeds: inst_12345 paused, a new suppression on
	// demo-support-line.
	added := strings.Replace(edited, "    plan: starter\n  - id: demo-support-line", "    plan: starter\n    paused: true\n  - id: demo-support-line", 1)
	added = strings.Replace(added, "suppressions:\n", "suppressions:\n  - instance: demo-support-line\n    phone: \"+966 50 111 2222\"\n    reason: manual_block\n", 1)
	if strings.Count(added, "paused: true") != 2 || !strings.Contains(added, "+966 50 111 2222") {
		t.Fatal("the seed edit did not apply to the devstack config")
	}
	write(added)
	waitApplied("2")
	check("a pause the edit added", "inst_12345", "", "instance_paused_for_review")
	check("a suppression the edit added", "demo-support-line", "+966501112222", "recipient_suppressed")
	check("still resumed", "inst_paused", "", "allowed")
}
