package envoy_test

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"regexp"
	"strconv"
	"testing"
	"time"
)

// usage is the admin API's GET /v1/instances/{id}/usage, the parts the
// RateLimit fields describe.
type usage struct {
	Daily, Monthly struct {
		Limit, Used, Remaining int64
		ResetsAt               time.Time `json:"resets_at"`
	}
	Throttle struct {
		Rate   float64 `json:"rate_per_second"`
		Burst  int64   `json:"burst"`
		Tokens float64 `json:"tokens"`
	} `json:"throttle"`
}

func (s *stack) usage(instance string) usage {
	s.t.Helper()
	req, _ := http.NewRequest("GET", fmt.Sprintf("http://127.0.0.1:%d/v1/instances/%s/usage", s.admin, instance), nil)
	req.Header.Set("Authorization", "Bearer e2e-admin")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var u usage
	if err := json.Unmarshal(b, &u); err != nil || resp.StatusCode != 200 {
		s.t.Fatalf("usage of %s: %s %s (%v)", instance, resp.Status, b, err)
	}
	return u
}

var rateLimitField = regexp.MustCompile(`^"(monthly|daily|throttle)";r=(\d+);t=(\d+)$`)
var rateLimitPolicyField = regexp.MustCompile(`^"(monthly|daily|throttle)";q=(\d+);w=(\d+)$`)

// TestRateLimitHeadersThroughEnvoy: with response.ratelimit_headers the
// client's 200 carries RateLimit-Policy and RateLimit naming the instance's
// tightest limit, with the values the admin API reports for it; the sender
// never sees them; without the option a 200 carries neither.
func TestRateLimitHeadersThroughEnvoy(t *testing.T) {
	t.Run("off", func(t *testing.T) {
		s := startStack(t)
		r := s.send("key-demo", sendBody("inst_12345", recipient, okMessage, "transactional"))
		if r.status != 200 || s.rec.Len() != 1 {
			t.Fatalf("send = %d %s (sender saw %d), want 200, forwarded", r.status, r.body, s.rec.Len())
		}
		for _, h := range []string{"RateLimit", "RateLimit-Policy"} {
			if v, ok := r.header[h]; ok {
				t.Errorf("200 with ratelimit_headers off carries %s: %q", h, v)
			}
		}
		if r.header.Get("X-Sendguard-Decision-Id") == "" {
			t.Errorf("200 without x-sendguard-decision-id: %v", r.header)
		}
	})

	t.Run("on", func(t *testing.T) {
		s := startStackWith(t, "response: {ratelimit_headers: true}\n")
		// Starter here: daily 100, monthly 2000, a bucket of 1000: the day is the tightest.
		msgs := []string{"طلبك رقم 2041 تم شحنه", "आपका ऑर्डर #2041 भेज दिया गया है", "Siparişiniz #2041 kargoya verildi 📦"}
		var r reply
		var before, after time.Time
		for _, m := range msgs {
			before = time.Now()
			r = s.send("key-demo", sendBody("inst_12345", recipient, m, "transactional"))
			after = time.Now()
			if r.status != 200 {
				t.Fatalf("send(%q) = %d %s, want 200", m, r.status, r.body)
			}
		}
		u := s.usage("inst_12345")
		policy, limit := r.header.Get("RateLimit-Policy"), r.header.Get("RateLimit")
		if policy != fmt.Sprintf(`"daily";q=%d;w=86400`, u.Daily.Limit) {
			t.Errorf("RateLimit-Policy = %q, want daily with q=%d (admin API)", policy, u.Daily.Limit)
		}
		m := rateLimitField.FindStringSubmatch(limit)
		if m == nil || m[1] != "daily" {
			t.Fatalf("RateLimit = %q, want \"daily\";r=…;t=…", limit)
		}
		if rem, _ := strconv.ParseInt(m[2], 10, 64); rem != u.Daily.Remaining || rem != 100-int64(len(msgs)) {
			t.Errorf("RateLimit r=%d, want the admin API's daily remaining %d (= %d)", rem, u.Daily.Remaining, 100-len(msgs))
		}
		// t is the seconds to the admin API's resets_at, counted when
		// sendguard decided: between the request's start and its answer.
		reset, _ := strconv.ParseInt(m[3], 10, 64)
		if lo, hi := int64(u.Daily.ResetsAt.Sub(after)/time.Second), int64(math.Ceil(u.Daily.ResetsAt.Sub(before).Seconds())); reset < lo || reset > hi {
			t.Errorf("RateLimit t=%d, want within [%d, %d] (resets_at %v)", reset, lo, hi, u.Daily.ResetsAt)
		}
		if r.header.Get("X-Sendguard-Decision-Id") == "" {
			t.Errorf("200 without x-sendguard-decision-id: %v", r.header)
		}
		for _, req := range s.rec.Requests() {
			if req.Header.Get("RateLimit") != "" || req.Header.Get("RateLimit-Policy") != "" {
				t.Errorf("the sender saw RateLimit fields: %v", req.Header)
			}
		}
		if s.rec.Len() != len(msgs) {
			t.Errorf("sender saw %d sends, want %d", s.rec.Len(), len(msgs))
		}

		// A bucket of one filling at 0.001/s: the send takes its only token.
		r = s.send("key-demo", sendBody("inst_slow", recipient, okMessage, "transactional"))
		if r.status != 200 {
			t.Fatalf("send to inst_slow = %d %s, want 200", r.status, r.body)
		}
		su := s.usage("inst_slow")
		pm := rateLimitPolicyField.FindStringSubmatch(r.header.Get("RateLimit-Policy"))
		m = rateLimitField.FindStringSubmatch(r.header.Get("RateLimit"))
		if pm == nil || m == nil || pm[1] != "throttle" || m[1] != "throttle" {
			t.Fatalf("inst_slow RateLimit-Policy = %q, RateLimit = %q, want throttle", r.header.Get("RateLimit-Policy"), r.header.Get("RateLimit"))
		}
		if q, _ := strconv.ParseInt(pm[2], 10, 64); q != su.Throttle.Burst {
			t.Errorf("RateLimit-Policy q=%d, want the admin API's burst %d", q, su.Throttle.Burst)
		}
		if w, _ := strconv.ParseInt(pm[3], 10, 64); w != int64(math.Ceil(float64(su.Throttle.Burst)/su.Throttle.Rate)) {
			t.Errorf("RateLimit-Policy w=%d, want burst/rate = %v", w, float64(su.Throttle.Burst)/su.Throttle.Rate)
		}
		if rem, _ := strconv.ParseInt(m[2], 10, 64); rem != int64(math.Floor(su.Throttle.Tokens)) || rem != 0 {
			t.Errorf("RateLimit r=%d, want the admin API's whole tokens %v, 0", rem, su.Throttle.Tokens)
		}
		// The next is throttled: the documented 429, and no RateLimit on it.
		r = s.send("key-demo", sendBody("inst_slow", recipient, okMessage, "transactional"))
		if r.status != 429 || r.header.Get("RateLimit") != "" || r.header.Get("Retry-After") == "" {
			t.Errorf("second send to inst_slow = %d %v %s, want 429 with Retry-After and no RateLimit", r.status, r.header, r.body)
		}
	})
}
