package decision

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/sendguard/sendguard/internal/limiter"
)

// TestRateLimitHeadersOnAllow: with Options.RateLimitHeaders an allowed
// send answers the RateLimit-Policy and RateLimit fields of the tightest
// limit after it, on both take paths (with and without the abuse counters);
// without the option an allowed send has no headers at all.
func TestRateLimitHeadersOnAllow(t *testing.T) {
	for _, withAbuse := range []bool{false, true} {
		t.Run(fmt.Sprint("abuse=", withAbuse), func(t *testing.T) {
			f := newFixture(t)
			if withAbuse {
				f.d.opts.Abuse = f.store
			}
			msg := send("shop", recipient, "Your order #2041 has been shipped.", "transactional")
			if res := f.decide(t, keyDemo, msg); !res.Allowed || res.Headers != nil {
				t.Fatalf("Decide(%s) without the option = allowed %v, headers %v; want allowed, none", msg, res.Allowed, res.Headers)
			}
			f.d.opts.RateLimitHeaders = true
			var res Result
			for range 42 { // 43 used of 100 today
				res = f.decide(t, keyDemo, msg)
			}
			want := []Header{ // 10:00 UTC: 14h to the next day
				{"ratelimit-policy", `"daily";q=100;w=86400`},
				{"ratelimit", `"daily";r=57;t=50400`},
			}
			if diff := cmp.Diff(want, res.Headers); !res.Allowed || diff != "" {
				t.Errorf("Decide(%s) = allowed %v, headers (-want +got):\n%s", msg, res.Allowed, diff)
			}
			// A bucket of one (rate 1/s): the token bucket is the tightest.
			slow := send("slow", recipient, "Your order #2041 has been shipped.", "transactional")
			res = f.decide(t, keyDemo, slow)
			want = []Header{
				{"ratelimit-policy", `"throttle";q=1;w=1`},
				{"ratelimit", `"throttle";r=0;t=1`},
			}
			if diff := cmp.Diff(want, res.Headers); !res.Allowed || diff != "" {
				t.Errorf("Decide(%s) = allowed %v, headers (-want +got):\n%s", slow, res.Allowed, diff)
			}
			// A denial keeps its own headers, unchanged by the option.
			res = f.decide(t, keyDemo, slow)
			if diff := cmp.Diff([]Header{{"retry-after", "1"}}, res.Headers); res.Allowed || diff != "" {
				t.Errorf("Decide(%s) on an empty bucket = allowed %v, headers (-want +got):\n%s", slow, res.Allowed, diff)
			}
		})
	}
}

// TestRateLimitHeadersConcurrent: concurrent multilingual sends each get a
// remaining count that is the limit less the sends the store counted,
// every count appearing once.
func TestRateLimitHeadersConcurrent(t *testing.T) {
	f := newFixture(t)
	f.d.opts.RateLimitHeaders = true
	msgs := []string{"طلبك رقم 2041 تم شحنه", "आपका ऑर्डर #2041 भेज दिया गया है", "Siparişiniz #2041 kargoya verildi 📦", "Commande n° 2041 expédiée ✅", "Ваш заказ 2041 отправлен"}
	var (
		mu   sync.Mutex
		seen = map[string]bool{}
		wg   sync.WaitGroup
	)
	for i := range 60 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b := send("shop", recipient, msgs[i%len(msgs)], "transactional")
			res, err := f.d.Decide(context.Background(), Request{Method: "POST", Path: "/api/send-message", Authorization: keyDemo, Body: b})
			if err != nil || !res.Allowed || len(res.Headers) != 2 {
				t.Errorf("Decide(%s) = %+v, %v; want allowed with 2 headers", b, res, err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if seen[res.Headers[1].Value] {
				t.Errorf("Decide(%s): %s answered twice", b, res.Headers[1].Value)
			}
			seen[res.Headers[1].Value] = true
		}()
	}
	wg.Wait()
	for r := 40; r < 100; r++ {
		if v := fmt.Sprintf(`"daily";r=%d;t=50400`, r); !seen[v] {
			t.Errorf("no send answered %s", v)
		}
	}
	u, _ := f.store.Usage(context.Background(), "shop", limiter.Limits{Daily: 100, Monthly: 2000, Rate: 1000, Burst: 100000}, testNow)
	if u.DailyUsed != 60 {
		t.Errorf("daily used = %d, want 60", u.DailyUsed)
	}
}
