package console

import (
	"context"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sendguard/sendguard/internal/attempts"
	"github.com/sendguard/sendguard/internal/limiter"
	"github.com/sendguard/sendguard/internal/phone"
	"github.com/sendguard/sendguard/internal/store"
)

const (
	adminTok    = "admin-token-ok"
	readOnlyTok = "read-only-token-ok"
)

type fixture struct {
	t      *testing.T
	srv    *httptest.Server
	c      *Console
	st     *store.Embedded
	audit  *Audit
	path   string // the audit file
	recent *Recent
	events *Events
	now    time.Time
	mu     sync.Mutex
}

func (f *fixture) clock() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fixture) advance(d time.Duration) {
	f.mu.Lock()
	f.now = f.now.Add(d)
	f.mu.Unlock()
}

var testInstances = map[string]Instance{
	"inst_a": {ID: "inst_a", Name: "Shop A", Plan: "starter", Limits: limiter.Limits{Daily: 100, Monthly: 2000, Rate: 10, Burst: 20}},
	"inst_b": {ID: "inst_b", Name: "متجر ب", Plan: "starter", Limits: limiter.Limits{Daily: 100, Monthly: 2000, Rate: 10, Burst: 20}},
}

type fixtureOpts struct {
	tls       bool
	noLog     bool // the decision log is off: no Recent
	instances map[string]Instance
	attempts  func(now func() time.Time) *attempts.Limiter // nil: no throttle
}

// newFixture serves a console over a real embedded store and the real
// phone normaliser.
func newFixture(t *testing.T, o fixtureOpts) *fixture {
	t.Helper()
	dir := t.TempDir()
	cal := limiter.Calendar{Loc: time.UTC}
	st, err := store.OpenEmbedded(filepath.Join(dir, "state.db"), store.EmbeddedOptions{Calendar: cal})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ph, err := phone.New(phone.Options{DefaultRegion: "SA"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ph.Close)
	f := &fixture{t: t, st: st, path: filepath.Join(dir, "audit.jsonl"), now: time.Date(2026, 3, 14, 9, 26, 53, 0, time.UTC)}
	if f.audit, err = OpenAudit(f.path, 0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.audit.Close() })
	if !o.noLog {
		f.recent = NewRecent(10)
	}
	f.events = NewEvents(0)
	ins := o.instances
	if ins == nil {
		ins = testInstances
	}
	var guesses *attempts.Limiter
	if o.attempts != nil {
		guesses = o.attempts(f.clock)
	}
	f.c, err = New(Options{Attempts: guesses, Audit: f.audit, Recent: f.recent, Events: f.events, Rates: NewRates(time.Minute), Now: f.clock,
		Counters: func() (map[string]float64, map[string]float64) {
			return map[string]float64{"allowed": 7, "recipient_suppressed": 2}, map[string]float64{"failed": 1}
		},
		Revisions: func() []Revision { return []Revision{{Part: "config", Revision: "abcdef012345", Source: "x.yaml"}} },
	}, Config{AdminToken: adminTok, ReadOnlyToken: readOnlyTok, Instances: ins, State: st, Phones: ph, Calendar: cal})
	if err != nil {
		t.Fatal(err)
	}
	if o.tls {
		f.srv = httptest.NewTLSServer(f.c)
	} else {
		f.srv = httptest.NewServer(f.c)
	}
	t.Cleanup(f.srv.Close)
	return f
}

// client is one browser: its own cookie jar, no redirects followed.
type client struct {
	f    *fixture
	http *http.Client
}

func (f *fixture) client() *client {
	jar, _ := cookiejar.New(nil)
	hc := f.srv.Client()
	c := &http.Client{Transport: hc.Transport, Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return &client{f: f, http: c}
}

type resp struct {
	status int
	header http.Header
	body   string
}

func (c *client) get(path string) resp {
	c.f.t.Helper()
	r, err := c.http.Get(c.f.srv.URL + path)
	if err != nil {
		c.f.t.Fatal(err)
	}
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	return resp{r.StatusCode, r.Header, html.UnescapeString(string(b))}
}

func (c *client) post(path string, form url.Values) resp {
	c.f.t.Helper()
	r, err := c.http.PostForm(c.f.srv.URL+path, form)
	if err != nil {
		c.f.t.Fatal(err)
	}
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	return resp{r.StatusCode, r.Header, html.UnescapeString(string(b))}
}

var csrfRe = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func csrfOf(t *testing.T, body string) string {
	t.Helper()
	m := csrfRe.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no CSRF token in the page:\n%s", body)
	}
	return m[1]
}

// signin signs c in with tok and returns the CSRF token of its pages.
func (c *client) signin(tok string) string {
	t := c.f.t
	t.Helper()
	form := c.get("/console/signin")
	r := c.post("/console/signin", url.Values{"csrf": {csrfOf(t, form.body)}, "token": {tok}})
	if r.status != http.StatusSeeOther || r.header.Get("Location") != "/console/" {
		t.Fatalf("sign-in = %d %s, want 303 to /console/:\n%s", r.status, r.header.Get("Location"), r.body)
	}
	return csrfOf(t, c.get("/console/").body)
}

func TestSignin(t *testing.T) {
	for _, tls := range []bool{false, true} {
		t.Run(fmt.Sprintf("tls=%v", tls), func(t *testing.T) {
			f := newFixture(t, fixtureOpts{tls: tls})
			c := f.client()
			form := c.get("/console/signin")
			r := c.post("/console/signin", url.Values{"csrf": {csrfOf(t, form.body)}, "token": {adminTok}})
			if r.status != http.StatusSeeOther {
				t.Fatalf("sign-in = %d, want 303:\n%s", r.status, r.body)
			}
			var ck *http.Cookie
			for _, k := range (&http.Response{Header: r.header}).Cookies() {
				if k.Name == cookieName {
					ck = k
				}
			}
			if ck == nil {
				t.Fatalf("no %s cookie set: %v", cookieName, r.header["Set-Cookie"])
			}
			if !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Secure != tls || ck.Path != "/console/" {
				t.Errorf("cookie = HttpOnly %v, SameSite %v, Secure %v, Path %q; want true, Strict, %v, /console/", ck.HttpOnly, ck.SameSite, ck.Secure, ck.Path, tls)
			}
			if strings.Contains(ck.Value, adminTok) {
				t.Errorf("the cookie %q holds the token", ck.Value)
			}
			if got := c.get("/console/"); got.status != http.StatusOK || !strings.Contains(got.body, "admin token") {
				t.Errorf("overview after sign-in = %d, want 200 naming the admin token:\n%s", got.status, got.body)
			}
		})
	}
}

func TestSigninRefused(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	tests := []struct {
		name   string
		form   func(csrf string) url.Values
		status int
	}{
		{"wrong token", func(c string) url.Values { return url.Values{"csrf": {c}, "token": {"nope"}} }, http.StatusUnauthorized},
		{"empty token", func(c string) url.Values { return url.Values{"csrf": {c}, "token": {""}} }, http.StatusUnauthorized},
		{"admin token with a suffix", func(c string) url.Values { return url.Values{"csrf": {c}, "token": {adminTok + "x"}} }, http.StatusUnauthorized},
		{"no CSRF token", func(string) url.Values { return url.Values{"token": {adminTok}} }, http.StatusForbidden},
		{"another form's CSRF token", func(string) url.Values { return url.Values{"csrf": {"AAAA"}, "token": {adminTok}} }, http.StatusForbidden},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := f.client()
			csrf := csrfOf(t, c.get("/console/signin").body)
			r := c.post("/console/signin", tc.form(csrf))
			if r.status != tc.status {
				t.Errorf("sign-in = %d, want %d:\n%s", r.status, tc.status, r.body)
			}
			if got := c.get("/console/"); got.status != http.StatusSeeOther {
				t.Errorf("overview after a refused sign-in = %d, want 303 to sign-in", got.status)
			}
		})
	}
	if n := len(f.audit.Entries(nil)); n != 0 {
		t.Errorf("audit holds %d entries after refused sign-ins, want 0", n)
	}
}

func TestNotSignedIn(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	c := f.client()
	for _, p := range []string{"/console/", "/console/recipients?phone=%2B966500000000", "/console/instances/inst_a", "/console/audit"} {
		if r := c.get(p); r.status != http.StatusSeeOther || r.header.Get("Location") != "/console/signin" {
			t.Errorf("GET %s = %d %q, want 303 to /console/signin", p, r.status, r.header.Get("Location"))
		}
	}
	for _, p := range []string{"/console/recipients/block", "/console/instances/inst_a/pause", "/console/signout"} {
		if r := c.post(p, url.Values{"instance": {"inst_a"}, "phone": {"+966500000000"}, "reason": {"x"}}); r.status != http.StatusUnauthorized {
			t.Errorf("POST %s = %d, want 401", p, r.status)
		}
	}
	if p, _ := f.st.Paused(context.Background(), "inst_a"); p {
		t.Error("inst_a paused by an unsigned POST")
	}
}

// TestHeaders: every page sets the CSP and never carries a script.
func TestHeaders(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	c := f.client()
	c.signin(adminTok)
	for _, p := range []string{"/console/signin", "/console/", "/console/recipients?phone=0500000000", "/console/instances/inst_a", "/console/audit", "/console/nope"} {
		r := c.get(p)
		if csp := r.header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || strings.Contains(csp, "unsafe-inline") {
			t.Errorf("GET %s: CSP %q, want default-src 'none' and no unsafe-inline", p, csp)
		}
		if strings.Contains(strings.ToLower(r.body), "<script") || strings.Contains(r.body, " style=") {
			t.Errorf("GET %s: the page has a script or an inline style", p)
		}
	}
}

func TestEmptyStates(t *testing.T) {
	tests := []struct {
		name   string
		opts   fixtureOpts
		path   string
		status int
		want   []string
	}{
		{"overview with no instances", fixtureOpts{instances: map[string]Instance{}}, "/console/", 200, []string{`id="no-instances"`, `id="decisions"`, `aria-current="page">Overview`}},
		{"recipient before a lookup", fixtureOpts{}, "/console/recipients", 200, []string{`id="lookup-hint"`}},
		{"recipient suppressed nowhere", fixtureOpts{}, "/console/recipients?phone=0500000000", 200, []string{"not suppressed", `id="no-events"`, `id="block-inst_a"`}},
		{"recipient with no instances", fixtureOpts{instances: map[string]Instance{}}, "/console/recipients?phone=0500000000", 200, []string{"No instances are configured."}},
		{"instance with no decisions", fixtureOpts{}, "/console/instances/inst_a", 200, []string{`id="no-decisions"`, `id="no-refusals"`, `id="pause"`}},
		{"instance with the decision log off", fixtureOpts{noLog: true}, "/console/instances/inst_a", 200, []string{`class="log-off"`}},
		{"audit with no changes", fixtureOpts{}, "/console/audit", 200, []string{"admin.console_audit_file", "signin"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, tc.opts)
			c := f.client()
			c.signin(adminTok)
			r := c.get(tc.path)
			if r.status != tc.status {
				t.Fatalf("GET %s = %d, want %d:\n%s", tc.path, r.status, tc.status, r.body)
			}
			for _, w := range tc.want {
				if !strings.Contains(r.body, w) {
					t.Errorf("GET %s lacks %q:\n%s", tc.path, w, r.body)
				}
			}
		})
	}
}

func TestErrorStates(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	c := f.client()
	csrf := c.signin(adminTok)
	tests := []struct {
		name   string
		do     func() resp
		status int
		want   string
	}{
		{"unknown instance", func() resp { return c.get("/console/instances/inst_nope") }, 404, "No such instance."},
		{"unknown page", func() resp { return c.get("/console/nope") }, 404, "No such page."},
		{"bad phone", func() resp { return c.get("/console/recipients?phone=12ab") }, 422, "not a valid phone number"},
		{"block on an unknown instance", func() resp {
			return c.post("/console/recipients/block", url.Values{"csrf": {csrf}, "instance": {"inst_nope"}, "phone": {"0500000000"}, "reason": {"x"}})
		}, 404, "No such instance."},
		{"block with a bad phone", func() resp {
			return c.post("/console/recipients/block", url.Values{"csrf": {csrf}, "instance": {"inst_a"}, "phone": {"12ab"}, "reason": {"x"}})
		}, 422, "not a valid phone number"},
		{"block with no reason", func() resp {
			return c.post("/console/recipients/block", url.Values{"csrf": {csrf}, "instance": {"inst_a"}, "phone": {"0500000000"}, "reason": {"  "}})
		}, 422, "A reason is required"},
		{"block with a two-line reason", func() resp {
			return c.post("/console/recipients/block", url.Values{"csrf": {csrf}, "instance": {"inst_a"}, "phone": {"0500000000"}, "reason": {"a\nb"}})
		}, 422, "A reason is required"},
		{"lift of a recipient not suppressed", func() resp {
			return c.post("/console/recipients/lift", url.Values{"csrf": {csrf}, "instance": {"inst_a"}, "phone": {"0500000000"}, "reason": {"x"}})
		}, 404, "not suppressed"},
		{"pause with no reason", func() resp {
			return c.post("/console/instances/inst_a/pause", url.Values{"csrf": {csrf}})
		}, 422, "A reason is required"},
		{"pause of an unknown instance", func() resp {
			return c.post("/console/instances/inst_nope/pause", url.Values{"csrf": {csrf}, "reason": {"x"}})
		}, 404, "No such instance."},
		{"pause with no CSRF token", func() resp {
			return c.post("/console/instances/inst_a/pause", url.Values{"reason": {"x"}})
		}, 403, "CSRF token is missing or wrong"},
		{"block with a CSRF token of another sign-in", func() resp {
			other := f.client()
			return c.post("/console/recipients/block", url.Values{"csrf": {other.signin(adminTok)}, "instance": {"inst_a"}, "phone": {"0500000000"}, "reason": {"x"}})
		}, 403, "CSRF token is missing or wrong"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := len(f.audit.Entries(func(e Entry) bool { return e.Action != "signin" }))
			r := tc.do()
			if r.status != tc.status || !strings.Contains(r.body, tc.want) {
				t.Errorf("%s = %d, want %d with %q:\n%s", tc.name, r.status, tc.status, tc.want, r.body)
			}
			if after := len(f.audit.Entries(func(e Entry) bool { return e.Action != "signin" })); after != before {
				t.Errorf("%s: audit grew from %d to %d entries", tc.name, before, after)
			}
		})
	}
	ctx := context.Background()
	if p, _ := f.st.Paused(ctx, "inst_a"); p {
		t.Error("inst_a paused by a refused POST")
	}
	if _, err := f.st.Suppression(ctx, "inst_a", "+966500000000"); err != store.ErrNotFound {
		t.Errorf("Suppression(inst_a, +966500000000) after refused POSTs: err %v, want not found", err)
	}
}

// TestStoreFailure: a store that fails (a closed embedded store) shows an
// error page, and a change is not reported as made.
func TestStoreFailure(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	c := f.client()
	csrf := c.signin(adminTok)
	f.st.Close()
	for _, tc := range []struct {
		name string
		do   func() resp
	}{
		{"recipient", func() resp { return c.get("/console/recipients?phone=0500000000") }},
		{"instance", func() resp { return c.get("/console/instances/inst_a") }},
		{"lift", func() resp {
			return c.post("/console/recipients/lift", url.Values{"csrf": {csrf}, "instance": {"inst_a"}, "phone": {"0500000000"}, "reason": {"x"}})
		}},
		{"pause", func() resp {
			return c.post("/console/instances/inst_a/pause", url.Values{"csrf": {csrf}, "reason": {"x"}})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if r := tc.do(); r.status != http.StatusServiceUnavailable || !strings.Contains(r.body, "see the logs") {
				t.Errorf("%s with a failed store = %d, want 503 pointing at the logs:\n%s", tc.name, r.status, r.body)
			}
		})
	}
	if r := c.get("/console/"); r.status != http.StatusOK || !strings.Contains(r.body, "unknown") {
		t.Errorf("overview with a failed store = %d, want 200 with unknown counts:\n%s", r.status, r.body)
	}
	if got := f.audit.Entries(func(e Entry) bool { return e.Action == "pause_failed" }); len(got) != 1 {
		t.Errorf("audit has %d pause_failed entries, want 1: %+v", len(got), f.audit.Entries(nil))
	}
}

// TestAuditFailure: a change that cannot be audited is not made.
func TestAuditFailure(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	c := f.client()
	csrf := c.signin(adminTok)
	ro, err := os.Open(f.path) // read-only: every write fails
	if err != nil {
		t.Fatal(err)
	}
	f.audit.mu.Lock()
	f.audit.f.Close()
	f.audit.f = ro
	f.audit.mu.Unlock()
	r := c.post("/console/instances/inst_a/pause", url.Values{"csrf": {csrf}, "reason": {"fraud review"}})
	if r.status != http.StatusServiceUnavailable || !strings.Contains(r.body, "audit trail could not be written") {
		t.Errorf("pause with a failing audit = %d, want 503 naming the audit:\n%s", r.status, r.body)
	}
	if p, _ := f.st.Paused(context.Background(), "inst_a"); p {
		t.Error("inst_a was paused although the change could not be audited")
	}
}

func TestReadOnly(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	ctx := context.Background()
	if err := f.st.PutSuppression(ctx, store.Suppression{Instance: "inst_a", Phone: "+966500000000", Reason: "recipient_requested_stop", Source: "inbound", CreatedAt: f.now}); err != nil {
		t.Fatal(err)
	}
	c := f.client()
	csrf := c.signin(readOnlyTok)
	for _, p := range []string{"/console/", "/console/recipients?phone=0500000000", "/console/instances/inst_a", "/console/audit"} {
		r := c.get(p)
		if r.status != http.StatusOK {
			t.Errorf("GET %s as read-only = %d, want 200", p, r.status)
		}
		if n := strings.Count(r.body, `method="post"`); n != 1 { // sign-out only
			t.Errorf("GET %s as read-only shows %d forms that post, want 1 (sign-out)", p, n)
		}
	}
	for _, tc := range []struct{ path, instance string }{
		{"/console/recipients/lift", "inst_a"},
		{"/console/recipients/block", "inst_b"},
		{"/console/instances/inst_a/pause", ""},
	} {
		r := c.post(tc.path, url.Values{"csrf": {csrf}, "instance": {tc.instance}, "phone": {"0500000000"}, "reason": {"forged"}})
		if r.status != http.StatusForbidden || !strings.Contains(r.body, "read-only") {
			t.Errorf("POST %s as read-only = %d, want 403 read-only:\n%s", tc.path, r.status, r.body)
		}
	}
	if _, err := f.st.Suppression(ctx, "inst_a", "+966500000000"); err != nil {
		t.Errorf("the suppression of inst_a is gone after read-only POSTs: %v", err)
	}
	if _, err := f.st.Suppression(ctx, "inst_b", "+966500000000"); err != store.ErrNotFound {
		t.Errorf("inst_b suppressed by a read-only POST: %v", err)
	}
	if p, _ := f.st.Paused(ctx, "inst_a"); p {
		t.Error("inst_a paused by a read-only POST")
	}
	// Signing out is allowed.
	if r := c.post("/console/signout", url.Values{"csrf": {csrf}}); r.status != http.StatusSeeOther {
		t.Errorf("sign-out as read-only = %d, want 303", r.status)
	}
	if r := c.get("/console/"); r.status != http.StatusSeeOther {
		t.Errorf("overview after sign-out = %d, want 303 to sign-in", r.status)
	}
}

// TestChanges: block, lift, pause, resume through the console change the
// store, and each is in the audit trail with who, what and why, in the
// file too.
func TestChanges(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	ctx := context.Background()
	c := f.client()
	csrf := c.signin(adminTok)
	// Spelled three ways, one recipient.
	r := c.post("/console/recipients/block", url.Values{"csrf": {csrf}, "instance": {"inst_b"}, "phone": {"٠٥٠ ١٢٣ ٤٥٦٧"}, "reason": {"شكوى العميل — customer complaint"}})
	if r.status != http.StatusSeeOther {
		t.Fatalf("block = %d:\n%s", r.status, r.body)
	}
	sup, err := f.st.Suppression(ctx, "inst_b", "+966501234567")
	if err != nil || sup.Reason != "manual_block" || sup.Source != "console" {
		t.Fatalf("Suppression(inst_b) after block = %+v, %v; want manual_block from console", sup, err)
	}
	page := c.get("/console/recipients?phone=00966501234567")
	if !strings.Contains(page.body, "manual_block") || !strings.Contains(page.body, `id="lift-inst_b"`) || !strings.Contains(page.body, "+966•••••••67") {
		t.Errorf("recipient page after block lacks manual_block, the lift button or the masked number:\n%s", page.body)
	}
	if full := c.get("/console/recipients?phone=%2B966501234567&full=1"); !strings.Contains(full.body, `<span id="e164">+966501234567</span>`) {
		t.Errorf("recipient page with full=1 does not show the number:\n%s", full.body)
	}
	if r := c.post("/console/recipients/lift", url.Values{"csrf": {csrf}, "instance": {"inst_b"}, "phone": {"+966 50 123 4567"}, "reason": {"recipient asked by phone"}}); r.status != http.StatusSeeOther {
		t.Fatalf("lift = %d:\n%s", r.status, r.body)
	}
	if _, err := f.st.Suppression(ctx, "inst_b", "+966501234567"); err != store.ErrNotFound {
		t.Errorf("Suppression(inst_b) after lift: %v, want not found", err)
	}
	if r := c.post("/console/instances/inst_a/pause", url.Values{"csrf": {csrf}, "reason": {"Müşteri şikâyeti"}}); r.status != http.StatusSeeOther {
		t.Fatalf("pause = %d:\n%s", r.status, r.body)
	}
	if p, _ := f.st.Paused(ctx, "inst_a"); !p {
		t.Fatal("inst_a not paused after pause")
	}
	inst := c.get("/console/instances/inst_a?done=paused")
	if !strings.Contains(inst.body, `id="resume"`) || !strings.Contains(inst.body, "The instance was paused.") {
		t.Errorf("instance page after pause lacks the resume button or the notice:\n%s", inst.body)
	}
	if r := c.post("/console/instances/inst_a/resume", url.Values{"csrf": {csrf}, "reason": {"reviewed"}}); r.status != http.StatusSeeOther {
		t.Fatalf("resume = %d:\n%s", r.status, r.body)
	}
	if p, _ := f.st.Paused(ctx, "inst_a"); p {
		t.Fatal("inst_a paused after resume")
	}
	want := []Entry{
		{Action: "resume", Instance: "inst_a", Reason: "reviewed"},
		{Action: "pause", Instance: "inst_a", Reason: "Müşteri şikâyeti"},
		{Action: "lift", Instance: "inst_b", Phone: "+966501234567", Reason: "recipient asked by phone"},
		{Action: "block", Instance: "inst_b", Phone: "+966501234567", Reason: "شكوى العميل — customer complaint"},
		{Action: "signin"},
	}
	check := func(where string, got []Entry) {
		t.Helper()
		if len(got) != len(want) {
			t.Fatalf("%s: %d entries, want %d: %+v", where, len(got), len(want), got)
		}
		for i, w := range want {
			g := got[i]
			if g.Action != w.Action || g.Instance != w.Instance || g.Phone != w.Phone || g.Reason != w.Reason ||
				!strings.HasPrefix(g.Who, "admin token "+fingerprint(adminTok)+", sign-in ") || !g.Time.Equal(f.now) {
				t.Errorf("%s entry %d = %+v, want %+v by the admin token at %v", where, i, g, w, f.now)
			}
		}
	}
	check("audit", f.audit.Entries(nil))
	// Durable: a new Audit reads the same from the file.
	again, err := OpenAudit(f.path, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	check("audit file", again.Entries(nil))
	if page := c.get("/console/audit"); !strings.Contains(page.body, "Müşteri şikâyeti") || strings.Contains(page.body, "+966501234567") {
		t.Errorf("audit page lacks the reason or shows the full number:\n%s", page.body)
	}
}

// TestSessionEnds: a sign-in ends when it expires and when its token is
// rotated.
func TestSessionEnds(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	c := f.client()
	c.signin(adminTok)
	f.advance(11 * time.Hour)
	if r := c.get("/console/"); r.status != http.StatusOK {
		t.Fatalf("overview 11h after sign-in = %d, want 200", r.status)
	}
	f.advance(time.Hour)
	if r := c.get("/console/"); r.status != http.StatusSeeOther {
		t.Errorf("overview 12h after sign-in = %d, want 303 to sign-in", r.status)
	}
	c2 := f.client()
	c2.signin(adminTok)
	cfg := *f.c.cfg.Load()
	cfg.AdminToken = "rotated-admin-token"
	f.c.Set(cfg)
	if r := c2.get("/console/"); r.status != http.StatusSeeOther {
		t.Errorf("overview after the admin token was rotated = %d, want 303 to sign-in", r.status)
	}
}

// TestInstanceDecisions: the last decisions and the top refusals of 24h
// come from Recent; phones are masked.
func TestInstanceDecisions(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	c := f.client()
	c.signin(adminTok)
	old := f.now.Add(-25 * time.Hour)
	f.recent.Add("inst_a", Decision{Time: old, ID: "dec_old", Code: "daily_quota_exceeded", Status: 429})
	for i := range 3 {
		f.recent.Add("inst_a", Decision{Time: f.now.Add(-time.Duration(i) * time.Hour), ID: fmt.Sprintf("dec_s%d", i), Code: "recipient_suppressed", Status: 403, Phone: "+966500000000"})
	}
	f.recent.Add("inst_a", Decision{Time: f.now, ID: "dec_ok", Allowed: true, Status: 200, RiskScore: 12, Purpose: "transactional", Phone: "+966500000000"})
	r := c.get("/console/instances/inst_a")
	for _, w := range []string{"dec_ok", "dec_s2", "<code>recipient_suppressed</code></th><td>3</td>", "+966•••••••00"} {
		if !strings.Contains(r.body, w) {
			t.Errorf("instance page lacks %q:\n%s", w, r.body)
		}
	}
	if strings.Contains(r.body, "<code>daily_quota_exceeded</code></th>") || strings.Contains(r.body, "+966500000000<") {
		t.Errorf("instance page counts a refusal older than 24h or shows a full number:\n%s", r.body)
	}
}

// TestConcurrentConsole: sign-ins, lookups in many spellings and blocks of
// distinct recipients from many goroutines; every block is in the store
// and in the audit trail once.
func TestConcurrentConsole(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	spellings := []string{"+966 50 %03d 0000", "00966-50-%03d-0000", "050%03d0000"}
	var wg sync.WaitGroup
	const n = 16
	for g := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := f.client()
			csrf := c.signin(adminTok)
			phone := fmt.Sprintf(spellings[g%len(spellings)], g)
			reasons := []string{"طلب العميل", "ग्राहक का अनुरोध", "müşteri isteği", "🚫 spam", "e\u0301te\u0301"}
			if r := c.post("/console/recipients/block", url.Values{"csrf": {csrf}, "instance": {"inst_a"}, "phone": {phone}, "reason": {reasons[g%len(reasons)]}}); r.status != http.StatusSeeOther {
				t.Errorf("block %s = %d", phone, r.status)
			}
			if r := c.get("/console/recipients?phone=" + url.QueryEscape(phone)); !strings.Contains(r.body, "manual_block") {
				t.Errorf("lookup %s after block lacks manual_block", phone)
			}
		}()
	}
	wg.Wait()
	sups, err := f.st.Suppressions(context.Background(), "inst_a")
	if err != nil || len(sups) != n {
		t.Errorf("Suppressions(inst_a) = %d, %v; want %d", len(sups), err, n)
	}
	if got := len(f.audit.Entries(func(e Entry) bool { return e.Action == "block" })); got != n {
		t.Errorf("audit has %d blocks, want %d", got, n)
	}
}

type panicCount struct{ n atomic.Int64 }

func (p *panicCount) Inc() { p.n.Add(1) }

// TestPanicRecovered: a panic in a page answers 500, is counted, and the
// console goes on serving.
func TestPanicRecovered(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	var panics panicCount
	f.c.opts.Panics = &panics
	var boom atomic.Bool
	f.c.opts.Counters = func() (map[string]float64, map[string]float64) {
		if boom.Load() {
			panic("counters exploded")
		}
		return nil, nil
	}
	c := f.client()
	c.signin(adminTok)
	boom.Store(true)
	if r := c.get("/console/"); r.status != http.StatusInternalServerError || !strings.Contains(r.body, "see the logs") {
		t.Errorf("overview that panics = %d %q, want 500 pointing at the logs", r.status, r.body)
	}
	if panics.n.Load() != 1 {
		t.Errorf("panics counted = %d, want 1", panics.n.Load())
	}
	if r := c.get("/console/audit"); r.status != http.StatusOK {
		t.Errorf("audit after a panic = %d, want 200", r.status)
	}
}

func TestSigninThrottled(t *testing.T) {
	f := newFixture(t, fixtureOpts{attempts: func(now func() time.Time) *attempts.Limiter {
		return attempts.New(attempts.Options{Burst: 2, Interval: 6 * time.Second, Now: now})
	}})
	try := func(c *client, tok string) resp {
		return c.post("/console/signin", url.Values{"csrf": {csrfOf(t, c.get("/console/signin").body)}, "token": {tok}})
	}
	c := f.client()
	for _, tok := range []string{"nope", readOnlyTok + "x"} {
		if r := try(c, tok); r.status != http.StatusUnauthorized {
			t.Fatalf("sign-in with %q = %d, want 401", tok, r.status)
		}
	}
	// A fresh browser from the same address changes nothing; the right
	// token is refused too while the address is throttled.
	for _, tok := range []string{"guess3", adminTok} {
		r := try(f.client(), tok)
		if r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") != "6" || !strings.Contains(r.body, "Too many wrong tokens from this address: try again in 6 seconds.") {
			t.Fatalf("sign-in with %q after 2 wrong tokens = %d Retry-After %q, want 429 and 6:\n%s", tok, r.status, r.header.Get("Retry-After"), r.body)
		}
	}
	if got := c.get("/console/"); got.status != http.StatusSeeOther {
		t.Fatalf("overview after throttled sign-ins = %d, want 303 to sign-in", got.status)
	}
	if n := len(f.audit.Entries(nil)); n != 0 {
		t.Fatalf("audit holds %d entries after refused sign-ins, want 0", n)
	}
	f.advance(6 * time.Second)
	if r := try(c, adminTok); r.status != http.StatusSeeOther || r.header.Get("Location") != "/console/" {
		t.Fatalf("sign-in with the admin token 6s later = %d %q, want 303 to /console/", r.status, r.header.Get("Location"))
	}
}
