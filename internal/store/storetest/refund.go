package storetest

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sendguard/sendguard/internal/abuse"
	"github.com/sendguard/sendguard/internal/limiter"
	"github.com/sendguard/sendguard/internal/store"
)

// refundLimits are a plan a refund can be seen in: a bucket that refills
// one token a minute, so a token given back shows in Usage.Tokens.
var refundLimits = limiter.Limits{Daily: 100, Monthly: 2000, Rate: 1.0 / 60, Burst: 10}

// ids spells the suite's decision ids: textIDs as written ("dec-fail"),
// uuidIDs as the canonical text of a UUIDv7 made from the name, as serve
// issues them (the in-process stores keep those by their 16 bytes).
type ids func(name string) string

func textIDs(name string) string { return name }

func uuidIDs(name string) string {
	if name == "" {
		return ""
	}
	u := sha256.Sum256([]byte(name))
	u[6] = u[6]&0x0f | 0x70 // version 7
	u[8] = u[8]&0x3f | 0x80 // variant 10
	h := hex.EncodeToString(u[:16])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

func decided(instance, id, msg, phone string) abuse.Send {
	return abuse.Send{Instance: instance, Body: abuse.BodyKey(msg), Phone: phone, Quota: refundLimits, Decision: id}
}

func usageOf(t *testing.T, s Store, instance string, l limiter.Limits, now time.Time) limiter.Usage {
	t.Helper()
	return must[limiter.Usage](t)(s.Usage(ctx, instance, l, now))
}

func refund(t *testing.T, s Store, instance, id string, now time.Time, want store.RefundResult) {
	t.Helper()
	if got := must[store.RefundResult](t)(s.Refund(ctx, instance, id, now)); got != want {
		t.Errorf("Refund(%q, %q) = %v, want %v", instance, id, got, want)
	}
}

func allowSend(t *testing.T, s Store, snd abuse.Send, now time.Time) {
	t.Helper()
	if out := must[abuse.Outcome](t)(s.TakeSend(ctx, snd, now)); !out.Allowed() {
		t.Fatalf("TakeSend(%s, %q) = %+v, want allowed", snd.Instance, snd.Decision, out)
	}
}

// A refund gives back the day's and the month's unit, the token and the
// slow lane's token and counts; a second refund of the same decision gives
// back nothing.
func refundGivesBack(t *testing.T, h Harness, id ids) {
	s := open(t, h)
	slowLane := limiter.Limits{Daily: 1 << 40, Monthly: 1 << 40, Rate: 1.0 / 60, Burst: 3}
	allowSend(t, s, decided("shop", id("dec-keep"), "Your order shipped", "+966501234567"), Base)
	before := usageOf(t, s, "shop", refundLimits, Base)
	slowBefore := usageOf(t, s, abuse.SlowLaneID("shop"), slowLane, Base)

	risky := decided("shop", id("dec-fail"), "تم شحن طلبك 📦", "+919876543210")
	risky.SlowLane = slowLane
	allowSend(t, s, risky, Base)
	if u := usageOf(t, s, "shop", refundLimits, Base); u.DailyUsed != before.DailyUsed+1 || u.MonthlyUsed != before.MonthlyUsed+1 || u.Tokens != before.Tokens-1 {
		t.Fatalf("after the take: %+v, want one more than %+v", u, before)
	}
	refund(t, s, "shop", id("dec-fail"), Base, store.Refunded)
	if u := usageOf(t, s, "shop", refundLimits, Base); u != before {
		t.Errorf("after the refund: %+v, want %+v", u, before)
	}
	if u := usageOf(t, s, abuse.SlowLaneID("shop"), slowLane, Base); u != slowBefore {
		t.Errorf("slow lane after the refund: %+v, want %+v", u, slowBefore)
	}
	refund(t, s, "shop", id("dec-fail"), Base, store.RefundDuplicate)
	refund(t, s, "shop", id("dec-fail"), Base.Add(time.Second), store.RefundDuplicate)
	if u := usageOf(t, s, "shop", refundLimits, Base); u != before {
		t.Errorf("after a second refund: %+v, want %+v", u, before)
	}
	// A send without a decision id keeps no receipt.
	allowSend(t, s, decided("shop", "", "Your code is 1234", "+905321234567"), Base)
	refund(t, s, "shop", "", Base, store.RefundUnknown)
}

// A receipt is the instance's: another instance's id, an unknown id or an
// unknown instance refunds nothing.
func refundForeign(t *testing.T, h Harness, id ids) {
	s := open(t, h)
	allowSend(t, s, decided("a", id("dec-a"), "Your order shipped", "+966501234567"), Base)
	allowSend(t, s, decided("b", id("dec-b"), "Your order shipped", "+966501234567"), Base)
	ua, ub := usageOf(t, s, "a", refundLimits, Base), usageOf(t, s, "b", refundLimits, Base)
	refund(t, s, "b", id("dec-a"), Base, store.RefundUnknown)
	refund(t, s, "a", id("dec-b"), Base, store.RefundUnknown)
	refund(t, s, "a", id("forged"), Base, store.RefundUnknown)
	refund(t, s, "nobody", id("dec-a"), Base, store.RefundUnknown)
	if u := usageOf(t, s, "a", refundLimits, Base); u != ua {
		t.Errorf("a after foreign refunds: %+v, want %+v", u, ua)
	}
	if u := usageOf(t, s, "b", refundLimits, Base); u != ub {
		t.Errorf("b after foreign refunds: %+v, want %+v", u, ub)
	}
	// The rightful refund still works afterwards.
	refund(t, s, "a", id("dec-a"), Base, store.Refunded)
}

// A refund after the day rolled over gives nothing back to the new day
// (the month's unit it does give back); after the month rolled over,
// nothing to either new period.
func refundRollover(t *testing.T, h Harness, id ids) {
	s := open(t, h)
	dayEnd := time.Date(2026, 5, 8, 23, 59, 30, 0, time.UTC)
	allowSend(t, s, decided("i", id("dec-old-day"), "Your order shipped", "+966501234567"), dayEnd)
	next := dayEnd.Add(time.Minute) // the 9th
	allowSend(t, s, decided("i", id("dec-new-day"), "Your order shipped", "+966501234568"), next)
	refund(t, s, "i", id("dec-old-day"), next, store.Refunded)
	if u := usageOf(t, s, "i", refundLimits, next); u.DailyUsed != 1 || u.MonthlyUsed != 1 {
		t.Errorf("refund across midnight: daily %d monthly %d, want 1 (the new day untouched) and 1", u.DailyUsed, u.MonthlyUsed)
	}

	monthEnd := time.Date(2026, 5, 31, 23, 59, 30, 0, time.UTC)
	allowSend(t, s, decided("j", id("dec-old-month"), "Your order shipped", "+966501234567"), monthEnd)
	june := monthEnd.Add(time.Minute)
	allowSend(t, s, decided("j", id("dec-new-month"), "Your order shipped", "+966501234568"), june)
	refund(t, s, "j", id("dec-old-month"), june, store.Refunded)
	if u := usageOf(t, s, "j", refundLimits, june); u.DailyUsed != 1 || u.MonthlyUsed != 1 {
		t.Errorf("refund across the month: daily %d monthly %d, want 1 and 1 (the new periods untouched)", u.DailyUsed, u.MonthlyUsed)
	}
}

// A token given back never fills the bucket beyond its burst.
func refundBurst(t *testing.T, h Harness, id ids) {
	s := open(t, h)
	l := limiter.Limits{Daily: 100, Monthly: 2000, Rate: 1, Burst: 2}
	snd := decided("i", id("dec-1"), "Your order shipped", "+966501234567")
	snd.Quota = l
	allowSend(t, s, snd, Base)
	later := Base.Add(5 * time.Second) // refilled to the burst meanwhile
	refund(t, s, "i", id("dec-1"), later, store.Refunded)
	if u := usageOf(t, s, "i", l, later); u.Tokens != 2 || u.DailyUsed != 0 {
		t.Errorf("after a refund into a full bucket: %+v, want 2 tokens (the burst), 0 used", u)
	}
	// Two sends back to back, both refunded: the bucket is full again, not over.
	snd.Decision = id("dec-2")
	allowSend(t, s, snd, later)
	snd.Decision, snd.Phone = id("dec-3"), "+966501234568"
	allowSend(t, s, snd, later)
	refund(t, s, "i", id("dec-2"), later, store.Refunded)
	refund(t, s, "i", id("dec-3"), later, store.Refunded)
	if u := usageOf(t, s, "i", l, later); u.Tokens != 2 {
		t.Errorf("after two refunds: %v tokens, want 2", u.Tokens)
	}
}

// A refund gives back the fan-out and the pair counts: a recipient and a
// body that were at their limits can be sent again.
func refundAbuse(t *testing.T, h Harness, id ids) {
	s := open(t, h)
	l := abuse.Limits{FanOutWindow: 10 * time.Minute, FanOutThrottle: 1, PairPerMinute: 1}
	first := decided("i", id("dec-1"), "Hi Sara, your report is ready", "+966501234567")
	first.Abuse = l
	allowSend(t, s, first, Base)
	second := first
	second.Decision, second.Phone = id("dec-2"), "+966501234568"
	if out := must[abuse.Outcome](t)(s.TakeSend(ctx, second, Base)); out.Verdict != abuse.Throttle {
		t.Fatalf("a second recipient of the body before the refund: %+v, want throttled", out)
	}
	again := first
	again.Decision, again.Body = id("dec-3"), abuse.BodyKey("another text")
	if out := must[abuse.Outcome](t)(s.TakeSend(ctx, again, Base)); out.Verdict != abuse.Throttle {
		t.Fatalf("the same recipient again before the refund: %+v, want throttled", out)
	}
	refund(t, s, "i", id("dec-1"), Base.Add(time.Second), store.Refunded)
	allowSend(t, s, second, Base.Add(2*time.Second))
	allowSend(t, s, again, Base.Add(2*time.Second))
}

// A receipt is kept ReceiptTTL: a refund later finds none.
func refundExpires(t *testing.T, h Harness, id ids) {
	s := open(t, h)
	allowSend(t, s, decided("i", id("dec-late"), "Your order shipped", "+966501234567"), Base)
	allowSend(t, s, decided("i", id("dec-in-time"), "Your order shipped", "+966501234568"), Base)
	refund(t, s, "i", id("dec-in-time"), Base.Add(store.ReceiptTTL-time.Second), store.Refunded)
	refund(t, s, "i", id("dec-late"), Base.Add(store.ReceiptTTL), store.RefundUnknown)
	if u := usageOf(t, s, "i", refundLimits, Base.Add(store.ReceiptTTL)); u.DailyUsed != 1 {
		t.Errorf("after a late refund: used %d, want 1", u.DailyUsed)
	}
}

// 200 concurrent sends in several scripts, half of them refunded while
// the others are still being taken, a quarter refunded twice at once:
// usage equals the sends not refunded, exactly, and each decision is
// refunded once.
func refundConcurrent(t *testing.T, h Harness, id ids) {
	s := open(t, h)
	texts := []string{"تم شحن طلبك رقم ٢٠٤١", "आपका ऑर्डर भेज दिया गया है", "Siparişiniz kargoya verildi 📦", "Café naïve ré\u0301sumé"}
	l := limiter.Limits{Daily: 1000, Monthly: 10000, Rate: 1e6, Burst: 1e6}
	const n = 200
	var refunded, duplicate, unknown atomic.Int64
	count := func(r store.RefundResult) {
		switch r {
		case store.Refunded:
			refunded.Add(1)
		case store.RefundDuplicate:
			duplicate.Add(1)
		default:
			unknown.Add(1)
		}
	}
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			snd := decided("متجر", id(fmt.Sprintf("dec-%03d", i)), fmt.Sprintf("%s #%d", texts[i%len(texts)], i), fmt.Sprintf("+9665012%05d", i))
			snd.Quota = l
			snd.Abuse = abuse.Limits{FanOutWindow: time.Minute, FanOutThrottle: 1 << 20, PairPerMinute: 10}
			out, err := s.TakeSend(ctx, snd, Base)
			if err != nil || !out.Allowed() {
				t.Errorf("TakeSend(%d) = %+v, %v", i, out, err)
				return
			}
			if i%2 == 1 {
				return
			}
			times := 1
			if i%4 == 0 {
				times = 2
			}
			var inner sync.WaitGroup
			for range times {
				inner.Go(func() {
					r, err := s.Refund(ctx, "متجر", snd.Decision, Base)
					if err != nil {
						t.Errorf("Refund(%d): %v", i, err)
						return
					}
					count(r)
				})
			}
			inner.Wait()
		})
	}
	wg.Wait()
	if refunded.Load() != n/2 || duplicate.Load() != n/4 || unknown.Load() != 0 {
		t.Errorf("refunds: %d refunded, %d duplicate, %d unknown; want %d, %d, 0", refunded.Load(), duplicate.Load(), unknown.Load(), n/2, n/4)
	}
	if u := usageOf(t, s, "متجر", l, Base); u.DailyUsed != n/2 || u.MonthlyUsed != n/2 {
		t.Errorf("usage after %d sends, %d refunded: %+v, want %d", n, n/2, u, n/2)
	}
}

// A durable store keeps receipts and refunds across a reopen: a receipt
// written before is refunded after, and a refund made before is not made
// again.
func refundDurable(t *testing.T, h Harness, id ids) {
	s := h.Open(t)
	allowSend(t, s, decided("i", id("dec-before"), "Your order shipped", "+966501234567"), Base)
	allowSend(t, s, decided("i", id("dec-after"), "Your order shipped", "+966501234568"), Base)
	allowSend(t, s, decided("i", id("dec-kept"), "Your order shipped", "+966501234569"), Base)
	refund(t, s, "i", id("dec-before"), Base, store.Refunded)
	s = h.Reopen(t, s)
	t.Cleanup(func() { s.Close() })
	refund(t, s, "i", id("dec-before"), Base, store.RefundDuplicate)
	refund(t, s, "i", id("dec-after"), Base, store.Refunded)
	if u := usageOf(t, s, "i", refundLimits, Base); u.DailyUsed != 1 || u.MonthlyUsed != 1 {
		t.Errorf("after reopen and refunds: %+v, want 1 used (dec-kept)", u)
	}
}

// A decision id is matched exactly as it was issued: a UUID spelt
// otherwise (upper case, braces, a URN, no dashes, a space, one digit
// off) finds no receipt, and gives nothing back; an upper-case UUID a
// store was given as the id is found by that text only.
func refundIDIsExact(t *testing.T, h Harness) {
	s := open(t, h)
	canonical := uuidIDs("dec-exact")
	allowSend(t, s, decided("متجر", canonical, "तुम्हारा कोड 4821 है", "+919876543210"), Base)
	upper := strings.ToUpper(uuidIDs("dec-upper"))
	allowSend(t, s, decided("متجر", upper, "Siparişiniz yola çıktı 🚚", "+905321234567"), Base)
	before := usageOf(t, s, "متجر", refundLimits, Base)
	offByOne := []byte(canonical)
	offByOne[35] ^= 1 // 0-9a-f stay hex digits
	for _, other := range []string{
		strings.ToUpper(canonical), "{" + canonical + "}", "urn:uuid:" + canonical,
		strings.ReplaceAll(canonical, "-", ""), canonical + " ", " " + canonical, canonical[:35],
		string(offByOne), strings.ToLower(upper), upper + "\u0301",
	} {
		refund(t, s, "متجر", other, Base, store.RefundUnknown)
	}
	if u := usageOf(t, s, "متجر", refundLimits, Base); u != before {
		t.Errorf("after refunds of misspelt ids: %+v, want %+v", u, before)
	}
	refund(t, s, "متجر", canonical, Base, store.Refunded)
	refund(t, s, "متجر", upper, Base, store.Refunded)
	refund(t, s, "متجر", canonical, Base, store.RefundDuplicate)
}
