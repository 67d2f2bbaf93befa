package envoy_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/sendguard/sendguard/envoy/envoytest"
)

const (
	consoleReadOnly = "e2e-console-read-only"
	consoleAdmin    = "e2e-admin" // e2eConfig's admin token
)

// TestConsoleInBrowser drives the operator console in a real headless
// Chromium against a real sendguard behind a real Envoy: sign-in, a
// recipient looked up by another spelling of its number and lifted
// (confirmed through the admin API), an instance paused and resumed with a
// send through Envoy answering 423 and then 200, a form posted without its
// CSRF token refused, and a read-only sign-in that sees no buttons and
// whose forged POST is refused. One browser serves every step; a
// screenshot of each page is written to the artifact directory.
func TestConsoleInBrowser(t *testing.T) {
	chromium := envoytest.Chromium(t)
	t.Setenv("E2E_CONSOLE_TOKEN", consoleReadOnly)
	auditDir := t.TempDir()
	s := startStackWith(t, fmt.Sprintf("decision_log: {sink: file, phone: omit, file: {path: %s}}\n", filepath.Join(auditDir, "decisions.jsonl")),
		func(cfg string) string {
			return strings.Replace(cfg, "admin: {token: e2e-admin}",
				fmt.Sprintf("admin: {token: e2e-admin, console_token_env: E2E_CONSOLE_TOKEN, console_audit_file: %s}", filepath.Join(auditDir, "audit.jsonl")), 1)
		})
	shots := envoytest.ArtifactDir(t, "console")
	t.Logf("console screenshots: %s", shots)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.WindowSize(1280, 1000))...)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(actx)
	defer cancelBrowser()

	base := fmt.Sprintf("http://127.0.0.1:%d", s.admin)
	do := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(bctx, steps...); err != nil {
			loc, _ := chromedp.Run(bctx, chromedp.Location())
			t.Fatalf("%s: %v (page %s)", what, err, loc)
		}
	}
	css := func(sel string) chromedp.CSS { return chromedp.CSS(sel) }
	wait := func(sel string) chromedp.Action[chromedp.Void] { return chromedp.WaitVisible(css(sel)) }
	keys := func(sel, v string) chromedp.Action[chromedp.Void] { return chromedp.SendKeys(css(sel), v) }
	// submit clicks a button that submits a form, and waits for the page
	// the answer loads.
	submit := func(sel string) chromedp.Action[chromedp.Void] {
		return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := chromedp.WaitEvent(page.LoadEventFired, nil, chromedp.Click(css(sel)))(ctx, tg)
			return err
		})
	}
	nav := func(path string) chromedp.Action[chromedp.Void] { return chromedp.Navigate(base + path) }
	js := func(expr string) chromedp.Action[chromedp.Void] { return chromedp.Evaluate[chromedp.Void](expr) }
	shot := func(name string) chromedp.Action[chromedp.Void] {
		return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			png, err := chromedp.FullScreenshot(100)(ctx, tg)
			if err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(shots, name+".png"), png, 0o644)
		})
	}
	text := func(sel string) string {
		t.Helper()
		v, err := chromedp.Run(bctx, chromedp.Text(css(sel)))
		if err != nil {
			t.Fatalf("read %s: %v", sel, err)
		}
		return strings.TrimSpace(v)
	}
	count := func(sel string) int {
		t.Helper()
		n, err := chromedp.Run(bctx, chromedp.Evaluate[int](fmt.Sprintf("document.querySelectorAll(%q).length", sel)))
		if err != nil {
			t.Fatalf("count %s: %v", sel, err)
		}
		return n
	}
	admin := func(method, path string) (int, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, nil)
		req.Header.Set("Authorization", "Bearer "+consoleAdmin)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		return resp.StatusCode, m
	}
	paused := func(inst string) bool {
		t.Helper()
		code, m := admin("GET", "/v1/instances/"+inst+"/usage")
		if code != 200 {
			t.Fatalf("usage of %s = %d %v", inst, code, m)
		}
		return m["paused"] == true
	}

	// Sign in: a page asked for before sign-in leads to the form.
	do("sign-in page", nav("/console/"), wait("#token"), shot("01-signin"))
	do("sign in", keys("#token", consoleAdmin), submit("#signin"), wait("#instances"), shot("02-overview"))
	if got := text("#signed-in-as"); !strings.Contains(got, "admin") {
		t.Errorf("signed in as %q, want the admin token", got)
	}

	// The seeded suppression of +966500000000 (recipient_requested_stop),
	// looked up as the recipient might write it.
	do("look up", nav("/console/recipients"), wait("#phone"), keys("#phone", "00966 50 000 0000"), submit("#lookup"),
		wait("#sup-inst_12345"), shot("03-recipient-suppressed"))
	if got := text("#sup-inst_12345 td.state"); got != "suppressed" {
		t.Fatalf("inst_12345 for 00966 50 000 0000: %q, want suppressed", got)
	}
	if got := text("#sup-inst_12345"); !strings.Contains(got, "recipient_requested_stop") {
		t.Errorf("inst_12345 row %q lacks the reason recipient_requested_stop", got)
	}
	if got := text("#e164"); strings.Contains(got, "500000000") {
		t.Errorf("the number is shown in full (%q); want it masked by default", got)
	}
	if code, _ := admin("GET", "/v1/instances/inst_12345/suppressions/+966500000000"); code != 200 {
		t.Fatalf("admin API before the lift: %d, want 200", code)
	}
	do("lift", keys("#reason-inst_12345", "recipient called support: wants order updates"), submit("#lift-inst_12345"),
		wait("p.notice"), shot("04-recipient-lifted"))
	if got := text("#sup-inst_12345 td.state"); got != "not suppressed" {
		t.Errorf("inst_12345 after the lift: %q, want not suppressed", got)
	}
	if code, m := admin("GET", "/v1/instances/inst_12345/suppressions/+966500000000"); code != 404 {
		t.Errorf("admin API after the lift: %d %v, want 404", code, m)
	}

	// Pause and resume, with a send through Envoy after each.
	body := sendBody("inst_12345", recipient, okMessage, "transactional")
	if r := s.send("key-demo", body); r.status != 200 {
		t.Fatalf("send before pause = %d %s", r.status, r.body)
	}
	do("pause", nav("/console/instances/inst_12345"), wait("#pause"), keys("#pause-reason", "customer reported spam"), submit("#pause"),
		wait("#resume"))
	if !paused("inst_12345") {
		t.Fatal("admin API: inst_12345 not paused after the console paused it")
	}
	before := len(s.rec.Requests())
	if r := s.send("key-demo", body); r.status != 423 || !strings.Contains(string(r.body), "instance_paused_for_review") {
		t.Errorf("send while paused = %d %s, want 423 instance_paused_for_review", r.status, r.body)
	}
	if n := len(s.rec.Requests()); n != before {
		t.Errorf("the sender saw %d requests while paused, want none", n-before)
	}
	// The decision log writes within a second; the page lists its decisions.
	s.waitFor("the refusal in the console", func() bool {
		if err := chromedp.Do(bctx, nav("/console/instances/inst_12345"), wait("#resume")); err != nil {
			return false
		}
		return count("#refusals code") > 0
	})
	do("paused page", shot("05-instance-paused"))
	if got := text("#refusals"); !strings.Contains(got, "instance_paused_for_review") {
		t.Errorf("top refusals %q lack instance_paused_for_review", got)
	}
	do("resume", keys("#pause-reason", "reviewed: false alarm"), submit("#resume"), wait("#pause"), shot("06-instance-resumed"))
	if paused("inst_12345") {
		t.Fatal("admin API: inst_12345 still paused after the console resumed it")
	}
	if r := s.send("key-demo", body); r.status != 200 {
		t.Errorf("send after resume = %d %s, want 200", r.status, r.body)
	}

	// A form posted without its CSRF token changes nothing.
	do("no CSRF", nav("/console/instances/inst_12345"), wait("#pause"),
		js(`document.querySelector('main form input[name="csrf"]').remove()`),
		keys("#pause-reason", "no csrf"), submit("#pause"), wait("#error-message"), shot("07-no-csrf"))
	if got := text("#error-message"); !strings.Contains(got, "CSRF") {
		t.Errorf("post without a CSRF token: %q, want the CSRF refusal", got)
	}
	if paused("inst_12345") {
		t.Error("inst_12345 paused by a post without a CSRF token")
	}

	do("audit", nav("/console/audit"), wait("#audit"), shot("08-audit"))
	audit := text("#audit")
	for _, w := range []string{"lift", "pause", "resume", "customer reported spam", "reviewed: false alarm", "recipient called support"} {
		if !strings.Contains(audit, w) {
			t.Errorf("audit trail lacks %q:\n%s", w, audit)
		}
	}
	if strings.Contains(audit, "+966500000000") {
		t.Errorf("audit trail shows the full number:\n%s", audit)
	}

	// Read-only: every page, no buttons; a forged POST is refused.
	do("sign out", submit("#signout"), wait("#token"))
	do("read-only sign-in", keys("#token", consoleReadOnly), submit("#signin"), wait("#instances"))
	if got := text("#signed-in-as"); !strings.Contains(got, "read-only") {
		t.Errorf("signed in as %q, want the read-only token", got)
	}
	do("read-only recipient", nav("/console/recipients?phone=%2B966500000000"), wait("#sup-inst_12345"), shot("09-read-only-recipient"))
	if n := count(`form[method="post"]`); n != 1 {
		t.Errorf("read-only recipient page has %d forms that post, want 1 (sign-out)", n)
	}
	do("read-only instance", nav("/console/instances/inst_12345"), wait("#usage-h"), shot("10-read-only-instance"))
	if n := count(`form[method="post"]`) + count("#pause") + count("#resume"); n != 1 {
		t.Errorf("read-only instance page has %d posting forms and pause buttons, want 1 (sign-out)", n)
	}
	forge := `(() => {
		const f = document.createElement("form");
		f.method = "post";
		f.action = "/console/instances/inst_12345/pause";
		for (const [k, v] of [["csrf", document.querySelector('input[name="csrf"]').value], ["reason", "forged"]]) {
			const i = document.createElement("input");
			i.type = "hidden"; i.name = k; i.value = v;
			f.appendChild(i);
		}
		document.body.appendChild(f);
		f.submit();
	})()`
	do("forged POST", chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := chromedp.WaitEvent(page.LoadEventFired, nil, js(forge))(ctx, tg)
		return err
	}), wait("#error-message"), shot("11-read-only-forged-post"))
	if got := text("#error-message"); !strings.Contains(got, "read-only") {
		t.Errorf("forged POST as read-only: %q, want the read-only refusal", got)
	}
	if paused("inst_12345") {
		t.Error("inst_12345 paused by a read-only sign-in's forged POST")
	}
}
