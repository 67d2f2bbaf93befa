package store

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sendguard/sendguard/internal/limiter"
)

func TestTakeExactUnderConcurrency(t *testing.T) {
	m := NewMemory(limiter.Calendar{})
	l := limiter.Limits{Daily: 100, Monthly: 2000, Rate: 1000, Burst: 10000}
	now := time.Date(2026, 5, 8, 10, 0, 0, 0, time.UTC)
	var allowed atomic.Int64
	var wg sync.WaitGroup
	for range 1000 {
		wg.Go(func() {
			out, err := m.Take(context.Background(), "inst", l, now)
			if err != nil {
				t.Error(err)
			}
			if out.Verdict == limiter.Allowed {
				allowed.Add(1)
			}
		})
	}
	wg.Wait()
	if got := allowed.Load(); got != 100 {
		t.Errorf("allowed %d of 1000 concurrent takes on a 100/day plan, want 100", got)
	}
	u, _ := m.Usage(context.Background(), "inst", l, now)
	if u.DailyUsed != 100 || u.MonthlyUsed != 100 {
		t.Errorf("Usage = %+v, want 100 used", u)
	}
}

func TestSuppressionsAndPause(t *testing.T) {
	ctx := context.Background()
	m := NewMemory(limiter.Calendar{})
	if ok, _ := m.Suppressed(ctx, "i", "+966501234567"); ok {
		t.Fatal("Suppressed on an empty store")
	}
	s := Suppression{Instance: "i", Phone: "+966501234567", Reason: "manual_block"}
	if err := m.PutSuppression(ctx, s); err != nil {
		t.Fatal(err)
	}
	if ok, _ := m.Suppressed(ctx, "i", "+966501234567"); !ok {
		t.Error("Suppressed after Put = false")
	}
	if ok, _ := m.Suppressed(ctx, "other", "+966501234567"); ok {
		t.Error("suppression leaked to another instance")
	}
	if got, err := m.Suppression(ctx, "i", "+966501234567"); err != nil || got != s {
		t.Errorf("Suppression = %+v, %v", got, err)
	}
	if list, _ := m.Suppressions(ctx, "i"); len(list) != 1 {
		t.Errorf("Suppressions = %v", list)
	}
	if err := m.DeleteSuppression(ctx, "i", "+966501234567"); err != nil {
		t.Fatal(err)
	}
	if err := m.DeleteSuppression(ctx, "i", "+966501234567"); !errors.Is(err, ErrNotFound) {
		t.Errorf("second Delete = %v, want ErrNotFound", err)
	}
	if _, err := m.Suppression(ctx, "i", "+966501234567"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Suppression after Delete = %v, want ErrNotFound", err)
	}

	_ = m.SetPaused(ctx, "i", true)
	if p, _ := m.Paused(ctx, "i"); !p {
		t.Error("Paused after pause = false")
	}
	_ = m.SetPaused(ctx, "i", false)
	if p, _ := m.Paused(ctx, "i"); p {
		t.Error("Paused after resume = true")
	}
}
