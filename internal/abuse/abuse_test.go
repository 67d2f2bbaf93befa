package abuse

import (
	"context"
	"encoding/binary"
	"fmt"
	"reflect"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sendguard/sendguard/internal/limiter"
	"github.com/sendguard/sendguard/internal/noscan"
)

var t0 = time.Date(2026, 5, 8, 10, 0, 0, 0, time.UTC)

// allow is a quota store with room for everything.
func allow(context.Context, Send, time.Time) (Outcome, error) {
	return Outcome{Taken: limiter.Outcome{Verdict: limiter.Allowed}}, nil
}

func take(t testing.TB, tr *Tracker, body [16]byte, phone string, l Limits, now time.Time) Outcome {
	t.Helper()
	out, err := tr.TakeSend(context.Background(), Send{Instance: "i", Body: body, Phone: phone, Abuse: l}, now, allow)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestBodyKeyMasksNamesAndDigits(t *testing.T) {
	a := BodyKey("Hi Sara, your order 1234 has shipped")
	if a != BodyKey("Hi Omar, your order 98765 has shipped") || a != BodyKey("Hi Li,  your order 7 has shipped!") {
		t.Error("the same template gave different keys")
	}
	if a == BodyKey("Hi Sara, your order 1234 was cancelled") {
		t.Error("different bodies share a key")
	}
}

func TestFanOut(t *testing.T) {
	tr := New(Options{})
	l := Limits{FanOutWindow: 10 * time.Minute, FanOutThrottle: 50, FanOutBlock: 100}
	body := BodyKey("Big news for you")
	for i := range 50 {
		if out := take(t, tr, body, fmt.Sprintf("+96650000%04d", i), l, t0); !out.Allowed() {
			t.Fatalf("recipient %d = %+v", i+1, out)
		}
	}
	if out := take(t, tr, body, "+966509999999", l, t0.Add(time.Minute)); out.Verdict != Throttle || out.RetryAfter != 9*time.Minute {
		t.Errorf("51st recipient = %+v, want throttle for 9m", out)
	}
	if out := take(t, tr, body, "+966500000007", l, t0.Add(time.Minute)); !out.Allowed() {
		t.Errorf("repeat recipient = %+v", out)
	}
	if out := take(t, tr, BodyKey("Something else"), "+966509999999", l, t0); !out.Allowed() {
		t.Error("bodies share counters")
	}
	// The window passes (the repeat at +1m keeps one recipient in it).
	if out := take(t, tr, body, "+966509999999", l, t0.Add(10*time.Minute)); !out.Allowed() {
		t.Errorf("after the window = %+v", out)
	}
	blockOnly := Limits{FanOutWindow: time.Minute, FanOutBlock: 2}
	b2 := BodyKey("Another")
	take(t, tr, b2, "+1", blockOnly, t0)
	take(t, tr, b2, "+2", blockOnly, t0)
	if out := take(t, tr, b2, "+3", blockOnly, t0); out.Verdict != Block {
		t.Errorf("3rd recipient over a block of 2 = %+v, want block", out)
	}
}

func TestPairLimit(t *testing.T) {
	tr := New(Options{})
	l := Limits{PairPerMinute: 3}
	for i := range 3 {
		if out := take(t, tr, BodyKey(fmt.Sprint("m", i)), "+1", l, t0.Add(time.Duration(i)*time.Second)); !out.Allowed() {
			t.Fatal(out)
		}
	}
	if out := take(t, tr, BodyKey("m9"), "+1", l, t0.Add(10*time.Second)); out.Verdict != Throttle || out.RetryAfter != 50*time.Second {
		t.Errorf("4th in a minute = %+v, want throttle for 50s", out)
	}
	if out := take(t, tr, BodyKey("m9"), "+2", l, t0.Add(10*time.Second)); !out.Allowed() {
		t.Error("another recipient throttled")
	}
	if out := take(t, tr, BodyKey("m9"), "+1", l, t0.Add(61*time.Second)); !out.Allowed() {
		t.Error("still throttled after a minute")
	}
}

func TestViolations(t *testing.T) {
	ctx := context.Background()
	tr := New(Options{})
	for i := 1; i <= 3; i++ {
		if n, _ := tr.Violation(ctx, "i", 10*time.Minute, t0.Add(time.Duration(i)*time.Minute)); n != i {
			t.Fatalf("violation %d counted %d", i, n)
		}
	}
	if n, _ := tr.Violation(ctx, "i", 10*time.Minute, t0.Add(12*time.Minute)); n != 2 {
		t.Errorf("window: %d, want 2 (the first two fell out)", n)
	}
	tr.ResetViolations(ctx, "i")
	if n, _ := tr.Violation(ctx, "i", 10*time.Minute, t0.Add(13*time.Minute)); n != 1 {
		t.Errorf("after reset: %d", n)
	}
}

// TestBounded: every send a new body to a new recipient, all in one
// window; what the tracker keeps never passes its cap.
func TestBounded(t *testing.T) {
	tr := New(Options{MaxRecords: 1000, SketchWidth: 1 << 16})
	l := Limits{FanOutWindow: 10 * time.Minute, FanOutThrottle: 50, FanOutBlock: 200, PairPerMinute: 10}
	for i := range 100_000 {
		var body [16]byte
		binary.LittleEndian.PutUint64(body[:], uint64(i))
		take(t, tr, body, "+9665"+strconv.Itoa(10_000_000+i), l, t0.Add(time.Duration(i)*time.Millisecond))
		if n := tr.Len(); n > 1000 {
			t.Fatalf("after %d sends the tracker keeps %d, over its cap of 1000", i+1, n)
		}
	}
}

// TestEvictionFailsSafe: a body whose entry is pushed out again and again by
// other traffic still stops at its limit, exactly (the sketch is sized so
// that its collisions do not come into it here).
func TestEvictionFailsSafe(t *testing.T) {
	tr := New(Options{MaxRecords: 64, SketchWidth: 1 << 16})
	l := Limits{FanOutWindow: 10 * time.Minute, FanOutThrottle: 50, FanOutBlock: 200, PairPerMinute: 10}
	body := BodyKey("Hi Sara, your prize is waiting")
	allowed, noise := 0, 0
	for i := range 80 {
		now := t0.Add(time.Duration(i) * time.Second)
		if take(t, tr, body, fmt.Sprintf("+96650100%04d", i), l, now).Allowed() {
			allowed++
		}
		if i%10 == 3 { // an old recipient again: not a new one, if remembered
			take(t, tr, body, "+966501000000", l, now)
		}
		for range 40 { // enough other sends to push the body out
			var other [16]byte
			binary.LittleEndian.PutUint64(other[:], uint64(noise))
			take(t, tr, other, "+1555"+strconv.Itoa(1_000_000+noise), l, now)
			noise++
		}
	}
	if allowed > 50 {
		t.Errorf("%d distinct recipients of one body allowed past evictions, limit 50", allowed)
	}
	if allowed < 45 {
		t.Errorf("only %d of the first 50 recipients allowed: the sketch overcounts more than expected", allowed)
	}
	// The window passes: the sketch forgets (within two windows).
	if out := take(t, tr, body, "+966509999999", l, t0.Add(25*time.Minute)); !out.Allowed() {
		t.Errorf("two windows later = %+v, want allowed", out)
	}
}

// TestUndo: a send the quota refuses is not counted.
func TestUndo(t *testing.T) {
	tr := New(Options{})
	l := Limits{FanOutWindow: time.Minute, FanOutThrottle: 1, PairPerMinute: 1}
	body := BodyKey("hello")
	out, err := tr.TakeSend(context.Background(), Send{Instance: "i", Body: body, Phone: "+1", Abuse: l}, t0, func(ctx context.Context, s Send, now time.Time) (Outcome, error) {
		return TakeQuota(ctx, refuse{}, s, now)
	})
	if err != nil || out.Allowed() || out.Taken.Verdict != limiter.DailyExceeded {
		t.Fatalf("TakeSend on a spent quota = %+v, %v", out, err)
	}
	if n := tr.Len(); n != 2 { // the two entries, no records
		t.Errorf("Len after an undone send = %d, want 2", n)
	}
	if e, r := counts(tr); int64(e+r) != tr.kept.Load() {
		t.Errorf("kept after an undone send = %d, want the %d entries and %d records", tr.kept.Load(), e, r)
	}
	if out := take(t, tr, body, "+2", l, t0); !out.Allowed() {
		t.Errorf("the refused send was counted: %+v", out)
	}
}

// counts returns the entries and the records tr keeps, over its shards.
func counts(tr *Tracker) (entries, records int) {
	for i := range tr.shards {
		sh := &tr.shards[i]
		sh.mu.Lock()
		entries, records = entries+len(sh.entries), records+sh.records
		sh.mu.Unlock()
	}
	return entries, records
}

type refuse struct{}

func (refuse) Take(context.Context, string, limiter.Limits, time.Time) (limiter.Outcome, error) {
	return limiter.Outcome{Verdict: limiter.DailyExceeded}, nil
}

func heapMiB() float64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return float64(m.HeapInuse) / (1 << 20)
}

// BenchmarkTrackerMillionPairs sends a million distinct recipient × body
// pairs within one window and reports the heap the tracker holds after
// 10,000, 100,000 and 1,000,000 sends: flat once at its cap (which 25,000
// such sends reach).
func BenchmarkTrackerMillionPairs(b *testing.B) {
	l := Limits{FanOutWindow: 10 * time.Minute, FanOutThrottle: 50, FanOutBlock: 200, PairPerMinute: 10}
	ctx := context.Background()
	for b.Loop() {
		base := heapMiB()
		tr := New(Options{})
		var at10k, at100k float64
		for i := range 1_000_000 {
			var body [16]byte
			binary.LittleEndian.PutUint64(body[:], uint64(i))
			s := Send{Instance: "shop", Body: body, Phone: "+9665" + strconv.Itoa(10_000_000+i), Abuse: l}
			if _, err := tr.TakeSend(ctx, s, t0.Add(time.Duration(i)*100*time.Microsecond), allow); err != nil {
				b.Fatal(err)
			}
			switch i + 1 {
			case 10_000:
				at10k = heapMiB() - base
			case 100_000:
				at100k = heapMiB() - base
			}
		}
		b.ReportMetric(at10k, "heap-MiB-10k")
		b.ReportMetric(at100k, "heap-MiB-100k")
		b.ReportMetric(heapMiB()-base, "heap-MiB-1M")
		runtime.KeepAlive(tr)
	}
}

// TestTakeSendAllocations: checking and counting a send allocates nothing
// once its body and recipient are tracked (its undo is a value, not a
// closure that moved the send to the heap: 2 allocations a decision, and
// one of them kept with the receipt). Multilingual keys, from 8 goroutines
// under -race too.
func TestTakeSendAllocations(t *testing.T) {
	tr := New(Options{})
	l := Limits{FanOutWindow: time.Minute, FanOutBlock: 1 << 30}
	snd := Send{Instance: "inst_çağrı", Body: BodyKey("आपका ऑर्डर 12 भेज दिया गया 📦"), Phone: "+919812345678", Abuse: l}
	ctx := context.Background()
	undone := func(ctx context.Context, s Send, now time.Time, u Undo) (Outcome, error) {
		return Outcome{Taken: limiter.Outcome{Verdict: limiter.Allowed}}, nil
	}
	if _, err := tr.TakeSendUndo(ctx, snd, t0, undone); err != nil { // the entries
		t.Fatal(err)
	}
	n := testing.AllocsPerRun(200, func() {
		if out, err := tr.TakeSendUndo(ctx, snd, t0, undone); err != nil || !out.Allowed() {
			t.Fatalf("TakeSendUndo(%+v) = %+v, %v", snd, out, err)
		}
	})
	if n != 0 {
		t.Errorf("TakeSendUndo of a tracked repeat send: %.1f allocations, want 0", n)
	}
}

// TestUndoValueConcurrent: Undo values kept by many goroutines and applied
// later take back exactly their own sends' records (multilingual bodies and
// recipients), as the closures they replace did.
func TestUndoValueConcurrent(t *testing.T) {
	tr := New(Options{})
	l := Limits{FanOutWindow: time.Minute, FanOutThrottle: 1 << 20, PairPerMinute: 1 << 20}
	texts := []string{"طلبك في الطريق", "आपका ओटीपी 4821 है", "Siparişiniz yola çıktı", "Your order 🚚✨", "Cafe\u0301 reçu 🇫🇷"}
	phones := []string{"+966501234567", "+919812345678", "+905321234567", "+14155550100", "+33612345678"}
	const workers, each = 8, 200
	undos := make([][]Undo, workers)
	done := make(chan int)
	for w := range workers {
		go func() {
			for i := range each {
				s := Send{Instance: "i", Body: BodyKey(texts[(w+i)%len(texts)]), Phone: phones[i%len(phones)] + strconv.Itoa(w), Abuse: l}
				_, err := tr.TakeSendUndo(context.Background(), s, t0.Add(time.Duration(i)*time.Millisecond), func(_ context.Context, _ Send, _ time.Time, u Undo) (Outcome, error) {
					undos[w] = append(undos[w], u)
					return Outcome{Taken: limiter.Outcome{Verdict: limiter.Allowed}}, nil
				})
				if err != nil {
					t.Error(err)
				}
			}
			done <- w
		}()
	}
	for range workers {
		<-done
	}
	entries, records := counts(tr)
	if records == 0 {
		t.Fatalf("records after %d sends = 0", workers*each)
	}
	for w := range workers {
		go func() {
			// Newest first, as refunds of a repeat recipient's sends would
			// have to come to leave nothing (an older send's record was
			// moved to the newer one's time; undoing the newer puts it back).
			for i := len(undos[w]) - 1; i >= 0; i-- {
				tr.Undo(undos[w][i])
			}
			done <- w
		}()
	}
	for range workers {
		<-done
	}
	if got := tr.Len(); got != entries {
		t.Errorf("Len after every send was undone = %d, want %d (the entries, no records)", got, entries)
	}
	tr.Undo(Undo{}) // the zero Undo: nothing
	if got := tr.Len(); got != entries {
		t.Errorf("Len after the zero Undo = %d, want %d", got, entries)
	}
}

// BenchmarkTrackerAtRate replays the shared harness's shape (980
// recipients of 588 instances, each sent again and again) at 1,000, 2,000
// and 5,000 allowed sends a second of simulated time, after 70 s of it:
// under the default MaxRecords (about 48 pair records a second of rate
// are live, so 100,000 is reached at about 2,000/s), at it, and over it,
// where every send folds the LRU tail into the sketch and its entry is
// made again at its next send. The whole call runs under its instance's
// shard's lock (one lock for every decision before the tracker was sharded).
func BenchmarkTrackerAtRate(b *testing.B) {
	for _, rate := range []int{1000, 2000, 5000} {
		b.Run(strconv.Itoa(rate), func(b *testing.B) {
			tr := New(Options{})
			l := Limits{FanOutWindow: 10 * time.Minute, FanOutThrottle: 1e9, FanOutBlock: 1e9, PairPerMinute: 1e9}
			var sends []Send
			for i := range 980 {
				sends = append(sends, Send{Instance: fmt.Sprintf("inst_%05d", i%588), Body: BodyKey(fmt.Sprintf("Your order %d is ready", i%942)), Phone: fmt.Sprintf("+9665%08d", i), Abuse: l})
			}
			step := time.Second / time.Duration(rate)
			now := t0
			for i := range rate * 70 {
				now = now.Add(step)
				tr.TakeSend(context.Background(), sends[i%len(sends)], now, allow)
			}
			b.ResetTimer()
			for i := range b.N {
				now = now.Add(step)
				tr.TakeSend(context.Background(), sends[i%len(sends)], now, allow)
			}
			b.StopTimer()
			b.ReportMetric(float64(tr.Len()), "kept")
		})
	}
}

// BenchmarkTrackerParallel sends from every P (b.RunParallel) over 1,000
// instances, each with its own bodies and recipients (multilingual), in the
// harness's shape: what one lock for every decision costs against a lock
// per shard of instances.
func BenchmarkTrackerParallel(b *testing.B) {
	tr := New(Options{})
	l := Limits{FanOutWindow: 10 * time.Minute, FanOutThrottle: 1e9, FanOutBlock: 1e9, PairPerMinute: 1e9}
	texts := []string{"طلبك %d في الطريق", "आपका ओटीपी %d है", "Siparişiniz %d yola çıktı", "Your order %d 🚚✨", "Cafe\u0301 reçu %d 🇫🇷"}
	var sends []Send
	for i := range 4000 {
		sends = append(sends, Send{Instance: fmt.Sprintf("inst_%05d", i%1000), Body: BodyKey(fmt.Sprintf(texts[i%len(texts)], i%997)), Phone: fmt.Sprintf("+9665%08d", i), Abuse: l})
	}
	for i, s := range sends {
		tr.TakeSend(context.Background(), s, t0.Add(time.Duration(i)*time.Millisecond), allow)
	}
	var next atomic.Int64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := next.Add(1)
			// 2,000 sends a second of simulated time.
			tr.TakeSend(context.Background(), sends[i%int64(len(sends))], t0.Add(4*time.Second+time.Duration(i)*500*time.Microsecond), allow)
		}
	})
}

// TestPackedUndo: an Undo packed without its instance and unpacked with it
// is the same Undo and takes back its send's records (multilingual
// instances, E.164 phones of up to 16 bytes); a phone longer than that
// does not pack (the store keeps the Undo itself); the zero PackedUndo is
// the zero Undo; and a PackedUndo holds no pointer, so the garbage
// collector does not scan the receipts that keep one.
func TestPackedUndo(t *testing.T) {
	if p := reflect.TypeFor[PackedUndo](); noscan.HasPointers(p) {
		t.Errorf("%v holds pointers, want none", p)
	}
	l := Limits{FanOutWindow: time.Minute, FanOutThrottle: 1 << 20, PairPerMinute: 1 << 20}
	for _, tc := range []struct {
		instance, phone, body string
		packs                 bool
	}{
		{"shop", "+966501234567", "طلبك في الطريق", true},
		{"दुकान", "+919812345678", "आपका ओटीपी 4821 है", true},
		{"dükkân-İ", "+905321234567", "Siparişiniz yola çıktı 🚚", true},
		{"cafe\u0301", "+123456789012345", "Cafe\u0301 reçu 🇫🇷", true}, // 16 bytes: the longest E.164
		{"🛒store", "+1234567890123456", "Your order ✨", false},         // 17 bytes
		{"shop", "", "no phone", true},
	} {
		t.Run(tc.instance+tc.phone, func(t *testing.T) {
			tr := New(Options{})
			var u Undo
			s := Send{Instance: tc.instance, Body: BodyKey(tc.body), Phone: tc.phone, Abuse: l}
			if _, err := tr.TakeSendUndo(context.Background(), s, t0, func(_ context.Context, _ Send, _ time.Time, got Undo) (Outcome, error) {
				u = got
				return Outcome{Taken: limiter.Outcome{Verdict: limiter.Allowed}}, nil
			}); err != nil {
				t.Fatal(err)
			}
			p, ok := u.Pack()
			if ok != tc.packs {
				t.Fatalf("Pack(phone %q) ok = %v, want %v", tc.phone, ok, tc.packs)
			}
			if !ok {
				return
			}
			if back := p.Unpack(tc.instance); back != u {
				t.Fatalf("Unpack(Pack(%+v)) = %+v", u, back)
			}
			entries, _ := counts(tr)
			tr.Undo(p.Unpack(tc.instance))
			if got := tr.Len(); got != entries {
				t.Errorf("Len after the unpacked Undo = %d, want %d (the entries, no records)", got, entries)
			}
		})
	}
	if u := (PackedUndo{}).Unpack("shop"); u != (Undo{}) {
		t.Errorf("PackedUndo{}.Unpack = %+v, want the zero Undo", u)
	}
}

// TestMapShrinksAfterBurst: after a burst of unique recipients has left
// its window and been evicted, a shard's map is remade, so the buckets of
// the evicted entries go back to the heap instead of being scanned by
// every garbage collection (a Go map never shrinks: 100,000 pair entries
// left about 10 MB behind, against about 1 MB now).
func TestMapShrinksAfterBurst(t *testing.T) {
	tr := New(Options{MaxRecords: 1 << 30, Shards: 1})
	l := Limits{PairPerMinute: 1 << 30}
	var body [16]byte
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	before := heap()
	const burst = 100_000
	for i := range burst {
		take(t, tr, body, "+9665"+strconv.Itoa(10_000_000+i), l, t0)
	}
	during := heap()
	// One recipient, again and again, after the burst's window: each send
	// evicts a few of the burst's entries.
	later := t0.Add(2 * time.Minute)
	for i := range burst / 2 {
		take(t, tr, body, "+966500000000", l, later.Add(time.Duration(i)*time.Millisecond))
	}
	sh := &tr.shards[0]
	if n := len(sh.entries); n > 16 {
		t.Fatalf("after the burst's window, %d entries kept, want the few of now", n)
	}
	after := heap()
	t.Logf("heap: %d before, %d with the burst, %d after it was evicted", before, during, after)
	if after > before+4<<20 {
		t.Errorf("heap %d bytes after the burst was evicted, %d before it: the map kept the burst's buckets", after, before)
	}
	runtime.KeepAlive(tr)
}
