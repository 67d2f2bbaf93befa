// Package admin is sendguard's operator HTTP API, served on its own port.
//
//	GET    /healthz                                   liveness, no token
//	GET    /readyz                                    readiness and its details, no token
//	GET    /metrics                                   Prometheus metrics, no token
//	GET    /v1/revision                               revisions in force, the last refused reload
//	POST   /v1/inbound                                record an inbound message (opt-out/opt-in)
//	GET    /v1/instances/{instance}/usage             use of the plan today and this month
//	POST   /v1/instances/{instance}/pause             pause for review
//	POST   /v1/instances/{instance}/resume            resume
//	GET    /v1/instances/{instance}/shadow            shadow mode, and where it comes from
//	POST   /v1/instances/{instance}/shadow            shadow mode on (kept in the store)
//	DELETE /v1/instances/{instance}/shadow            shadow mode off (the config's stays)
//	GET    /v1/instances/{instance}/suppressions      list suppressed recipients
//	GET    /v1/instances/{instance}/suppressions/{phone}
//	PUT    /v1/instances/{instance}/suppressions/{phone}   body optional: {"reason":…}
//	DELETE /v1/instances/{instance}/suppressions/{phone}
//
// Every /v1 call needs "Authorization: Bearer <admin token>". With no token
// configured, /v1 is closed. Phones are normalised to E.164 like sends.
//
// A panic in a handler is recovered: the call answers 500
// {"error":"internal_error",…}, the panic is logged at error level with its
// stack and counted (Options.Panics), and the server carries on.
package admin

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/sendguard/sendguard/internal/attempts"
	"github.com/sendguard/sendguard/internal/inbound"
	"github.com/sendguard/sendguard/internal/keys"
	"github.com/sendguard/sendguard/internal/limiter"
	"github.com/sendguard/sendguard/internal/recovery"
	"github.com/sendguard/sendguard/internal/store"
)

// Instance is what the admin API knows of a configured instance.
type Instance struct {
	ID, Name, Plan string
	Limits         limiter.Limits
	Shadow         bool // shadow mode from the config
}

type state interface {
	Paused(ctx context.Context, instance string) (bool, error)
	SetPaused(ctx context.Context, instance string, paused bool) error
	Suppression(ctx context.Context, instance, e164 string) (store.Suppression, error)
	SuppressionPage(ctx context.Context, instance, cursor string, limit int) ([]store.Suppression, string, error)
	PutSuppression(ctx context.Context, s store.Suppression) error
	DeleteSuppression(ctx context.Context, instance, e164 string) error
	Usage(ctx context.Context, instance string, l limiter.Limits, now time.Time) (limiter.Usage, error)
}

type phones interface {
	E164(raw string) (string, bool)
}

// Options wire the API. Token empty closes /v1.
type Options struct {
	Token     string
	Instances map[string]Instance
	State     state
	Phones    phones
	Calendar  limiter.Calendar
	Ready     func() bool  // default: always ready
	Metrics   http.Handler // served at GET /metrics without a token; nil: none
	// Inbound records an inbound message posted to POST /v1/inbound; nil:
	// the endpoint answers 404.
	Inbound func(ctx context.Context, m inbound.Message) (inbound.Outcome, error)
	Now     func() time.Time
	Log     *slog.Logger
	// Panics counts handler panics recovered (sendguard_panics_total{where="admin"},
	// authz.Server.Panics("admin")); nil: not counted.
	Panics interface{ Inc() }
	// Pprof serves the Go runtime's profiles (net/http/pprof) under
	// GET /debug/pprof/, with the admin token like /v1. Off by default.
	Pprof bool
	// Shadow is the config's global shadow mode, for reports.
	Shadow bool
	// Ping checks that the state store answers, for /readyz's details
	// (bounded by readyTimeout); nil: not reported.
	Ping func(ctx context.Context) error
	// Attempts throttles wrong admin tokens by client address (shared with
	// the console's sign-in, so that one budget covers both); nil: not
	// throttled.
	Attempts *attempts.Limiter
	// Revisions reports the revisions in force and the last reloads, for
	// GET /v1/revision and /readyz's details; nil: /v1/revision answers
	// 404. It must be safe for concurrent use.
	Revisions func() Revisions
}

type api struct{ Options }

// Handler returns the admin API.
func Handler(opts Options) http.Handler {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Ready == nil {
		opts.Ready = func() bool { return true }
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	a := &api{opts}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", a.readyz)
	if a.Metrics != nil {
		mux.Handle("GET /metrics", a.Metrics)
	}
	if a.Pprof {
		mux.Handle("GET /debug/pprof/", a.token(pprof.Index))
		mux.Handle("GET /debug/pprof/cmdline", a.token(pprof.Cmdline))
		mux.Handle("GET /debug/pprof/profile", a.token(pprof.Profile))
		mux.Handle("GET /debug/pprof/symbol", a.token(pprof.Symbol))
		mux.Handle("GET /debug/pprof/trace", a.token(pprof.Trace))
	}
	mux.Handle("GET /v1/revision", a.token(a.revision))
	mux.Handle("POST /v1/inbound", a.token(a.postInbound))
	mux.Handle("GET /v1/instances/{instance}/usage", a.auth(a.usage))
	mux.Handle("POST /v1/instances/{instance}/pause", a.auth(a.setPaused(true)))
	mux.Handle("POST /v1/instances/{instance}/resume", a.auth(a.setPaused(false)))
	mux.Handle("GET /v1/instances/{instance}/shadow", a.auth(a.getShadow))
	mux.Handle("POST /v1/instances/{instance}/shadow", a.auth(a.setShadow(true)))
	mux.Handle("DELETE /v1/instances/{instance}/shadow", a.auth(a.setShadow(false)))
	mux.Handle("GET /v1/instances/{instance}/suppressions", a.auth(a.listSuppressions))
	mux.Handle("GET /v1/instances/{instance}/suppressions/{phone}", a.auth(a.getSuppression))
	mux.Handle("PUT /v1/instances/{instance}/suppressions/{phone}", a.auth(a.putSuppression))
	mux.Handle("DELETE /v1/instances/{instance}/suppressions/{phone}", a.auth(a.deleteSuppression))
	return a.recoverPanics(mux)
}

var errPanic = apiError{http.StatusInternalServerError, "internal_error", "The request failed; see the logs."}

// recoverPanics answers a panic in h with errPanic, logs it with its stack
// and counts it (recovery.Handler: a started response is cut instead).
func (a *api) recoverPanics(h http.Handler) http.Handler {
	return recovery.Handler(h, recovery.Options{Log: a.Log, What: "admin handler", Panics: a.Panics,
		Fail: func(w http.ResponseWriter) {
			writeJSON(w, errPanic.status, map[string]string{"error": errPanic.code, "message": errPanic.message})
		}})
}

type apiError struct {
	status  int
	code    string
	message string
}

var (
	errUnauthorized = apiError{http.StatusUnauthorized, "unauthorized", "A valid admin token is required."}
	errThrottled    = apiError{http.StatusTooManyRequests, "too_many_attempts", "Too many wrong tokens from this address; retry after the Retry-After seconds."}
	errNoInstance   = apiError{http.StatusNotFound, "instance_not_found", "No such instance."}
	errBadPhone     = apiError{http.StatusUnprocessableEntity, "invalid_phone_number", "The phone number is not a valid number."}
	errNotFound     = apiError{http.StatusNotFound, "not_found", "No such suppression."}
	errBadBody      = apiError{http.StatusBadRequest, "invalid_json", "Request body must be valid JSON."}
	errInternal     = apiError{http.StatusInternalServerError, "internal_error", "The state store failed; see the logs."}
)

func (a *api) fail(w http.ResponseWriter, r *http.Request, e apiError, err error) {
	if err != nil {
		a.Log.ErrorContext(r.Context(), "admin call failed", "path", r.URL.Path, "err", err)
	}
	writeJSON(w, e.status, map[string]string{"error": e.code, "message": e.message})
}

// authorized reports whether r carries the admin token, and answers it
// when not: 401, or 429 with Retry-After when its address sent too many
// wrong tokens (then even the right one is refused). A request without an
// Authorization header is not a guess and spends nothing.
func (a *api) authorized(w http.ResponseWriter, r *http.Request) bool {
	h := r.Header.Get("Authorization")
	tok, ok := keys.BearerToken(h)
	right := a.Token != "" && ok && subtle.ConstantTimeCompare([]byte(tok), []byte(a.Token)) == 1
	if a.Attempts != nil && a.Token != "" && h != "" {
		if throttled, retry := a.Attempts.Attempt(r.RemoteAddr, right); throttled {
			a.Log.WarnContext(r.Context(), "admin token refused: too many wrong tokens from this address", "remote", r.RemoteAddr, "path", r.URL.Path)
			w.Header().Set("Retry-After", strconv.Itoa(int(retry.Seconds())))
			a.fail(w, r, errThrottled, nil)
			return false
		}
	}
	if !right {
		a.fail(w, r, errUnauthorized, nil)
	}
	return right
}

func (a *api) token(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a.authorized(w, r) {
			h(w, r)
		}
	})
}

// postInbound records one inbound message:
// {"instance_id", "from", "message_text", "timestamp" (RFC 3339, optional)}.
func (a *api) postInbound(w http.ResponseWriter, r *http.Request) {
	if a.Inbound == nil {
		a.fail(w, r, apiError{http.StatusNotFound, "not_found", "Inbound intake is not configured."}, nil)
		return
	}
	var body struct {
		InstanceID  string    `json:"instance_id"`
		From        string    `json:"from"`
		MessageText *string   `json:"message_text"`
		Timestamp   time.Time `json:"timestamp"`
	}
	dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
	if err := dec.Decode(&body); err != nil {
		a.fail(w, r, errBadBody, nil)
		return
	}
	if body.InstanceID == "" || body.From == "" || body.MessageText == nil {
		a.fail(w, r, apiError{http.StatusUnprocessableEntity, "validation_error", "instance_id, from and message_text are required."}, nil)
		return
	}
	if _, ok := a.Instances[body.InstanceID]; !ok {
		a.fail(w, r, errNoInstance, nil)
		return
	}
	out, err := a.Inbound(r.Context(), inbound.Message{InstanceID: body.InstanceID, From: body.From, Text: *body.MessageText, Timestamp: body.Timestamp})
	switch {
	case errors.Is(err, inbound.ErrBadPhone):
		a.fail(w, r, errBadPhone, nil)
	case errors.Is(err, inbound.ErrUnknownInstance):
		a.fail(w, r, errNoInstance, nil)
	case err != nil:
		a.fail(w, r, apiError{http.StatusServiceUnavailable, "unavailable", "The message could not be recorded; retry."}, err)
	default:
		writeJSON(w, http.StatusOK, map[string]any{"intent": out.Intent, "matched": out.Matched, "phone": out.Phone, "changed": out.Changed, "event_id": out.EventID})
	}
}

func (a *api) auth(h func(http.ResponseWriter, *http.Request, Instance)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !a.authorized(w, r) {
			return
		}
		inst, ok := a.Instances[r.PathValue("instance")]
		if !ok {
			a.fail(w, r, errNoInstance, nil)
			return
		}
		h(w, r, inst)
	})
}

func (a *api) usage(w http.ResponseWriter, r *http.Request, inst Instance) {
	now := a.Now()
	u, err := a.State.Usage(r.Context(), inst.ID, inst.Limits, now)
	if err != nil {
		a.fail(w, r, errInternal, err)
		return
	}
	paused, err := a.State.Paused(r.Context(), inst.ID)
	if err != nil {
		a.fail(w, r, errInternal, err)
		return
	}
	_, dayEnd := a.Calendar.DayBounds(now)
	_, monthEnd := a.Calendar.MonthBounds(now)
	type quota struct {
		Limit     int64     `json:"limit"`
		Used      int64     `json:"used"`
		Remaining int64     `json:"remaining"`
		ResetsAt  time.Time `json:"resets_at"`
	}
	writeJSON(w, http.StatusOK, struct {
		Instance string `json:"instance_id"`
		Name     string `json:"instance_name"`
		Plan     string `json:"plan"`
		Paused   bool   `json:"paused"`
		Daily    quota  `json:"daily"`
		Monthly  quota  `json:"monthly"`
		Throttle struct {
			Rate   float64 `json:"rate_per_second"`
			Burst  int64   `json:"burst"`
			Tokens float64 `json:"tokens"`
		} `json:"throttle"`
	}{
		Instance: inst.ID, Name: inst.Name, Plan: inst.Plan, Paused: paused,
		Daily:   quota{inst.Limits.Daily, u.DailyUsed, max(0, inst.Limits.Daily-u.DailyUsed), dayEnd.UTC()},
		Monthly: quota{inst.Limits.Monthly, u.MonthlyUsed, max(0, inst.Limits.Monthly-u.MonthlyUsed), monthEnd.UTC()},
		Throttle: struct {
			Rate   float64 `json:"rate_per_second"`
			Burst  int64   `json:"burst"`
			Tokens float64 `json:"tokens"`
		}{inst.Limits.Rate, inst.Limits.Burst, u.Tokens},
	})
}

func (a *api) setPaused(paused bool) func(http.ResponseWriter, *http.Request, Instance) {
	return func(w http.ResponseWriter, r *http.Request, inst Instance) {
		if err := a.State.SetPaused(r.Context(), inst.ID, paused); err != nil {
			a.fail(w, r, errInternal, err)
			return
		}
		a.Log.InfoContext(r.Context(), "instance pause changed", "instance_id", inst.ID, "paused", paused)
		writeJSON(w, http.StatusOK, map[string]any{"instance_id": inst.ID, "paused": paused})
	}
}

// Pages of GET /v1/instances/{id}/suppressions: limit's default and most.
const (
	defaultPage = 1000
	maxPage     = 10000
)

// listSuppressions answers a page of instance's suppressions:
// ?limit= (1 to 10,000, default 1,000) and ?cursor= (next_cursor of the
// page before; none for the first). A page is built in memory, so a
// million suppressions never are at once.
func (a *api) listSuppressions(w http.ResponseWriter, r *http.Request, inst Instance) {
	q := r.URL.Query()
	limit := defaultPage
	if q.Has("limit") {
		n, err := strconv.Atoi(q.Get("limit"))
		if err != nil || n < 1 || n > maxPage {
			a.fail(w, r, apiError{http.StatusBadRequest, "validation_error", "limit must be a whole number from 1 to 10000."}, nil)
			return
		}
		limit = n
	}
	list, next, err := a.State.SuppressionPage(r.Context(), inst.ID, q.Get("cursor"), limit)
	switch {
	case errors.Is(err, store.ErrBadCursor):
		a.fail(w, r, apiError{http.StatusBadRequest, "invalid_cursor", "cursor must be a next_cursor this API returned."}, nil)
		return
	case err != nil:
		a.fail(w, r, errInternal, err)
		return
	}
	if list == nil {
		list = []store.Suppression{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"suppressions": list, "next_cursor": next})
}

func (a *api) phone(w http.ResponseWriter, r *http.Request) (string, bool) {
	e164, ok := a.Phones.E164(r.PathValue("phone"))
	if !ok {
		a.fail(w, r, errBadPhone, nil)
	}
	return e164, ok
}

func (a *api) getSuppression(w http.ResponseWriter, r *http.Request, inst Instance) {
	phone, ok := a.phone(w, r)
	if !ok {
		return
	}
	s, err := a.State.Suppression(r.Context(), inst.ID, phone)
	switch {
	case errors.Is(err, store.ErrNotFound):
		a.fail(w, r, errNotFound, nil)
	case err != nil:
		a.fail(w, r, errInternal, err)
	default:
		writeJSON(w, http.StatusOK, s)
	}
}

func (a *api) putSuppression(w http.ResponseWriter, r *http.Request, inst Instance) {
	phone, ok := a.phone(w, r)
	if !ok {
		return
	}
	var body struct {
		Reason string `json:"reason"`
	}
	raw, err := io.ReadAll(io.LimitReader(r.Body, 4096))
	if err != nil {
		a.fail(w, r, errBadBody, nil)
		return
	}
	if len(strings.TrimSpace(string(raw))) > 0 {
		if err := json.Unmarshal(raw, &body); err != nil {
			a.fail(w, r, errBadBody, nil)
			return
		}
	}
	if body.Reason == "" {
		body.Reason = "manual_block"
	}
	s := store.Suppression{Instance: inst.ID, Phone: phone, Reason: body.Reason, Source: "admin_api", CreatedAt: a.Now().UTC()}
	if err := a.State.PutSuppression(r.Context(), s); err != nil {
		a.fail(w, r, errInternal, err)
		return
	}
	a.Log.InfoContext(r.Context(), "suppression added", "instance_id", inst.ID, "reason", s.Reason)
	writeJSON(w, http.StatusOK, s)
}

func (a *api) deleteSuppression(w http.ResponseWriter, r *http.Request, inst Instance) {
	phone, ok := a.phone(w, r)
	if !ok {
		return
	}
	err := a.State.DeleteSuppression(r.Context(), inst.ID, phone)
	switch {
	case errors.Is(err, store.ErrNotFound):
		a.fail(w, r, errNotFound, nil)
	case err != nil:
		a.fail(w, r, errInternal, err)
	default:
		a.Log.InfoContext(r.Context(), "suppression removed", "instance_id", inst.ID)
		w.WriteHeader(http.StatusNoContent)
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
