package main

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sendguard/sendguard/internal/policy"
)

// registerMemoMetrics exports the policy decision memo's counts, read from
// stats at each scrape: the hit rate under real traffic is
// hits / (hits + misses), and a falling one means first-seen inputs (each
// an OPA evaluation) are taking the CPU. The counts are those of the
// policies in force: a reload prepares a fresh memo and starts them from 0,
// which Prometheus's rate() and increase() read as a counter reset.
func registerMemoMetrics(reg prometheus.Registerer, stats func() policy.MemoStats) {
	reg.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "sendguard_policy_memo_hits_total",
			Help: "Decisions answered from the policy memo since the policies in force were loaded (a reload starts from 0)."},
			func() float64 { return float64(stats().Hits) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "sendguard_policy_memo_misses_total",
			Help: "Decisions that paid an OPA evaluation (a first-seen policy input) since the policies in force were loaded (a reload starts from 0)."},
			func() float64 { return float64(stats().Misses) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "sendguard_policy_memo_entries",
			Help: "Decisions the policy memo holds."},
			func() float64 { return float64(stats().Entries) }),
	)
}
