package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sendguard/sendguard/internal/risk"
)

// scrape returns the samples of /metrics on addr whose line starts with
// prefix, keyed by the rest of the name and labels.
func scrape(t *testing.T, addr, prefix string) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, l := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(l, prefix) {
			continue
		}
		name, v, _ := strings.Cut(l, " ")
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			t.Fatalf("/metrics line %q: %v", l, err)
		}
		out[name] = f
	}
	return out
}

// TestServeTextCacheMetrics: serve's /metrics counts the text caches'
// lookups. Each of six texts (Arabic, Hindi, Turkish, emoji, combining
// marks, English), decided three times from its own goroutine, misses
// twice (a text is cached on its second sighting) and hits once, in the
// scanner's cache and in the body key's.
func TestServeTextCacheMetrics(t *testing.T) {
	s := serveFor(t, devstackConfig(t, t.TempDir(), ""), nil)
	texts := []string{
		"طلبك رقم 4411 في الطريق وسيصل غدا.",
		"आपका ऑर्डर 4412 भेज दिया गया है।",
		"4413 numaralı siparişiniz kargoya verildi.",
		"Your order 4414 has shipped 📦🚚",
		"Votre commande 4415 a e\u0301te\u0301 expe\u0301die\u0301e.", // combining acute accents
		"Your order 4416 has shipped.",
	}
	const prefix = "sendguard_text_cache_"
	before := scrape(t, s.adminAddr, prefix)
	for _, c := range []string{cacheContentSignals, cacheBodyKey} {
		if got := before[prefix+`slots{cache="`+c+`"}`]; got != scanCacheSize {
			t.Errorf("slots{cache=%q} = %v, want %d", c, got, scanCacheSize)
		}
	}

	var wg sync.WaitGroup
	for i, text := range texts {
		wg.Go(func() {
			for n := range 3 {
				body := sendJSON(fmt.Sprintf("+9665012%02d%03d", i, n), text, "transactional")
				resp, err := s.client.Check(context.Background(), &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{
					Http: &authv3.AttributeContext_HttpRequest{Method: "POST", Path: "/api/send-message", Headers: sendHeaders(""), RawBody: body}}}})
				if err != nil {
					t.Errorf("Check(%q): %v", text, err)
					return
				}
				if d := resp.GetDeniedResponse(); d != nil && !strings.Contains(d.GetBody(), "throttled") && !strings.Contains(d.GetBody(), "quota") {
					// Only a send the policy lets through reaches the body key.
					t.Errorf("Check(%q) = %s, want allowed (or a limit)", text, d.GetBody())
				}
			}
		})
	}
	wg.Wait()

	after := scrape(t, s.adminAddr, prefix)
	for _, c := range []string{cacheContentSignals, cacheBodyKey} {
		for _, k := range []struct {
			name string
			want float64
		}{{"hits_total", float64(len(texts))}, {"misses_total", 2 * float64(len(texts))}} {
			key := prefix + k.name + `{cache="` + c + `"}`
			if got := after[key] - before[key]; got != k.want {
				t.Errorf("%s went up by %v, want %v (before %v, after %v)", key, got, k.want, before[key], after[key])
			}
		}
	}
}

// TestTextCacheMetricsAcrossReload: a reload that builds a new scanner
// starts a new cache, and the counters carry the old one's counts: they
// never go back, and every lookup of either cache is counted once.
func TestTextCacheMetricsAcrossReload(t *testing.T) {
	m := newTextCacheMetrics()
	reg := prometheus.NewRegistry()
	reg.MustRegister(m)
	// counts returns the content_signals cache's hits and misses.
	counts := func() (hits, misses float64) {
		t.Helper()
		return hitsMisses(t, reg, "sendguard_text_cache", cacheContentSignals)
	}
	old := risk.New(risk.Options{CacheSize: 256})
	m.use(old, nil)
	for range 3 {
		old.Scan("नमस्ते 🙂 مرحبا")
	}
	if h, ms := counts(); h != 1 || ms != 2 {
		t.Fatalf("before the reload: hits %v misses %v, want 1 and 2", h, ms)
	}
	m.use(risk.New(risk.Options{CacheSize: 256}), nil)
	if h, ms := counts(); h != 1 || ms != 2 {
		t.Fatalf("right after the reload: hits %v misses %v, want the old cache's 1 and 2", h, ms)
	}
	next := m.scanner
	var wg sync.WaitGroup
	for _, text := range []string{"Sipariş 77 yolda ğüşıöç", "e\u0301te\u0301 🚚", "आपका ऑर्डर 4412"} {
		for range 8 {
			wg.Go(func() { next.Scan(text) })
		}
	}
	wg.Wait()
	if h, ms := counts(); h < 1 || ms < 2 || h+ms != 3+24 {
		t.Fatalf("after 24 lookups of the new cache: hits %v misses %v, want at least 1 and 2, 27 in all", h, ms)
	}
}
