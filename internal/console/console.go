package console

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/sendguard/sendguard/internal/admin"
	"github.com/sendguard/sendguard/internal/attempts"
	"github.com/sendguard/sendguard/internal/limiter"
	"github.com/sendguard/sendguard/internal/recovery"
	"github.com/sendguard/sendguard/internal/store"
)

//go:embed templates/*.html static/*
var files embed.FS

// Instance is what the console knows of a configured instance: what the
// admin API knows of it.
type Instance = admin.Instance

type state interface {
	Paused(ctx context.Context, instance string) (bool, error)
	SetPaused(ctx context.Context, instance string, paused bool) error
	Suppression(ctx context.Context, instance, e164 string) (store.Suppression, error)
	PutSuppression(ctx context.Context, s store.Suppression) error
	DeleteSuppression(ctx context.Context, instance, e164 string) error
	Usage(ctx context.Context, instance string, l limiter.Limits, now time.Time) (limiter.Usage, error)
	Pending(ctx context.Context) (int, error)
}

type phones interface {
	E164(raw string) (string, bool)
}

// Revision is one part in force, for the overview.
type Revision struct {
	Part, Revision, Source string
	LoadedAt               time.Time
}

// Config is what the console serves from that a reload may change: the
// tokens, the instances and the state. Set replaces it whole.
type Config struct {
	// AdminToken signs in with every right; ReadOnlyToken signs in to
	// read. Empty: that kind of sign-in is refused.
	AdminToken, ReadOnlyToken string
	Instances                 map[string]Instance
	State                     state
	Phones                    phones
	Calendar                  limiter.Calendar
}

// Options are what stays for the life of the console. Nil funcs and
// parts are shown as not available.
type Options struct {
	Audit  *Audit  // required
	Recent *Recent // nil: the decision log is off
	Events *Events // nil: none kept
	Rates  *Rates  // nil: no per-second rates
	// Counters returns the totals of sendguard_decisions_total by result
	// and the totals of the events counters (delivered, failed, dropped),
	// read from the registry /metrics serves.
	Counters  func() (decisions, events map[string]float64)
	Revisions func() []Revision
	Now       func() time.Time
	Log       *slog.Logger
	// Panics counts handler panics recovered; nil: not counted.
	Panics interface{ Inc() }
	// SessionTTL is how long a sign-in lasts; default 12 hours.
	SessionTTL time.Duration
	// Attempts throttles wrong tokens by client address (the admin API's
	// limiter, so one budget covers both); nil: not throttled.
	Attempts *attempts.Limiter
}

// Console serves the console. Safe for concurrent use.
type Console struct {
	opts  Options
	cfg   atomic.Pointer[Config]
	key   []byte // signs cookies and CSRF tokens; drawn at New
	pages map[string]*template.Template
	mux   *http.ServeMux
	h     http.Handler // mux, with panics recovered
}

// New returns a console serving cfg until Set replaces it.
func New(opts Options, cfg Config) (*Console, error) {
	if opts.Audit == nil {
		return nil, fmt.Errorf("console: an audit trail is required")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.SessionTTL <= 0 {
		opts.SessionTTL = 12 * time.Hour
	}
	c := &Console{opts: opts, key: make([]byte, 32), pages: map[string]*template.Template{}}
	if _, err := rand.Read(c.key); err != nil {
		return nil, fmt.Errorf("console key: %w", err)
	}
	for _, p := range []string{"signin", "overview", "recipient", "instance", "audit", "error"} {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(files, "templates/layout.html", "templates/"+p+".html")
		if err != nil {
			return nil, fmt.Errorf("console template %s: %w", p, err)
		}
		c.pages[p] = t
	}
	c.Set(cfg)
	static, _ := fs.Sub(files, "static")
	mux := http.NewServeMux()
	mux.Handle("GET /console/static/", http.StripPrefix("/console/static/", http.FileServerFS(static)))
	mux.HandleFunc("GET /console/signin", c.signinPage)
	mux.HandleFunc("POST /console/signin", c.signin)
	mux.HandleFunc("POST /console/signout", c.change(c.signout))
	mux.HandleFunc("GET /console/{$}", c.read(c.overview))
	mux.HandleFunc("GET /console/recipients", c.read(c.recipient))
	mux.HandleFunc("POST /console/recipients/block", c.change(c.block))
	mux.HandleFunc("POST /console/recipients/lift", c.change(c.lift))
	mux.HandleFunc("GET /console/instances/{instance}", c.read(c.instance))
	mux.HandleFunc("POST /console/instances/{instance}/pause", c.change(c.pause(true)))
	mux.HandleFunc("POST /console/instances/{instance}/resume", c.change(c.pause(false)))
	mux.HandleFunc("GET /console/audit", c.read(c.audit))
	mux.HandleFunc("/console/", func(w http.ResponseWriter, r *http.Request) {
		c.fail(w, r, nil, http.StatusNotFound, "No such page.", nil)
	})
	c.mux = mux
	// A panic answers 500 when nothing was written yet; half a page must
	// not pass for a whole one, so a started page is cut.
	c.h = recovery.Handler(mux, recovery.Options{Log: c.opts.Log, What: "console handler", Panics: panicsOf{c},
		Fail: func(w http.ResponseWriter) {
			http.Error(w, "The page failed; see the logs.", http.StatusInternalServerError)
		}})
	return c, nil
}

// Set replaces what a reload changes. Requests in flight finish with the
// Config they started with.
func (c *Console) Set(cfg Config) { c.cfg.Store(&cfg) }

// ServeHTTP serves /console/.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	c.h.ServeHTTP(w, r)
}

// panicsOf counts into the console's Options.Panics as it is when the
// panic happens.
type panicsOf struct{ c *Console }

func (p panicsOf) Inc() {
	if p.c.opts.Panics != nil {
		p.c.opts.Panics.Inc()
	}
}

// Roles.
const (
	roleAdmin    = "admin"
	roleReadOnly = "read-only"
)

// session is a signed-in user, from the cookie.
type session struct {
	role   string
	id     string // the sign-in's id, for the audit trail
	fp     string // the token's fingerprint
	cookie string // the cookie's value, which CSRF tokens are bound to
	csrf   string
}

func (s *session) canChange() bool { return s != nil && s.role == roleAdmin }

// who names the session in the audit trail.
func (s *session) who() string {
	kind := "admin token"
	if s.role == roleReadOnly {
		kind = "read-only token"
	}
	return fmt.Sprintf("%s %s, sign-in %s", kind, s.fp, s.id)
}

const (
	cookieName = "sendguard_console"
	preName    = "sendguard_console_pre" // binds the sign-in form's CSRF token
)

// fingerprint names a token without revealing it: 8 hex digits of its
// SHA-256.
func fingerprint(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(sum[:4])
}

func (c *Console) mac(parts ...string) string {
	m := hmac.New(sha256.New, c.key)
	for _, p := range parts {
		m.Write([]byte(p))
		m.Write([]byte{0})
	}
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// csrfFor is the CSRF token of a form shown with cookie value v.
func (c *Console) csrfFor(v string) string { return c.mac("csrf", v) }

func randomID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// newCookie signs role, fingerprint, expiry and a fresh sign-in id.
func (c *Console) newCookie(role, fp string, exp time.Time) (value, id string) {
	id = randomID()
	payload := strings.Join([]string{role, fp, strconv.FormatInt(exp.Unix(), 10), id}, ".")
	return payload + "." + c.mac("session", payload), id
}

// session reads and checks the cookie: signed by this process, not
// expired, and its token still the configured one for its role.
func (c *Console) session(r *http.Request, cfg *Config) *session {
	ck, err := r.Cookie(cookieName)
	if err != nil {
		return nil
	}
	parts := strings.Split(ck.Value, ".")
	if len(parts) != 5 {
		return nil
	}
	payload := strings.Join(parts[:4], ".")
	if subtle.ConstantTimeCompare([]byte(parts[4]), []byte(c.mac("session", payload))) != 1 {
		return nil
	}
	exp, err := strconv.ParseInt(parts[2], 10, 64)
	if err != nil || c.opts.Now().Unix() >= exp {
		return nil
	}
	var tok string
	switch parts[0] {
	case roleAdmin:
		tok = cfg.AdminToken
	case roleReadOnly:
		tok = cfg.ReadOnlyToken
	default:
		return nil
	}
	if tok == "" || fingerprint(tok) != parts[1] {
		return nil // the token was rotated or removed: sign in again
	}
	return &session{role: parts[0], fp: parts[1], id: parts[3], cookie: ck.Value, csrf: c.csrfFor(ck.Value)}
}

func (c *Console) setCookie(w http.ResponseWriter, r *http.Request, name, value, path string, maxAge int) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: path, MaxAge: maxAge,
		HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
}

type handler func(w http.ResponseWriter, r *http.Request, s *session, cfg *Config)

// read serves a page to any signed-in user, and sends others to sign in.
func (c *Console) read(h handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		cfg := c.cfg.Load()
		s := c.session(r, cfg)
		if s == nil {
			http.Redirect(w, r, "/console/signin", http.StatusSeeOther)
			return
		}
		h(w, r, s, cfg)
	}
}

// change serves a state change: a signed-in admin, with the CSRF token of
// their cookie. Anything else is refused and changes nothing.
func (c *Console) change(h handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		cfg := c.cfg.Load()
		r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
		s := c.session(r, cfg)
		if s == nil {
			c.fail(w, r, nil, http.StatusUnauthorized, "Sign in first.", nil)
			return
		}
		if err := r.ParseForm(); err != nil {
			c.fail(w, r, s, http.StatusBadRequest, "The form could not be read.", nil)
			return
		}
		if subtle.ConstantTimeCompare([]byte(r.PostForm.Get("csrf")), []byte(s.csrf)) != 1 {
			c.fail(w, r, s, http.StatusForbidden, "The form's CSRF token is missing or wrong: reload the page and try again. Nothing was changed.", nil)
			return
		}
		// Signing out is the one change a read-only sign-in may make.
		if !s.canChange() && r.URL.Path != "/console/signout" {
			c.fail(w, r, s, http.StatusForbidden, "This sign-in is read-only. Nothing was changed.", nil)
			return
		}
		h(w, r, s, cfg)
	}
}

// page is what every template gets.
type page struct {
	Title   string
	Session *session
	CSRF    string
	Full    bool   // phones unmasked
	Notice  string // after a change
	Error   string // what was wrong with the request
	Data    any
}

func (p page) CanChange() bool { return p.Session.canChange() }

func (c *Console) render(w http.ResponseWriter, r *http.Request, status int, name string, p page) {
	if p.Session != nil {
		p.CSRF = p.Session.csrf
	}
	p.Full = p.Full || r.URL.Query().Get("full") == "1"
	var b strings.Builder
	if err := c.pages[name].Execute(&b, p); err != nil {
		c.opts.Log.ErrorContext(r.Context(), "console page failed", "page", name, "err", err)
		http.Error(w, "The page could not be drawn; see the logs.", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(b.String()))
}

// fail answers an error page; err, when set, is logged (never shown).
func (c *Console) fail(w http.ResponseWriter, r *http.Request, s *session, status int, msg string, err error) {
	if err != nil {
		c.opts.Log.ErrorContext(r.Context(), "console call failed", "path", r.URL.Path, "err", err)
	}
	c.render(w, r, status, "error", page{Title: http.StatusText(status), Session: s, Data: msg})
}

// signinPage shows the sign-in form, with a CSRF token bound to a fresh
// pre-sign-in cookie.
func (c *Console) signinPage(w http.ResponseWriter, r *http.Request) {
	c.signinForm(w, r, http.StatusOK, "")
}

func (c *Console) signinForm(w http.ResponseWriter, r *http.Request, status int, msg string) {
	pre := randomID() + randomID()
	c.setCookie(w, r, preName, pre, "/console/signin", 600)
	c.render(w, r, status, "signin", page{Title: "Sign in", CSRF: c.csrfFor(pre), Data: msg})
}

// signin exchanges a token for the session cookie.
func (c *Console) signin(w http.ResponseWriter, r *http.Request) {
	cfg := c.cfg.Load()
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil {
		c.signinForm(w, r, http.StatusBadRequest, "The form could not be read.")
		return
	}
	pre, err := r.Cookie(preName)
	if err != nil || subtle.ConstantTimeCompare([]byte(r.PostForm.Get("csrf")), []byte(c.csrfFor(pre.Value))) != 1 {
		c.signinForm(w, r, http.StatusForbidden, "The form's CSRF token is missing or wrong: try again.")
		return
	}
	tok := r.PostForm.Get("token")
	var role, fp string
	switch {
	case tok == "":
	case cfg.AdminToken != "" && subtle.ConstantTimeCompare([]byte(tok), []byte(cfg.AdminToken)) == 1:
		role, fp = roleAdmin, fingerprint(cfg.AdminToken)
	case cfg.ReadOnlyToken != "" && subtle.ConstantTimeCompare([]byte(tok), []byte(cfg.ReadOnlyToken)) == 1:
		role, fp = roleReadOnly, fingerprint(cfg.ReadOnlyToken)
	}
	if c.opts.Attempts != nil && tok != "" {
		if throttled, retry := c.opts.Attempts.Attempt(r.RemoteAddr, role != ""); throttled {
			c.opts.Log.WarnContext(r.Context(), "console sign-in refused: too many wrong tokens from this address", "remote", r.RemoteAddr)
			w.Header().Set("Retry-After", strconv.Itoa(int(retry.Seconds())))
			c.signinForm(w, r, http.StatusTooManyRequests, fmt.Sprintf("Too many wrong tokens from this address: try again in %d seconds.", int(retry.Seconds())))
			return
		}
	}
	if role == "" {
		c.opts.Log.WarnContext(r.Context(), "console sign-in refused", "remote", r.RemoteAddr)
		c.signinForm(w, r, http.StatusUnauthorized, "That token is not valid.")
		return
	}
	value, id := c.newCookie(role, fp, c.opts.Now().Add(c.opts.SessionTTL))
	s := &session{role: role, fp: fp, id: id}
	if err := c.opts.Audit.Append(Entry{Time: c.opts.Now().UTC(), Who: s.who(), Action: "signin"}); err != nil {
		c.fail(w, r, nil, http.StatusServiceUnavailable, "The audit trail could not be written, so the sign-in was refused; see the logs.", err)
		return
	}
	c.setCookie(w, r, preName, "", "/console/signin", -1)
	c.setCookie(w, r, cookieName, value, "/console/", int(c.opts.SessionTTL.Seconds()))
	c.opts.Log.InfoContext(r.Context(), "console sign-in", "who", s.who())
	http.Redirect(w, r, "/console/", http.StatusSeeOther)
}

func (c *Console) signout(w http.ResponseWriter, r *http.Request, s *session, _ *Config) {
	if err := c.opts.Audit.Append(Entry{Time: c.opts.Now().UTC(), Who: s.who(), Action: "signout"}); err != nil {
		c.opts.Log.ErrorContext(r.Context(), "console audit failed", "action", "signout", "err", err)
	}
	c.setCookie(w, r, cookieName, "", "/console/", -1)
	http.Redirect(w, r, "/console/signin", http.StatusSeeOther)
}

// reason reads the form's reason: required, at most 200 characters, no
// control characters.
func reason(r *http.Request) (string, bool) {
	s := strings.TrimSpace(r.PostForm.Get("reason"))
	if s == "" || len([]rune(s)) > 200 {
		return "", false
	}
	for _, c := range s {
		if c < 0x20 || c == 0x7f {
			return "", false
		}
	}
	return s, true
}

// audited writes e to the audit trail, then makes the change; a change
// that cannot be audited is not made. When the change fails after it was
// audited, a "…_failed" entry follows.
func (c *Console) audited(ctx context.Context, e Entry, change func() error) (auditErr, changeErr error) {
	if err := c.opts.Audit.Append(e); err != nil {
		return err, nil
	}
	if err := change(); err != nil {
		f := e
		f.Action += "_failed"
		f.Time = c.opts.Now().UTC()
		if aerr := c.opts.Audit.Append(f); aerr != nil {
			c.opts.Log.ErrorContext(ctx, "console audit failed", "action", f.Action, "err", aerr)
		}
		return nil, err
	}
	return nil, nil
}

// mask hides the middle of an E.164 number: the "+", the first three
// digits and the last two stay.
func mask(p string) string {
	if len(p) < 7 {
		return strings.Repeat("•", len(p))
	}
	return p[:4] + strings.Repeat("•", len(p)-6) + p[len(p)-2:]
}

var funcs = template.FuncMap{
	"phone": func(full bool, p string) string {
		if full {
			return p
		}
		return mask(p)
	},
	"when": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.UTC().Format("2006-01-02 15:04:05 UTC")
	},
	"rate": func(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) },
	"num":  func(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) },
}
