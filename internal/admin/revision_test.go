package admin

import (
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var (
	loadedAt  = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	refusedAt = time.Date(2026, 11, 27, 10, 5, 0, 0, time.UTC)
	running   = Revisions{
		Policies: Loaded{Revision: "aaaaaaaaaaaa", Source: "embedded", LoadedAt: loadedAt},
		Config:   Loaded{Revision: "bbbbbbbbbbbb", Source: "/etc/sendguard/sendguard.yaml", LoadedAt: loadedAt},
		Models: map[string]Loaded{
			"inbound":  {Revision: "cccccccccccc", Source: "embedded", LoadedAt: loadedAt},
			"outbound": {Revision: "dddddddddddd", Source: "embedded", LoadedAt: loadedAt},
		},
	}
	refused = &Reload{Result: ReloadRefused, Trigger: "watch", ConfigRevision: "eeeeeeeeeeee", PolicyRevision: "aaaaaaaaaaaa",
		Error: "config /etc/sendguard/sendguard.yaml: parse: field bogus not found", At: refusedAt}
)

// TestRevision: GET /v1/revision needs the admin token like every /v1
// call, and answers the running revisions and the last refused reload
// (null when none), with the JSON names the README documents.
func TestRevision(t *testing.T) {
	withRefused := running
	withRefused.LastReload, withRefused.LastRefused = refused, refused
	tests := []struct {
		name string
		rv   Revisions
		want string
	}{
		{"nothing refused", running, `{"policies":{"revision":"aaaaaaaaaaaa","source":"embedded","loaded_at":"2026-11-27T10:00:00Z"},` +
			`"config":{"revision":"bbbbbbbbbbbb","source":"/etc/sendguard/sendguard.yaml","loaded_at":"2026-11-27T10:00:00Z"},` +
			`"models":{"inbound":{"revision":"cccccccccccc","source":"embedded","loaded_at":"2026-11-27T10:00:00Z"},` +
			`"outbound":{"revision":"dddddddddddd","source":"embedded","loaded_at":"2026-11-27T10:00:00Z"}},` +
			`"last_reload":null,"last_refused":null}` + "\n"},
		{"a refused reload", withRefused, `{"policies":{"revision":"aaaaaaaaaaaa","source":"embedded","loaded_at":"2026-11-27T10:00:00Z"},` +
			`"config":{"revision":"bbbbbbbbbbbb","source":"/etc/sendguard/sendguard.yaml","loaded_at":"2026-11-27T10:00:00Z"},` +
			`"models":{"inbound":{"revision":"cccccccccccc","source":"embedded","loaded_at":"2026-11-27T10:00:00Z"},` +
			`"outbound":{"revision":"dddddddddddd","source":"embedded","loaded_at":"2026-11-27T10:00:00Z"}},` +
			`"last_reload":{"result":"refused","trigger":"watch","config_revision":"eeeeeeeeeeee","policy_revision":"aaaaaaaaaaaa","error":"config /etc/sendguard/sendguard.yaml: parse: field bogus not found","at":"2026-11-27T10:05:00Z"},` +
			`"last_refused":{"result":"refused","trigger":"watch","config_revision":"eeeeeeeeeeee","policy_revision":"aaaaaaaaaaaa","error":"config /etc/sendguard/sendguard.yaml: parse: field bogus not found","at":"2026-11-27T10:05:00Z"}}` + "\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(Handler(Options{Token: "secret", Revisions: func() Revisions { return tc.rv }}))
			defer srv.Close()
			for _, tok := range []string{"", "wrong"} {
				if code, body := call(t, srv, "GET", "/v1/revision", tok, ""); code != 401 {
					t.Errorf("GET /v1/revision with token %q = %d %s, want 401", tok, code, body)
				}
			}
			code, body := call(t, srv, "GET", "/v1/revision", "secret", "")
			if code != 200 || body != tc.want {
				t.Errorf("GET /v1/revision = %d\n%s\nwant 200\n%s", code, body, tc.want)
			}
		})
	}
	t.Run("not tracked", func(t *testing.T) {
		srv := httptest.NewServer(Handler(Options{Token: "secret"}))
		defer srv.Close()
		if code, body := call(t, srv, "GET", "/v1/revision", "secret", ""); code != 404 {
			t.Errorf("GET /v1/revision without Revisions = %d %s, want 404", code, body)
		}
	})
}

// TestReadyzDetails: /readyz's status code means only "built, listening
// and not shutting down"; an unreachable store and a refused reload show
// in the body and leave it 200, because the running revision still serves.
func TestReadyzDetails(t *testing.T) {
	withRefused := running
	withRefused.LastReload, withRefused.LastRefused = refused, refused
	appliedAfter := withRefused
	appliedAfter.LastReload = &Reload{Result: ReloadApplied, Trigger: "sighup", ConfigRevision: "bbbbbbbbbbbb", PolicyRevision: "aaaaaaaaaaaa", At: refusedAt.Add(time.Minute)}
	down := errors.New("redis paused: dial tcp 127.0.0.1:6379: connect: connection refused")
	tests := []struct {
		name     string
		ready    bool
		ping     error
		rv       Revisions
		wantCode int
		want     readiness
	}{
		{"ready", true, nil, running, 200, readiness{Status: "ready", Store: &storeState{Reachable: true},
			Policies: &policiesState{Loaded: true, Revision: "aaaaaaaaaaaa", ConfigRevision: "bbbbbbbbbbbb"}, Reload: &reloadState{OK: true}}},
		{"store down stays ready", true, down, running, 200, readiness{Status: "ready", Store: &storeState{Reachable: false, Error: down.Error()},
			Policies: &policiesState{Loaded: true, Revision: "aaaaaaaaaaaa", ConfigRevision: "bbbbbbbbbbbb"}, Reload: &reloadState{OK: true}}},
		{"refused reload stays ready", true, nil, withRefused, 200, readiness{Status: "ready", Store: &storeState{Reachable: true},
			Policies: &policiesState{Loaded: true, Revision: "aaaaaaaaaaaa", ConfigRevision: "bbbbbbbbbbbb"}, Reload: &reloadState{OK: false, Refused: refused}}},
		{"applied after a refusal", true, nil, appliedAfter, 200, readiness{Status: "ready", Store: &storeState{Reachable: true},
			Policies: &policiesState{Loaded: true, Revision: "aaaaaaaaaaaa", ConfigRevision: "bbbbbbbbbbbb"}, Reload: &reloadState{OK: true}}},
		{"shutting down", false, nil, running, 503, readiness{Status: "not_ready", Store: &storeState{Reachable: true},
			Policies: &policiesState{Loaded: true, Revision: "aaaaaaaaaaaa", ConfigRevision: "bbbbbbbbbbbb"}, Reload: &reloadState{OK: true}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(Handler(Options{
				Ready:     func() bool { return tc.ready },
				Ping:      func(context.Context) error { return tc.ping },
				Revisions: func() Revisions { return tc.rv },
			}))
			defer srv.Close()
			code, body := call(t, srv, "GET", "/readyz", "", "")
			var got readiness
			if err := json.Unmarshal([]byte(body), &got); err != nil {
				t.Fatalf("GET /readyz = %d %q: %v", code, body, err)
			}
			if code != tc.wantCode {
				t.Errorf("GET /readyz = %d, want %d", code, tc.wantCode)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("GET /readyz body (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("a hung store answers within the bound", func(t *testing.T) {
		srv := httptest.NewServer(Handler(Options{Ping: func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }}))
		defer srv.Close()
		code, body := call(t, srv, "GET", "/readyz", "", "")
		if code != 200 || body != `{"status":"ready","store":{"reachable":false,"error":"context deadline exceeded"}}`+"\n" {
			t.Errorf("GET /readyz with a hung store = %d %s, want 200 with reachable false", code, body)
		}
	})
}
