package main

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sendguard/sendguard/internal/admin"
	"github.com/sendguard/sendguard/internal/config"
	"github.com/sendguard/sendguard/internal/model"
	"github.com/sendguard/sendguard/internal/policy"
)

// TestRevisionEndpoint: GET /v1/revision (admin token) names the policy,
// config and model revisions in force and when each was loaded; a refused
// reload shows there with the revision it refused and why, and in
// /readyz's details, while /readyz stays 200 (the running revision still
// serves) and the running revisions do not move; a valid edit of the
// config then applies, moves only the config's loaded_at, and /readyz's
// reload is ok again while last_refused is kept.
func TestRevisionEndpoint(t *testing.T) {
	cfgPath := devstackConfig(t, t.TempDir(), "reload: {watch_interval: 100ms}\n")
	raw, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	base := string(raw)
	srv := serveFor(t, cfgPath, nil)
	adminAddr, logw := srv.adminAddr, srv.logs

	get := func(path, token string) (int, []byte) {
		t.Helper()
		req, _ := http.NewRequest("GET", "http://"+adminAddr+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	revision := func() admin.Revisions {
		t.Helper()
		code, b := get("/v1/revision", "demo-admin-token")
		var rv admin.Revisions
		if err := json.Unmarshal(b, &rv); code != 200 || err != nil {
			t.Fatalf("GET /v1/revision = %d %s (%v)", code, b, err)
		}
		return rv
	}
	type readyz struct {
		Status string
		Store  struct{ Reachable bool }
		Reload struct {
			OK      bool
			Refused *admin.Reload
		}
	}
	// ready reads /readyz. Its store check has 250 ms; on a loaded test
	// machine one read can miss that, which is not what this test is
	// about, so a store reported unreachable is asked again for up to 10 s.
	ready := func() readyz {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			code, b := get("/readyz", "")
			var r readyz
			if err := json.Unmarshal(b, &r); code != 200 || err != nil {
				t.Fatalf("GET /readyz = %d %s (%v), want 200", code, b, err)
			}
			if r.Store.Reachable || time.Now().After(deadline) {
				return r
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	// waitUntil polls (up to 60 s: the machine is shared) until ok.
	waitUntil := func(what string, ok func(admin.Revisions) bool) admin.Revisions {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			rv := revision()
			if ok(rv) {
				return rv
			}
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s; /v1/revision: %+v\n%s", what, rv, logw.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	for _, tok := range []string{"", "wrong"} {
		if code, b := get("/v1/revision", tok); code != 401 {
			t.Errorf("GET /v1/revision with token %q = %d %s, want 401", tok, code, b)
		}
	}
	start := revision()
	if want := config.RevisionOf([]byte(base)); start.Config.Revision != want || start.Config.Source != cfgPath {
		t.Errorf("config = %+v, want revision %s from %s", start.Config, want, cfgPath)
	}
	if want := policy.EmbeddedRevision(); start.Policies.Revision != want || start.Policies.Source != "embedded" {
		t.Errorf("policies = %+v, want embedded@%s", start.Policies, want)
	}
	for _, task := range []string{model.Inbound, model.Outbound} {
		if m := start.Models[task]; m.Revision != model.EmbeddedVersion(task) || m.Source != "embedded" || m.LoadedAt.IsZero() {
			t.Errorf("models[%s] = %+v, want embedded@%s with a load time", task, m, model.EmbeddedVersion(task))
		}
	}
	if start.LastReload != nil || start.LastRefused != nil || start.Config.LoadedAt.IsZero() || start.Policies.LoadedAt.IsZero() {
		t.Errorf("at start: %+v, want load times and no reloads", start)
	}
	if r := ready(); r.Status != "ready" || !r.Store.Reachable || !r.Reload.OK {
		t.Errorf("/readyz at start = %+v, want ready, store reachable, reload ok", r)
	}

	// A schema error: refused; the running revisions stay, /readyz stays 200.
	broken := base + "bogus_key: 1\n"
	if err := os.WriteFile(cfgPath, []byte(broken), 0o600); err != nil {
		t.Fatal(err)
	}
	rv := waitUntil("the refused reload", func(rv admin.Revisions) bool { return rv.LastRefused != nil })
	ref := rv.LastRefused
	if ref.Result != "refused" || ref.Trigger != "watch" || ref.ConfigRevision != config.RevisionOf([]byte(broken)) ||
		ref.PolicyRevision != policy.EmbeddedRevision() || !strings.Contains(ref.Error, "bogus_key") || ref.At.Before(start.Config.LoadedAt) {
		t.Errorf("last_refused = %+v, want the broken file's revision %s, the embedded policies, and an error naming bogus_key", ref, config.RevisionOf([]byte(broken)))
	}
	if rv.LastReload == nil || *rv.LastReload != *ref {
		t.Errorf("last_reload = %+v, want the refused one %+v", rv.LastReload, ref)
	}
	if rv.Config != start.Config || rv.Policies != start.Policies {
		t.Errorf("after a refused reload: config %+v policies %+v, want the running %+v %+v", rv.Config, rv.Policies, start.Config, start.Policies)
	}
	r := ready()
	if r.Status != "ready" || r.Reload.OK || r.Reload.Refused == nil || *r.Reload.Refused != *ref {
		t.Errorf("/readyz after a refused reload = %+v, want 200 ready with reload not ok and the refusal %+v", r, ref)
	}

	// A valid edit: applied; only the config is newly loaded.
	edited := strings.Replace(base, "growth: {daily: 500,", "growth: {daily: 400,", 1)
	if edited == base {
		t.Fatal("the demo config no longer has the growth plan")
	}
	if err := os.WriteFile(cfgPath, []byte(edited), 0o600); err != nil {
		t.Fatal(err)
	}
	rv = waitUntil("the applied reload", func(rv admin.Revisions) bool { return rv.LastReload != nil && rv.LastReload.Result == "applied" })
	if want := config.RevisionOf([]byte(edited)); rv.Config.Revision != want || !rv.Config.LoadedAt.After(start.Config.LoadedAt) {
		t.Errorf("config after the edit = %+v, want revision %s loaded after %v", rv.Config, want, start.Config.LoadedAt)
	}
	if rv.Policies != start.Policies || rv.Models[model.Outbound] != start.Models[model.Outbound] {
		t.Errorf("an edit of the config only reloaded policies %+v, models %+v; want them as loaded at start (%+v)", rv.Policies, rv.Models, start.Policies)
	}
	if rv.LastRefused == nil || *rv.LastRefused != *ref {
		t.Errorf("last_refused after an applied reload = %+v, want the earlier refusal kept", rv.LastRefused)
	}
	if r := ready(); !r.Reload.OK || r.Reload.Refused != nil {
		t.Errorf("/readyz after an applied reload = %+v, want reload ok", r)
	}

	srv.stop() // fails the test if serve returns an error
}
