package store

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

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
