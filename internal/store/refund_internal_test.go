package store

import (
	"context"
	"fmt"
	"reflect"
	"runtime"
	"runtime/metrics"
	"strings"
	"testing"
	"time"

	"github.com/sendguard/sendguard/internal/abuse"
	"github.com/sendguard/sendguard/internal/limiter"
	"github.com/sendguard/sendguard/internal/noscan"
)

// TestReceiptsBounded: past MaxReceipts an instance keeps the newest
// receipts only (the oldest refund finds none, the newest is refunded), and
// receipts past ReceiptTTL go at the next take, so the memory a busy
// instance holds is bounded (250-290 bytes a receipt, logged).
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
	if n := st.rc.len(); n != MaxReceipts {
		t.Errorf("receipts kept = %d, want MaxReceipts (%d)", n, MaxReceipts)
	}
	per := (int64(after.HeapAlloc) - int64(before.HeapAlloc)) / MaxReceipts
	t.Logf("heap per receipt kept: %d bytes", per)
	if per > 1024 { // 250-290
		t.Errorf("heap per receipt = %d bytes, want well under 1 KiB", per)
	}
	if q := len(st.rc.uuids.q); q != MaxReceipts || cap(st.rc.uuids.q) > 2*MaxReceipts {
		t.Errorf("expiry queue: %d entries, capacity %d; want %d, at most twice that", q, cap(st.rc.uuids.q), MaxReceipts)
	}
	if r, err := m.Refund(ctx, "shop", id(0), now); err != nil || r != RefundUnknown {
		t.Errorf("Refund(oldest, dropped) = %v, %v; want unknown", r, err)
	}
	if r, err := m.Refund(ctx, "shop", id(MaxReceipts+MaxReceipts/2-1), now); err != nil || r != Refunded {
		t.Errorf("Refund(newest) = %v, %v; want refunded", r, err)
	}
	later := now.Add(ReceiptTTL)
	if _, err := m.TakeSend(ctx, abuse.Send{Instance: "shop", Quota: l, Decision: id(2 * MaxReceipts)}, later); err != nil {
		t.Fatal(err)
	}
	if n, q := st.rc.len(), len(st.rc.uuids.q); n != 1 || q != 1 {
		t.Errorf("after ReceiptTTL: %d receipts, %d queued; want 1, 1 (the last)", n, q)
	}
}

// TestReceiptHeapWithAbuse: a receipt of a send counted by the abuse
// tracker (as serve runs it: fan-out and pair limits on) holds its abuse
// undo as plain values, not a closure over the send, so the two minutes
// of receipts a busy instance keeps (the largest part of serve's live heap
// under load) stay small: under 300 bytes a receipt (it was about 560 with
// the closure and the send it kept), and no object of its own (it was
// one, and the id's text another, before receipts were values in a map
// keyed by the id's 16 bytes).
func TestReceiptHeapWithAbuse(t *testing.T) {
	for _, name := range []string{"memory", "embedded"} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			s, kept := receiptStore(t, name)
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
			runtime.KeepAlive(ids) // the test's; in both measures
			if k := kept(); k != n {
				t.Fatalf("receipts kept = %d, want %d", k, n)
			}
			per := (int64(after.HeapAlloc) - int64(before.HeapAlloc)) / (n - 1)
			objs := float64(int64(after.HeapObjects)-int64(before.HeapObjects)) / (n - 1)
			t.Logf("heap per receipt kept: %d bytes, %.3f objects", per, objs)
			if per > 300 || objs > 0.05 {
				t.Errorf("heap per receipt = %d bytes, %.3f objects; want at most 300 bytes and no object of its own (a value in the map)", per, objs)
			}
		})
	}
}

// scannableHeap is the heap the garbage collector scans (marks through),
// as of collections it runs first (the runtime fixes the figure at a
// cycle's start: the second one's is the first one's live heap).
func scannableHeap() int64 {
	runtime.GC()
	runtime.GC()
	s := []metrics.Sample{{Name: "/gc/scan/heap:bytes"}}
	metrics.Read(s)
	return int64(s[0].Value.Uint64())
}

// TestReceiptsNotScanned: the receipts a busy instance keeps for
// ReceiptTTL (two minutes of sends: the largest part of serve's live heap
// under load) hold no pointer, so the garbage collector, whose mark time
// is what the tail pays on 2 cores, does not scan them: the scannable heap
// grows by under 8 bytes a receipt (it grew by 110-130 when receipts were
// pointers to objects keyed by the id's text). Sends as serve makes them:
// decision ids from decision.NewID's form, abuse limits on, multilingual
// bodies and E.164 phones.
func TestReceiptsNotScanned(t *testing.T) {
	for _, name := range []string{"memory", "embedded"} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			s, kept := receiptStore(t, name)
			l := limiter.Limits{Daily: 1 << 40, Monthly: 1 << 40, Rate: 1e12, Burst: 1 << 40}
			al := abuse.Limits{FanOutWindow: time.Minute, FanOutBlock: 1 << 30, PairPerMinute: 1 << 30}
			bodies := []string{"طلبك رقم ١٢٣ في الطريق 🚚", "आपका ओटीपी 4821 है", "Siparişiniz yola çıktı", "Cafe\u0301 reçu 🇫🇷"}
			phones := []string{"+966501234567", "+919812345678", "+905321234567", "+123456789012345"}
			keys := make([][16]byte, len(bodies))
			for i, b := range bodies {
				keys[i] = abuse.BodyKey(b)
			}
			now := time.Date(2026, 5, 8, 10, 0, 0, 0, time.UTC)
			const n = 50_000
			ids := make([]string, n)
			for i := range ids {
				ids[i] = fmt.Sprintf("019e0f3c-%04x-7%03x-b%03x-%012x", i%0x10000, i%0x1000, i%0x1000, i*7919)
			}
			send := func(i int) {
				snd := abuse.Send{Instance: "shop", Body: keys[i%len(keys)], Phone: phones[i%len(phones)], Abuse: al, Quota: l, Decision: ids[i]}
				if out, err := s.TakeSend(ctx, snd, now); err != nil || !out.Allowed() {
					t.Fatalf("TakeSend(%d) = %+v, %v", i, out, err)
				}
			}
			for i := range len(keys) { // the instance, the tracker's entries
				send(i)
			}
			before := scannableHeap()
			for i := len(keys); i < n; i++ {
				send(i)
			}
			after := scannableHeap()
			runtime.KeepAlive(ids) // in both measures
			if k := kept(); k != n {
				t.Fatalf("receipts kept = %d, want %d", k, n)
			}
			per := float64(after-before) / float64(n-len(keys))
			t.Logf("scannable heap per receipt: %.1f bytes", per)
			if per > 8 {
				t.Errorf("scannable heap per receipt = %.1f bytes, want under 8 (none: receipts hold no pointer)", per)
			}
		})
	}
}

// TestReceiptsWhereTheyFit: a receipt is kept by its id's 16 bytes when
// the id is a UUID's canonical text and its phone fits a PackedUndo;
// otherwise (an id of any other text, a phone longer than E.164's 16
// bytes) under the id's text, with the whole undo: its refund still gives
// back the abuse counts (a recipient at its pair limit can be sent again).
// MaxReceipts bounds both kinds together, the oldest going first.
func TestReceiptsWhereTheyFit(t *testing.T) {
	ctx := context.Background()
	l := limiter.Limits{Daily: 1 << 40, Monthly: 1 << 40, Rate: 1e12, Burst: 1 << 40}
	al := abuse.Limits{PairPerMinute: 1}
	now := time.Date(2026, 5, 8, 10, 0, 0, 0, time.UTC)
	const canonical = "019e0f3c-8a1b-7c3d-9e4f-0123456789ab"
	for _, tc := range []struct {
		id, phone string
		packed    bool
	}{
		{canonical, "+966501234567", true},
		{canonical, "+123456789012345", true},                // 16 bytes
		{canonical, "+1234567890123456", false},              // 17 bytes
		{strings.ToUpper(canonical), "+905321234567", false}, // not canonical
		{"dec-١٢٣", "+919876543210", false},
	} {
		t.Run(tc.id+tc.phone, func(t *testing.T) {
			m := NewMemory(limiter.Calendar{})
			snd := abuse.Send{Instance: "दुकान", Body: abuse.BodyKey("Siparişiniz yola çıktı 🚚"), Phone: tc.phone, Abuse: al, Quota: l, Decision: tc.id}
			if out, err := m.TakeSend(ctx, snd, now); err != nil || !out.Allowed() {
				t.Fatalf("TakeSend = %+v, %v", out, err)
			}
			rc := &m.instances["दुकान"].rc
			if u, x := len(rc.uuids.m), len(rc.texts.m); (u == 1) != tc.packed || u+x != 1 {
				t.Errorf("receipts by uuid %d, by text %d; want by uuid: %v", u, x, tc.packed)
			}
			again := snd
			again.Decision = ""
			if out, err := m.TakeSend(ctx, again, now); err != nil || out.Verdict != abuse.Throttle {
				t.Fatalf("a second send to the recipient before the refund = %+v, %v; want throttled", out, err)
			}
			if r, err := m.Refund(ctx, "दुकान", tc.id, now); err != nil || r != Refunded {
				t.Fatalf("Refund = %v, %v", r, err)
			}
			if out, err := m.TakeSend(ctx, again, now); err != nil || !out.Allowed() {
				t.Errorf("a second send to the recipient after the refund = %+v, %v; want allowed", out, err)
			}
		})
	}
	t.Run("bound", func(t *testing.T) {
		var rs receipts
		uid := func(i int) string { return fmt.Sprintf("01a21d62-26cb-738b-922e-%012d", i) }
		text := func(i int) string { return fmt.Sprintf("dec-%d", i) }
		at := now.UnixNano()
		r := receipt{expires: at + int64(ReceiptTTL)}
		for i := range MaxReceipts + 10 { // every third one by text
			id := uid(i)
			if i%3 == 0 {
				id = text(i)
			}
			rs.put(id, r, abuse.Undo{}, at)
			r.expires++
		}
		if n := rs.len(); n != MaxReceipts {
			t.Fatalf("receipts kept = %d, want MaxReceipts (%d)", n, MaxReceipts)
		}
		for i, want := range map[int]RefundResult{0: RefundUnknown, 1: RefundUnknown, 9: RefundUnknown, 10: Refunded, 11: Refunded, 12: Refunded, MaxReceipts + 9: Refunded} {
			id := uid(i)
			if i%3 == 0 {
				id = text(i)
			}
			if _, _, got, _ := rs.refundable("दुकान", id, at); got != want {
				t.Errorf("refundable(%s) = %v, want %v", id, got, want)
			}
		}
	})
}

// TestReceiptTypesHoldNoPointer: what receipts keep for a decision id
// sendguard issued (the map's key and value, the queue's and the changed
// list's elements) holds no pointer, so the runtime allocates the map's
// groups and the slices' arrays in spans the garbage collector does not
// scan (TestReceiptsNotScanned measures it).
func TestReceiptTypesHoldNoPointer(t *testing.T) {
	var rs receipts
	for _, typ := range []reflect.Type{
		reflect.TypeOf(rs.uuids.m).Key(), reflect.TypeOf(rs.uuids.m).Elem(),
		reflect.TypeOf(rs.uuids.q).Elem(), reflect.TypeOf(rs.uuids.changed).Elem(),
	} {
		if noscan.HasPointers(typ) {
			t.Errorf("%v holds a pointer, want none", typ)
		}
	}
}

// sendTaker is the part of the memory and embedded stores the receipt
// heap tests drive.
type sendTaker interface {
	TakeSend(context.Context, abuse.Send, time.Time) (abuse.Outcome, error)
}

// receiptStore opens the store name ("memory" or "embedded", the latter
// without fsync and without checkpoints) and a function counting the
// receipts it keeps for the instance "shop".
func receiptStore(t *testing.T, name string) (sendTaker, func() int) {
	t.Helper()
	switch name {
	case "memory":
		m := NewMemory(limiter.Calendar{})
		return m, func() int { return m.instances["shop"].rc.len() }
	case "embedded":
		e, err := OpenEmbedded(t.TempDir()+"/sg.db", EmbeddedOptions{NoSync: true, CheckpointInterval: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { e.Close() })
		return e, func() int {
			e.mu.RLock()
			defer e.mu.RUnlock()
			st := e.quota["shop"]
			st.mu.Lock()
			defer st.mu.Unlock()
			return st.rc.len()
		}
	}
	t.Fatalf("receiptStore(%q): no such store", name)
	return nil, nil
}
