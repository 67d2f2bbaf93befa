package envoy_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/sendguard/sendguard/internal/catalog"
)

// TestShadowEndToEnd: through the real Envoy, a would-be denial of an
// instance in shadow mode (from the config, or set through the admin API)
// reaches the sender with x-sendguard-shadow-decision: <code>, the client
// gets the sender's answer, the would-be denial consumes no quota or token,
// and sendguard_shadow_denials_total counts it. Instances not in shadow
// mode stay enforced, and clearing the run-time flag enforces again.
func TestShadowEndToEnd(t *testing.T) {
	s := startStack(t, func(cfg string) string {
		return strings.Replace(cfg, "instances:\n", "instances:\n  - {id: inst_shadow, account: demo, plan: day1, shadow: true}\n", 1)
	})

	// The one send of the day is real; then the day is spent.
	s.mustPass(sendBody("inst_shadow", recipient, okMessage, "transactional"))
	before := s.usageSummary("inst_shadow")

	tests := []struct {
		name     string
		instance string
		body     string
		code     catalog.Code
	}{
		{"spent day", "inst_shadow", sendBody("inst_shadow", "+966501230001", okMessage, "transactional"), catalog.DailyLimitExceeded},
		{"spam", "inst_shadow", sendBody("inst_shadow", recipient, spam, "transactional"), catalog.PolicyViolation},
		{"marketing", "inst_shadow", sendBody("inst_shadow", recipient, okMessage, "marketing"), catalog.MessagePurposeNotAllowed},
		{"no purpose", "inst_shadow", sendBody("inst_shadow", recipient, okMessage, ""), catalog.MessagePurposeRequired},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s.wantShadowed(t, tc.body, tc.code)
		})
	}
	if after := s.usageSummary("inst_shadow"); after != before {
		t.Errorf("usage after the would-be denials = %s, want %s (unchanged)", after, before)
	}
	metrics, err := get(fmt.Sprintf("http://127.0.0.1:%d/metrics", s.admin))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range tests {
		want := fmt.Sprintf("sendguard_shadow_denials_total{code=%q} 1\n", tc.code)
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q", want)
		}
	}

	t.Run("other instances stay enforced", func(t *testing.T) {
		before := s.rec.Len()
		if r := s.send("key-demo", sendBody("inst_12345", recipient, spam, "transactional")); r.status != 403 || s.rec.Len() != before {
			t.Errorf("spam to inst_12345 = %d, sender saw %d; want 403 and nothing forwarded", r.status, s.rec.Len()-before)
		}
	})

	t.Run("run-time shadow mode through the admin API", func(t *testing.T) {
		url := fmt.Sprintf("http://127.0.0.1:%d/v1/instances/inst_12345/shadow", s.admin)
		if code := s.adminPost(url); code != 200 {
			t.Fatalf("POST %s = %d", url, code)
		}
		usage := s.usageSummary("inst_12345")
		s.wantShadowed(t, sendBody("inst_12345", recipient, spam, "transactional"), catalog.PolicyViolation)
		s.wantShadowed(t, sendBody("inst_12345", "00966 50 000 0000", okMessage, "support"), catalog.RecipientSuppressed)
		if after := s.usageSummary("inst_12345"); after != usage {
			t.Errorf("usage after the would-be denials = %s, want %s", after, usage)
		}
		req, _ := http.NewRequest("DELETE", url, nil)
		req.Header.Set("Authorization", "Bearer e2e-admin")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(b), `"shadow":false`) {
			t.Fatalf("DELETE %s = %d %s", url, resp.StatusCode, b)
		}
		before := s.rec.Len()
		if r := s.send("key-demo", sendBody("inst_12345", recipient, spam, "transactional")); r.status != 403 || s.rec.Len() != before {
			t.Errorf("spam after DELETE shadow = %d, sender saw %d; want 403 and nothing forwarded", r.status, s.rec.Len()-before)
		}
	})
}

// wantShadowed sends body and checks that it reached the sender with the
// shadow header naming code, and the client got the sender's answer.
func (s *stack) wantShadowed(t *testing.T, body string, code catalog.Code) {
	t.Helper()
	before := s.rec.Len()
	r := s.send("key-demo", body)
	if r.status != 200 || !strings.Contains(string(r.body), `"success":true`) {
		t.Fatalf("would-be %s = %d %s, want the sender's 200", code, r.status, r.body)
	}
	reqs := s.rec.Requests()
	if len(reqs) != before+1 {
		t.Fatalf("sender received %d requests, want 1", len(reqs)-before)
	}
	got := reqs[len(reqs)-1]
	if v := got.Header.Values("X-Sendguard-Shadow-Decision"); len(v) != 1 || v[0] != string(code) {
		t.Errorf("sender saw x-sendguard-shadow-decision = %q, want [%q]", v, code)
	}
	if id := r.header.Get("X-Sendguard-Decision-Id"); id == "" || got.Header.Get("X-Sendguard-Decision-Id") != id {
		t.Errorf("decision id: client %q, sender %q", id, got.Header.Get("X-Sendguard-Decision-Id"))
	}
	if r.header.Get("X-Sendguard-Shadow-Decision") != "" {
		t.Error("the client saw the shadow decision")
	}
}

// usageSummary is the instance's usage from the admin API, without the
// bucket's tokens (they refill with time) but with used and remaining.
func (s *stack) usageSummary(instance string) string {
	s.t.Helper()
	u := s.usage(instance)
	return fmt.Sprintf("day %d/%d month %d/%d", u.Daily.Used, u.Daily.Remaining, u.Monthly.Used, u.Monthly.Remaining)
}
