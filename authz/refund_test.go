package authz

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/sendguard/sendguard/internal/abuse"
	"github.com/sendguard/sendguard/internal/decision"
	"github.com/sendguard/sendguard/internal/limiter"
	"github.com/sendguard/sendguard/internal/store"
)

var refundNow = time.Date(2026, 5, 8, 10, 0, 0, 0, time.UTC)

var refundPlan = limiter.Limits{Daily: 100, Monthly: 2000, Rate: 1.0 / 60, Burst: 100}

// withInstance is responseHeaders with the instance attribute set.
func withInstance(status, id, instance, details string) *extprocv3.ProcessingRequest {
	req := responseHeaders(status, id, details, false)
	if instance != "" {
		req.Attributes[extProcAttrs].Fields[AttrInstance] = structpb.NewStringValue(instance)
	}
	return req
}

func takeSend(t *testing.T, st *store.Memory, instance, id string) {
	t.Helper()
	out, err := st.TakeSend(context.Background(), abuse.Send{Instance: instance, Body: abuse.BodyKey("تم شحن طلبك"), Phone: "+966501234567", Quota: refundPlan, Decision: id}, refundNow)
	if err != nil || !out.Allowed() {
		t.Fatalf("TakeSend(%s, %s) = %+v, %v", instance, id, out, err)
	}
}

func dailyUsed(t *testing.T, st *store.Memory, instance string) int64 {
	t.Helper()
	u, err := st.Usage(context.Background(), instance, refundPlan, refundNow)
	if err != nil {
		t.Fatal(err)
	}
	return u.DailyUsed
}

// TestResponseServerRefunds: a failed send (the sender's failure status,
// or Envoy's own 5xx even outside the failure statuses) gives back what
// its decision took, once; a delivered send, a 4xx, a foreign instance or
// an id that took nothing gives back nothing. Each is counted by result.
func TestResponseServerRefunds(t *testing.T) {
	tests := []struct {
		name                      string
		status, id, instance, det string
		used                      int64  // shop's daily use after, from 1
		result                    string // counted under result ("": no refund asked)
	}{
		{name: "sender 500", status: "500", id: "d1", instance: "shop", det: "via_upstream", used: 0, result: "refunded"},
		{name: "envoy reset, outside the failure statuses", status: "504", id: "d1", instance: "shop", det: "upstream_reset_before_response_started{connection_termination}", used: 0, result: "refunded"},
		{name: "sender 200", status: "200", id: "d1", instance: "shop", det: "via_upstream", used: 1},
		{name: "sender 422", status: "422", id: "d1", instance: "shop", det: "via_upstream", used: 1},
		{name: "sender 501 not in the set", status: "501", id: "d1", instance: "shop", det: "via_upstream", used: 1},
		{name: "another instance's id", status: "500", id: "d1", instance: "other", det: "via_upstream", used: 1, result: "unknown"},
		{name: "an id that took nothing", status: "500", id: "forged", instance: "shop", det: "via_upstream", used: 1, result: "unknown"},
		{name: "no instance", status: "500", id: "d1", det: "via_upstream", used: 1, result: "unknown"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := store.NewMemory(limiter.Calendar{})
			takeSend(t, st, "shop", "d1")
			takeSend(t, st, "other", "d2")
			var dlog refundLines
			s := NewResponseServer([]int{500, 502, 503}, nil).WithRefunds(st, func() time.Time { return refundNow }).WithMetrics(prometheus.NewRegistry()).WithRefundLog(&dlog)
			s.answer(t.Context(), withInstance(tc.status, tc.id, tc.instance, tc.det))
			if tc.result == "" && len(dlog.lines) != 0 || tc.result != "" && (len(dlog.lines) != 1 || !strings.Contains(dlog.lines[0], " "+tc.result+" "+tc.status+" ")) {
				t.Errorf("answer(%s): decision log %q, want one refund line with %q", tc.name, dlog.lines, tc.result)
			}
			if got := dailyUsed(t, st, "shop"); got != tc.used {
				t.Errorf("answer(%s): shop used %d, want %d", tc.name, got, tc.used)
			}
			if got := dailyUsed(t, st, "other"); got != 1 {
				t.Errorf("answer(%s): other used %d, want 1", tc.name, got)
			}
			for _, r := range []string{"refunded", "unknown", "duplicate", "error"} {
				want := 0.0
				if r == tc.result {
					want = 1
				}
				if n := testutil.ToFloat64(s.m.refunds.WithLabelValues(r)); n != want {
					t.Errorf("answer(%s): sendguard_refunds_total{result=%q} = %v, want %v", tc.name, r, n, want)
				}
			}
			if tc.result == "refunded" { // Envoy (or a retry) asks again: nothing more
				s.answer(t.Context(), withInstance(tc.status, tc.id, tc.instance, tc.det))
				if got := dailyUsed(t, st, "shop"); got != 0 {
					t.Errorf("a second failure of %s: shop used %d, want 0", tc.id, got)
				}
				if n := testutil.ToFloat64(s.m.refunds.WithLabelValues("duplicate")); n != 1 {
					t.Errorf("sendguard_refunds_total{result=duplicate} = %v, want 1", n)
				}
			}
		})
	}
}

// refundLines records LogRefund calls as "id instance result status by".
type refundLines struct {
	mu    sync.Mutex
	lines []string
}

func (r *refundLines) LogRefund(_ time.Time, id, instance, result string, status int, by string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lines = append(r.lines, fmt.Sprintf("%s %s %s %d %s %v", id, instance, result, status, by, err))
}

type brokenRefunds struct{}

func (brokenRefunds) Refund(context.Context, string, string, time.Time) (store.RefundResult, error) {
	return store.RefundUnknown, errors.New("store down")
}

// quickRetries makes s try a failed refund again after 1, 2 and 4 ms.
func quickRetries(s *ResponseServer) *ResponseServer {
	s.retryWaits = []time.Duration{time.Millisecond, 2 * time.Millisecond, 4 * time.Millisecond}
	return s
}

// TestResponseServerRefundError: a refund the store fails on every try is
// counted once, as an error, and the client still gets the documented 502.
func TestResponseServerRefundError(t *testing.T) {
	var dlog refundLines
	s := quickRetries(NewResponseServer([]int{500}, nil)).WithRefunds(brokenRefunds{}, nil).WithMetrics(prometheus.NewRegistry()).WithRefundLog(&dlog)
	resp := s.answer(t.Context(), withInstance("500", "d1", "shop", "via_upstream"))
	if err := s.Drain(t.Context()); err != nil {
		t.Fatal(err)
	}
	if want := []string{"d1 shop error 500 sender store down"}; fmt.Sprint(dlog.lines) != fmt.Sprint(want) {
		t.Errorf("decision log %q, want %q", dlog.lines, want)
	}
	if resp.GetImmediateResponse().GetStatus().GetCode() != 502 {
		t.Errorf("answer with the store down = %v, want the 502", resp)
	}
	if n := testutil.ToFloat64(s.m.refunds.WithLabelValues("error")); n != 1 {
		t.Errorf("sendguard_refunds_total{result=error} = %v, want 1", n)
	}
}

// flakyRefunds is a store.Memory whose Refund fails the first tries of
// each decision id: with lost, the failed first try still reaches the
// store (a Redis reply past the call's budget).
type flakyRefunds struct {
	*store.Memory
	fails int
	lost  bool
	mu    sync.Mutex
	tries map[string]int
}

func (f *flakyRefunds) Refund(ctx context.Context, instance, id string, now time.Time) (store.RefundResult, error) {
	f.mu.Lock()
	f.tries[id]++
	n := f.tries[id]
	f.mu.Unlock()
	if n > f.fails {
		return f.Memory.Refund(ctx, instance, id, now)
	}
	if f.lost && n == 1 {
		f.Memory.Refund(ctx, instance, id, now)
	}
	return store.RefundUnknown, errors.New("redis: i/o timeout")
}

// TestResponseServerRefundRetry: a refund the store fails is tried again
// in the background and counted once, with the result of the try that
// answered; the client gets the 502 without waiting for it. Concurrently,
// multilingual instances: every failed send is given back exactly once,
// whether the failed try reached the store (counted refunded, not
// duplicate) or not, and a store that fails every try leaves the send
// counted, as an error. Beyond maxRefundRetries at once, a failed refund
// is an error at once.
func TestResponseServerRefundRetry(t *testing.T) {
	instances := []string{"متجر", "दुकान", "dükkân", "shop-📦"}
	for _, tc := range []struct {
		name   string
		fails  int
		lost   bool
		result string
		used   int64
	}{
		{"the second try answers", 1, false, "refunded", 0},
		{"the first try's reply was lost", 1, true, "refunded", 0},
		{"the last try answers", 3, false, "refunded", 0},
		{"no try answers", 4, false, "error", 16},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &flakyRefunds{Memory: store.NewMemory(limiter.Calendar{}), fails: tc.fails, lost: tc.lost, tries: map[string]int{}}
			for i := range 64 {
				takeSend(t, f.Memory, instances[i%len(instances)], fmt.Sprintf("d%d", i))
			}
			var dlog refundLines
			s := quickRetries(NewResponseServer([]int{500}, nil)).WithRefunds(f, func() time.Time { return refundNow }).WithMetrics(prometheus.NewRegistry()).WithRefundLog(&dlog)
			var wg sync.WaitGroup
			for i := range 64 {
				wg.Go(func() {
					resp := s.answer(context.Background(), withInstance("500", fmt.Sprintf("d%d", i), instances[i%len(instances)], "via_upstream"))
					if resp.GetImmediateResponse().GetStatus().GetCode() != 502 {
						t.Errorf("answer d%d = %v, want the 502", i, resp)
					}
				})
			}
			wg.Wait()
			if err := s.Drain(t.Context()); err != nil { // no polling: Drain returns once every retry is recorded
				t.Fatal(err)
			}
			for _, inst := range instances {
				if got := dailyUsed(t, f.Memory, inst); got != tc.used {
					t.Errorf("%s used %d after 16 failed sends, want %d", inst, got, tc.used)
				}
			}
			for _, r := range []string{"refunded", "duplicate", "error", "unknown"} {
				want := 0.0
				if r == tc.result {
					want = 64
				}
				if n := testutil.ToFloat64(s.m.refunds.WithLabelValues(r)); n != want {
					t.Errorf("sendguard_refunds_total{result=%s} = %v, want %v", r, n, want)
				}
			}
			if len(dlog.lines) != 64 {
				t.Errorf("%d refunds in the decision log, want 64 (one per send)", len(dlog.lines))
			}
			if want := min(tc.fails+1, 4) * 64; len(f.tries) != 64 || sum(f.tries) != want {
				t.Errorf("%d ids tried %d times in all, want 64 ids and %d tries", len(f.tries), sum(f.tries), want)
			}
		})
	}
	t.Run("more failed refunds than slots", func(t *testing.T) {
		f := &flakyRefunds{Memory: store.NewMemory(limiter.Calendar{}), fails: 1, tries: map[string]int{}}
		s := quickRetries(NewResponseServer([]int{500}, nil)).WithRefunds(f, func() time.Time { return refundNow }).WithMetrics(prometheus.NewRegistry())
		for range maxRefundRetries {
			s.retrying <- struct{}{} // every slot taken
		}
		takeSend(t, f.Memory, "shop", "d1")
		s.answer(context.Background(), withInstance("500", "d1", "shop", "via_upstream"))
		if n := testutil.ToFloat64(s.m.refunds.WithLabelValues("error")); n != 1 {
			t.Errorf("sendguard_refunds_total{result=error} with no slot free = %v, want 1", n)
		}
		if got := dailyUsed(t, f.Memory, "shop"); got != 1 {
			t.Errorf("shop used %d, want 1 (the send stays counted)", got)
		}
	})
}

// gatedRefunds is a flakyRefunds whose further tries wait for gate.
type gatedRefunds struct {
	flakyRefunds
	gate chan struct{}
}

func (g *gatedRefunds) Refund(ctx context.Context, instance, id string, now time.Time) (store.RefundResult, error) {
	g.mu.Lock()
	again := g.tries[id] > 0
	g.mu.Unlock()
	if again {
		<-g.gate
	}
	return g.flakyRefunds.Refund(ctx, instance, id, now)
}

// TestResponseServerDrain: at shutdown, Drain reports the retries its
// context did not wait for, waits for the others, and then a failed
// refund is counted an error at once, tried no more.
func TestResponseServerDrain(t *testing.T) {
	instances := []string{"متجر", "दुकान", "dükkân", "shop-📦"}
	f := &gatedRefunds{flakyRefunds: flakyRefunds{Memory: store.NewMemory(limiter.Calendar{}), fails: 1, tries: map[string]int{}}, gate: make(chan struct{})}
	for i := range maxRefundRetries + 1 {
		takeSend(t, f.Memory, instances[i%len(instances)], fmt.Sprintf("d%d", i))
	}
	var dlog refundLines
	s := quickRetries(NewResponseServer([]int{500}, nil)).WithRefunds(f, func() time.Time { return refundNow }).WithMetrics(prometheus.NewRegistry()).WithRefundLog(&dlog)
	var wg sync.WaitGroup
	for i := range maxRefundRetries {
		wg.Go(func() {
			s.answer(context.Background(), withInstance("500", fmt.Sprintf("d%d", i), instances[i%len(instances)], "via_upstream"))
		})
	}
	wg.Wait() // every slot holds a retry, held at the gate
	ended, cancel := context.WithCancel(t.Context())
	cancel()
	if err := s.Drain(ended); err == nil || !strings.HasPrefix(err.Error(), fmt.Sprintf("%d failed refunds still being tried again", maxRefundRetries)) || !errors.Is(err, context.Canceled) {
		t.Errorf("Drain with its context ended = %v, want %d retries still waiting and context.Canceled", err, maxRefundRetries)
	}
	close(f.gate)
	if err := s.Drain(t.Context()); err != nil {
		t.Fatalf("Drain = %v", err)
	}
	if n := testutil.ToFloat64(s.m.refunds.WithLabelValues("refunded")); n != maxRefundRetries || len(dlog.lines) != maxRefundRetries {
		t.Errorf("after Drain: %v refunded, %d in the decision log, want %d of each", n, len(dlog.lines), maxRefundRetries)
	}
	last := fmt.Sprintf("d%d", maxRefundRetries)
	s.answer(context.Background(), withInstance("500", last, "متجر", "via_upstream"))
	if n := testutil.ToFloat64(s.m.refunds.WithLabelValues("error")); n != 1 || f.tries[last] != 1 {
		t.Errorf("a refund failing after Drain: %v errors, tried %d times, want 1 error and 1 try", n, f.tries[last])
	}
	for _, inst := range instances {
		want := int64(0)
		if inst == "متجر" {
			want = 1 // the send refused after Drain stays counted
		}
		if got := dailyUsed(t, f.Memory, inst); got != want {
			t.Errorf("%s used %d, want %d", inst, got, want)
		}
	}
}

func sum(m map[string]int) (n int) {
	for _, v := range m {
		n += v
	}
	return n
}

// TestResponseServerRefundsConcurrent: 64 streams at once, multilingual
// instance ids, half failing (some failing twice): exactly the failed
// ones are given back, once each.
func TestResponseServerRefundsConcurrent(t *testing.T) {
	st := store.NewMemory(limiter.Calendar{})
	instances := []string{"متجر", "दुकान", "dükkân", "shop-📦"}
	for i := range 64 {
		takeSend(t, st, instances[i/2%len(instances)], fmt.Sprintf("d%d", i))
	}
	s := NewResponseServer([]int{500, 503}, nil).WithRefunds(st, func() time.Time { return refundNow }).WithMetrics(prometheus.NewRegistry())
	var wg sync.WaitGroup
	for i := range 64 {
		wg.Go(func() {
			status := []string{"200", "500", "200", "503"}[i%4]
			inst := instances[i/2%len(instances)]
			s.answer(context.Background(), withInstance(status, fmt.Sprintf("d%d", i), inst, "via_upstream"))
			if i%8 == 1 {
				s.answer(context.Background(), withInstance(status, fmt.Sprintf("d%d", i), inst, "via_upstream"))
			}
		})
	}
	wg.Wait()
	for _, inst := range instances {
		if got := dailyUsed(t, st, inst); got != 8 {
			t.Errorf("%s used %d, want 8 (16 sends, 8 failed)", inst, got)
		}
	}
	if n := testutil.ToFloat64(s.m.refunds.WithLabelValues("refunded")); n != 32 {
		t.Errorf("refunded = %v, want 32", n)
	}
	if n := testutil.ToFloat64(s.m.refunds.WithLabelValues("duplicate")); n != 8 {
		t.Errorf("duplicate = %v, want 8", n)
	}
}

// TestLateRefund: a send Envoy gave up on (Check's context done by the
// time it is decided: the ext_authz timeout passed) gives back what its
// allowed decision took, counted and logged as by="ext_authz_timeout"; a
// send decided in time keeps its count. Concurrently, with multilingual
// messages: every late one is refunded, every timely one counted.
func TestLateRefund(t *testing.T) {
	// With abuse counters, as serve runs: the path that keeps receipts.
	d, st, now := newDecider(t, limiter.Limits{Daily: 1000, Monthly: 2000, Rate: 1000, Burst: 1000}, func(o *decision.Options) {
		inst := o.Instances["inst_12345"]
		inst.Abuse = abuse.Limits{FanOutWindow: time.Minute, FanOutThrottle: 1000, PairPerMinute: 10}
		o.Instances["inst_12345"] = inst
		o.Abuse = o.State.(*store.Memory)
	})
	reg := prometheus.NewRegistry()
	var dlog refundLines
	rs := NewResponseServer([]int{500, 502, 503, 504}, nil).WithRefunds(st, func() time.Time { return *now }).WithMetrics(reg).WithRefundLog(&dlog)
	srv := NewServer(d, nil).WithLateRefunds(rs)
	texts := []string{"تم شحن طلبك رقم %d", "आपका ऑर्डर %d भेज दिया गया है", "Siparişiniz %d kargoya verildi 📦", "Order %d: café ré\u0301sumé ✅"}
	used := func() int64 {
		u, err := st.Usage(context.Background(), "inst_12345", limiter.Limits{Daily: 1000, Monthly: 2000, Rate: 1000, Burst: 1000}, *now)
		if err != nil {
			t.Fatal(err)
		}
		return u.DailyUsed
	}
	check := func(ctx context.Context, i int) *authv3.CheckResponse {
		body := fmt.Sprintf(`{"instance_id":"inst_12345","phone":"+9665012%05d","message":%q,"message_purpose":"transactional"}`, i, fmt.Sprintf(texts[i%len(texts)], i))
		resp, err := srv.Check(ctx, checkRequest("POST", "/api/send-message", "Bearer key-demo", body))
		if err != nil {
			t.Errorf("Check(send %d) = %v", i, err)
		}
		return resp
	}
	// Each text once in time first: a late decision that misses the
	// policy memo fails in OPA (its context is done) and takes nothing.
	for i := range len(texts) {
		if check(context.Background(), 100+i).GetOkResponse() == nil {
			t.Fatalf("warm-up send %d not allowed", i)
		}
	}
	done, cancel := context.WithCancel(context.Background())
	cancel()
	var wg sync.WaitGroup
	var lateAllowed atomic.Int64
	for i := range 64 {
		wg.Go(func() {
			if i%2 == 0 {
				if resp := check(context.Background(), i); resp.GetOkResponse() == nil {
					t.Errorf("Check(send %d) in time = %v; want allowed", i, resp)
				}
				return
			}
			// Envoy gave up on the odd ones: allowed (and refunded) or
			// failed (and nothing taken).
			if check(done, i).GetOkResponse() != nil {
				lateAllowed.Add(1)
			}
		})
	}
	wg.Wait()
	late := lateAllowed.Load()
	if late < 16 {
		t.Fatalf("only %d of 32 late sends were decided allowed; the test needs them", late)
	}
	if got, want := used(), int64(len(texts)+32); got != want {
		t.Errorf("daily use after %d warm-up, 32 timely and 32 late sends (%d allowed) = %d, want %d", len(texts), late, got, want)
	}
	if got := testutil.ToFloat64(rs.m.refunds.WithLabelValues("refunded")); got != float64(late) {
		t.Errorf(`sendguard_refunds_total{result="refunded"} = %v, want %d`, got, late)
	}
	dlog.mu.Lock()
	defer dlog.mu.Unlock()
	refunded := 0
	for _, l := range dlog.lines {
		if strings.Contains(l, " refunded 0 ext_authz_timeout ") {
			refunded++
		}
	}
	if int64(refunded) != late {
		t.Errorf("refund log lines %q: %d refunded by ext_authz_timeout, want %d", dlog.lines, refunded, late)
	}
}

// replyLost is a store whose take of a send counts it and then fails, as a
// Redis script that ran but whose reply missed the timeout does, or a
// write whose WAIT missed its replicas.
type replyLost struct{ *store.Memory }

func (r replyLost) TakeSend(ctx context.Context, s abuse.Send, now time.Time) (abuse.Outcome, error) {
	if _, err := r.Memory.TakeSend(ctx, s, now); err != nil {
		return abuse.Outcome{}, err
	}
	return abuse.Outcome{}, errors.New("reply lost")
}

// TestStoreErrorRefund: a send whose store take failed after counting it
// is answered policy_check_unavailable and refunded in the background, so
// the client's retry does not cost twice. 48 multilingual sends at once.
func TestStoreErrorRefund(t *testing.T) {
	limits := limiter.Limits{Daily: 1000, Monthly: 2000, Rate: 1000, Burst: 1000}
	var mem *store.Memory
	d, st, now := newDecider(t, limits, func(o *decision.Options) {
		inst := o.Instances["inst_12345"]
		inst.Abuse = abuse.Limits{FanOutWindow: time.Minute, FanOutThrottle: 1000, PairPerMinute: 10}
		o.Instances["inst_12345"] = inst
		mem = o.State.(*store.Memory)
		o.Abuse = replyLost{mem}
	})
	reg := prometheus.NewRegistry()
	var dlog refundLines
	rs := NewResponseServer([]int{500, 502, 503, 504}, nil).WithRefunds(st, func() time.Time { return *now }).WithMetrics(reg).WithRefundLog(&dlog)
	srv := NewServer(d, nil).WithLateRefunds(rs)
	texts := []string{"تم شحن طلبك رقم %d", "आपका ऑर्डर %d भेज दिया गया है", "Siparişiniz %d kargoya verildi 📦", "Order %d: café ré\u0301sumé ✅"}
	const sends = 48
	var wg sync.WaitGroup
	for i := range sends {
		wg.Go(func() {
			body := fmt.Sprintf(`{"instance_id":"inst_12345","phone":"+9665012%05d","message":%q,"message_purpose":"transactional"}`, i, fmt.Sprintf(texts[i%len(texts)], i))
			resp, err := srv.Check(context.Background(), checkRequest("POST", "/api/send-message", "Bearer key-demo", body))
			if err != nil || resp.GetDeniedResponse().GetStatus().GetCode() != 503 {
				t.Errorf("Check(send %d) = %v, %v; want 503 policy_check_unavailable", i, resp, err)
			}
		})
	}
	wg.Wait()
	// The refunds run in the background; each holds a slot until done.
	deadline := time.Now().Add(10 * time.Second)
	for {
		dlog.mu.Lock()
		n := len(dlog.lines)
		dlog.mu.Unlock()
		if n+int(testutil.ToFloat64(rs.m.refunds.WithLabelValues("skipped"))) == sends && len(srv.storeRefunds) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d refund lines after 10s, want %d", n, sends)
		}
		time.Sleep(5 * time.Millisecond)
	}
	skipped := int(testutil.ToFloat64(rs.m.refunds.WithLabelValues("skipped")))
	refunded := int(testutil.ToFloat64(rs.m.refunds.WithLabelValues("refunded")))
	if refunded+skipped != sends || refunded == 0 {
		t.Errorf("refunded %d and skipped %d of %d failed takes, want all refunded or skipped", refunded, skipped, sends)
	}
	for _, l := range dlog.lines {
		if !strings.HasSuffix(l, " refunded 0 store_error <nil>") {
			t.Errorf("refund line %q, want refunded by store_error", l)
		}
	}
	u, err := mem.Usage(context.Background(), "inst_12345", limits, *now)
	if err != nil {
		t.Fatal(err)
	}
	if u.DailyUsed != int64(skipped) {
		t.Errorf("daily use after %d failed takes (%d refunds skipped) = %d, want %d", sends, skipped, u.DailyUsed, skipped)
	}
}
