package authz

import (
	"github.com/prometheus/client_golang/prometheus"
)

// HeaderShadowDecision carries, to the sender, the code sendguard would
// have denied a request with in shadow mode (decision.Result.Shadow). The
// client never sees it.
const HeaderShadowDecision = "x-sendguard-shadow-decision"

// newShadowMetric is sendguard_shadow_denials_total{code}: would-be
// denials forwarded in shadow mode.
func newShadowMetric() *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sendguard_shadow_denials_total",
		Help: "Would-be denials forwarded in shadow mode, by error code (also counted in sendguard_decisions_total under the code).",
	}, []string{"code"})
}
