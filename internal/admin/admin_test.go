package admin

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sendguard/sendguard/internal/attempts"
	"github.com/sendguard/sendguard/internal/inbound"
	"github.com/sendguard/sendguard/internal/limiter"
	"github.com/sendguard/sendguard/internal/phone"
	"github.com/sendguard/sendguard/internal/store"
)

func newAPI(t *testing.T) (*httptest.Server, *store.Memory) {
	t.Helper()
	phones, err := phone.New(phone.Options{CacheSize: -1})
	if err != nil {
		t.Fatal(err)
	}
	st := store.NewMemory(limiter.Calendar{})
	now := time.Date(2026, 5, 8, 10, 0, 0, 0, time.UTC)
	l := limiter.Limits{Daily: 100, Monthly: 2000, Rate: 1, Burst: 10}
	st.Take(context.Background(), "shop", l, now)
	srv := httptest.NewServer(Handler(Options{
		Token:     "secret",
		Instances: map[string]Instance{"shop": {ID: "shop", Name: "Shop", Plan: "starter", Limits: l}},
		State:     st,
		Phones:    phones,
		Now:       func() time.Time { return now },
	}))
	t.Cleanup(srv.Close)
	return srv, st
}

func call(t *testing.T, srv *httptest.Server, method, path, token, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestAuth(t *testing.T) {
	srv, _ := newAPI(t)
	if code, _ := call(t, srv, "GET", "/healthz", "", ""); code != 200 {
		t.Errorf("healthz = %d", code)
	}
	if code, _ := call(t, srv, "GET", "/readyz", "", ""); code != 200 {
		t.Errorf("readyz = %d", code)
	}
	for _, tok := range []string{"", "wrong", "secre"} {
		if code, _ := call(t, srv, "GET", "/v1/instances/shop/usage", tok, ""); code != 401 {
			t.Errorf("usage with token %q = %d, want 401", tok, code)
		}
	}
	if code, _ := call(t, srv, "GET", "/v1/instances/nope/usage", "secret", ""); code != 404 {
		t.Errorf("usage of an unknown instance = %d, want 404", code)
	}
}

func TestClosedWithoutToken(t *testing.T) {
	srv := httptest.NewServer(Handler(Options{Instances: map[string]Instance{"shop": {ID: "shop"}}}))
	defer srv.Close()
	req, _ := http.NewRequest("GET", srv.URL+"/v1/instances/shop/usage", nil)
	req.Header.Set("Authorization", "Bearer ")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Errorf("usage with no token configured = %d, want 401", resp.StatusCode)
	}
}

func TestUsage(t *testing.T) {
	srv, _ := newAPI(t)
	code, body := call(t, srv, "GET", "/v1/instances/shop/usage", "secret", "")
	var u struct {
		Plan  string `json:"plan"`
		Daily struct {
			Limit, Used, Remaining int64
			ResetsAt               time.Time `json:"resets_at"`
		} `json:"daily"`
		Monthly struct{ Limit, Used int64 } `json:"monthly"`
	}
	if err := json.Unmarshal([]byte(body), &u); err != nil || code != 200 {
		t.Fatalf("usage = %d %s", code, body)
	}
	if u.Plan != "starter" || u.Daily.Limit != 100 || u.Daily.Used != 1 || u.Daily.Remaining != 99 || u.Monthly.Used != 1 || u.Monthly.Limit != 2000 {
		t.Errorf("usage = %s", body)
	}
	if !u.Daily.ResetsAt.Equal(time.Date(2026, 5, 9, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("daily resets_at = %v", u.Daily.ResetsAt)
	}
}

func TestPauseResume(t *testing.T) {
	srv, st := newAPI(t)
	if code, _ := call(t, srv, "POST", "/v1/instances/shop/pause", "secret", ""); code != 200 {
		t.Fatalf("pause = %d", code)
	}
	if p, _ := st.Paused(context.Background(), "shop"); !p {
		t.Error("not paused after pause")
	}
	if code, _ := call(t, srv, "POST", "/v1/instances/shop/resume", "secret", ""); code != 200 {
		t.Fatalf("resume = %d", code)
	}
	if p, _ := st.Paused(context.Background(), "shop"); p {
		t.Error("paused after resume")
	}
}

func TestSuppressions(t *testing.T) {
	srv, st := newAPI(t)
	ctx := context.Background()
	code, body := call(t, srv, "PUT", "/v1/instances/shop/suppressions/00966501234567", "secret", "")
	if code != 200 || !strings.Contains(body, `"phone":"+966501234567"`) || !strings.Contains(body, `"reason":"manual_block"`) {
		t.Fatalf("put = %d %s", code, body)
	}
	if ok, _ := st.Suppressed(ctx, "shop", "+966501234567"); !ok {
		t.Error("not suppressed after put")
	}
	if code, body := call(t, srv, "GET", "/v1/instances/shop/suppressions/+966501234567", "secret", ""); code != 200 || !strings.Contains(body, "manual_block") {
		t.Errorf("get = %d %s", code, body)
	}
	if code, body := call(t, srv, "GET", "/v1/instances/shop/suppressions", "secret", ""); code != 200 || !strings.Contains(body, "+966501234567") {
		t.Errorf("list = %d %s", code, body)
	}
	if code, _ := call(t, srv, "PUT", "/v1/instances/shop/suppressions/hello", "secret", ""); code != 422 {
		t.Errorf("put of an invalid phone = %d, want 422", code)
	}
	if code, _ := call(t, srv, "PUT", "/v1/instances/shop/suppressions/+966501234568", "secret", "{"); code != 400 {
		t.Errorf("put with a bad body = %d, want 400", code)
	}
	if ok, _ := st.Suppressed(ctx, "shop", "+966501234568"); ok {
		t.Error("a rejected put changed state")
	}
	if code, _ := call(t, srv, "DELETE", "/v1/instances/shop/suppressions/+966501234567", "secret", ""); code != 204 {
		t.Errorf("delete = %d", code)
	}
	if code, _ := call(t, srv, "DELETE", "/v1/instances/shop/suppressions/+966501234567", "secret", ""); code != 404 {
		t.Errorf("second delete = %d, want 404", code)
	}
	if code, _ := call(t, srv, "GET", "/v1/instances/shop/suppressions/+966501234567", "secret", ""); code != 404 {
		t.Errorf("get after delete = %d, want 404", code)
	}
}

func TestInbound(t *testing.T) {
	var got []inbound.Message
	srv := httptest.NewServer(Handler(Options{
		Token:     "secret",
		Instances: map[string]Instance{"shop": {ID: "shop"}},
		Inbound: func(_ context.Context, m inbound.Message) (inbound.Outcome, error) {
			got = append(got, m)
			if m.From == "x" {
				return inbound.Outcome{}, inbound.ErrBadPhone
			}
			return inbound.Outcome{Intent: "opt_out", Matched: "stop", Phone: "+966501234567", Changed: true, EventID: "evt_1"}, nil
		},
	}))
	defer srv.Close()
	body := `{"instance_id":"shop","from":"+966501234567","message_text":"STOP","timestamp":"2026-05-08T10:00:00Z"}`
	if code, _ := call(t, srv, "POST", "/v1/inbound", "", body); code != 401 {
		t.Errorf("without the token = %d", code)
	}
	code, resp := call(t, srv, "POST", "/v1/inbound", "secret", body)
	if code != 200 || resp != `{"changed":true,"event_id":"evt_1","intent":"opt_out","matched":"stop","phone":"+966501234567"}`+"\n" {
		t.Errorf("POST /v1/inbound = %d %s", code, resp)
	}
	if len(got) != 1 || got[0].Text != "STOP" || got[0].InstanceID != "shop" || !got[0].Timestamp.Equal(time.Date(2026, 5, 8, 10, 0, 0, 0, time.UTC)) {
		t.Errorf("recorded %+v", got)
	}
	for body, want := range map[string]int{
		`{`: 400,
		`{"instance_id":"shop","from":"+966501234567"}`:                   422,
		`{"instance_id":"nope","from":"+966501234567","message_text":""}`: 404,
		`{"instance_id":"shop","from":"x","message_text":"STOP"}`:         422,
	} {
		if code, resp := call(t, srv, "POST", "/v1/inbound", "secret", body); code != want {
			t.Errorf("POST %s = %d %s, want %d", body, code, resp, want)
		}
	}
}

// TestPprof: the runtime profiles are served only when asked for
// (admin.pprof: true), and then only with the admin token.
func TestPprof(t *testing.T) {
	for _, on := range []bool{false, true} {
		srv := httptest.NewServer(Handler(Options{Token: "secret", Pprof: on}))
		t.Cleanup(srv.Close)
		for _, path := range []string{"/debug/pprof/", "/debug/pprof/heap", "/debug/pprof/goroutine?debug=1", "/debug/pprof/mutex", "/debug/pprof/cmdline"} {
			code, body := call(t, srv, "GET", path, "secret", "")
			switch {
			case !on && code != http.StatusNotFound:
				t.Errorf("pprof off: GET %s = %d, want 404", path, code)
			case on && code != http.StatusOK:
				t.Errorf("pprof on: GET %s = %d %.80s, want 200", path, code, body)
			}
			if code, _ := call(t, srv, "GET", path, "", ""); on && code != http.StatusUnauthorized {
				t.Errorf("pprof on: GET %s without the token = %d, want 401", path, code)
			}
			if code, _ := call(t, srv, "GET", path, "wrong", ""); on && code != http.StatusUnauthorized {
				t.Errorf("pprof on: GET %s with a wrong token = %d, want 401", path, code)
			}
		}
	}
}

func TestWrongTokensThrottled(t *testing.T) {
	phones, err := phone.New(phone.Options{CacheSize: -1})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 5, 8, 10, 0, 0, 0, time.UTC)
	l := limiter.Limits{Daily: 100, Monthly: 2000, Rate: 1, Burst: 10}
	h := Handler(Options{
		Token:     "secret",
		Instances: map[string]Instance{"shop": {ID: "shop", Limits: l}},
		State:     store.NewMemory(limiter.Calendar{}),
		Phones:    phones,
		Now:       func() time.Time { return now },
		Attempts:  attempts.New(attempts.Options{Burst: 3, Interval: 6 * time.Second, Now: func() time.Time { return now }}),
	})
	do := func(remote, auth string) *httptest.ResponseRecorder {
		req := httptest.NewRequest("GET", "/v1/instances/shop/usage", nil)
		req.RemoteAddr = remote
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w
	}
	const guesser = "192.0.2.1:40000"
	for i, auth := range []string{"Bearer wrong", "Bearer secre", "bearer !"} {
		if w := do(guesser, auth); w.Code != 401 {
			t.Fatalf("wrong token %d = %d, want 401", i+1, w.Code)
		}
	}
	want := `{"error":"too_many_attempts","message":"Too many wrong tokens from this address; retry after the Retry-After seconds."}` + "\n"
	for _, auth := range []string{"Bearer wrong4", "Bearer secret"} {
		w := do(guesser, auth)
		if w.Code != 429 || w.Body.String() != want || w.Header().Get("Retry-After") != "6" {
			t.Fatalf("%q after 3 wrong tokens = %d %q Retry-After %q, want 429 %q 6", auth, w.Code, w.Body, w.Header().Get("Retry-After"), want)
		}
	}
	// Another address, and requests without a token, are not guesses.
	if w := do("192.0.2.2:1", "Bearer secret"); w.Code != 200 {
		t.Fatalf("right token from another address = %d, want 200", w.Code)
	}
	for range 20 {
		if w := do("192.0.2.3:1", ""); w.Code != 401 {
			t.Fatalf("no token = %d, want 401", w.Code)
		}
	}
	if w := do("192.0.2.3:1", "Bearer secret"); w.Code != 200 {
		t.Fatalf("right token after 20 requests without one = %d, want 200", w.Code)
	}
	// Automation with the right token, many calls at once, is never
	// throttled, while a guesser elsewhere is.
	var wg sync.WaitGroup
	var bad atomic.Int64
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				if w := do("198.51.100.5:1", "Bearer secret"); w.Code != 200 {
					bad.Add(1)
				}
				if g%4 == 0 {
					do("203.0.113.9:1", "Bearer nope")
				}
			}
		}()
	}
	wg.Wait()
	if bad.Load() != 0 {
		t.Fatalf("%d of 320 calls with the right token refused, want none", bad.Load())
	}
	if w := do("203.0.113.9:1", "Bearer secret"); w.Code != 429 {
		t.Fatalf("right token from the concurrent guesser = %d, want 429", w.Code)
	}
}

// TestSuppressionPages pages through 25 suppressions over HTTP with the
// cursors the API returns, and refuses limits and cursors it cannot read.
func TestSuppressionPages(t *testing.T) {
	srv, st := newAPI(t)
	ctx := context.Background()
	for i := range 25 {
		st.PutSuppression(ctx, store.Suppression{Instance: "shop", Phone: fmt.Sprintf("+9665012345%02d", i), Reason: "manual_block"})
	}
	type page struct {
		Suppressions []store.Suppression `json:"suppressions"`
		Next         string              `json:"next_cursor"`
	}
	var got []string
	cursor, pages := "", 0
	for {
		code, body := call(t, srv, "GET", "/v1/instances/shop/suppressions?limit=10&cursor="+url.QueryEscape(cursor), "secret", "")
		var p page
		if err := json.Unmarshal([]byte(body), &p); code != 200 || err != nil {
			t.Fatalf("page %d = %d %s", pages+1, code, body)
		}
		pages++
		for _, s := range p.Suppressions {
			got = append(got, s.Phone)
		}
		if p.Next == "" {
			break
		}
		cursor = p.Next
	}
	if pages != 3 || len(got) != 25 || got[0] != "+966501234500" || got[24] != "+966501234524" || !slices.IsSorted(got) {
		t.Errorf("limit 10: %d pages, %d phones %v; want 3 pages of the 25 in order", pages, len(got), got)
	}
	if code, body := call(t, srv, "GET", "/v1/instances/shop/suppressions", "secret", ""); code != 200 || strings.Count(body, `"phone"`) != 25 || !strings.Contains(body, `"next_cursor":""`) {
		t.Errorf("no limit = %d %s, want all 25 (default 1000) and an empty next_cursor", code, body)
	}
	for _, q := range []string{"limit=0", "limit=10001", "limit=x", "limit=", "limit=-1"} {
		if code, body := call(t, srv, "GET", "/v1/instances/shop/suppressions?"+q, "secret", ""); code != 400 || !strings.Contains(body, `"error":"validation_error"`) {
			t.Errorf("?%s = %d %s, want 400 validation_error", q, code, body)
		}
	}
	for _, c := range []string{"nope", "p", "r12", "p%21%21"} {
		if code, body := call(t, srv, "GET", "/v1/instances/shop/suppressions?cursor="+c, "secret", ""); code != 400 || !strings.Contains(body, `"error":"invalid_cursor"`) {
			t.Errorf("?cursor=%s = %d %s, want 400 invalid_cursor", c, code, body)
		}
	}
}
