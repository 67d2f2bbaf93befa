package store

import (
	"context"
	"encoding/hex"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sendguard/sendguard/internal/abuse"
	"github.com/sendguard/sendguard/internal/limiter"
	"github.com/sendguard/sendguard/internal/store/redistest"
)

// TestRedisCacheIsUsedAndInvalidated shows the cache is real: a write that
// bypasses the store (no invalidation) is not seen while the entry is
// cached, and an invalidation message makes it seen.
func TestRedisCacheIsUsedAndInvalidated(t *testing.T) {
	srv := redistest.Start(t)
	a, err := NewRedis(context.Background(), RedisOptions{Addr: srv.Addr(), Prefix: "raw:", Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	raw := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer raw.Close()
	ctx := context.Background()
	// Wait for the subscription, then cache "not suppressed".
	deadline := time.Now().Add(5 * time.Second)
	for !a.subbed.Load() {
		if time.Now().After(deadline) {
			t.Fatal("never subscribed")
		}
		time.Sleep(time.Millisecond)
	}
	if v, err := a.Suppressed(ctx, "i", "+1"); err != nil || v {
		t.Fatal(v, err)
	}
	a.cache.Wait() // ristretto applies sets asynchronously
	raw.HSet(ctx, "raw:{i}:sup", "+1", `{"instance_id":"i","phone":"+1"}`)
	if v, _ := a.Suppressed(ctx, "i", "+1"); v {
		t.Fatal("the write was seen without an invalidation: the cache is not in use")
	}
	raw.Publish(ctx, "raw:invalidate", "s:i")
	for v, _ := a.Suppressed(ctx, "i", "+1"); !v; v, _ = a.Suppressed(ctx, "i", "+1") {
		if time.Now().After(deadline) {
			t.Fatal("the invalidation was never seen")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestRedisAbuseKeysExpire: the abuse counters are sorted sets in the
// instance's slot that expire a window after their last write, so Redis
// holds only the last window's counts; a refused send writes no member.
func TestRedisAbuseKeysExpire(t *testing.T) {
	srv := redistest.Start(t)
	r, err := NewRedis(context.Background(), RedisOptions{Addr: srv.Addr(), Prefix: "ttl:", Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	raw := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer raw.Close()
	ctx := context.Background()
	l := abuse.Limits{FanOutWindow: 10 * time.Minute, FanOutThrottle: 1, PairPerMinute: 5}
	s := abuse.Send{Instance: "shop", Body: abuse.BodyKey("hello"), Phone: "+1", Abuse: l,
		Quota: limiter.Limits{Daily: 10, Monthly: 10, Rate: 1e6, Burst: 1e6}}
	now := time.Now()
	if out, err := r.TakeSend(ctx, s, now); err != nil || !out.Allowed() {
		t.Fatalf("TakeSend = %+v, %v", out, err)
	}
	s.Phone = "+2" // the 2nd recipient: throttled, nothing written for it
	if out, err := r.TakeSend(ctx, s, now); err != nil || out.Verdict != abuse.Throttle {
		t.Fatalf("TakeSend of a 2nd recipient = %+v, %v", out, err)
	}
	if _, err := r.Violation(ctx, "shop", time.Hour, now); err != nil {
		t.Fatal(err)
	}
	for key, max := range map[string]time.Duration{
		"ttl:{shop}:fan:" + hex.EncodeToString(s.Body[:]): 10 * time.Minute,
		"ttl:{shop}:pair:+1":                              time.Minute,
		"ttl:{shop}:viol":                                 time.Hour,
	} {
		ttl, err := raw.PTTL(ctx, key).Result()
		if err != nil || ttl <= max-time.Minute/2 || ttl > max {
			t.Errorf("PTTL(%s) = %v, %v; want about %v", key, ttl, err, max)
		}
	}
	if n, err := raw.Exists(ctx, "ttl:{shop}:pair:+2").Result(); err != nil || n != 0 {
		t.Errorf("a throttled send wrote its pair key: %d, %v", n, err)
	}
	if n, err := raw.ZCard(ctx, "ttl:{shop}:fan:"+hex.EncodeToString(s.Body[:])).Result(); err != nil || n != 1 {
		t.Errorf("fan-out members = %d, %v; want 1", n, err)
	}
}
