package policy

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/sendguard/sendguard/internal/model"
	"github.com/sendguard/sendguard/internal/risk"
)

// TestTuckedInAdBlocks: an ad in the last line or a P.S. of a real notice,
// declared transactional, through the real scanner with the embedded
// model and the embedded Rego, is a policy_violation; the notice without
// it passes, and the whole message read as one (segment_lead 0) is not
// blocked (at most slowed): the segment reading is what blocks. From many goroutines, the same.
func TestTuckedInAdBlocks(t *testing.T) {
	m, err := model.Embedded(model.Outbound)
	if err != nil {
		t.Fatal(err)
	}
	sc := risk.New(risk.Options{Model: m})
	e := engine(t, Options{})
	tests := []struct{ notice, ad string }{
		{"Your electricity bill for October is AED 412.50, account 2231-8812. Please pay by 20 November through the app or at any branch to avoid a late fee.",
			"\nSwitch to our green plan and get your first month free!"},
		// A Spanish dental reminder with a whitening offer in a P.S. was here
		// until the models through round 136, which read it as promotional
		// whole (round 133 paired such P.S. offers with their notices): it no
		// longer shows the segment reading at work, so a longer notice does.
		{"Guten Tag Herr Keller, Ihr Termin zur Inspektion Ihres VW Golf (Kennzeichen M-KL 2231) ist am Donnerstag, 14. November, um 8:30 Uhr in unserer Werkstatt in der Landsberger Straße 112. Bitte bringen Sie das Serviceheft und den Zweitschlüssel mit. Die Inspektion dauert etwa drei Stunden; wir rufen Sie an, sobald der Wagen fertig ist. Falls Sie den Termin nicht wahrnehmen können, sagen Sie bitte bis Mittwoch 12 Uhr ab.",
			"\n\nPS: Winterreifen jetzt 20 % günstiger – gleich mitbestellen!"},
	}
	decide := func(sig risk.Signals) Decision {
		d, err := e.Eval(context.Background(), Input{InstanceID: "shop", Plan: "starter", Purpose: "transactional", PurposePresent: true, Signals: sig})
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	for _, tt := range tests {
		msg := tt.notice + tt.ad
		t.Run(strings.Fields(msg)[0], func(t *testing.T) {
			sig := sc.Scan(msg)
			if d := decide(sig); d.Error != "policy_violation" {
				t.Errorf("Decide(%q) = %q (score %d, segment_lead %d), want policy_violation", msg, d.Error, d.RiskScore, sig.ModelSegmentLead)
			}
			whole := sig
			whole.ModelSegmentLead = 0
			if d := decide(whole); d.Error != "" {
				t.Errorf("Decide(%q) read as one = %q, want not blocked: not a tucked-in ad", msg, d.Error)
			}
			if d := decide(sc.Scan(tt.notice)); d.Error != "" || d.Throttle {
				t.Errorf("Decide(%q) = %q throttle %v, want allowed", tt.notice, d.Error, d.Throttle)
			}
		})
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for r := range 20 {
				tt := tests[(g+r)%len(tests)]
				if d := decide(sc.Scan(tt.notice + tt.ad)); d.Error != "policy_violation" {
					t.Errorf("Decide(%q) from many goroutines = %q, want policy_violation", tt.notice+tt.ad, d.Error)
					return
				}
			}
		})
	}
	wg.Wait()
}
