package abuse

import (
	"context"
	"encoding/binary"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sendguard/sendguard/internal/limiter"
)

// instances are multilingual instance ids, enough to fall on every shard.
func instances(n int) []string {
	stems := []string{"متجر_", "दुकान_", "çağrı_", "shop🛒_", "cafe\u0301_"}
	out := make([]string, n)
	for i := range out {
		out[i] = stems[i%len(stems)] + strconv.Itoa(i)
	}
	return out
}

var bodies = []string{"طلبك %d في الطريق", "आपका ओटीपी %d है", "Siparişiniz %d yola çıktı", "Your order %d 🚚✨", "Cafe\u0301 reçu %d 🇫🇷"}

// distinct returns the body key of i's body: BodyKey masks digits, so
// bodies told apart by a number would be one body.
func distinct(i int) [16]byte {
	var k [16]byte
	binary.LittleEndian.PutUint64(k[:], uint64(i)+1)
	return k
}

// TestShardsDoNotContend: a send, an undo and a violation of an instance
// on another shard go through while one instance's shard lock is held;
// the held shard is left untouched. With the one lock of before, they
// waited for it.
func TestShardsDoNotContend(t *testing.T) {
	tr := New(Options{})
	names := instances(64)
	a, b := names[0], ""
	for _, n := range names[1:] {
		if tr.shard(n) != tr.shard(a) {
			b = n
			break
		}
	}
	if b == "" {
		t.Fatalf("64 instances on %d shards all fell on the shard of %q", len(tr.shards), a)
	}
	held := tr.shard(a)
	held.mu.Lock()
	l := Limits{FanOutWindow: time.Minute, FanOutThrottle: 5, PairPerMinute: 5}
	done := make(chan error, 1)
	go func() {
		s := Send{Instance: b, Body: BodyKey("आपका ऑर्डर 12 भेज दिया गया 📦"), Phone: "+919812345678", Abuse: l}
		out, err := tr.TakeSendUndo(context.Background(), s, t0, func(_ context.Context, _ Send, _ time.Time, u Undo) (Outcome, error) {
			tr.Undo(u)
			return Outcome{Taken: limiter.Outcome{Verdict: limiter.Allowed}}, nil
		})
		if err == nil && !out.Allowed() {
			err = fmt.Errorf("TakeSendUndo(%q) = %+v, want allowed", b, out)
		}
		if err == nil {
			_, err = tr.Violation(context.Background(), b, time.Minute, t0)
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Minute): // a hang, not a timing: it waits for the held lock
		t.Fatalf("a send of %q waited for the lock of %q's shard", b, a)
	}
	if len(held.entries) != 0 || len(held.viol) != 0 || held.records != 0 {
		t.Errorf("the held shard of %q was written by a send of %q", a, b)
	}
	held.mu.Unlock()
}

// TestExactPerInstanceConcurrent: many goroutines send for many instances
// at once, multilingual bodies, recipients and instance ids; each instance
// gets exactly its limits, with sends its quota refuses not counted.
func TestExactPerInstanceConcurrent(t *testing.T) {
	const workers, each = 16, 10
	names := instances(64)
	cases := []struct {
		name  string
		l     Limits
		phone func(w, i int) string
		want  int
	}{
		{"fan-out", Limits{FanOutWindow: 10 * time.Minute, FanOutThrottle: 50, FanOutBlock: 60}, func(w, i int) string { return fmt.Sprintf("+9665%04d%04d", w, i) }, 50},
		{"pair", Limits{PairPerMinute: 7}, func(w, i int) string { return "+919812345678" }, 7},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tr := New(Options{})
			allowed := make([]atomic.Int64, len(names))
			var wg sync.WaitGroup
			for w := range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range each {
						for n, inst := range names {
							s := Send{Instance: inst, Body: BodyKey(fmt.Sprintf(bodies[n%len(bodies)], n)), Phone: c.phone(w, i), Abuse: c.l}
							// The quota refuses every third send: it must not count.
							refused := (w*each+i)%3 == 0
							out, err := tr.TakeSend(context.Background(), s, t0.Add(time.Duration(i)*time.Millisecond), func(ctx context.Context, s Send, now time.Time) (Outcome, error) {
								if refused {
									return TakeQuota(ctx, refuse{}, s, now)
								}
								return allow(ctx, s, now)
							})
							if err != nil {
								t.Error(err)
								return
							}
							if out.Allowed() {
								allowed[n].Add(1)
							} else if out.Verdict == OK && !refused {
								t.Errorf("TakeSend(%q) = %+v without an abuse verdict or a refusing quota", inst, out)
							}
						}
					}
				}()
			}
			wg.Wait()
			for n, inst := range names {
				if got := allowed[n].Load(); got != int64(c.want) {
					t.Errorf("instance %q: %d sends allowed, want exactly %d", inst, got, c.want)
				}
			}
			if e, r := counts(tr); int64(e+r) != tr.kept.Load() {
				t.Errorf("kept = %d, want the %d entries and %d records", tr.kept.Load(), e, r)
			}
		})
	}
}

// TestBoundConcurrent: every send a new body to a new recipient, from many
// goroutines over many instances (every shard); once they are done the
// tracker keeps no more than its cap in total, and its count of what it
// keeps is what its shards hold.
func TestBoundConcurrent(t *testing.T) {
	const max, workers, each = 2000, 8, 1500
	tr := New(Options{MaxRecords: max, SketchWidth: 1 << 12})
	names := instances(200)
	l := Limits{FanOutWindow: 10 * time.Minute, FanOutThrottle: 50, FanOutBlock: 200, PairPerMinute: 10}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				k := w*each + i
				s := Send{Instance: names[k%len(names)], Body: distinct(k), Phone: "+9665" + strconv.Itoa(10_000_000+k), Abuse: l}
				if _, err := tr.TakeSend(context.Background(), s, t0.Add(time.Duration(i)*time.Millisecond), allow); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if n := tr.Len(); n > max {
		t.Errorf("after %d sends from %d goroutines the tracker keeps %d, over its cap of %d", workers*each, workers, n, max)
	}
	if e, r := counts(tr); int64(e+r) != tr.kept.Load() {
		t.Errorf("kept = %d, want the %d entries and %d records", tr.kept.Load(), e, r)
	}
	if !tr.folded.Load() {
		t.Error("nothing was folded into the sketch past the cap")
	}
}

// TestOneInstanceUsesTheWholeCap: MaxRecords bounds the total, not each
// shard, so one instance's sends are kept exactly up to the whole cap.
func TestOneInstanceUsesTheWholeCap(t *testing.T) {
	tr := New(Options{MaxRecords: 1000})
	l := Limits{FanOutWindow: 10 * time.Minute, FanOutThrottle: 1 << 20, PairPerMinute: 10}
	for i := range 250 { // four units a send: 1,000
		s := Send{Instance: "متجر", Body: distinct(i), Phone: "+9665" + strconv.Itoa(10_000_000+i), Abuse: l}
		if out, err := tr.TakeSend(context.Background(), s, t0, allow); err != nil || !out.Allowed() {
			t.Fatalf("TakeSend(%d) = %+v, %v", i, out, err)
		}
	}
	if n := tr.Len(); n != 1000 {
		t.Errorf("Len after 250 new pairs of one instance = %d, want 1000 (nothing folded)", n)
	}
	if tr.folded.Load() {
		t.Error("one instance within the total cap was folded into the sketch")
	}
}

// TestMapShrinksConcurrent: goroutines send bursts of unique recipients
// (multilingual bodies) to the instances of one shard, then, past the
// burst's window, keep sending to one recipient each, so the shard's map is
// remade (TestMapShrinksAfterBurst) while others send through the same
// lock. Under -race; afterwards the map holds the few entries of now, and
// the tracker's count of what it keeps is what its shard holds.
func TestMapShrinksConcurrent(t *testing.T) {
	const workers, burst = 8, 3000
	tr := New(Options{MaxRecords: 1 << 30, Shards: 1})
	l := Limits{FanOutWindow: time.Minute, FanOutBlock: 1 << 30, PairPerMinute: 1 << 30}
	bodies := []string{"طلبك رقم %d في الطريق 🚚", "आपका ऑर्डर %d भेज दिया गया है", "Siparişiniz %d yola çıktı", "Cafe\u0301 %d prêt 👍🏽"}
	names := instances(workers)
	send := func(w int, phone string, now time.Time) {
		s := Send{Instance: names[w], Body: BodyKey(fmt.Sprintf(bodies[w%len(bodies)], w)), Phone: phone, Abuse: l}
		if _, err := tr.TakeSend(context.Background(), s, now, allow); err != nil {
			t.Error(err)
		}
	}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range burst {
				send(w, "+9665"+strconv.Itoa(10_000_000+w*burst+i), t0)
			}
		})
	}
	wg.Wait()
	sh := &tr.shards[0]
	sh.mu.Lock()
	peak := sh.peak
	sh.mu.Unlock()
	if peak < workers*burst {
		t.Fatalf("peak %d entries after the bursts, want at least %d", peak, workers*burst)
	}
	later := t0.Add(2 * time.Minute)
	for w := range workers {
		wg.Go(func() {
			for i := range burst {
				send(w, "+966500000000", later.Add(time.Duration(i)*time.Millisecond))
			}
		})
	}
	wg.Wait()
	sh.mu.Lock()
	n, peak := len(sh.entries), sh.peak
	sh.mu.Unlock()
	if n > 4*workers || peak >= minShrink {
		t.Errorf("after the bursts' window: %d entries, peak %d; want a few, in a remade map", n, peak)
	}
	if e, r := counts(tr); int64(e+r) != tr.kept.Load() {
		t.Errorf("kept = %d, want the %d entries and %d records", tr.kept.Load(), e, r)
	}
}
