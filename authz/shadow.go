package authz

import (
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sendguard/sendguard/internal/decision"
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

// shadowHeaders are the upstream headers of a forwarded would-be denial.
func shadowHeaders(res decision.Result) []*corev3.HeaderValueOption {
	if !res.Shadow {
		return nil
	}
	return []*corev3.HeaderValueOption{overwrite(HeaderShadowDecision, string(res.Code))}
}
