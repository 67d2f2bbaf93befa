// Package storetest is the contract every sendguard state store keeps, as a
// test suite in the style of testing/slogtest: an implementation's tests call
// Run with a way to open a fresh store (and, for durable stores, to reopen
// it), and the suite checks quotas, suppressions, pauses, the outbox and
// the abuse counters.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sendguard/sendguard/internal/abuse"
	"github.com/sendguard/sendguard/internal/limiter"
	"github.com/sendguard/sendguard/internal/store"
)

// Store is the whole state interface. sendguard's consumers each declare
// the part they use (the decision: Take, Paused, Suppressed, TakeSend and
// the violations; the admin API:
// Usage, suppressions and pauses; the event sender: the outbox).
type Store interface {
	Take(ctx context.Context, instance string, l limiter.Limits, now time.Time) (limiter.Outcome, error)
	TakeSend(ctx context.Context, s abuse.Send, now time.Time) (abuse.Outcome, error)
	Violation(ctx context.Context, instance string, window time.Duration, now time.Time) (int, error)
	ResetViolations(ctx context.Context, instance string) error
	Usage(ctx context.Context, instance string, l limiter.Limits, now time.Time) (limiter.Usage, error)
	Refund(ctx context.Context, instance, decisionID string, now time.Time) (store.RefundResult, error)

	Suppressed(ctx context.Context, instance, phone string) (bool, error)
	Suppression(ctx context.Context, instance, phone string) (store.Suppression, error)
	PutSuppression(ctx context.Context, s store.Suppression) error
	AddSuppressions(ctx context.Context, sups []store.Suppression) (int, error)
	DeleteSuppression(ctx context.Context, instance, phone string) error
	Suppressions(ctx context.Context, instance string) ([]store.Suppression, error)
	SuppressionPage(ctx context.Context, instance, cursor string, limit int) ([]store.Suppression, string, error)

	Paused(ctx context.Context, instance string) (bool, error)
	SetPaused(ctx context.Context, instance string, paused bool) error

	Append(ctx context.Context, e store.Event) error
	Lease(ctx context.Context, now time.Time, n int, d time.Duration) ([]store.Event, error)
	Ack(ctx context.Context, id string) error
	Release(ctx context.Context, id string, at time.Time) error
	Pending(ctx context.Context) (int, error)

	Close() error
}

// Harness opens stores for the suite. Open returns a fresh, empty store
// whose calendar is UTC. Reopen, when not nil, closes s and opens the same
// durable state again; the suite then checks that nothing is lost.
type Harness struct {
	Open   func(t *testing.T) Store
	Reopen func(t *testing.T, s Store) Store
	// PagesUnordered: SuppressionPage returns pages in the store's own
	// order, about limit long, a phone possibly twice (Redis's HSCAN),
	// instead of ordered by phone and at most limit long.
	PagesUnordered bool
}

// Base is the instant the suite's clocks start from: mid-morning on the 8th
// of a 31-day month.
var Base = time.Date(2026, 5, 8, 10, 0, 0, 0, time.UTC)

// Run runs the contract.
func Run(t *testing.T, h Harness) {
	// The refund cases run with decision ids as serve issues them (UUIDs)
	// and as any other text.
	byIDs := func(fn func(*testing.T, Harness, ids)) func(*testing.T, Harness) {
		return func(t *testing.T, h Harness) {
			t.Run("uuid", func(t *testing.T) { fn(t, h, uuidIDs) })
			t.Run("text", func(t *testing.T) { fn(t, h, textIDs) })
		}
	}
	tests := []struct {
		name string
		fn   func(t *testing.T, h Harness)
	}{
		{"TakeExactUnderConcurrency", takeExact},
		{"TakeOrderAndNoConsumptionOnDenial", takeOrder},
		{"TakeThrottleRefills", takeThrottle},
		{"TakePeriodsRollOver", takeRollover},
		{"InstancesAreIndependent", independent},
		{"Suppressions", suppressions},
		{"AddSuppressions", addSuppressions},
		{"AddSuppressionsRefusesInvalid", addInvalid},
		{"AddSuppressionsConcurrent", addConcurrent},
		{"SuppressionPages", suppressionPages},
		{"SuppressionPagesConcurrent", suppressionPagesConcurrent},
		{"Pause", pause},
		{"RefundGivesBackWhatWasTaken", byIDs(refundGivesBack)},
		{"RefundIsKeyedByInstanceAndID", byIDs(refundForeign)},
		{"RefundAfterRollover", byIDs(refundRollover)},
		{"RefundNeverOverfillsTheBucket", byIDs(refundBurst)},
		{"RefundAbuseCounts", byIDs(refundAbuse)},
		{"RefundExpires", byIDs(refundExpires)},
		{"RefundConcurrent", byIDs(refundConcurrent)},
		{"RefundDurable", byIDs(refundDurable)},
		{"RefundIDIsExact", refundIDIsExact},
		{"OutboxLeaseAckRelease", outbox},
		{"OutboxLeaseIsExclusive", outboxExclusive},
		{"Durable", durable},
		{"AbuseFanOut", abuseFanOut},
		{"AbuseFanOutBlock", abuseFanOutBlock},
		{"AbusePairPerMinute", abusePair},
		{"AbuseCountsOnlyAllowedSends", abuseOnlyAllowed},
		{"AbuseSlowLane", abuseSlowLane},
		{"AbuseExactUnderConcurrency", abuseExact},
		{"AbuseViolations", abuseViolations},
	}
	for _, tt := range tests {
		if (tt.name == "Durable" || tt.name == "RefundDurable") && h.Reopen == nil {
			continue // the memory store forgets by design
		}
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, h) })
	}
}

var ctx = context.Background()

func open(t *testing.T, h Harness) Store {
	t.Helper()
	s := h.Open(t)
	t.Cleanup(func() { s.Close() })
	return s
}

var generous = limiter.Limits{Daily: 100, Monthly: 2000, Rate: 1e6, Burst: 1e6}

func must[T any](t *testing.T) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func takeExact(t *testing.T, h Harness) {
	s := open(t, h)
	var allowed, daily, other atomic.Int64
	var wg sync.WaitGroup
	for i := range 1000 {
		wg.Go(func() {
			out, err := s.Take(ctx, "shop", generous, Base.Add(time.Duration(i)*time.Millisecond))
			switch {
			case err != nil:
				t.Error(err)
			case out.Verdict == limiter.Allowed:
				allowed.Add(1)
			case out.Verdict == limiter.DailyExceeded:
				daily.Add(1)
			default:
				other.Add(1)
			}
		})
	}
	wg.Wait()
	if allowed.Load() != 100 || daily.Load() != 900 || other.Load() != 0 {
		t.Errorf("1000 concurrent takes on 100/day: %d allowed, %d daily, %d other", allowed.Load(), daily.Load(), other.Load())
	}
	u := must[limiter.Usage](t)(s.Usage(ctx, "shop", generous, Base))
	if u.DailyUsed != 100 || u.MonthlyUsed != 100 {
		t.Errorf("usage after = %+v", u)
	}
}

func takeOrder(t *testing.T, h Harness) {
	s := open(t, h)
	l := limiter.Limits{Daily: 2, Monthly: 3, Rate: 1e6, Burst: 1e6}
	day1, day2 := Base, Base.AddDate(0, 0, 1)
	for i := range 2 {
		if out := must[limiter.Outcome](t)(s.Take(ctx, "i", l, day1)); out.Verdict != limiter.Allowed || out.Used != int64(i+1) {
			t.Fatalf("take %d = %+v", i, out)
		}
	}
	out := must[limiter.Outcome](t)(s.Take(ctx, "i", l, day1))
	if out.Verdict != limiter.DailyExceeded || out.Limit != 2 || out.Used != 2 || out.RetryAfter != 14*time.Hour || out.Window != 24*time.Hour {
		t.Errorf("third take = %+v, want daily exceeded 2/2 retry 14h", out)
	}
	if out := must[limiter.Outcome](t)(s.Take(ctx, "i", l, day2)); out.Verdict != limiter.Allowed {
		t.Fatalf("next day = %+v", out)
	}
	// The month is spent and the day is not: monthly answers.
	out = must[limiter.Outcome](t)(s.Take(ctx, "i", l, day2))
	if out.Verdict != limiter.MonthlyExceeded || out.Limit != 3 || out.Used != 3 {
		t.Errorf("month spent = %+v", out)
	}
	// Denials consumed nothing.
	u := must[limiter.Usage](t)(s.Usage(ctx, "i", l, day2))
	if u.DailyUsed != 1 || u.MonthlyUsed != 3 {
		t.Errorf("usage = %+v, want day 1 month 3", u)
	}
}

func takeThrottle(t *testing.T, h Harness) {
	s := open(t, h)
	l := limiter.Limits{Daily: 100, Monthly: 100, Rate: 2, Burst: 2}
	for range 2 {
		if out := must[limiter.Outcome](t)(s.Take(ctx, "i", l, Base)); out.Verdict != limiter.Allowed {
			t.Fatalf("burst take = %+v", out)
		}
	}
	out := must[limiter.Outcome](t)(s.Take(ctx, "i", l, Base))
	if out.Verdict != limiter.Throttled || out.RetryAfter != 500*time.Millisecond {
		t.Errorf("third take = %+v, want throttled for 0.5s", out)
	}
	if u := must[limiter.Usage](t)(s.Usage(ctx, "i", l, Base)); u.DailyUsed != 2 {
		t.Errorf("a throttled take consumed quota: %+v", u)
	}
	if out := must[limiter.Outcome](t)(s.Take(ctx, "i", l, Base.Add(500*time.Millisecond))); out.Verdict != limiter.Allowed {
		t.Errorf("after refill = %+v", out)
	}
}

func takeRollover(t *testing.T, h Harness) {
	s := open(t, h)
	l := limiter.Limits{Daily: 1, Monthly: 1, Rate: 1e6, Burst: 1e6}
	endOfMonth := time.Date(2026, 5, 31, 23, 59, 59, 0, time.UTC)
	if out := must[limiter.Outcome](t)(s.Take(ctx, "i", l, endOfMonth)); out.Verdict != limiter.Allowed {
		t.Fatal(out)
	}
	if out := must[limiter.Outcome](t)(s.Take(ctx, "i", l, endOfMonth)); out.Verdict != limiter.MonthlyExceeded || out.RetryAfter != time.Second {
		t.Errorf("spent = %+v", out)
	}
	if out := must[limiter.Outcome](t)(s.Take(ctx, "i", l, endOfMonth.Add(time.Second))); out.Verdict != limiter.Allowed {
		t.Errorf("new month = %+v", out)
	}
}

func independent(t *testing.T, h Harness) {
	s := open(t, h)
	l := limiter.Limits{Daily: 1, Monthly: 10, Rate: 1e6, Burst: 1e6}
	for _, inst := range []string{"a", "b", "a:b", "b:a"} {
		if out := must[limiter.Outcome](t)(s.Take(ctx, inst, l, Base)); out.Verdict != limiter.Allowed {
			t.Errorf("first take of %q = %+v", inst, out)
		}
	}
	must[bool](t)(false, s.SetPaused(ctx, "a", true))
	must[bool](t)(false, s.PutSuppression(ctx, store.Suppression{Instance: "a", Phone: "+1", Reason: "manual_block"}))
	if p := must[bool](t)(s.Paused(ctx, "b")); p {
		t.Error("pausing a paused b")
	}
	if sup := must[bool](t)(s.Suppressed(ctx, "b", "+1")); sup {
		t.Error("suppressing for a suppressed for b")
	}
}

func suppressions(t *testing.T, h Harness) {
	s := open(t, h)
	if _, err := s.Suppression(ctx, "i", "+966501234567"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Suppression of nothing = %v, want ErrNotFound", err)
	}
	if err := s.DeleteSuppression(ctx, "i", "+966501234567"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("DeleteSuppression of nothing = %v, want ErrNotFound", err)
	}
	at := Base.Truncate(time.Second)
	want := []store.Suppression{
		{Instance: "i", Phone: "+14155550100", Reason: "manual_block", Source: "admin", CreatedAt: at},
		{Instance: "i", Phone: "+966501234567", Reason: "recipient_requested_stop", Source: "inbound", CreatedAt: at},
	}
	for _, sup := range slices.Backward(want) {
		must[bool](t)(false, s.PutSuppression(ctx, sup))
	}
	must[bool](t)(false, s.PutSuppression(ctx, store.Suppression{Instance: "other", Phone: "+14155550100", Reason: "manual_block", CreatedAt: at}))
	for _, sup := range want {
		if ok := must[bool](t)(s.Suppressed(ctx, "i", sup.Phone)); !ok {
			t.Errorf("Suppressed(%s) = false", sup.Phone)
		}
		got := must[store.Suppression](t)(s.Suppression(ctx, "i", sup.Phone))
		if !got.CreatedAt.Equal(sup.CreatedAt) {
			t.Errorf("CreatedAt = %v, want %v", got.CreatedAt, sup.CreatedAt)
		}
		got.CreatedAt = sup.CreatedAt
		if got != sup {
			t.Errorf("Suppression = %+v, want %+v", got, sup)
		}
	}
	list := must[[]store.Suppression](t)(s.Suppressions(ctx, "i"))
	if len(list) != 2 || list[0].Phone != want[0].Phone || list[1].Phone != want[1].Phone {
		t.Errorf("Suppressions = %+v, want both, ordered by phone", list)
	}
	// Put replaces.
	must[bool](t)(false, s.PutSuppression(ctx, store.Suppression{Instance: "i", Phone: "+966501234567", Reason: "manual_block", CreatedAt: at}))
	if got := must[store.Suppression](t)(s.Suppression(ctx, "i", "+966501234567")); got.Reason != "manual_block" {
		t.Errorf("after replace = %+v", got)
	}
	must[bool](t)(false, s.DeleteSuppression(ctx, "i", "+966501234567"))
	if ok := must[bool](t)(s.Suppressed(ctx, "i", "+966501234567")); ok {
		t.Error("still suppressed after delete")
	}
	if list := must[[]store.Suppression](t)(s.Suppressions(ctx, "nobody")); len(list) != 0 {
		t.Errorf("Suppressions of an unknown instance = %v", list)
	}
}

// instances are ids in several scripts, with combining marks and emoji.
var instances = []string{"shop", "متجر-١", "दुकान", "İstanbul-ı", "cafe\u0301", "🛒-store"}

func addSuppressions(t *testing.T, h Harness) {
	s := open(t, h)
	at := Base.Truncate(time.Second)
	// One already there, with a reason the batch must not overwrite.
	kept := store.Suppression{Instance: instances[1], Phone: "+966501000001", Reason: "recipient_requested_stop", Source: "inbound", CreatedAt: at.Add(-time.Hour)}
	must[bool](t)(false, s.PutSuppression(ctx, kept))
	var batch []store.Suppression
	for _, inst := range instances {
		for i := range 50 {
			batch = append(batch, store.Suppression{Instance: inst, Phone: fmt.Sprintf("+96650100%04d", i), Reason: "import", Source: "import", CreatedAt: at})
		}
	}
	// A repeat inside the batch: the first wins.
	batch = append(batch, store.Suppression{Instance: instances[2], Phone: "+966501000003", Reason: "later", Source: "import", CreatedAt: at})
	if n := must[int](t)(s.AddSuppressions(ctx, batch)); n != len(instances)*50-1 {
		t.Errorf("AddSuppressions(%d) = %d, want %d (one was there)", len(batch), n, len(instances)*50-1)
	}
	if n := must[int](t)(s.AddSuppressions(ctx, batch)); n != 0 {
		t.Errorf("AddSuppressions again = %d, want 0", n)
	}
	if n := must[int](t)(s.AddSuppressions(ctx, nil)); n != 0 {
		t.Errorf("AddSuppressions(nil) = %d, want 0", n)
	}
	got := must[store.Suppression](t)(s.Suppression(ctx, kept.Instance, kept.Phone))
	if got.Reason != kept.Reason || got.Source != kept.Source || !got.CreatedAt.Equal(kept.CreatedAt) {
		t.Errorf("existing suppression = %+v, want it kept as %+v", got, kept)
	}
	if got := must[store.Suppression](t)(s.Suppression(ctx, instances[2], "+966501000003")); got.Reason != "import" {
		t.Errorf("repeated in the batch: reason = %q, want the first's %q", got.Reason, "import")
	}
	for _, inst := range instances {
		list := must[[]store.Suppression](t)(s.Suppressions(ctx, inst))
		if len(list) != 50 {
			t.Errorf("Suppressions(%q) = %d, want 50", inst, len(list))
		}
		if ok := must[bool](t)(s.Suppressed(ctx, inst, "+966501000049")); !ok {
			t.Errorf("Suppressed(%q, +966501000049) = false, want true", inst)
		}
	}
	if ok := must[bool](t)(s.Suppressed(ctx, "caf\u00e9", "+966501000001")); ok {
		t.Error("a precomposed é matched the decomposed instance id: ids are bytes, not normalised")
	}
}

func addInvalid(t *testing.T, h Harness) {
	s := open(t, h)
	good := store.Suppression{Instance: "shop", Phone: "+966501234567", Reason: "import", CreatedAt: Base}
	for _, bad := range []store.Suppression{
		{Instance: "", Phone: "+966501234567"},
		{Instance: "sh\x00op", Phone: "+966501234567"},
		{Instance: "shop", Phone: ""},
		{Instance: "shop", Phone: "0501234567"},
		{Instance: "shop", Phone: "+0501234567"},
		{Instance: "shop", Phone: "+9665012345678901"},
		{Instance: "shop", Phone: "+٩٦٦٥٠١٢٣٤٥٦٧"}, // Arabic-Indic digits: normalise before the store
		{Instance: "shop", Phone: "+96650 1234567"},
	} {
		n, err := s.AddSuppressions(ctx, []store.Suppression{good, bad})
		if !errors.Is(err, store.ErrInvalid) || n != 0 {
			t.Errorf("AddSuppressions(good, %+v) = %d, %v, want 0, ErrInvalid", bad, n, err)
		}
	}
	if ok := must[bool](t)(s.Suppressed(ctx, "shop", good.Phone)); ok {
		t.Error("a refused batch wrote its valid suppression")
	}
}

func addConcurrent(t *testing.T, h Harness) {
	s := open(t, h)
	var total atomic.Int64
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var batch []store.Suppression
			for i := range 200 { // overlapping: every goroutine adds the same 200 per instance
				inst := instances[(g+i)%len(instances)]
				batch = append(batch, store.Suppression{Instance: inst, Phone: recipient(i), Reason: "import", CreatedAt: Base})
			}
			n, err := s.AddSuppressions(ctx, batch)
			if err != nil {
				t.Error(err)
			}
			total.Add(int64(n))
		}()
	}
	wg.Wait()
	want := 0
	for _, inst := range instances {
		want += len(must[[]store.Suppression](t)(s.Suppressions(ctx, inst)))
	}
	if total.Load() != int64(want) {
		t.Errorf("concurrent AddSuppressions added %d in total, the store holds %d: a suppression was counted twice or lost", total.Load(), want)
	}
}

// suppressionPages pages through an instance's suppressions: every one
// comes, none of another instance, and the last page says so.
func suppressionPages(t *testing.T, h Harness) {
	s := open(t, h)
	at := Base.Truncate(time.Second)
	var batch []store.Suppression
	for i := range 300 {
		batch = append(batch, store.Suppression{Instance: instances[1], Phone: fmt.Sprintf("+9665020%05d", i*7919%100000), Reason: "import", Source: "import", CreatedAt: at})
	}
	for i := range 5 { // neighbours, before and after in key order
		batch = append(batch, store.Suppression{Instance: instances[0], Phone: fmt.Sprintf("+96650300%04d", i), Reason: "import", Source: "import", CreatedAt: at})
		batch = append(batch, store.Suppression{Instance: instances[5], Phone: fmt.Sprintf("+96650300%04d", i), Reason: "import", Source: "import", CreatedAt: at})
	}
	must[int](t)(s.AddSuppressions(ctx, batch))
	for _, limit := range []int{1, 7, 300, 1000} {
		seen := map[string]bool{}
		cursor, pages, last := "", 0, ""
		for {
			list, next, err := s.SuppressionPage(ctx, instances[1], cursor, limit)
			if err != nil {
				t.Fatalf("SuppressionPage(limit %d, page %d): %v", limit, pages+1, err)
			}
			pages++
			if pages > 400 {
				t.Fatalf("limit %d: more than 400 pages, the cursor does not advance", limit)
			}
			if !h.PagesUnordered && (len(list) > limit || (next != "" && len(list) != limit)) {
				t.Fatalf("limit %d: page %d holds %d, want %d (next %q)", limit, pages, len(list), limit, next)
			}
			for _, sup := range list {
				if sup.Instance != instances[1] {
					t.Fatalf("limit %d: page holds %+v of another instance", limit, sup)
				}
				if !h.PagesUnordered && (seen[sup.Phone] || sup.Phone <= last) {
					t.Fatalf("limit %d: %s after %s: pages not ordered by phone, or a phone twice", limit, sup.Phone, last)
				}
				seen[sup.Phone], last = true, sup.Phone
			}
			if next == "" {
				break
			}
			cursor = next
		}
		if len(seen) != 300 {
			t.Errorf("limit %d: %d pages listed %d distinct suppressions, want 300", limit, pages, len(seen))
		}
	}
	if list, next, err := s.SuppressionPage(ctx, "nobody", "", 10); err != nil || len(list) != 0 || next != "" {
		t.Errorf("SuppressionPage of an unknown instance = %v, %q, %v; want none", list, next, err)
	}
	for _, bad := range []string{"x", "p!!", "r", "r-1", "p", "r0", "p" + "\x00"} {
		if _, _, err := s.SuppressionPage(ctx, instances[1], bad, 10); !errors.Is(err, store.ErrBadCursor) {
			t.Errorf("SuppressionPage(cursor %q) error = %v, want ErrBadCursor", bad, err)
		}
	}
}

// suppressionPagesConcurrent pages through an instance's suppressions
// while other goroutines add and delete phones between them, of the same
// instance and of others: every suppression held throughout comes (exactly
// once and in order, for ordered stores), and nothing comes that was never
// the instance's.
func suppressionPagesConcurrent(t *testing.T, h Harness) {
	s := open(t, h)
	at := Base.Truncate(time.Second)
	stable := map[string]bool{}
	var batch []store.Suppression
	for i := range 200 {
		p := fmt.Sprintf("+9665040%03d0", i)
		stable[p] = true
		batch = append(batch, store.Suppression{Instance: instances[1], Phone: p, Reason: "import", Source: "import", CreatedAt: at})
	}
	must[int](t)(s.AddSuppressions(ctx, batch))
	churn := func(w, i int) string { return fmt.Sprintf("+9665040%03d%d", (i*37+w*11)%200, 1+w) } // between the stable phones
	stop := make(chan struct{})
	var churners sync.WaitGroup
	for w := range 4 {
		churners.Add(1)
		go func() {
			defer churners.Done()
			inst := instances[1+w%2*4] // instances[1] and instances[5]
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				p := churn(w, i)
				if err := s.PutSuppression(ctx, store.Suppression{Instance: inst, Phone: p, Reason: "STOP", Source: "message", CreatedAt: at}); err != nil {
					t.Errorf("PutSuppression(%s, %s): %v", inst, p, err)
					return
				}
				if err := s.DeleteSuppression(ctx, inst, churn(w, i-3)); err != nil && !errors.Is(err, store.ErrNotFound) {
					t.Errorf("DeleteSuppression(%s): %v", inst, err)
					return
				}
			}
		}()
	}
	var pagers sync.WaitGroup
	for g := range 4 {
		pagers.Add(1)
		go func() {
			defer pagers.Done()
			limit := []int{1, 7, 50, 13}[g]
			for round := range 3 {
				seen := map[string]bool{}
				cursor, last := "", ""
				for pages := 1; ; pages++ {
					list, next, err := s.SuppressionPage(ctx, instances[1], cursor, limit)
					if err != nil {
						t.Errorf("SuppressionPage(limit %d, page %d): %v", limit, pages, err)
						return
					}
					if pages > 2000 {
						t.Errorf("limit %d: more than 2000 pages, the cursor does not advance", limit)
						return
					}
					for _, sup := range list {
						// instances[1]'s phones end in 0 (stable), 1 or 3 (churned by workers 0 and 2).
						if sup.Instance != instances[1] || !strings.HasPrefix(sup.Phone, "+9665040") || !strings.ContainsRune("013", rune(sup.Phone[len(sup.Phone)-1])) {
							t.Errorf("limit %d: page holds %+v, never a suppression of %s", limit, sup, instances[1])
							return
						}
						if !h.PagesUnordered && (seen[sup.Phone] || sup.Phone <= last) {
							t.Errorf("limit %d: %s after %s: pages not ordered by phone, or a phone twice", limit, sup.Phone, last)
							return
						}
						seen[sup.Phone], last = true, sup.Phone
					}
					if next == "" {
						break
					}
					cursor = next
				}
				for p := range stable {
					if !seen[p] {
						t.Errorf("limit %d, round %d: %s, held throughout, was not listed", limit, round, p)
						return
					}
				}
			}
		}()
	}
	pagers.Wait()
	close(stop)
	churners.Wait()
}

func pause(t *testing.T, h Harness) {
	s := open(t, h)
	if p := must[bool](t)(s.Paused(ctx, "i")); p {
		t.Error("a fresh instance is paused")
	}
	must[bool](t)(false, s.SetPaused(ctx, "i", true))
	must[bool](t)(false, s.SetPaused(ctx, "i", true)) // idempotent
	if p := must[bool](t)(s.Paused(ctx, "i")); !p {
		t.Error("not paused after SetPaused(true)")
	}
	must[bool](t)(false, s.SetPaused(ctx, "i", false))
	if p := must[bool](t)(s.Paused(ctx, "i")); p {
		t.Error("paused after SetPaused(false)")
	}
}

func event(i int) store.Event {
	return store.Event{ID: fmt.Sprintf("ev-%02d", i), Kind: "recipient.opted_out", Body: []byte(fmt.Sprintf(`{"n":%d}`, i)), CreatedAt: Base.Add(time.Duration(i) * time.Second)}
}

func outbox(t *testing.T, h Harness) {
	s := open(t, h)
	for i := range 3 {
		must[bool](t)(false, s.Append(ctx, event(i)))
	}
	must[bool](t)(false, s.Append(ctx, event(0))) // the same id again: no duplicate
	if n := must[int](t)(s.Pending(ctx)); n != 3 {
		t.Fatalf("Pending = %d, want 3", n)
	}
	now := Base.Add(time.Minute)
	got := must[[]store.Event](t)(s.Lease(ctx, now, 2, time.Minute))
	if len(got) != 2 || got[0].ID != "ev-00" || got[1].ID != "ev-01" || string(got[0].Body) != `{"n":0}` || got[0].Kind != "recipient.opted_out" || got[0].Attempts != 1 || !got[0].CreatedAt.Equal(Base) {
		t.Fatalf("Lease(2) = %+v, want ev-00 and ev-01, oldest first, attempt 1", got)
	}
	// Leased events are hidden until the lease ends.
	if rest := must[[]store.Event](t)(s.Lease(ctx, now, 10, time.Minute)); len(rest) != 1 || rest[0].ID != "ev-02" {
		t.Fatalf("second Lease = %+v, want only ev-02", rest)
	}
	if none := must[[]store.Event](t)(s.Lease(ctx, now.Add(59*time.Second), 10, time.Minute)); len(none) != 0 {
		t.Fatalf("Lease during the lease = %+v", none)
	}
	must[bool](t)(false, s.Ack(ctx, "ev-00"))
	must[bool](t)(false, s.Ack(ctx, "ev-00")) // twice: a no-op
	must[bool](t)(false, s.Release(ctx, "ev-02", now.Add(10*time.Minute)))
	if err := s.Release(ctx, "ev-99", now); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Release of an unknown event = %v, want ErrNotFound", err)
	}
	// After the lease: ev-01 again (attempt 2); ev-02 waits for its release time.
	again := must[[]store.Event](t)(s.Lease(ctx, now.Add(time.Minute), 10, time.Minute))
	if len(again) != 1 || again[0].ID != "ev-01" || again[0].Attempts != 2 {
		t.Fatalf("Lease after expiry = %+v, want ev-01 attempt 2", again)
	}
	must[bool](t)(false, s.Ack(ctx, "ev-01"))
	late := must[[]store.Event](t)(s.Lease(ctx, now.Add(10*time.Minute), 10, time.Minute))
	if len(late) != 1 || late[0].ID != "ev-02" || late[0].Attempts != 2 {
		t.Fatalf("Lease at the release time = %+v, want ev-02 attempt 2", late)
	}
	must[bool](t)(false, s.Ack(ctx, "ev-02"))
	if n := must[int](t)(s.Pending(ctx)); n != 0 {
		t.Errorf("Pending after acks = %d", n)
	}
}

func outboxExclusive(t *testing.T, h Harness) {
	s := open(t, h)
	for i := range 50 {
		must[bool](t)(false, s.Append(ctx, event(i)))
	}
	var mu sync.Mutex
	seen := map[string]int{}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for {
				evs, err := s.Lease(ctx, Base.Add(time.Hour), 3, time.Hour)
				if err != nil {
					t.Error(err)
					return
				}
				if len(evs) == 0 {
					return
				}
				mu.Lock()
				for _, e := range evs {
					seen[e.ID]++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(seen) != 50 {
		t.Errorf("leased %d distinct events, want 50", len(seen))
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("%s leased %d times during one lease", id, n)
		}
	}
}

func durable(t *testing.T, h Harness) {
	s := h.Open(t)
	l := limiter.Limits{Daily: 5, Monthly: 50, Rate: 1e6, Burst: 1e6}
	for range 3 {
		must[limiter.Outcome](t)(s.Take(ctx, "i", l, Base))
	}
	must[bool](t)(false, s.PutSuppression(ctx, store.Suppression{Instance: "i", Phone: "+966501234567", Reason: "recipient_requested_stop", CreatedAt: Base}))
	must[bool](t)(false, s.SetPaused(ctx, "p", true))
	must[bool](t)(false, s.Append(ctx, event(1)))
	must[int](t)(s.AddSuppressions(ctx, []store.Suppression{{Instance: "متجر", Phone: "+14155550100", Reason: "import", CreatedAt: Base}}))
	s = h.Reopen(t, s)
	t.Cleanup(func() { s.Close() })
	if u := must[limiter.Usage](t)(s.Usage(ctx, "i", l, Base)); u.DailyUsed != 3 || u.MonthlyUsed != 3 {
		t.Errorf("usage after reopen = %+v, want 3", u)
	}
	if ok := must[bool](t)(s.Suppressed(ctx, "i", "+966501234567")); !ok {
		t.Error("suppression lost on reopen")
	}
	if ok := must[bool](t)(s.Suppressed(ctx, "متجر", "+14155550100")); !ok {
		t.Error("added suppression lost on reopen")
	}
	if p := must[bool](t)(s.Paused(ctx, "p")); !p {
		t.Error("pause lost on reopen")
	}
	if evs := must[[]store.Event](t)(s.Lease(ctx, Base.Add(time.Hour), 10, time.Minute)); len(evs) != 1 || evs[0].ID != "ev-01" {
		t.Errorf("outbox after reopen = %+v", evs)
	}
}

// roomy is a quota no abuse test reaches.
var roomy = limiter.Limits{Daily: 1 << 40, Monthly: 1 << 40, Rate: 1e9, Burst: 1 << 30}

var fanOut = abuse.Limits{FanOutWindow: 10 * time.Minute, FanOutThrottle: 3, FanOutBlock: 100}

func sendOf(instance, msg, phone string, l abuse.Limits) abuse.Send {
	return abuse.Send{Instance: instance, Body: abuse.BodyKey(msg), Phone: phone, Abuse: l, Quota: roomy}
}

func recipient(i int) string { return fmt.Sprintf("+96650100%04d", i) }

func abuseFanOut(t *testing.T, h Harness) {
	s := open(t, h)
	body := "Hi Sara, your report is ready"
	steps := []struct {
		name  string
		send  abuse.Send
		at    time.Duration
		want  abuse.Verdict
		retry time.Duration
	}{
		{"1st recipient", sendOf("i", body, recipient(1), fanOut), 0, abuse.OK, 0},
		{"2nd recipient", sendOf("i", "Hi Omar, your report is ready", recipient(2), fanOut), time.Minute, abuse.OK, 0},
		{"3rd recipient", sendOf("i", body, recipient(3), fanOut), 2 * time.Minute, abuse.OK, 0},
		{"4th recipient: throttled until the 1st leaves the window", sendOf("i", body, recipient(4), fanOut), 3 * time.Minute, abuse.Throttle, 7 * time.Minute},
		{"a recipient already sent the body is not new", sendOf("i", body, recipient(2), fanOut), 4 * time.Minute, abuse.OK, 0},
		{"another body is independent", sendOf("i", "Your code is ready", recipient(4), fanOut), 4 * time.Minute, abuse.OK, 0},
		{"another instance is independent", sendOf("j", body, recipient(4), fanOut), 4 * time.Minute, abuse.OK, 0},
		{"just before the 1st leaves", sendOf("i", body, recipient(4), fanOut), 10*time.Minute - time.Millisecond, abuse.Throttle, time.Millisecond},
		{"the 1st left the window", sendOf("i", body, recipient(4), fanOut), 10 * time.Minute, abuse.OK, 0},
		{"the 3rd is out, the 2nd's repeat is in", sendOf("i", body, recipient(5), fanOut), 12 * time.Minute, abuse.OK, 0},
		{"full again", sendOf("i", body, recipient(6), fanOut), 12 * time.Minute, abuse.Throttle, 2 * time.Minute},
		{"off: no limits", sendOf("i", body, recipient(7), abuse.Limits{}), 12 * time.Minute, abuse.OK, 0},
	}
	for _, st := range steps {
		out := must[abuse.Outcome](t)(s.TakeSend(ctx, st.send, Base.Add(st.at)))
		if out.Verdict != st.want || out.RetryAfter != st.retry || (st.want == abuse.OK) != out.Allowed() {
			t.Errorf("%s: TakeSend(%s) = %+v, want %v retry %v", st.name, st.send.Phone, out, st.want, st.retry)
		}
	}
}

func abuseFanOutBlock(t *testing.T, h Harness) {
	s := open(t, h)
	l := abuse.Limits{FanOutWindow: time.Hour, FanOutBlock: 2}
	for i, want := range []abuse.Verdict{abuse.OK, abuse.OK, abuse.Block, abuse.Block} {
		if out := must[abuse.Outcome](t)(s.TakeSend(ctx, sendOf("i", "Claim your prize", recipient(i), l), Base)); out.Verdict != want {
			t.Errorf("TakeSend(recipient %d of a block of 2) = %+v, want %v", i+1, out, want)
		}
	}
	// A block consumes no quota.
	if u := must[limiter.Usage](t)(s.Usage(ctx, "i", roomy, Base)); u.DailyUsed != 2 {
		t.Errorf("usage after 2 allowed and 2 blocked = %d, want 2", u.DailyUsed)
	}
}

func abusePair(t *testing.T, h Harness) {
	s := open(t, h)
	l := abuse.Limits{PairPerMinute: 2}
	steps := []struct {
		phone string
		at    time.Duration
		want  abuse.Verdict
		retry time.Duration
	}{
		{"+1", 0, abuse.OK, 0},
		{"+1", 10 * time.Second, abuse.OK, 0},
		{"+1", 20 * time.Second, abuse.Throttle, 40 * time.Second},
		{"+2", 20 * time.Second, abuse.OK, 0},
		{"+1", 60 * time.Second, abuse.OK, 0},
		{"+1", 61 * time.Second, abuse.Throttle, 9 * time.Second},
	}
	for i, st := range steps {
		out := must[abuse.Outcome](t)(s.TakeSend(ctx, sendOf("i", fmt.Sprintf("message %c", 'a'+i), st.phone, l), Base.Add(st.at)))
		if out.Verdict != st.want || out.RetryAfter != st.retry {
			t.Errorf("step %d: TakeSend(%s at +%v) = %+v, want %v retry %v", i, st.phone, st.at, out, st.want, st.retry)
		}
	}
}

// A send its quota refuses is not counted (its reservation is taken back),
// and an abuse refusal consumes no quota.
func abuseOnlyAllowed(t *testing.T, h Harness) {
	s := open(t, h)
	l := abuse.Limits{FanOutWindow: 10 * time.Minute, FanOutThrottle: 1, PairPerMinute: 1}
	spent := abuse.Send{Instance: "i", Body: abuse.BodyKey("Your code is ready"), Phone: "+1", Abuse: l,
		Quota: limiter.Limits{Daily: 1, Monthly: 10, Rate: 1e9, Burst: 1 << 30}}
	if out := must[abuse.Outcome](t)(s.TakeSend(ctx, spent, Base)); !out.Allowed() {
		t.Fatalf("first send = %+v", out)
	}
	other := spent
	other.Instance = "k"
	other.Quota.Daily = 0
	for i := range 3 {
		other.Phone = recipient(i)
		out := must[abuse.Outcome](t)(s.TakeSend(ctx, other, Base))
		if out.Verdict != abuse.OK || out.Taken.Verdict != limiter.DailyExceeded {
			t.Fatalf("send %d on a spent quota = %+v, want daily exceeded (a refused send was counted)", i+1, out)
		}
	}
	other.Quota.Daily = 10
	if out := must[abuse.Outcome](t)(s.TakeSend(ctx, other, Base)); !out.Allowed() {
		t.Errorf("after refused sends, a first recipient = %+v, want allowed", out)
	}
	// Abuse refusals of i (a 2nd recipient, a 2nd message to +1) take no quota.
	second := spent
	second.Phone = "+2"
	second.Quota.Daily = 10
	for _, snd := range []abuse.Send{second, spent} {
		if out := must[abuse.Outcome](t)(s.TakeSend(ctx, snd, Base)); out.Verdict != abuse.Throttle {
			t.Errorf("TakeSend(%s) = %+v, want throttle", snd.Phone, out)
		}
	}
	if u := must[limiter.Usage](t)(s.Usage(ctx, "i", spent.Quota, Base)); u.DailyUsed != 1 {
		t.Errorf("usage after abuse refusals = %d, want 1", u.DailyUsed)
	}
}

// The slow lane and the quotas are taken together or not at all.
func abuseSlowLane(t *testing.T, h Harness) {
	s := open(t, h)
	snd := sendOf("i", "Big sale", "+1", abuse.Limits{FanOutWindow: time.Minute, FanOutThrottle: 1})
	snd.SlowLane = limiter.Limits{Daily: 1 << 40, Monthly: 1 << 40, Rate: 1.0 / 60, Burst: 1}
	if out := must[abuse.Outcome](t)(s.TakeSend(ctx, snd, Base)); !out.Allowed() || out.SlowLane {
		t.Fatalf("first risky send = %+v", out)
	}
	out := must[abuse.Outcome](t)(s.TakeSend(ctx, snd, Base.Add(time.Second)))
	if !out.SlowLane || out.Taken.Verdict != limiter.Throttled || out.Taken.RetryAfter != 59*time.Second {
		t.Errorf("second risky send = %+v, want the slow lane's throttle for 59s", out)
	}
	if u := must[limiter.Usage](t)(s.Usage(ctx, "i", roomy, Base)); u.DailyUsed != 1 {
		t.Errorf("a slow-lane refusal took quota: used %d, want 1", u.DailyUsed)
	}
	// A quota refusal leaves the slow-lane token.
	spent := snd
	spent.Instance, spent.Quota = "j", limiter.Limits{}
	if out := must[abuse.Outcome](t)(s.TakeSend(ctx, spent, Base)); out.SlowLane || out.Taken.Verdict != limiter.MonthlyExceeded {
		t.Fatalf("risky send on a spent quota = %+v", out)
	}
	spent.Quota = roomy
	if out := must[abuse.Outcome](t)(s.TakeSend(ctx, spent, Base)); !out.Allowed() {
		t.Errorf("a quota refusal took the slow-lane token: %+v", out)
	}
}

// 200 concurrent sends of one body to 200 recipients against a limit of
// 50: exactly 50 allowed, 50 quota units taken.
func abuseExact(t *testing.T, h Harness) {
	s := open(t, h)
	l := abuse.Limits{FanOutWindow: 10 * time.Minute, FanOutThrottle: 50, FanOutBlock: 1000, PairPerMinute: 10}
	var allowed, throttled atomic.Int64
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Go(func() {
			out, err := s.TakeSend(ctx, sendOf("shop", "Hi Sara, your report is ready", recipient(i), l), Base.Add(time.Duration(i)*time.Millisecond))
			switch {
			case err != nil:
				t.Error(err)
			case out.Allowed():
				allowed.Add(1)
			case out.Verdict == abuse.Throttle:
				throttled.Add(1)
			default:
				t.Errorf("recipient %d: %+v", i, out)
			}
		})
	}
	wg.Wait()
	if allowed.Load() != 50 || throttled.Load() != 150 {
		t.Errorf("200 concurrent recipients of one body on a limit of 50: %d allowed, %d throttled", allowed.Load(), throttled.Load())
	}
	if u := must[limiter.Usage](t)(s.Usage(ctx, "shop", roomy, Base)); u.DailyUsed != 50 {
		t.Errorf("usage = %d, want 50", u.DailyUsed)
	}
}

func abuseViolations(t *testing.T, h Harness) {
	s := open(t, h)
	w := 10 * time.Minute
	for i, at := range []time.Duration{time.Minute, 2 * time.Minute, 3 * time.Minute} {
		if n := must[int](t)(s.Violation(ctx, "i", w, Base.Add(at))); n != i+1 {
			t.Errorf("Violation %d = %d", i+1, n)
		}
	}
	if n := must[int](t)(s.Violation(ctx, "j", w, Base)); n != 1 {
		t.Errorf("Violation of another instance = %d, want 1", n)
	}
	if n := must[int](t)(s.Violation(ctx, "i", w, Base.Add(12*time.Minute))); n != 2 {
		t.Errorf("Violation after the first two left the window = %d, want 2", n)
	}
	must[bool](t)(false, s.ResetViolations(ctx, "i"))
	if n := must[int](t)(s.Violation(ctx, "i", w, Base.Add(13*time.Minute))); n != 1 {
		t.Errorf("Violation after ResetViolations = %d, want 1", n)
	}
	if n := must[int](t)(s.Violation(ctx, "j", w, Base.Add(time.Minute))); n != 2 {
		t.Errorf("ResetViolations(i) reset j: %d, want 2", n)
	}
}
