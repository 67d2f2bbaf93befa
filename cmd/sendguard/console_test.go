package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// consoleBrowser is a cookie-keeping client of the console on an admin port.
type consoleBrowser struct {
	t    *testing.T
	base string
	c    *http.Client
}

func newConsoleBrowser(t *testing.T, adminAddr string) *consoleBrowser {
	jar, _ := cookiejar.New(nil)
	return &consoleBrowser{t: t, base: "http://" + adminAddr, c: &http.Client{Jar: jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (b *consoleBrowser) do(method, path string, form url.Values) (int, string) {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, _ := http.NewRequest(method, b.base+path, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, html.UnescapeString(string(raw))
}

var consoleCSRF = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// signin signs in with tok and reports whether the console took it.
func (b *consoleBrowser) signin(tok string) bool {
	b.t.Helper()
	_, page := b.do("GET", "/console/signin", nil)
	m := consoleCSRF.FindStringSubmatch(page)
	if m == nil {
		b.t.Fatalf("sign-in page without a CSRF token:\n%s", page)
	}
	code, _ := b.do("POST", "/console/signin", url.Values{"csrf": {m[1]}, "token": {tok}})
	return code == http.StatusSeeOther
}

// TestServeConsole: serve mounts the console on the admin port next to the
// admin API; the read-only token comes from admin.console_token_env; the
// overview counts decisions as /metrics does; an opt-out recorded through
// POST /v1/inbound is on the recipient's page; the audit trail is written to
// admin.console_audit_file; and a reload that rotates the admin token signs
// its sessions out and lets the new token in.
func TestServeConsole(t *testing.T) {
	dir := t.TempDir()
	auditPath := filepath.Join(dir, "console-audit.jsonl")
	cfgPath := devstackConfig(t, dir, "reload: {watch_interval: 100ms}\ndecision_log: {sink: stdout, phone: omit}\n")
	raw, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	withAudit := strings.Replace(string(raw), "  token: demo-admin-token", "  token: demo-admin-token\n  console_token_env: RO_TOKEN\n  console_audit_file: "+auditPath, 1)
	if withAudit == string(raw) {
		t.Fatal("the devstack config's admin token line moved; update the test")
	}
	if err := os.WriteFile(cfgPath, []byte(withAudit), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := serveFor(t, cfgPath, map[string]string{"RO_TOKEN": "console-read-only"})

	anon := newConsoleBrowser(t, srv.adminAddr)
	if code, _ := anon.do("GET", "/console/", nil); code != http.StatusSeeOther {
		t.Errorf("GET /console/ unsigned = %d, want 303 to sign-in", code)
	}
	if code, _ := anon.do("GET", "/healthz", nil); code != http.StatusOK {
		t.Errorf("GET /healthz beside the console = %d, want 200", code)
	}
	if anon.signin("wrong") {
		t.Error("the console took a wrong token")
	}

	ro := newConsoleBrowser(t, srv.adminAddr)
	if !ro.signin("console-read-only") {
		t.Fatal("the read-only token from RO_TOKEN was refused")
	}
	ctx := context.Background()
	for range 3 {
		srv.check(ctx, "POST", "/api/send-message", sendHeaders(""), sendJSON("+966501234567", "Your order has shipped.", "transactional"))
	}
	srv.check(ctx, "POST", "/api/send-message", sendHeaders(""), sendJSON("+966500000000", "Your order has shipped.", "transactional")) // seeded suppression
	_, metrics := anon.do("GET", "/metrics", nil)
	allowed := regexp.MustCompile(`sendguard_decisions_total\{result="allowed"\} (\d+)`).FindStringSubmatch(metrics)
	if allowed == nil {
		t.Fatalf("no allowed count in /metrics")
	}
	_, overview := ro.do("GET", "/console/", nil)
	if !strings.Contains(overview, "<code>allowed</code></th><td>") || !strings.Contains(overview, "</td><td>"+allowed[1]+"</td></tr>") {
		t.Errorf("overview does not count %s allowed as /metrics does:\n%s", allowed[1], overview)
	}
	if !strings.Contains(overview, "recipient_suppressed") {
		t.Errorf("overview lacks the recipient_suppressed result:\n%s", overview)
	}
	// The decision log feeds the instance page (its writer runs within a second).
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, inst := ro.do("GET", "/console/instances/inst_12345", nil)
		if strings.Contains(inst, "<th scope=\"row\"><code>recipient_suppressed</code></th><td>1</td>") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the instance page never listed the refusal:\n%s", inst)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// An opt-out through the admin API is on the recipient's page.
	req, _ := http.NewRequest("POST", "http://"+srv.adminAddr+"/v1/inbound",
		strings.NewReader(`{"instance_id":"inst_12345","from":"+966 55 123 4567","message_text":"توقف"}`))
	req.Header.Set("Authorization", "Bearer demo-admin-token")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var out struct{ Intent string }
	json.NewDecoder(resp.Body).Decode(&out)
	resp.Body.Close()
	if out.Intent != "opt_out" {
		t.Fatalf("POST /v1/inbound توقف: intent %q, want opt_out", out.Intent)
	}
	_, rcp := ro.do("GET", "/console/recipients?phone=00966551234567", nil)
	if !strings.Contains(rcp, "<td>opt_out</td>") || !strings.Contains(rcp, "recipient_requested_stop") {
		t.Errorf("recipient page lacks the opt-out event or its suppression:\n%s", rcp)
	}

	admin := newConsoleBrowser(t, srv.adminAddr)
	if !admin.signin("demo-admin-token") {
		t.Fatal("the admin token was refused")
	}
	// A reload that rotates the admin token ends the admin's sign-in.
	rotated := strings.Replace(withAudit, "  token: demo-admin-token", "  token: demo-admin-token-2", 1)
	if err := os.WriteFile(cfgPath, []byte(rotated), 0o600); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(20 * time.Second)
	for {
		if code, _ := admin.do("GET", "/console/", nil); code == http.StatusSeeOther {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the admin's sign-in outlived the rotated token:\n%s", srv.logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !admin.signin("demo-admin-token-2") {
		t.Error("the rotated admin token was refused after the reload")
	}
	if code, _ := ro.do("GET", "/console/", nil); code != http.StatusOK {
		t.Errorf("the read-only sign-in ended with the admin token's rotation: %d", code)
	}

	f, err := os.Open(auditPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var who []string
	for sc := bufio.NewScanner(f); sc.Scan(); {
		var e struct{ Who, Action string }
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("audit line %q: %v", sc.Text(), err)
		}
		kind := strings.Fields(e.Who) // "admin token 1a2b3c4d, sign-in …"
		who = append(who, e.Action+" by "+strings.Join(kind[:2], " "))
	}
	want := []string{"signin by read-only token", "signin by admin token", "signin by admin token"}
	if fmt.Sprint(who) != fmt.Sprint(want) {
		t.Errorf("audit file = %v, want %v", who, want)
	}
	if strings.Contains(fmt.Sprint(who), "demo-admin-token") {
		t.Error("the audit file holds a token")
	}
}
