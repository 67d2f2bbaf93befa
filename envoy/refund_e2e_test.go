package envoy_test

import (
	"bytes"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sendguard/sendguard/internal/catalog"
	"github.com/sendguard/sendguard/internal/store/redistest"
)

// refundPlan gives inst_refund room for the concurrent sends: no limit of
// its own (day, month, bucket, fan-out, pair) is reached, so every
// difference in usage is a take or a refund.
func refundPlan(cfg string) string {
	cfg = strings.Replace(cfg, "plans:\n", "plans:\n  bulk: {daily: 10000, monthly: 100000, throttle: {rate: 100000, burst: 100000}, abuse: {fanout_throttle: 100000, fanout_block: 400000, pair_per_minute: 1000}}\n", 1)
	return strings.Replace(cfg, "instances:\n", "instances:\n  - {id: inst_refund, name: Refunds, account: demo, plan: bulk}\n", 1)
}

// refundsLine is one result of sendguard_refunds_total in the metrics text.
var refundsLine = regexp.MustCompile(`(?m)^sendguard_refunds_total\{result="(\w+)"\} (\d+)$`)

var embeddedStoreLine = regexp.MustCompile(`store: \{type: embedded, path: [^}]*\}`)

// onRedis points the config at the real redis-server addr.
func onRedis(addr string) func(string) string {
	return func(cfg string) string {
		// A 400ms store timeout (default 150ms, at most Envoy's 0.5s): a
		// -race sendguard on a loaded machine should not fail a send on
		// its own timeout first.
		return embeddedStoreLine.ReplaceAllString(cfg, fmt.Sprintf("store: {type: redis, redis: {addr: %q, timeout: 400ms}}", addr))
	}
}

// TestRefundThroughEnvoy: through the real Envoy, on the embedded and the
// Redis stores, a send whose delivery fails (the sender answers 500 or
// 503, resets the connection, hangs past the route timeout, or cannot be
// reached at all) answers the documented 502 and leaves the instance's
// usage (admin API) as it was before; a delivered send costs exactly one;
// a client's forged decision id and instance headers refund nothing; and
// 200 concurrent multilingual sends, half of them failing, leave usage
// equal to the delivered ones.
func TestRefundThroughEnvoy(t *testing.T) {
	for _, backend := range []string{"embedded", "redis"} {
		t.Run(backend, func(t *testing.T) {
			edits := []func(string) string{refundPlan}
			if backend == "redis" {
				edits = append(edits, onRedis(redistest.Start(t).Addr()))
			}
			// ext_authz's and the health check's timeouts raised to 10s:
			// 200 sends at once to a -race sendguard on a loaded 2-core
			// machine take longer than the shipped 0.5s budget, and this
			// test is about refunds, not that budget.
			s := startStackOpts(t, stackOpts{fault: senderFault, edits: edits, envoyEdit: raiseTimeouts(t, "10s")})
			failed := catalog.Body(catalog.GatewaySendFailed, catalog.Details{})
			const inst = "inst_refund"
			n := 0
			phone := func() string { n++; return fmt.Sprintf("+9665013%05d", n) }
			used := func() [2]int64 {
				u := s.usage(inst)
				return [2]int64{u.Daily.Used, u.Monthly.Used}
			}
			refunds := 0
			refused := 0 // sends answered policy_check_unavailable: their take may have been refunded in the background

			t.Run("a delivered send costs exactly one", func(t *testing.T) {
				before := used()
				if r := s.send("key-demo", sendBody(inst, phone(), okMessage, "transactional")); r.status != 200 {
					t.Fatalf("send = %d %s, want 200", r.status, r.body)
				}
				if after := used(); after != [2]int64{before[0] + 1, before[1] + 1} {
					t.Errorf("usage (daily, monthly) after a delivered send = %v, want %v plus one", after, before)
				}
			})

			faults := []string{"500", "503", "reset"}
			if backend == "embedded" {
				faults = append(faults, "hang") // the route's 15s timeout: once is enough
			}
			for _, fault := range faults {
				t.Run("sender "+fault, func(t *testing.T) {
					before := used()
					r := s.send("key-demo", sendBody(inst, phone(), "تم شحن طلبك fault:"+fault, "transactional"))
					if r.status != 502 || !bytes.Equal(r.body, failed) {
						t.Fatalf("sender %s: %d %s, want 502 %s", fault, r.status, r.body, failed)
					}
					refunds++
					if after := used(); after != before {
						t.Errorf("usage (daily, monthly) after the failed send = %v, want %v (as before)", after, before)
					}
				})
			}

			t.Run("a forged decision id refunds nothing", func(t *testing.T) {
				// A delivered send, whose id a client then forges on a
				// failing send and on another path.
				ok := s.send("key-demo", sendBody(inst, phone(), okMessage, "transactional"))
				id := ok.header.Get("X-Sendguard-Decision-Id")
				if ok.status != 200 || id == "" {
					t.Fatalf("send = %d %s, want 200 with a decision id", ok.status, ok.body)
				}
				before := used()
				forged := map[string]string{"Authorization": "Bearer key-demo", "Content-Type": "application/json",
					"X-Sendguard-Decision-Id": id, "X-Sendguard-Instance-Id": inst}
				r := s.do("POST", "/api/send-message", forged, []byte(sendBody(inst, phone(), "Your order shipped fault:500", "transactional")))
				if r.status != 502 || r.header.Get("X-Sendguard-Decision-Id") == id {
					t.Fatalf("forged id, sender 500: %d %s (id %q), want 502 under a new id", r.status, r.body, r.header.Get("X-Sendguard-Decision-Id"))
				}
				refunds++ // its own decision, not the forged one
				delete(forged, "Authorization")
				if r := s.do("POST", "/api/other", forged, []byte(`{"m":"fault:500"}`)); r.status != 500 {
					t.Fatalf("POST /api/other with a forged id, sender 500: %d %s, want the sender's 500", r.status, r.body)
				}
				if after := used(); after != before {
					t.Errorf("usage after forged ids = %v, want %v (the delivered send still counted)", after, before)
				}
			})

			t.Run("200 concurrent sends, half failing", func(t *testing.T) {
				texts := []string{"تم شحن طلبك رقم ٢٠٤١", "आपका ऑर्डर भेज दिया गया है", "Siparişiniz kargoya verildi 📦", "Café naïve ré\u0301sumé"}
				// Warm up first: 16 sends at once open the connections
				// (Envoy's to sendguard, sendguard's Redis pool) that the
				// burst then uses; they are not part of the count.
				var warm sync.WaitGroup
				for range 16 {
					p := phone()
					warm.Go(func() { s.send("key-demo", sendBody(inst, p, okMessage, "transactional")) })
				}
				warm.Wait()
				before := used()
				phones := make([]string, 200)
				for i := range phones {
					phones[i] = phone()
				}
				// 200 goroutines at once, released together. Envoy waits up to
				// 10s for each decision, but the Redis store keeps its own
				// call budget (under 0.5s, which config enforces), so on a
				// loaded machine a few sends may be answered the documented
				// 503 instead: they reach no sender and must take nothing.
				// Usage must equal the deliveries, whatever the mix.
				unavailable := catalog.Body(catalog.PolicyCheckUnavailable, catalog.Details{})
				start := make(chan struct{})
				var wg sync.WaitGroup
				var delivered, refusedNow, refunded atomic.Int64
				for i := range 200 {
					wg.Go(func() {
						<-start
						msg := texts[i%len(texts)]
						fail := i%2 == 1
						if fail {
							msg += []string{" fault:500", " fault:503"}[i/2%2]
						}
						r := s.send("key-demo", sendBody(inst, phones[i], msg, "transactional"))
						switch {
						case r.status == 503 && bytes.Equal(r.body, unavailable):
							refusedNow.Add(1)
						case fail && (r.status != 502 || !bytes.Equal(r.body, failed)):
							t.Errorf("send %d (failing): %d %s, want 502 %s", i, r.status, r.body, failed)
						case fail:
							refunded.Add(1)
						case r.status != 200:
							t.Errorf("send %d (delivered): %d %s, want 200", i, r.status, r.body)
						default:
							delivered.Add(1)
						}
					})
				}
				close(start)
				wg.Wait()
				refunds += int(refunded.Load())
				refused += int(refusedNow.Load())
				if n := refusedNow.Load(); n > 0 {
					t.Logf("%d of 200 sends answered policy_check_unavailable (the store's own budget)", n)
				}
				if n := refusedNow.Load(); n > 20 {
					t.Errorf("%d of 200 sends answered policy_check_unavailable; the test says little about refunds", n)
				}
				// A refund the store failed (its budget, on a loaded
				// machine) is tried again in the background for about 2s,
				// so usage settles within seconds, not at once.
				d := delivered.Load()
				want := [2]int64{before[0] + d, before[1] + d}
				after := used()
				for deadline := time.Now().Add(10 * time.Second); after != want && time.Now().Before(deadline); after = used() {
					time.Sleep(50 * time.Millisecond)
				}
				if after != want {
					t.Errorf("usage after %d delivered, %d failed and refunded and %d refused sends = %v, want %v plus %d", d, refunded.Load(), refusedNow.Load(), after, before, d)
				}
			})

			t.Run("the sender unreachable", func(t *testing.T) {
				before := used()
				s.stopSender()
				r := s.send("key-demo", sendBody(inst, phone(), okMessage, "transactional"))
				if r.status != 502 || !bytes.Equal(r.body, failed) {
					t.Fatalf("sender down: %d %s, want 502 %s", r.status, r.body, failed)
				}
				refunds++
				if after := used(); after != before {
					t.Errorf("usage after a connect failure = %v, want %v (as before)", after, before)
				}
			})

			t.Run("each refund is counted", func(t *testing.T) {
				// Every failed send refunded, once; a refused send's take
				// (if it reached the store) refunded too, or unknown (if
				// not). A refund being tried again is counted when it ends,
				// within seconds.
				var m string
				counted := func() bool {
					var err error
					if m, err = get(fmt.Sprintf("http://127.0.0.1:%d/metrics", s.admin)); err != nil {
						t.Fatal(err)
					}
					got := map[string]int{}
					for _, v := range refundsLine.FindAllStringSubmatch(m, -1) {
						got[v[1]], _ = strconv.Atoi(v[2])
					}
					for _, r := range []string{"refunded", "unknown", "error", "duplicate"} {
						if _, ok := got[r]; !ok {
							t.Fatalf("metrics lack sendguard_refunds_total{result=%q}; have:\n%s", r, grepLines(m, "sendguard_refunds_total"))
						}
					}
					return got["refunded"] >= refunds && got["refunded"]+got["unknown"] <= refunds+refused && got["error"] == 0 && got["duplicate"] == 0
				}
				deadline := time.Now().Add(10 * time.Second)
				for !counted() && time.Now().Before(deadline) {
					time.Sleep(50 * time.Millisecond)
				}
				if !counted() {
					t.Errorf("refunds of %d failed sends and %d refused ones counted as:\n%s\nwant refunded %d (plus at most %d refused, refunded or unknown), no error, no duplicate", refunds, refused, grepLines(m, "sendguard_refunds_total"), refunds, refused)
				}
			})
		})
	}
}
