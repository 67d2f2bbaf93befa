package main

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sendguard/sendguard/internal/policy"
)

// memoMetrics exports the policy decision memo's lookups on /metrics:
//
//	sendguard_policy_memo_hits_total    decisions answered from the memo
//	sendguard_policy_memo_misses_total  decisions that paid an OPA evaluation
//	                                    (a first-seen policy input)
//	sendguard_policy_memo_entries       decisions the memo holds
//
// The hit rate under real traffic is hits / (hits + misses); a falling one
// means first-seen inputs are taking the CPU. They are read from the
// engine at each scrape. A reload prepares a new engine with a fresh memo;
// the counters carry the old one's counts forward, as the text caches'
// do, so they never go back.
type memoMetrics struct {
	mu      sync.Mutex
	engine  *policy.Engine
	retired policy.MemoStats

	hits, misses, entries *prometheus.Desc
}

func newMemoMetrics() *memoMetrics {
	return &memoMetrics{
		hits:    prometheus.NewDesc("sendguard_policy_memo_hits_total", "Decisions answered from the policy memo.", nil, nil),
		misses:  prometheus.NewDesc("sendguard_policy_memo_misses_total", "Decisions that paid an OPA evaluation (a first-seen policy input).", nil, nil),
		entries: prometheus.NewDesc("sendguard_policy_memo_entries", "Decisions the policy memo of the policies in force holds.", nil, nil),
	}
}

// use makes the metrics read e's memo from now on (at start, and after a
// reload applied), keeping the counts of the one it replaces.
func (m *memoMetrics) use(e *policy.Engine) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.engine != nil && m.engine != e {
		old := m.engine.MemoStats()
		m.retired.Hits += old.Hits
		m.retired.Misses += old.Misses
	}
	m.engine = e
}

// Describe implements prometheus.Collector.
func (m *memoMetrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- m.hits
	ch <- m.misses
	ch <- m.entries
}

// Collect implements prometheus.Collector.
func (m *memoMetrics) Collect(ch chan<- prometheus.Metric) {
	m.mu.Lock()
	var cur policy.MemoStats
	if m.engine != nil {
		cur = m.engine.MemoStats()
	}
	retired := m.retired
	m.mu.Unlock()
	ch <- prometheus.MustNewConstMetric(m.hits, prometheus.CounterValue, float64(retired.Hits+cur.Hits))
	ch <- prometheus.MustNewConstMetric(m.misses, prometheus.CounterValue, float64(retired.Misses+cur.Misses))
	ch <- prometheus.MustNewConstMetric(m.entries, prometheus.GaugeValue, float64(cur.Entries))
}
