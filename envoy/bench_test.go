package envoy_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// extProcOnSendRoute is the per-route override in sidecar.yaml that turns
// the response path (ext_proc) on for the checked route; without it the
// filter stays disabled everywhere.
const extProcOnSendRoute = `                  envoy.filters.http.ext_proc:
                    "@type": type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExtProcPerRoute
                    overrides: {}
`

// benchLimits lifts every limit the benchmark's sends would reach: the
// quotas and the bucket of inst_12345's plan, and its fan-out and pair
// limits (every send goes to another recipient with another body anyway).
func benchLimits(cfg string) string {
	return strings.Replace(cfg,
		"starter: {daily: 100, monthly: 2000, throttle: {rate: 1000, burst: 1000}}",
		"starter: {daily: 100000000, monthly: 1000000000, throttle: {rate: 1000000, burst: 1000000}, abuse: {fanout_window: 1s, fanout_throttle: 1000000, pair_per_minute: 1000000}}", 1)
}

// BenchmarkSendThroughEnvoy measures an allowed send through the real Envoy
// and an optimised sendguard (embedded store), with the response path
// (ext_proc on the send route, issue 13) and without it, so that one run
// gives its cost: 1 client (latency) and 32 clients (throughput) in a closed
// loop, each send to its own recipient with its own multilingual text, the
// sender answering 200. It reports sends per second and the p50 and p99
// latency seen by the client.
// Compare on and off within one run (make bench-envoy runs it three times
// over); nothing here is asserted.
func BenchmarkSendThroughEnvoy(b *testing.B) {
	bin := plainOnce.get(b)
	texts := []string{
		"Your order #%d has been shipped.",
		"طلبك رقم %d في الطريق إليك",
		"आपका ऑर्डर %d भेज दिया गया है 📦",
		"Siparişiniz %d kargoya verildi ✅",
	}
	for _, clients := range []int{1, 32} {
		for _, on := range []bool{true, false} {
			b.Run(fmt.Sprintf("clients=%d/response_path=%v", clients, on), func(b *testing.B) {
				benchSends(b, bin, texts, clients, on)
			})
		}
	}
}

// benchSends is one sub-benchmark of BenchmarkSendThroughEnvoy.
func benchSends(b *testing.B, bin string, texts []string, clients int, on bool) {
	edit := func(y string) string {
		if !strings.Contains(y, extProcOnSendRoute) {
			b.Fatal("the rendered Envoy config has no ext_proc override on the send route")
		}
		if on {
			return y
		}
		return strings.Replace(y, extProcOnSendRoute, "", 1)
	}
	s := startStackOpts(b, stackOpts{edits: []func(string) string{benchLimits}, envoyEdit: edit, sendguard: bin})
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	url := fmt.Sprintf("http://127.0.0.1:%d/api/send-message", s.listen)
	var seq atomic.Int64
	send := func() (time.Duration, error) {
		n := seq.Add(1)
		phone := fmt.Sprintf("+9665%08d", n%100000000)
		body := sendBody("inst_12345", phone, fmt.Sprintf(texts[n%int64(len(texts))], n), "transactional")
		req, err := http.NewRequest("POST", url, bytes.NewReader([]byte(body)))
		if err != nil {
			return 0, err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer key-demo")
		start := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			return 0, err
		}
		rb, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		d := time.Since(start)
		if resp.StatusCode != 200 {
			return 0, fmt.Errorf("send %d: %d %s", n, resp.StatusCode, rb)
		}
		return d, nil
	}
	for range 200 { // warm-up: connections, the memo, the page cache
		if _, err := send(); err != nil {
			b.Fatal(err)
		}
	}
	var (
		mu   sync.Mutex
		lat  = make([]time.Duration, 0, b.N)
		errs []error
		wg   sync.WaitGroup
		next atomic.Int64
	)
	b.ResetTimer()
	start := time.Now()
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			for next.Add(1) <= int64(b.N) {
				d, err := send()
				if err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					return
				}
				mine = append(mine, d)
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if len(errs) > 0 {
		b.Fatalf("%d sends failed; first: %v", len(errs), errs[0])
	}
	slices.Sort(lat)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "sends/s")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	b.ReportMetric(0, "ns/op")
}
