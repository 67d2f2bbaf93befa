package store

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/sendguard/sendguard/internal/abuse"
	"github.com/sendguard/sendguard/internal/limiter"
)

// TestReceiptsBounded: past MaxReceipts an instance keeps the newest
// receipts only (the oldest refund finds none, the newest is refunded), and
// receipts past ReceiptTTL go at the next take, so the memory a busy
// instance holds is bounded (about 400 bytes a receipt, logged).
func TestReceiptsBounded(t *testing.T) {
	ctx := context.Background()
	m := NewMemory(limiter.Calendar{})
	l := limiter.Limits{Daily: 1 << 40, Monthly: 1 << 40, Rate: 1e12, Burst: 1 << 40}
	now := time.Date(2026, 5, 8, 10, 0, 0, 0, time.UTC)
	id := func(i int) string { return fmt.Sprintf("01a21d62-26cb-738b-922e-%012d", i) }
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for i := range MaxReceipts + MaxReceipts/2 {
		if out, err := m.TakeSend(ctx, abuse.Send{Instance: "shop", Quota: l, Decision: id(i)}, now); err != nil || !out.Allowed() {
			t.Fatalf("TakeSend(%d) = %+v, %v", i, out, err)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	st := m.instances["shop"]
	if n := len(st.rc.m); n != MaxReceipts {
		t.Errorf("receipts kept = %d, want MaxReceipts (%d)", n, MaxReceipts)
	}
	per := (int64(after.HeapAlloc) - int64(before.HeapAlloc)) / MaxReceipts
	t.Logf("heap per receipt kept: %d bytes", per)
	if per > 1024 { // about 400
		t.Errorf("heap per receipt = %d bytes, want well under 1 KiB", per)
	}
	if q := len(st.rc.q); q != MaxReceipts || cap(st.rc.q) > 2*MaxReceipts {
		t.Errorf("expiry queue: %d entries, capacity %d; want %d, at most twice that", q, cap(st.rc.q), MaxReceipts)
	}
	if r, err := m.Refund(ctx, "shop", id(0), now); err != nil || r != RefundUnknown {
		t.Errorf("Refund(oldest, dropped) = %v, %v; want unknown", r, err)
	}
	if r, err := m.Refund(ctx, "shop", id(MaxReceipts+MaxReceipts/2-1), now); err != nil || r != Refunded {
		t.Errorf("Refund(newest) = %v, %v; want refunded", r, err)
	}
	later := now.Add(ReceiptTTL)
	if _, err := m.TakeSend(ctx, abuse.Send{Instance: "shop", Quota: l, Decision: "last"}, later); err != nil {
		t.Fatal(err)
	}
	if n, q := len(st.rc.m), len(st.rc.q); n != 1 || q != 1 {
		t.Errorf("after ReceiptTTL: %d receipts, %d queued; want 1, 1 (the last)", n, q)
	}
}
