package policy

import (
	"context"
	"slices"
	"testing"
)

func TestMemoKeyFields(t *testing.T) {
	// The shipped policies read every signal but the length (the model's
	// p_transactional too: each class scores by its lead over it).
	scored := []string{"signals.promo_terms", "signals.calls_to_action", "signals.discount_codes", "signals.prize_claims", "signals.cold_outreach", "signals.political", "signals.transactional", "signals.percentages", "signals.shortener_links", "signals.links", "signals.caps_ratio_pct", "signals.exclamations", "signals.emoji"}
	model := []string{"signals.p_transactional", "signals.p_promotional", "signals.p_cold_outreach", "signals.p_political", "signals.p_scam", "signals.segment_lead"}
	all := append(append(append([]string{"instance.id", "instance.plan", "instance.paused", "purpose", "recipient.phone", "recipient.suppressed"}, scored...), "signals.length"), model...)
	tests := []struct {
		name    string
		rego    string
		memo    bool
		fields  []string
		perturb func(*Input) // a change the policy can see
		probe   string       // the toy policy's answer to a probe send
	}{
		{"embedded", "", true, append(append([]string{"instance.paused", "purpose", "recipient.suppressed"}, scored...), model...),
			func(in *Input) {
				in.Signals.CapsRatioPct = 100
				in.Signals.Exclamations = 9
				in.Signals.PrizeClaims = 2
			}, ""},
		{"length rule", `package sendguard.decision
result := {"allow": true, "error": "", "risk_score": 0, "purpose": ""} if input.signals.length < 10
else := {"allow": false, "error": "policy_violation", "risk_score": 0, "purpose": ""}
`, true, []string{"signals.length"}, func(in *Input) { in.Signals.Length = 50 }, "allowed"},
		{"phone rule", `package sendguard.decision
result := {"allow": false, "error": "recipient_suppressed", "risk_score": 0, "purpose": ""} if startswith(input.recipient.phone, "+1")
else := {"allow": true, "error": "", "risk_score": 0, "purpose": ""}
`, true, []string{"recipient.phone"}, func(in *Input) { in.Phone = "+15550100" }, "recipient_suppressed"},
		{"object prefix", `package sendguard.decision
r := input.instance
result := {"allow": r.plan != "free", "error": "", "risk_score": 0, "purpose": ""} if r.plan != "free"
else := {"allow": false, "error": "policy_violation", "risk_score": 0, "purpose": ""}
`, true, []string{"instance.id", "instance.plan", "instance.paused"}, func(in *Input) { in.Plan = "free" }, "allowed"},
		{"bare input", `package sendguard.decision
x := input
result := {"allow": true, "error": "", "risk_score": 0, "purpose": ""} if x.recipient.phone != "+1"
else := {"allow": false, "error": "policy_violation", "risk_score": 0, "purpose": ""}
`, true, all, func(in *Input) { in.Phone = "+1" }, "allowed"},
		{"dynamic step", `package sendguard.decision
k := "recipient"
result := {"allow": true, "error": "", "risk_score": 0, "purpose": ""} if input[k].phone != "+1"
else := {"allow": false, "error": "policy_violation", "risk_score": 0, "purpose": ""}
`, true, all, func(in *Input) { in.Phone = "+1" }, "allowed"},
		{"clock", `package sendguard.decision
result := {"allow": time.now_ns() > 0, "error": "", "risk_score": 0, "purpose": ""}
`, false, nil, nil, "allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := Options{}
			if tt.rego != "" {
				opts.Dir = writeTree(t, map[string]string{"p.rego": tt.rego, ProbesFile: probeFile(tt.probe)})
			}
			e := engine(t, opts)
			memo, fields := e.Memoized()
			if memo != tt.memo || !slices.Equal(fields, tt.fields) {
				t.Errorf("Memoized = %v %q, want %v %q", memo, fields, tt.memo, tt.fields)
			}
			if tt.perturb == nil {
				return
			}
			// A warm memo must not answer the perturbed input from the
			// original one.
			ctx := context.Background()
			in := Input{InstanceID: "i", Plan: "starter", Phone: "+966501234567", Purpose: "transactional", PurposePresent: true}
			first, err := e.Eval(ctx, in)
			if err != nil {
				t.Fatal(err)
			}
			tt.perturb(&in)
			second, err := e.Eval(ctx, in)
			if err != nil {
				t.Fatal(err)
			}
			if first == second {
				t.Errorf("perturbed input got the memoised %+v", first)
			}
		})
	}
}

// TestMemoAgreesWithEvaluation runs the embedded decision table twice, the
// second time from a warm memo, and once with the memo off.
func TestMemoAgreesWithEvaluation(t *testing.T) {
	on := engine(t, Options{})
	off := engine(t, Options{CacheEntries: -1})
	if memo, _ := off.Memoized(); memo {
		t.Fatal("CacheEntries -1 left the memo on")
	}
	ctx := context.Background()
	inputs := []Input{
		{Purpose: "transactional", PurposePresent: true},
		{Purpose: "transactional", PurposePresent: false},
		{Purpose: "marketing", PurposePresent: true},
		{Purpose: "support", PurposePresent: true, Suppressed: true},
		{Purpose: "support", PurposePresent: true, Paused: true},
		{Purpose: "support", PurposePresent: true, Signals: Signals{PromoTerms: 3, ShortenerLinks: 1}},
		{Purpose: "support", PurposePresent: true, Signals: Signals{PromoTerms: 3, Links: 1}},
		{Purpose: "support", PurposePresent: true, Signals: Signals{PromoTerms: 1}},
		// The same scored signals at another length: one memo entry, one answer.
		{Purpose: "support", PurposePresent: true, Signals: Signals{PromoTerms: 1, Length: 400}},
		{Purpose: "transactional", PurposePresent: true, Signals: Signals{PrizeClaims: 2, CapsRatioPct: 100, Exclamations: 5, Length: 25}},
		{Purpose: "transactional", PurposePresent: true, Signals: Signals{PrizeClaims: 2, CapsRatioPct: 100, Exclamations: 5, Length: 31}},
		// The model's signals: a block line that transactional evidence does not cancel.
		{Purpose: "transactional", PurposePresent: true, Signals: Signals{ModelTransactional: 20, ModelPromotional: 80, Transactional: 2}},
		{Purpose: "transactional", PurposePresent: true, Signals: Signals{ModelTransactional: 40, ModelPromotional: 60, Transactional: 2}},
		{Purpose: "transactional", PurposePresent: true, Signals: Signals{ModelTransactional: 45, ModelPromotional: 55}},
	}
	for round := range 2 {
		for _, in := range inputs {
			want, err := off.Eval(ctx, in)
			if err != nil {
				t.Fatal(err)
			}
			got, err := on.Eval(ctx, in)
			if err != nil || got != want {
				t.Errorf("round %d %+v: memo %+v %v, evaluation %+v", round, in, got, err, want)
			}
		}
	}
}

func TestKeysAreDistinct(t *testing.T) {
	// Length prefixes keep adjacent strings from running together.
	a := fAll.key(nil, Input{InstanceID: "ab", Plan: "c"})
	b := fAll.key(nil, Input{InstanceID: "a", Plan: "bc"})
	c := fAll.key(nil, Input{Purpose: "", PurposePresent: true})
	d := fAll.key(nil, Input{})
	e := fAll.key(nil, Input{Signals: Signals{Length: 1}})
	f := (fAll &^ fLength).key(nil, Input{Signals: Signals{Length: 1}})
	g := (fAll &^ fLength).key(nil, Input{})
	if string(a) == string(b) || string(c) == string(d) || string(d) == string(e) || string(f) != string(g) {
		t.Error("distinct inputs share a memo key")
	}
}
