package decision

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sendguard/sendguard/internal/abuse"
	"github.com/sendguard/sendguard/internal/catalog"
	"github.com/sendguard/sendguard/internal/limiter"
	"github.com/sendguard/sendguard/internal/store"
)

// TestShadowMode: in shadow mode a denial is decided as usual (code, status,
// body) and marked Shadow, and it consumes nothing: no quota, no bucket
// token, no fan-out count, no violation toward the auto-pause. Each of the
// three sources (global, the instance's config, the run-time flag) turns it
// on; without one the same request is a plain denial.
func TestShadowMode(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		set  func(f *fixture)
	}{
		{"global", func(f *fixture) { f.d.opts.Shadow = true }},
		{"instance config", func(f *fixture) {
			shop := f.d.opts.Instances["shop"]
			shop.Shadow = true
			f.d.opts.Instances["shop"] = shop
		}},
		{"run time", func(f *fixture) {
			if err := f.store.SetPaused(ctx, store.ShadowKey("shop"), true); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			f.d.opts.Abuse = f.store
			var pauses int
			f.d.opts.AutoPause = AutoPause{Violations: 2, Window: time.Hour, OnPause: func(context.Context, Instance, int) error { pauses++; return nil }}
			shop := f.d.opts.Instances["shop"]
			shop.Limits = limiter.Limits{Daily: 2, Monthly: 100, Rate: 1000, Burst: 1000}
			shop.Abuse = abuse.Limits{FanOutWindow: 10 * time.Minute, FanOutThrottle: 3, FanOutBlock: 100, PairPerMinute: 100}
			f.d.opts.Instances["shop"] = shop
			// Late in the day, so that the next day's quota comes back
			// inside the fan-out window.
			*f.now = time.Date(2026, 5, 8, 23, 59, 50, 0, time.UTC)
			const msg = "Your order #2041 has been shipped."
			for i := range 2 {
				if res := f.decide(t, keyDemo, send("shop", fmt.Sprintf("+96650111%04d", i), msg, "transactional")); !res.Allowed || res.Shadow {
					t.Fatalf("send %d before shadow mode: %+v", i, res)
				}
			}
			tc.set(f)
			before, _ := f.store.Usage(ctx, "shop", shop.Limits, *f.now)

			wantShadow := func(what string, res Result, code catalog.Code) {
				t.Helper()
				e, _ := catalog.Lookup(code)
				if res.Allowed || !res.Shadow || res.Code != code || res.Status != e.Status || len(res.Body) == 0 {
					t.Errorf("Decide(%s) = allowed %v shadow %v %q %d, want shadow %q %d", what, res.Allowed, res.Shadow, res.Code, res.Status, code, e.Status)
				}
			}
			// The day is spent: five would-be denials to five more recipients.
			for i := range 5 {
				wantShadow("spent day", f.decide(t, keyDemo, send("shop", fmt.Sprintf("+96650122%04d", i), msg, "transactional")), catalog.DailyLimitExceeded)
			}
			// Violations: more than the auto-pause needs.
			for range 3 {
				wantShadow("marketing", f.decide(t, keyDemo, send("shop", recipient, msg, "marketing")), catalog.MessagePurposeNotAllowed)
				wantShadow("spam", f.decide(t, keyDemo, send("shop", recipient, spam, "transactional")), catalog.PolicyViolation)
			}
			wantShadow("suppressed", f.decide(t, keyDemo, send("shop", "+966500000000", msg, "transactional")), catalog.RecipientSuppressed)

			after, _ := f.store.Usage(ctx, "shop", shop.Limits, *f.now)
			if after != before {
				t.Errorf("usage after shadow denials = %+v, want %+v (unchanged)", after, before)
			}
			if pauses != 0 {
				t.Errorf("OnPause ran %d times for shadow violations", pauses)
			}
			if p, _ := f.store.Paused(ctx, "shop"); p {
				t.Error("shadow violations paused the instance")
			}
			n, _ := f.store.Violation(ctx, "shop", time.Hour, *f.now)
			if n != 1 { // this call's own
				t.Errorf("violations counted = %d, want none before this one", n-1)
			}
			// Shadow mode off, the next day, 20 s later: the fan-out of msg
			// counts the 2 real sends only, so a third recipient passes; had
			// the five shadow denials counted, it would be throttled.
			f.d.opts.Shadow = false
			shop.Shadow = false
			f.d.opts.Instances["shop"] = shop
			_ = f.store.SetPaused(ctx, store.ShadowKey("shop"), false)
			*f.now = f.now.Add(20 * time.Second)
			if res := f.decide(t, keyDemo, send("shop", "+966501330000", msg, "transactional")); !res.Allowed {
				t.Errorf("Decide(third recipient, next day) = %q %s, want allowed", res.Code, res.Body)
			}
			if res := f.decide(t, keyDemo, send("shop", recipient, spam, "transactional")); res.Code != catalog.PolicyViolation || res.Shadow {
				t.Errorf("Decide(spam, shadow off) = %q shadow %v, want a real policy_violation", res.Code, res.Shadow)
			}
		})
	}
}

// TestShadowModeOtherInstance: an instance's shadow mode leaves the others
// enforced, and a denial before the instance is known (a bad key) is
// shadowed only by the global mode.
func TestShadowModeOtherInstance(t *testing.T) {
	f := newFixture(t)
	_ = f.store.SetPaused(context.Background(), store.ShadowKey("shop"), true)
	if res := f.decide(t, keyDemo, send("slow", recipient, spam, "transactional")); res.Shadow || res.Code != catalog.PolicyViolation {
		t.Errorf("Decide(spam to another instance) = %q shadow %v, want enforced", res.Code, res.Shadow)
	}
	if res := f.decide(t, "Bearer nope", send("shop", recipient, spam, "transactional")); res.Shadow || res.Code != catalog.InvalidAPIKey {
		t.Errorf("Decide(bad key) = %q shadow %v, want enforced", res.Code, res.Shadow)
	}
	f.d.opts.Shadow = true
	if res := f.decide(t, "Bearer nope", send("shop", recipient, spam, "transactional")); !res.Shadow || res.Code != catalog.InvalidAPIKey {
		t.Errorf("Decide(bad key, global shadow) = %q shadow %v, want shadowed", res.Code, res.Shadow)
	}
}

// TestShadowModeConcurrent: would-be denials of multilingual messages from
// many goroutines at once (run under -race), with the run-time flag on.
// Each comes back shadowed with the code it would have had, and together
// they consume nothing and pause nothing.
func TestShadowModeConcurrent(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	f.d.opts.Abuse = f.store
	var pauses atomic.Int32
	f.d.opts.AutoPause = AutoPause{Violations: 2, Window: time.Hour, OnPause: func(context.Context, Instance, int) error { pauses.Add(1); return nil }}
	shop := f.d.opts.Instances["shop"]
	shop.Limits = limiter.Limits{Daily: 1, Monthly: 100, Rate: 1000, Burst: 1000}
	f.d.opts.Instances["shop"] = shop
	if res := f.decide(t, keyDemo, send("shop", "+966501110000", "Your order #2041 has been shipped.", "transactional")); !res.Allowed {
		t.Fatalf("the day's one send: %+v", res)
	}
	if err := f.store.SetPaused(ctx, store.ShadowKey("shop"), true); err != nil {
		t.Fatal(err)
	}
	before, _ := f.store.Usage(ctx, "shop", shop.Limits, *f.now)
	msgs := []struct{ text, purpose string }{
		{"تم شحن طلبك رقم ٤٤١٢، شكرًا لتسوقك معنا", "transactional"},
		{"आपका ऑर्डर #4412 भेज दिया गया है 📦", "transactional"},
		{"Sipariş̇iniz kargoya verildi 🚚👍🏽", "transactional"},
		{"خصم ٥٠٪ على كل شيء اليوم فقط!", "marketing"},
		{"आज ही 50% छूट पाएं 🎉", "marketing"},
	}
	const workers, each = 32, 8
	var wg sync.WaitGroup
	errs := make(chan string, workers*each)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				m := msgs[(w+i)%len(msgs)]
				b := send("shop", fmt.Sprintf("+9665012%02d%03d", w, i), m.text, m.purpose)
				res, err := f.d.Decide(ctx, Request{Method: "POST", Path: "/api/send-message", Authorization: keyDemo, Body: b})
				want := catalog.DailyLimitExceeded
				if m.purpose == "marketing" {
					want = catalog.MessagePurposeNotAllowed
				}
				if err != nil || res.Allowed || !res.Shadow || res.Code != want {
					errs <- fmt.Sprintf("Decide(%q, %s) = allowed %v shadow %v %q, %v; want shadow %q", m.text, m.purpose, res.Allowed, res.Shadow, res.Code, err, want)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	if after, _ := f.store.Usage(ctx, "shop", shop.Limits, *f.now); after != before {
		t.Errorf("usage after concurrent shadow denials = %+v, want %+v (unchanged)", after, before)
	}
	if p, _ := f.store.Paused(ctx, "shop"); p || pauses.Load() != 0 {
		t.Errorf("concurrent shadow violations paused the instance (paused %v, OnPause %d)", p, pauses.Load())
	}
}
