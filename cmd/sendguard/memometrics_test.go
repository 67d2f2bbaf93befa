package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/sendguard/sendguard/internal/keys"
	"github.com/sendguard/sendguard/internal/policy"
	"github.com/sendguard/sendguard/internal/risk"
)

// TestMemoMetrics: a running serve exports its policy memo's counts, and
// they count: a request seen before is a hit, a first-seen one a miss.
func TestMemoMetrics(t *testing.T) {
	dir := t.TempDir()
	grpcAddr, adminAddr := freeAddr(t), freeAddr(t)
	path := filepath.Join(dir, "sendguard.yaml")
	if err := os.WriteFile(path, []byte(fmt.Sprintf(processConfig, grpcAddr, adminAddr, "{type: memory}", keys.Hash("key"))), 0o600); err != nil {
		t.Fatal(err)
	}
	startChild(t, path, grpcAddr, adminAddr)
	c := dial(t, grpcAddr)
	metric := func(name string) float64 {
		t.Helper()
		r, err := http.Get("http://" + adminAddr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer r.Body.Close()
		b, _ := io.ReadAll(r.Body)
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, name+" "); ok {
				f, err := strconv.ParseFloat(v, 64)
				if err != nil {
					t.Fatalf("%s = %q: %v", name, v, err)
				}
				return f
			}
		}
		t.Fatalf("/metrics has no %s", name)
		return 0
	}
	send := func(msg string) {
		t.Helper()
		req := sendCheckTo("shop", "+966501234567", msg)
		if resp, err := c.Check(context.Background(), req); err != nil || resp.GetOkResponse() == nil {
			t.Fatalf("Check(%q) = %v, %v; want allowed", msg, resp, err)
		}
	}
	send("Your order #1042 has shipped.")
	hits, misses := metric("sendguard_policy_memo_hits_total"), metric("sendguard_policy_memo_misses_total")
	if misses < 1 || metric("sendguard_policy_memo_entries") < 1 {
		t.Fatalf("after a first request: misses %v, entries %v; want at least 1 each", misses, metric("sendguard_policy_memo_entries"))
	}
	send("Your order #1042 has shipped.")
	send("Your order #1042 has shipped.")
	if h, m := metric("sendguard_policy_memo_hits_total"), metric("sendguard_policy_memo_misses_total"); h != hits+2 || m != misses {
		t.Errorf("the same request twice more: hits %v → %v, misses %v → %v; want +2 hits, no miss", hits, h, misses, m)
	}
	// A message the policy reads differently (a purpose-relevant signal
	// changes: a link) is a first-seen input.
	send("Your order #1042 has shipped: https://track.example.com/1042")
	if m := metric("sendguard_policy_memo_misses_total"); m != misses+1 {
		t.Errorf("a first-seen input: misses %v → %v; want +1", misses, m)
	}
}

// TestMemoMetricsAcrossReload: a reload prepares a new engine with a fresh
// memo, and the counters carry the old one's counts: they never go back,
// and every lookup of either memo is counted once, from many goroutines.
func TestMemoMetricsAcrossReload(t *testing.T) {
	ctx := context.Background()
	m := newMemoMetrics()
	reg := prometheus.NewRegistry()
	reg.MustRegister(m)
	counts := func() (hits, misses float64) {
		t.Helper()
		return hitsMisses(t, reg, "sendguard_policy_memo", "")
	}
	engine := func() *policy.Engine {
		t.Helper()
		e, err := policy.New(ctx, policy.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	sc := risk.New(risk.Options{})
	eval := func(e *policy.Engine, msg string) {
		t.Helper()
		if _, err := e.Eval(ctx, policy.Input{Purpose: "transactional", PurposePresent: true, Signals: sc.Scan(msg)}); err != nil {
			t.Error(err)
		}
	}
	old := engine()
	m.use(old)
	h0, m0 := counts() // the probes the engine answered at start
	for range 3 {
		eval(old, "Your order #1042 has shipped.")
	}
	if h, ms := counts(); h != h0+2 || ms != m0+1 {
		t.Fatalf("before the reload: hits %v misses %v, want %v and %v", h, ms, h0+2, m0+1)
	}
	next := engine()
	n0 := next.MemoStats()
	m.use(next)
	if h, ms := counts(); h != h0+2+float64(n0.Hits) || ms != m0+1+float64(n0.Misses) {
		t.Fatalf("right after the reload: hits %v misses %v, want the old memo's and the new one's start", h, ms)
	}
	msgs := []string{"Sipariş 77 yolda ğüşıöç https://kargo.example/77", "e\u0301te\u0301 🚚 50% OFF today only!!!", "आपका ऑर्डर 4412 भेज दिया गया", "طلبك رقم ٤٤١٢ في الطريق"}
	var wg sync.WaitGroup
	for _, msg := range msgs {
		for range 4 {
			wg.Add(1)
			go func() { defer wg.Done(); eval(next, msg) }()
		}
	}
	wg.Wait()
	h, ms := counts()
	if h+ms != h0+m0+3+float64(n0.Hits+n0.Misses)+16 {
		t.Errorf("after 16 more lookups: hits %v + misses %v, want every lookup counted once", h, ms)
	}
	if testutil.CollectAndCount(m) != 3 {
		t.Errorf("memoMetrics collects %d series, want 3", testutil.CollectAndCount(m))
	}
}

// hitsMisses gathers reg and returns the counters stem_hits_total and
// stem_misses_total: of the series whose first label is label, or of the
// only series when label is "".
func hitsMisses(t *testing.T, reg *prometheus.Registry, stem, label string) (hits, misses float64) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, mt := range mf.GetMetric() {
			if label != "" && (len(mt.GetLabel()) == 0 || mt.GetLabel()[0].GetValue() != label) {
				continue
			}
			switch mf.GetName() {
			case stem + "_hits_total":
				hits = mt.GetCounter().GetValue()
			case stem + "_misses_total":
				misses = mt.GetCounter().GetValue()
			}
		}
	}
	return hits, misses
}
