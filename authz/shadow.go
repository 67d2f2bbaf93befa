package authz

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sendguard/sendguard/internal/catalog"
)

// HeaderShadowDecision carries, to the sender, the code sendguard would
// have denied a request with in shadow mode (decision.Result.Shadow). The
// client never sees it.
const HeaderShadowDecision = "x-sendguard-shadow-decision"

// newShadowMetric is sendguard_shadow_denials_total{code}: would-be
// denials forwarded in shadow mode. Every code a decision can deny with
// starts at zero, so that the series exist before the first shadowed
// denial: a dashboard panel has something to draw and an alert on
// increase() sees the first one. gateway_send_failed (Envoy's) and
// policy_check_unavailable (a failure to decide, never shadowed) are not
// among them.
func newShadowMetric() *prometheus.CounterVec {
	m := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sendguard_shadow_denials_total",
		Help: "Would-be denials forwarded in shadow mode, by error code (also counted in sendguard_decisions_total under the code).",
	}, []string{"code"})
	for _, e := range catalog.All() {
		if e.Code != catalog.GatewaySendFailed && e.Code != catalog.PolicyCheckUnavailable {
			m.WithLabelValues(string(e.Code))
		}
	}
	return m
}
