package authz

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/sendguard/sendguard/internal/catalog"
)

// TestShadowMetricStartsAtZero: sendguard_shadow_denials_total has a zero
// series for every code a decision can deny with from the start, before
// any shadowed denial (so the dashboard's shadow panel and an increase()
// alert have a series), and none for the two codes that are never a
// shadowed decision.
func TestShadowMetricStartsAtZero(t *testing.T) {
	reg := prometheus.NewRegistry()
	NewServer(nil, nil).WithMetrics(reg)
	want := 0
	for _, e := range catalog.All() {
		if e.Code == catalog.GatewaySendFailed || e.Code == catalog.PolicyCheckUnavailable {
			continue
		}
		want++
	}
	if got := testutil.CollectAndCount(reg, "sendguard_shadow_denials_total"); got != want {
		t.Errorf("sendguard_shadow_denials_total series = %d, want %d (one per deniable code)", got, want)
	}
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != "sendguard_shadow_denials_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			code := m.GetLabel()[0].GetValue()
			if code == string(catalog.GatewaySendFailed) || code == string(catalog.PolicyCheckUnavailable) {
				t.Errorf("sendguard_shadow_denials_total{code=%q} exported; that code is never a shadowed decision", code)
			}
			if v := m.GetCounter().GetValue(); v != 0 {
				t.Errorf("sendguard_shadow_denials_total{code=%q} = %v at start, want 0", code, v)
			}
		}
	}
}
