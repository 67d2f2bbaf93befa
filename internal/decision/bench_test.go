package decision

import (
	"context"
	"testing"

	"github.com/sendguard/sendguard/internal/limiter"
	"github.com/sendguard/sendguard/internal/policy"
)

// BenchmarkDecideAllow measures the whole allow path: key lookup, body
// parse and validation, phone (cached), signals, Rego, limiter.
func BenchmarkDecideAllow(b *testing.B) {
	f := newFixture(b)
	req := Request{Method: "POST", Path: "/api/send-message", Authorization: keyDemo,
		Body: send("shop", recipient, "Your order #2041 has been shipped.", "transactional")}
	ctx := context.Background()
	// Limits no benchmark run can reach, so every iteration is an allow.
	f.d.opts.Instances["shop"] = Instance{ID: "shop", Account: "demo", Plan: "starter",
		Limits: limiter.Limits{Daily: 1 << 62, Monthly: 1 << 62, Rate: 1e12, Burst: 1 << 40}}
	b.ReportAllocs()
	for b.Loop() {
		res, err := f.d.Decide(ctx, req)
		if err != nil || !res.Allowed {
			b.Fatalf("not allowed: %s %v", res.Body, err)
		}
	}
}

// BenchmarkDecideDenyPurpose measures a Rego denial (marketing).
func BenchmarkDecideDenyPurpose(b *testing.B) {
	f := newFixture(b)
	req := Request{Method: "POST", Path: "/api/send-message", Authorization: keyDemo,
		Body: send("shop", recipient, "Big sale today", "marketing")}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if res, _ := f.d.Decide(ctx, req); res.Allowed {
			b.Fatal("allowed")
		}
	}
}

// BenchmarkDecideDenyKey measures the cheapest denial (unknown key).
func BenchmarkDecideDenyKey(b *testing.B) {
	f := newFixture(b)
	req := Request{Method: "POST", Path: "/api/send-message", Authorization: "Bearer nope", Body: []byte("{}")}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if res, _ := f.d.Decide(ctx, req); res.Allowed {
			b.Fatal("allowed")
		}
	}
}

// BenchmarkDecideAllowUncached is the allow path with the policy memo off:
// what a request costs when its policy input has not been seen before.
func BenchmarkDecideAllowUncached(b *testing.B) {
	f := newFixture(b)
	engine, err := policy.New(context.Background(), policy.Options{CacheEntries: -1})
	if err != nil {
		b.Fatal(err)
	}
	f.d.opts.Policy = engine
	req := Request{Method: "POST", Path: "/api/send-message", Authorization: keyDemo,
		Body: send("shop", recipient, "Your order #2041 has been shipped.", "transactional")}
	ctx := context.Background()
	f.d.opts.Instances["shop"] = Instance{ID: "shop", Account: "demo", Plan: "starter",
		Limits: limiter.Limits{Daily: 1 << 62, Monthly: 1 << 62, Rate: 1e12, Burst: 1 << 40}}
	b.ReportAllocs()
	for b.Loop() {
		res, err := f.d.Decide(ctx, req)
		if err != nil || !res.Allowed {
			b.Fatalf("not allowed: %s %v", res.Body, err)
		}
	}
}
