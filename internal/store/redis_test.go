package store_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sendguard/sendguard/internal/abuse"
	"github.com/sendguard/sendguard/internal/limiter"
	"github.com/sendguard/sendguard/internal/store"
	"github.com/sendguard/sendguard/internal/store/redistest"
	"github.com/sendguard/sendguard/internal/store/storetest"
)

var prefixes atomic.Int64

// exactTimeout bounds the calls of the tests that count exactly: generous,
// so that a machine busy with other tests (and -race) does not fail a
// call that Redis would answer.
const exactTimeout = 5 * time.Second

func openRedis(t testing.TB, addr, prefix string, timeout time.Duration) *store.Redis {
	t.Helper()
	r, err := store.NewRedis(context.Background(), store.RedisOptions{Addr: addr, Prefix: prefix, Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestRedisContract(t *testing.T) {
	srv := redistest.Start(t)
	prefix := map[storetest.Store]string{}
	storetest.Run(t, storetest.Harness{PagesUnordered: true,
		Open: func(t *testing.T) storetest.Store {
			p := fmt.Sprintf("t%d:", prefixes.Add(1))
			r := openRedis(t, srv.Addr(), p, exactTimeout)
			prefix[r] = p
			return r
		},
		Reopen: func(t *testing.T, s storetest.Store) storetest.Store {
			s.Close()
			return openRedis(t, srv.Addr(), prefix[s], exactTimeout)
		},
	})
}

// TestRedisReplicasExact: two stores on one server split 1,000 concurrent
// takes on a 100/day limit: exactly 100 allowed.
func TestRedisReplicasExact(t *testing.T) {
	srv := redistest.Start(t)
	a, b := openRedis(t, srv.Addr(), "x:", exactTimeout), openRedis(t, srv.Addr(), "x:", exactTimeout)
	defer a.Close()
	defer b.Close()
	l := limiter.Limits{Daily: 100, Monthly: 2000, Rate: 1e6, Burst: 1e6}
	var allowed atomic.Int64
	var wg sync.WaitGroup
	for i := range 1000 {
		s := a
		if i%2 == 1 {
			s = b
		}
		wg.Go(func() {
			out, err := s.Take(context.Background(), "shop", l, storetest.Base)
			if err != nil {
				t.Error(err)
			} else if out.Verdict == limiter.Allowed {
				allowed.Add(1)
			}
		})
	}
	wg.Wait()
	if allowed.Load() != 100 {
		t.Errorf("two replicas allowed %d of 1000 on 100/day, want exactly 100", allowed.Load())
	}
}

// TestRedisReplicasFanOutExact: two stores on one server (two replicas)
// split 200 concurrent sends of one body to 200 recipients on a fan-out
// limit of 50: exactly 50 allowed, and the two share the violation count.
func TestRedisReplicasFanOutExact(t *testing.T) {
	srv := redistest.Start(t)
	a, b := openRedis(t, srv.Addr(), "fan:", exactTimeout), openRedis(t, srv.Addr(), "fan:", exactTimeout)
	defer a.Close()
	defer b.Close()
	l := abuse.Limits{FanOutWindow: 10 * time.Minute, FanOutThrottle: 50, FanOutBlock: 200, PairPerMinute: 10}
	quota := limiter.Limits{Daily: 1000, Monthly: 2000, Rate: 1e6, Burst: 1e6}
	var allowed atomic.Int64
	var wg sync.WaitGroup
	for i := range 200 {
		s := a
		if i%2 == 1 {
			s = b
		}
		wg.Go(func() {
			out, err := s.TakeSend(context.Background(), abuse.Send{Instance: "shop", Body: abuse.BodyKey("Hi Sara, your report is ready"),
				Phone: fmt.Sprintf("+96650100%04d", i), Abuse: l, Quota: quota}, storetest.Base)
			if err != nil {
				t.Error(err)
			} else if out.Allowed() {
				allowed.Add(1)
			}
		})
	}
	wg.Wait()
	if allowed.Load() != 50 {
		t.Errorf("two replicas allowed %d of 200 recipients of one body on a fan-out limit of 50, want exactly 50", allowed.Load())
	}
	ctx := context.Background()
	for i, s := range []*store.Redis{a, b, a} {
		if n, err := s.Violation(ctx, "shop", time.Hour, storetest.Base); err != nil || n != i+1 {
			t.Errorf("Violation %d through replica %d = %d, %v; want %d", i+1, i%2, n, err, i+1)
		}
	}
}

func eventually(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("never: %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// TestRedisInvalidation: a replica's cached "not suppressed" / "not paused"
// gives way as soon as another replica writes.
func TestRedisInvalidation(t *testing.T) {
	srv := redistest.Start(t)
	a, b := openRedis(t, srv.Addr(), "inv:", time.Second), openRedis(t, srv.Addr(), "inv:", time.Second)
	defer a.Close()
	defer b.Close()
	ctx := context.Background()
	get := func(f func() (bool, error)) bool {
		v, err := f()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	suppressed := func() bool { return get(func() (bool, error) { return a.Suppressed(ctx, "i", "+1") }) }
	paused := func() bool { return get(func() (bool, error) { return a.Paused(ctx, "i") }) }
	// Warm a's cache with the negatives (after its subscription is up).
	eventually(t, "replica a caching", func() bool { return !suppressed() && !paused() })

	if err := b.PutSuppression(ctx, store.Suppression{Instance: "i", Phone: "+1", Reason: "recipient_requested_stop"}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a sees b's suppression", suppressed)
	if err := b.SetPaused(ctx, "i", true); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a sees b's pause", paused)
	if err := b.DeleteSuppression(ctx, "i", "+1"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a sees b's delete", func() bool { return !suppressed() })
}

// TestRedisDownAndBack: with Redis gone every call fails, and returns
// (bounded by the timeout); after Redis returns the same store works again.
func TestRedisDownAndBack(t *testing.T) {
	srv := redistest.Start(t)
	r := openRedis(t, srv.Addr(), "down:", 100*time.Millisecond)
	defer r.Close()
	ctx := context.Background()
	l := limiter.Limits{Daily: 100, Monthly: 2000, Rate: 1e6, Burst: 1e6}
	if _, err := r.Take(ctx, "i", l, storetest.Base); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	calls := map[string]func() error{
		"Take":           func() error { _, err := r.Take(ctx, "i", l, storetest.Base); return err },
		"Suppressed":     func() error { _, err := r.Suppressed(ctx, "i", "+999"); return err },
		"PutSuppression": func() error { return r.PutSuppression(ctx, store.Suppression{Instance: "i", Phone: "+2"}) },
		"Lease":          func() error { _, err := r.Lease(ctx, storetest.Base, 1, time.Second); return err },
	}
	for name, call := range calls {
		done := make(chan error, 1)
		go func() { done <- call() }()
		select {
		case err := <-done:
			if err == nil {
				t.Errorf("%s with Redis down succeeded", name)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s with Redis down did not return", name)
		}
	}
	srv.Restart()
	eventually(t, "Take works again", func() bool {
		out, err := r.Take(ctx, "i", l, storetest.Base)
		return err == nil && out.Verdict == limiter.Allowed
	})
}

// BenchmarkRedisTake is decisions per second against a local redis-server:
// one round trip each, from many concurrent requests.
func BenchmarkRedisTake(b *testing.B) {
	srv := redistest.Start(b)
	r := openRedis(b, srv.Addr(), "bench:", time.Second)
	defer r.Close()
	l := limiter.Limits{Daily: 1 << 50, Monthly: 1 << 50, Rate: 1e12, Burst: 1 << 40}
	var n atomic.Int64
	b.SetParallelism(32)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		inst := fmt.Sprintf("inst-%d", n.Add(1)%16)
		for pb.Next() {
			if out, err := r.Take(context.Background(), inst, l, time.Now()); err != nil || out.Verdict != limiter.Allowed {
				b.Fatal(out, err)
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "decisions/s")
}

// BenchmarkRedisTakeSend is BenchmarkRedisTake with the abuse counters
// checked and counted in the same script.
func BenchmarkRedisTakeSend(b *testing.B) {
	srv := redistest.Start(b)
	r := openRedis(b, srv.Addr(), "bench:", time.Second)
	defer r.Close()
	benchTakeSend(b, r)
}

// benchTakeSend takes sends on r from 32×GOMAXPROCS goroutines over 16
// instances, every limit out of reach, and reports decisions/s.
func benchTakeSend(b *testing.B, r *store.Redis) {
	l := limiter.Limits{Daily: 1 << 50, Monthly: 1 << 50, Rate: 1e12, Burst: 1 << 40}
	a := abuse.Limits{FanOutWindow: 10 * time.Minute, FanOutThrottle: 1 << 30, FanOutBlock: 1 << 30, PairPerMinute: 1 << 30}
	var n atomic.Int64
	b.SetParallelism(32)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		s := abuse.Send{Instance: fmt.Sprintf("inst-%d", n.Add(1)%16), Body: abuse.BodyKey("Your order 1 has shipped"), Phone: "+966501234567", Abuse: a, Quota: l}
		for pb.Next() {
			if out, err := r.TakeSend(context.Background(), s, time.Now()); err != nil || !out.Allowed() {
				b.Fatal(out, err)
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "decisions/s")
}
