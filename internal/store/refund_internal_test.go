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
// instance holds is bounded (about 260 bytes a receipt, logged).
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
	if per > 1024 { // about 260
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

// TestReceiptHeapWithAbuse: a receipt of a send counted by the abuse
// tracker (as serve runs it: fan-out and pair limits on) holds its abuse
// undo as plain values, not a closure over the send, so the two minutes
// of receipts a busy instance keeps (the largest part of serve's live heap
// under load, which every GC cycle marks) stay small: under 300 bytes a
// receipt (it was about 560 with the closure and the send it kept).
func TestReceiptHeapWithAbuse(t *testing.T) {
	for _, name := range []string{"memory", "embedded"} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			var s interface {
				TakeSend(context.Context, abuse.Send, time.Time) (abuse.Outcome, error)
			}
			var kept func() int
			switch name {
			case "memory":
				m := NewMemory(limiter.Calendar{})
				s, kept = m, func() int { return len(m.instances["shop"].rc.m) }
			case "embedded":
				e, err := OpenEmbedded(t.TempDir()+"/sg.db", EmbeddedOptions{NoSync: true, CheckpointInterval: time.Hour})
				if err != nil {
					t.Fatal(err)
				}
				defer e.Close()
				s, kept = e, func() int {
					e.mu.RLock()
					defer e.mu.RUnlock()
					st := e.quota["shop"]
					st.mu.Lock()
					defer st.mu.Unlock()
					return len(st.rc.m)
				}
			}
			l := limiter.Limits{Daily: 1 << 40, Monthly: 1 << 40, Rate: 1e12, Burst: 1 << 40}
			// One body to one recipient again and again: the tracker's own
			// records do not grow (a repeated recipient moves), only receipts.
			al := abuse.Limits{FanOutWindow: time.Minute, FanOutBlock: 1 << 30, PairPerMinute: 1 << 30}
			body := abuse.BodyKey("طلبك رقم ١٢٣ في الطريق 🚚")
			now := time.Date(2026, 5, 8, 10, 0, 0, 0, time.UTC)
			const n = 20_000
			ids := make([]string, n)
			for i := range ids {
				ids[i] = fmt.Sprintf("01a21d62-26cb-738b-922e-%012d", i)
			}
			send := func(i int) {
				snd := abuse.Send{Instance: "shop", Body: body, Phone: "+905321234567", Abuse: al, Quota: l, Decision: ids[i]}
				if out, err := s.TakeSend(ctx, snd, now); err != nil || !out.Allowed() {
					t.Fatalf("TakeSend(%d) = %+v, %v", i, out, err)
				}
			}
			send(0) // the instance, the tracker's entries
			runtime.GC()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			for i := 1; i < n; i++ {
				send(i)
			}
			runtime.GC()
			runtime.ReadMemStats(&after)
			if k := kept(); k != n {
				t.Fatalf("receipts kept = %d, want %d", k, n)
			}
			per := (int64(after.HeapAlloc) - int64(before.HeapAlloc)) / (n - 1)
			objs := float64(int64(after.HeapObjects)-int64(before.HeapObjects)) / (n - 1)
			t.Logf("heap per receipt kept: %d bytes, %.2f objects", per, objs)
			if per > 300 || objs > 1.2 {
				t.Errorf("heap per receipt = %d bytes, %.2f objects; want at most 300 bytes and 1 object (the receipt)", per, objs)
			}
		})
	}
}
