package main

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sendguard/sendguard/internal/decision"
	"github.com/sendguard/sendguard/internal/risk"
	"github.com/sendguard/sendguard/internal/textcache"
)

// Label values of the text caches' metrics (the cache label).
const (
	cacheContentSignals = "content_signals" // risk.Scanner: a message's content signals
	cacheBodyKey        = "body_key"        // decision.Decider: a message's fan-out body key
)

// textCacheMetrics exports the lookups of serve's text caches
// (internal/textcache) on /metrics:
//
//	sendguard_text_cache_hits_total{cache}    lookups answered from the cache
//	sendguard_text_cache_misses_total{cache}  lookups computed (a text seen the
//	                                          first time, or evicted)
//	sendguard_text_cache_slots{cache}         the cache's size, in texts
//
// with cache content_signals (the scanner's) or body_key (the decider's).
// They are read from the caches at each scrape: the request path pays
// nothing for them. A reload that builds a new scanner or decider starts
// a new cache; the counters carry the old one's counts forward, so they
// never go back (lookups that requests still deciding with the old one
// make after the swap are not counted).
type textCacheMetrics struct {
	mu      sync.Mutex
	scanner *risk.Scanner
	decider *decision.Decider
	retired [2]textcache.Stats // content_signals, body_key: caches a reload replaced

	hits, misses, slots *prometheus.Desc
}

func newTextCacheMetrics() *textCacheMetrics {
	l := []string{"cache"}
	return &textCacheMetrics{
		hits:   prometheus.NewDesc("sendguard_text_cache_hits_total", "Lookups of a text cache answered from it, by cache: content_signals (the scanner's) or body_key (the fan-out body key's).", l, nil),
		misses: prometheus.NewDesc("sendguard_text_cache_misses_total", "Lookups of a text cache that computed the value (a text not seen before, or evicted), by cache.", l, nil),
		slots:  prometheus.NewDesc("sendguard_text_cache_slots", "How many texts a text cache holds at most, by cache (0: the cache is off).", l, nil),
	}
}

// use makes the metrics read s's and d's caches from now on (at start,
// and after a reload applied), keeping the counts of the ones they replace.
func (m *textCacheMetrics) use(s *risk.Scanner, d *decision.Decider) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.scanner != nil && m.scanner != s {
		m.retired[0] = add(m.retired[0], m.scanner.CacheStats())
	}
	if m.decider != nil && m.decider != d {
		m.retired[1] = add(m.retired[1], m.decider.BodyKeyCacheStats())
	}
	m.scanner, m.decider = s, d
}

func add(a, b textcache.Stats) textcache.Stats {
	return textcache.Stats{Hits: a.Hits + b.Hits, Misses: a.Misses + b.Misses}
}

// Describe implements prometheus.Collector.
func (m *textCacheMetrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- m.hits
	ch <- m.misses
	ch <- m.slots
}

// Collect implements prometheus.Collector.
func (m *textCacheMetrics) Collect(ch chan<- prometheus.Metric) {
	m.mu.Lock()
	var cur [2]textcache.Stats
	if m.scanner != nil {
		cur[0] = m.scanner.CacheStats()
	}
	if m.decider != nil {
		cur[1] = m.decider.BodyKeyCacheStats()
	}
	retired := m.retired
	m.mu.Unlock()
	for i, name := range []string{cacheContentSignals, cacheBodyKey} {
		ch <- prometheus.MustNewConstMetric(m.hits, prometheus.CounterValue, float64(retired[i].Hits+cur[i].Hits), name)
		ch <- prometheus.MustNewConstMetric(m.misses, prometheus.CounterValue, float64(retired[i].Misses+cur[i].Misses), name)
		ch <- prometheus.MustNewConstMetric(m.slots, prometheus.GaugeValue, float64(cur[i].Size), name)
	}
}
