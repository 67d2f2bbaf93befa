package decision

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sendguard/sendguard/internal/abuse"
	"github.com/sendguard/sendguard/internal/catalog"
	"github.com/sendguard/sendguard/internal/limiter"
	"github.com/sendguard/sendguard/internal/store"
	"github.com/sendguard/sendguard/internal/store/redistest"
)

// TestRedisOneScriptPerDecision: on Redis, a decision that reaches the
// quotas runs one script (the abuse counters, the slow lane and the quotas
// together), not one for the abuse counters and another for the quotas;
// and the fan-out limit holds through Decide.
func TestRedisOneScriptPerDecision(t *testing.T) {
	srv := redistest.Start(t)
	st, err := store.NewRedis(context.Background(), store.RedisOptions{Addr: srv.Addr(), Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	raw := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer raw.Close()
	f := newFixture(t)
	f.d.opts.State, f.d.opts.Abuse = st, st
	shop := f.d.opts.Instances["shop"]
	shop.Abuse = abuse.Limits{FanOutWindow: 10 * time.Minute, FanOutThrottle: 5, FanOutBlock: 20, PairPerMinute: 10}
	shop.SlowLane = limiter.Limits{Daily: 1 << 40, Monthly: 1 << 40, Rate: 1, Burst: 100}
	f.d.opts.Instances["shop"] = shop

	scripts := func() int {
		info := raw.Info(context.Background(), "commandstats").Val()
		n := 0
		for _, m := range regexp.MustCompile(`cmdstat_(?:evalsha|eval):calls=(\d+)`).FindAllStringSubmatch(info, -1) {
			c, _ := strconv.Atoi(m[1])
			n += c
		}
		return n
	}
	before := scripts()
	msgs := []string{"Hi Sara, your report is ready", "Big sale this weekend only, limited time"} // plain; risky (slow lane)
	for i := range 8 {
		msg := msgs[i%2]
		res := f.decide(t, keyDemo, send("shop", fmt.Sprintf("+96650100%04d", i), msg, "transactional"))
		// 4 of each body pass; none reaches the limit of 5.
		if !res.Allowed {
			t.Fatalf("Decide(recipient %d) = %q %s", i, res.Code, res.Body)
		}
	}
	if n := scripts() - before; n != 8 {
		t.Errorf("8 decisions ran %d scripts, want 8 (one each)", n)
	}
	for i := 8; i < 12; i++ {
		res := f.decide(t, keyDemo, send("shop", fmt.Sprintf("+96650100%04d", i), msgs[0], "transactional"))
		if want := i < 9; res.Allowed != want || !want && res.Code != catalog.SendingThrottled {
			t.Errorf("Decide(recipient %d of one body, limit 5) = %q, want allowed %v", i, res.Code, want)
		}
	}
}
