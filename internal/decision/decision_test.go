package decision

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sendguard/sendguard/internal/abuse"
	"github.com/sendguard/sendguard/internal/catalog"
	"github.com/sendguard/sendguard/internal/keys"
	"github.com/sendguard/sendguard/internal/limiter"
	"github.com/sendguard/sendguard/internal/phone"
	"github.com/sendguard/sendguard/internal/policy"
	"github.com/sendguard/sendguard/internal/store"
)

const (
	keyDemo    = "Bearer key-demo"
	keyRevoked = "Bearer key-revoked"
	keyOther   = "Bearer key-other"
	recipient  = "+966501234567"
	spam       = "YOU HAVE WON A PRIZE!!!!!"
)

var testNow = time.Date(2026, 5, 8, 10, 0, 0, 0, time.UTC)

type fixture struct {
	d     *Decider
	store *store.Memory
	now   *time.Time
}

// newFixture builds a Decider on the real embedded policies and a memory
// store: instance "shop" (starter-like 100/2000, generous bucket), "slow"
// (bucket of one), "paused", and "theirs" of another account.
func newFixture(t testing.TB) *fixture {
	t.Helper()
	ctx := context.Background()
	engine, err := policy.New(ctx, policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	phones, err := phone.New(phone.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(phones.Close)
	st := store.NewMemory(limiter.Calendar{})
	now := testNow
	starter := limiter.Limits{Daily: 100, Monthly: 2000, Rate: 1000, Burst: 100000}
	d, err := New(Options{
		Keys: keys.NewKeyring([]keys.Entry{
			{SHA256: keys.Hash("key-demo"), Key: keys.Key{ID: "k1", Account: "demo"}},
			{SHA256: keys.Hash("key-revoked"), Key: keys.Key{ID: "k2", Account: "demo", Revoked: true}},
			{SHA256: keys.Hash("key-other"), Key: keys.Key{ID: "k3", Account: "other"}},
		}),
		Instances: map[string]Instance{
			"shop":   {ID: "shop", Account: "demo", Plan: "starter", Limits: starter},
			"slow":   {ID: "slow", Account: "demo", Plan: "starter", Limits: limiter.Limits{Daily: 100, Monthly: 2000, Rate: 1, Burst: 1}},
			"paused": {ID: "paused", Account: "demo", Plan: "starter", Limits: starter},
			"theirs": {ID: "theirs", Account: "other", Plan: "starter", Limits: starter},
		},
		Policy: engine,
		State:  st,
		Phones: phones,
		Now:    func() time.Time { return now },
		NewID:  func() string { return "dec-1" },
	})
	if err != nil {
		t.Fatal(err)
	}
	_ = st.SetPaused(ctx, "paused", true)
	_ = st.PutSuppression(ctx, store.Suppression{Instance: "shop", Phone: "+966500000000", Reason: "recipient_requested_stop"})
	return &fixture{d: d, store: st, now: &now}
}

func body(fields map[string]any) []byte {
	b, _ := json.Marshal(fields)
	return b
}

func send(instance, phone, msg, purpose string) []byte {
	m := map[string]any{"instance_id": instance, "phone": phone, "message": msg}
	if purpose != "" {
		m["message_purpose"] = purpose
	}
	return body(m)
}

func (f *fixture) decide(t testing.TB, auth string, b []byte) Result {
	t.Helper()
	res, err := f.d.Decide(context.Background(), Request{Method: "POST", Path: "/api/send-message", Authorization: auth, Body: b})
	if err != nil {
		t.Fatalf("Decide(%s) error: %v", b, err)
	}
	return res
}

func TestDecisionOrder(t *testing.T) {
	tests := []struct {
		name string
		auth string
		body []byte
		want catalog.Code // "" = allowed
	}{
		{"allowed", keyDemo, send("shop", recipient, "Your order #2041 has been shipped.", "transactional"), ""},
		{"purpose trimmed and case-insensitive", keyDemo, send("shop", recipient, "Your code is 4411", "  Authentication "), ""},
		{"no key", "", send("shop", recipient, "hi", "transactional"), catalog.InvalidAPIKey},
		{"unknown key beats bad JSON", "Bearer nope", []byte("{"), catalog.InvalidAPIKey},
		{"revoked key beats bad JSON", keyRevoked, []byte("{"), catalog.RevokedAPIKey},
		{"bad JSON beats everything after", keyDemo, []byte(`{"instance_id":`), catalog.InvalidJSON},
		{"missing fields", keyDemo, body(map[string]any{"instance_id": "shop"}), catalog.ValidationError},
		{"validation beats unknown instance", keyDemo, send("nope", "12", "hi", "marketing"), catalog.ValidationError},
		{"unknown instance", keyDemo, send("nope", recipient, "hi", "transactional"), catalog.InvalidInstance},
		{"another account's instance", keyOther, send("shop", recipient, "hi", "transactional"), catalog.InvalidInstance},
		{"paused beats marketing", keyDemo, send("paused", recipient, spam, "marketing"), catalog.InstancePaused},
		{"paused beats missing purpose", keyDemo, send("paused", recipient, "hi", ""), catalog.InstancePaused},
		{"missing purpose", keyDemo, send("shop", recipient, "hi", ""), catalog.MessagePurposeRequired},
		{"unknown purpose", keyDemo, send("shop", recipient, "hi", "newsletter"), catalog.MessagePurposeRequired},
		{"non-string purpose", keyDemo, body(map[string]any{"instance_id": "shop", "phone": recipient, "message": "hi", "message_purpose": 7}), catalog.MessagePurposeRequired},
		{"marketing", keyDemo, send("shop", recipient, "hi", "marketing"), catalog.MessagePurposeNotAllowed},
		{"political beats suppression", keyDemo, send("shop", "+966500000000", "hi", "political"), catalog.MessagePurposeNotAllowed},
		{"suppressed", keyDemo, send("shop", "+966500000000", "Your order shipped", "support"), catalog.RecipientSuppressed},
		{"suppressed in another spelling", keyDemo, send("shop", "00966 50 000 0000", "Your order shipped", "support"), catalog.RecipientSuppressed},
		{"suppressed beats spam", keyDemo, send("shop", "+966500000000", spam, "transactional"), catalog.RecipientSuppressed},
		{"spam declared transactional", keyDemo, send("shop", recipient, spam, "transactional"), catalog.PolicyViolation},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			res := f.decide(t, tc.auth, tc.body)
			if res.Code != tc.want || res.Allowed != (tc.want == "") {
				t.Errorf("Decide(%s) = %q (allowed %v), want %q\nbody: %s", tc.body, res.Code, res.Allowed, tc.want, res.Body)
			}
			u, _ := f.store.Usage(context.Background(), "shop", limiter.Limits{Daily: 100, Monthly: 2000, Rate: 1, Burst: 1}, testNow)
			if wantUsed := int64(map[bool]int{true: 1}[tc.want == "" && res.Instance == "shop"]); u.DailyUsed != wantUsed {
				t.Errorf("daily used after %q = %d, want %d: a denial must consume nothing", tc.name, u.DailyUsed, wantUsed)
			}
		})
	}
}

func TestMonthlyBeforeDaily(t *testing.T) {
	f := newFixture(t)
	// Spend the month over 20 days of 100, then on day 21 the day is fresh
	// but the month is not: the answer must not say "try again tomorrow".
	end := time.Date(2026, 5, 28, 10, 0, 0, 0, time.UTC)
	for day := range 20 {
		*f.now = end.AddDate(0, 0, -20+day)
		for i := range 100 {
			if res := f.decide(t, keyDemo, send("shop", recipient, "Order shipped", "transactional")); !res.Allowed {
				t.Fatalf("day %d send %d: %s", day, i, res.Body)
			}
		}
	}
	*f.now = end
	res := f.decide(t, keyDemo, send("shop", recipient, "Order shipped", "transactional"))
	if res.Code != catalog.MonthlyLimitExceeded {
		t.Fatalf("Decide after the month is spent = %q, want monthly", res.Code)
	}
	want := `{"success":false,"error":"monthly_message_limit_exceeded","message":"Your monthly fair-use message limit has been reached. Please contact support for a reviewed higher limit.","details":{"action":"block","risk_score":90,"limit":2000,"used":2000}}`
	if string(res.Body) != want {
		t.Errorf("body = %s\nwant %s", res.Body, want)
	}
	retry := fmt.Sprint(int64(time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC).Sub(end).Seconds()))
	wantHeaders := []Header{
		{"retry-after", retry},
		{"ratelimit-policy", `"monthly";q=2000;w=2678400`},
		{"ratelimit", `"monthly";r=0;t=` + retry},
	}
	if diff := cmp.Diff(wantHeaders, res.Headers); diff != "" {
		t.Errorf("headers (-want +got):\n%s", diff)
	}
}

func TestDailyAndThrottle(t *testing.T) {
	f := newFixture(t)
	for range 100 {
		f.decide(t, keyDemo, send("shop", recipient, "Order shipped", "transactional"))
	}
	res := f.decide(t, keyDemo, send("shop", recipient, "Order shipped", "transactional"))
	if res.Code != catalog.DailyLimitExceeded || !bytes.Contains(res.Body, []byte(`"limit":100,"used":100}`)) {
		t.Errorf("101st send = %q %s", res.Code, res.Body)
	}
	if res.Headers[0] != (Header{"retry-after", "50400"}) { // 14h to midnight UTC
		t.Errorf("daily headers = %v", res.Headers)
	}

	if res := f.decide(t, keyDemo, send("slow", recipient, "Order shipped", "transactional")); !res.Allowed {
		t.Fatalf("first send on a bucket of one: %s", res.Body)
	}
	res = f.decide(t, keyDemo, send("slow", recipient, "Order shipped", "transactional"))
	if res.Code != catalog.SendingThrottled || res.Headers[0] != (Header{"retry-after", "1"}) {
		t.Errorf("second send = %q %v", res.Code, res.Headers)
	}
	*f.now = f.now.Add(time.Second)
	if res := f.decide(t, keyDemo, send("slow", recipient, "Order shipped", "transactional")); !res.Allowed {
		t.Errorf("send after the bucket refilled: %s", res.Body)
	}
}

func TestConcurrentSendsExactlyQuota(t *testing.T) {
	f := newFixture(t)
	var allowed, throttledOrOther atomic.Int64
	var wg sync.WaitGroup
	b := send("shop", recipient, "Your order #2041 has been shipped.", "transactional")
	for range 1000 {
		wg.Go(func() {
			res, err := f.d.Decide(context.Background(), Request{Method: "POST", Path: "/api/send-message", Authorization: keyDemo, Body: b})
			switch {
			case err != nil:
				t.Error(err)
			case res.Allowed:
				allowed.Add(1)
			case res.Code != catalog.DailyLimitExceeded:
				throttledOrOther.Add(1)
			}
		})
	}
	wg.Wait()
	if allowed.Load() != 100 || throttledOrOther.Load() != 0 {
		t.Errorf("1000 concurrent sends on a 100/day plan: %d allowed, %d other denials; want exactly 100 allowed", allowed.Load(), throttledOrOther.Load())
	}
}

func TestBadInput(t *testing.T) {
	deep := strings.Repeat("[", 1000) + strings.Repeat("]", 1000) // deep, yet well under the size limit
	huge := `{"instance_id":"shop","phone":"` + recipient + `","message":"` + strings.Repeat("a", 70000) + `","message_purpose":"transactional"}`
	long := `{"instance_id":"shop","phone":"` + recipient + `","message":"` + strings.Repeat("ب", 5000) + `","message_purpose":"transactional"}`
	tests := []struct {
		name    string
		auth    string
		body    string
		partial bool
		want    catalog.Code
		fields  string // expected "fields" object, for validation_error
	}{
		{"empty body", keyDemo, "", false, catalog.InvalidJSON, ""},
		{"not JSON", keyDemo, "hello", false, catalog.InvalidJSON, ""},
		{"truncated", keyDemo, `{"instance_id":"shop"`, false, catalog.InvalidJSON, ""},
		{"array", keyDemo, `[{"instance_id":"shop"}]`, false, catalog.InvalidJSON, ""},
		{"string", keyDemo, `"shop"`, false, catalog.InvalidJSON, ""},
		{"null", keyDemo, `null`, false, catalog.InvalidJSON, ""},
		{"trailing garbage", keyDemo, `{"instance_id":"shop"} x`, false, catalog.InvalidJSON, ""},
		{"invalid UTF-8", keyDemo, "{\"instance_id\":\"sh\xffop\",\"phone\":\"" + recipient + "\",\"message\":\"hi\"}", false, catalog.InvalidJSON, ""},
		{"bad escape", keyDemo, `{"instance_id":"sh\qop","phone":"x","message":"hi"}`, false, catalog.InvalidJSON, ""},
		{"deeply nested", keyDemo, deep, false, catalog.InvalidJSON, ""},
		{"nested in a field", keyDemo, `{"instance_id":"shop","x":` + deep + `}`, false, catalog.InvalidJSON, ""},
		{"over the size limit", keyDemo, huge, false, catalog.ValidationError, `{"body":"too_large"}`},
		{"cut by Envoy", keyDemo, `{"instance_id":"shop","phone":"`, true, catalog.ValidationError, `{"body":"too_large"}`},
		{"empty object", keyDemo, `{}`, false, catalog.ValidationError, `{"instance_id":"required","phone":"required","message":"required"}`},
		{"wrong types", keyDemo, `{"instance_id":12,"phone":["+1"],"message":{"a":1}}`, false, catalog.ValidationError, `{"instance_id":"must_be_string","phone":"must_be_string","message":"must_be_string"}`},
		{"nulls and blanks", keyDemo, `{"instance_id":null,"phone":"  ","message":""}`, false, catalog.ValidationError, `{"instance_id":"required","phone":"must_not_be_empty","message":"must_not_be_empty"}`},
		{"bad phone", keyDemo, `{"instance_id":"shop","phone":"+9665XXXXXXX","message":"hi"}`, false, catalog.ValidationError, `{"phone":"invalid_phone_number"}`},
		{"message too long", keyDemo, long, false, catalog.ValidationError, `{"message":"too_long"}`},
		{"bad auth with bad body", "Bearer", `[`, false, catalog.InvalidAPIKey, ""},
		{"basic auth", "Basic a2V5LWRlbW86", `{}`, false, catalog.InvalidAPIKey, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			res, err := f.d.Decide(context.Background(), Request{Method: "POST", Path: "/api/send-message", Authorization: tc.auth, Body: []byte(tc.body), PartialBody: tc.partial})
			if err != nil {
				t.Fatal(err)
			}
			if res.Code != tc.want {
				t.Fatalf("Decide(%.60q) = %q, want %q: %s", tc.body, res.Code, tc.want, res.Body)
			}
			var got struct {
				Details struct {
					Fields json.RawMessage `json:"fields"`
				} `json:"details"`
			}
			if err := json.Unmarshal(res.Body, &got); err != nil {
				t.Fatalf("body is not JSON: %s", res.Body)
			}
			if string(got.Details.Fields) != tc.fields {
				t.Errorf("details.fields = %s, want %s", got.Details.Fields, tc.fields)
			}
			u, _ := f.store.Usage(context.Background(), "shop", limiter.Limits{Daily: 100, Monthly: 2000, Rate: 1, Burst: 1}, testNow)
			if u.DailyUsed != 0 {
				t.Errorf("bad input consumed quota: %+v", u)
			}
		})
	}
}

func TestOtherTrafficPassesUntouched(t *testing.T) {
	f := newFixture(t)
	for _, r := range []Request{
		{Method: "GET", Path: "/api/send-message"},
		{Method: "POST", Path: "/api/messages"},
		{Method: "POST", Path: "/api/send-message/extra", Body: []byte("{")},
	} {
		res, err := f.d.Decide(context.Background(), r)
		if err != nil || !res.Allowed || res.Send {
			t.Errorf("Decide(%s %s) = %+v, %v; want passed through", r.Method, r.Path, res, err)
		}
	}
}

// TestSendPathVariants: spellings of the send path a lenient upstream would
// serve as the send path are decided, not passed through.
func TestSendPathVariants(t *testing.T) {
	f := newFixture(t)
	for _, p := range []string{"/api/send-message", "/API/Send-Message", "/api//send-message", "/api/send-message/",
		"/api/./send-message", "/x/../api/send-message", "/api/%73end-message", "api/send-message"} {
		for _, m := range []string{"POST", "post"} {
			res, err := f.d.Decide(context.Background(), Request{Method: m, Path: p, Authorization: "Bearer nope"})
			if err != nil || res.Code != catalog.InvalidAPIKey {
				t.Errorf("Decide(%s %s) = %q, %v; want invalid_api_key", m, p, res.Code, err)
			}
		}
	}
}

func FuzzDecide(f *testing.F) {
	fx := newFixture(f)
	f.Add([]byte(`{"instance_id":"shop","phone":"+966501234567","message":"hi","message_purpose":"support"}`))
	f.Add([]byte(`{"instance_id":"shop","phone":"0","message":"\u0000"}`))
	f.Add([]byte(`[[[{}]]]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		res, err := fx.d.Decide(context.Background(), Request{Method: "POST", Path: "/api/send-message", Authorization: keyDemo, Body: b})
		if err != nil {
			t.Fatal(err)
		}
		if !res.Allowed && !json.Valid(res.Body) {
			t.Fatalf("denial body is not JSON: %s", res.Body)
		}
	})
}

func TestFanOutPairAndAutoPause(t *testing.T) {
	f := newFixture(t)
	f.d.opts.Abuse = f.store
	var paused []string
	f.d.opts.AutoPause = AutoPause{Violations: 3, Window: time.Hour, OnPause: func(_ context.Context, inst Instance, n int) error {
		paused = append(paused, fmt.Sprint(inst.ID, n))
		return nil
	}}
	shop := f.d.opts.Instances["shop"]
	shop.Abuse = abuse.Limits{FanOutWindow: 10 * time.Minute, FanOutThrottle: 5, FanOutBlock: 8, PairPerMinute: 2}
	f.d.opts.Instances["shop"] = shop

	// One body, many recipients: 5 pass, the 6th is throttled.
	for i := range 6 {
		res := f.decide(t, keyDemo, send("shop", fmt.Sprintf("+96650100%04d", i), "Hi Sara, your code is ready", "transactional"))
		if i < 5 && !res.Allowed || i == 5 && res.Code != catalog.SendingThrottled {
			t.Fatalf("recipient %d: %q %s", i+1, res.Code, res.Body)
		}
	}
	// A recipient hammered: the third message in a minute is throttled.
	for i := range 3 {
		res := f.decide(t, keyDemo, send("shop", "+966501999999", fmt.Sprintf("Your order %d has shipped", 1000+i*7), "transactional"))
		if i < 2 && !res.Allowed || i == 2 && (res.Code != catalog.SendingThrottled || res.Headers[0].Key != "retry-after") {
			t.Fatalf("pair message %d: %q %v", i+1, res.Code, res.Headers)
		}
	}
	// Three violations pause the instance; the next send answers 423.
	for i := range 3 {
		res := f.decide(t, keyDemo, send("shop", recipient, "Your order has shipped", "marketing"))
		if res.Code != catalog.MessagePurposeNotAllowed || res.AutoPaused != (i == 2) {
			t.Fatalf("violation %d: %q paused %v", i+1, res.Code, res.AutoPaused)
		}
	}
	if len(paused) != 1 || paused[0] != "shop3" {
		t.Errorf("OnPause calls = %v", paused)
	}
	if res := f.decide(t, keyDemo, send("shop", recipient, "Your order has shipped", "transactional")); res.Code != catalog.InstancePaused {
		t.Errorf("after the auto-pause: %q", res.Code)
	}
}

// TestSlowLane: risky content draws from the slow lane, with and without
// the abuse counters (through the store's TakeSend).
func TestSlowLane(t *testing.T) {
	for _, withAbuse := range []bool{false, true} {
		t.Run(fmt.Sprint("abuse=", withAbuse), func(t *testing.T) {
			f := newFixture(t)
			shop := f.d.opts.Instances["shop"]
			shop.SlowLane = limiter.Limits{Daily: 1 << 40, Monthly: 1 << 40, Rate: 1.0 / 60, Burst: 1}
			if withAbuse {
				f.d.opts.Abuse = f.store
				shop.Abuse = abuse.Limits{FanOutWindow: 10 * time.Minute, FanOutThrottle: 50, FanOutBlock: 200, PairPerMinute: 10}
			}
			f.d.opts.Instances["shop"] = shop
			risky := "Big sale this weekend only, limited time" // allowed, above the throttle threshold
			first := f.decide(t, keyDemo, send("shop", recipient, risky, "transactional"))
			if !first.Allowed || first.RiskScore < 50 {
				t.Fatalf("first risky send: %q score %d", first.Code, first.RiskScore)
			}
			second := f.decide(t, keyDemo, send("shop", recipient, risky, "transactional"))
			if second.Code != catalog.SendingThrottled || second.Headers[0] != (Header{"retry-after", "60"}) {
				t.Errorf("second risky send: %q %v", second.Code, second.Headers)
			}
			if res := f.decide(t, keyDemo, send("shop", recipient, "Your order #2041 has been shipped.", "transactional")); !res.Allowed {
				t.Errorf("a plain send was held by the slow lane: %q", res.Code)
			}
			// The slow lane's refusal took no quota: two sends allowed.
			if u, _ := f.store.Usage(context.Background(), "shop", shop.Limits, *f.now); u.DailyUsed != 2 {
				t.Errorf("daily used = %d, want 2", u.DailyUsed)
			}
		})
	}
}

// Concurrent sends of one body cannot all pass a fan-out check none of
// them has counted yet, and a send refused later (here: its quota) does
// not count towards the fan-out.
func TestFanOutUnderConcurrency(t *testing.T) {
	f := newFixture(t)
	f.d.opts.Abuse = f.store
	shop := f.d.opts.Instances["shop"]
	shop.Abuse = abuse.Limits{FanOutWindow: 10 * time.Minute, FanOutThrottle: 50, FanOutBlock: 1000}
	shop.Limits = limiter.Limits{Daily: 1 << 40, Monthly: 1 << 40, Rate: 1e9, Burst: 1 << 30}
	f.d.opts.Instances["shop"] = shop
	var allowed atomic.Int64
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := f.d.Decide(context.Background(), Request{Method: "POST", Path: "/api/send-message", Authorization: keyDemo,
				Body: send("shop", fmt.Sprintf("+96650200%04d", i), "Hi Sara, your report is ready", "transactional")})
			if err != nil {
				t.Error(err)
				return
			}
			if res.Allowed {
				allowed.Add(1)
			} else if res.Code != catalog.SendingThrottled {
				t.Errorf("recipient %d: %q", i, res.Code)
			}
		}()
	}
	wg.Wait()
	if n := allowed.Load(); n != 50 {
		t.Errorf("200 concurrent recipients of one body: %d allowed, want exactly 50", n)
	}

	// Refused by the daily quota: the reservation is taken back.
	g := newFixture(t)
	g.d.opts.Abuse = g.store
	shop = g.d.opts.Instances["shop"]
	shop.Abuse = abuse.Limits{FanOutWindow: 10 * time.Minute, FanOutThrottle: 2, FanOutBlock: 100}
	shop.Limits = limiter.Limits{Daily: 1, Monthly: 100, Rate: 1e9, Burst: 1 << 30}
	g.d.opts.Instances["shop"] = shop
	for i, want := range []catalog.Code{"", catalog.DailyLimitExceeded, catalog.DailyLimitExceeded, catalog.DailyLimitExceeded} {
		res := g.decide(t, keyDemo, send("shop", fmt.Sprintf("+96650300%04d", i), "Hi Sara, your report is ready", "transactional"))
		if res.Code != want {
			t.Errorf("send %d: %q, want %q (a quota refusal counted towards the fan-out)", i+1, res.Code, want)
		}
	}
}
