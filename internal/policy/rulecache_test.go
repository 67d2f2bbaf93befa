package policy

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
)

// TestRuleFields holds the rule cache's keys to what each rule reads,
// itself or through the rules and functions it refers to: a key missing a
// field would answer one input with another's value.
func TestRuleFields(t *testing.T) {
	e := engine(t, Options{Topdown: true}) // the rule cache is topdown's
	r := e.cur.Load().rules
	if r == nil {
		t.Fatal("no rule cache with the memo on")
	}
	model := []string{"signals.p_promotional", "signals.p_cold_outreach", "signals.p_political", "signals.p_scam"}
	content := []string{"purpose", "signals.promo_terms", "signals.calls_to_action", "signals.discount_codes", "signals.prize_claims",
		"signals.cold_outreach", "signals.political", "signals.transactional", "signals.percentages", "signals.shortener_links",
		"signals.links", "signals.caps_ratio_pct", "signals.exclamations", "signals.emoji"}
	tests := []struct {
		rule string
		want []string
	}{
		{"data.sendguard.pause.paused", []string{"instance.paused"}},
		{"data.sendguard.purpose.allowed", []string{"purpose"}},
		{"data.sendguard.risk.model_block", append(slices.Clone(model), "signals.segment_lead")},
		{"data.sendguard.risk.model_points", append([]string{"signals.p_transactional"}, model...)},
		{"data.sendguard.risk.purpose_weight", []string{"purpose", "signals.links"}},
		{"data.sendguard.risk.content", content},
		// score reads content and the model through the rules it refers to.
		{"data.sendguard.risk.score", append(slices.Clone(content), "signals.p_transactional", "signals.p_promotional", "signals.p_cold_outreach", "signals.p_political", "signals.p_scam", "signals.segment_lead")},
		// deny(code) reads the score and the purpose through its body.
		{"data.sendguard.decision.deny", append(slices.Clone(content), "signals.p_transactional", "signals.p_promotional", "signals.p_cold_outreach", "signals.p_political", "signals.p_scam", "signals.segment_lead")},
		{"data.sendguard.validation.errors", nil},
	}
	for _, tt := range tests {
		t.Run(tt.rule, func(t *testing.T) {
			ref := ast.MustParseRef(tt.rule)
			id, ok := r.index.lookup(ref)
			if !ok {
				t.Fatalf("%s is not indexed", tt.rule)
			}
			got := r.fields[id].names()
			want := fieldSetOf(t, tt.want).names()
			if !slices.Equal(got, want) {
				t.Errorf("fields(%s) = %q, want %q", tt.rule, got, want)
			}
		})
	}
}

func fieldSetOf(t *testing.T, names []string) fieldSet {
	t.Helper()
	var fs fieldSet
	for _, n := range names {
		f := covered(strings.Split(n, "."))
		if f == 0 {
			t.Fatalf("no field %s", n)
		}
		fs |= f
	}
	return fs
}

// TestRuleCacheRandomInputs decides thousands of random inputs, drawn from
// small ranges so that they share parts (a purpose, model probabilities,
// counts) in every combination, from 8 goroutines at once with the decision
// memo bypassed and the rule cache on, and checks each against the same
// input decided by an engine with neither.
//
// The rule cache serves both evaluators: topdown through its virtual cache,
// the IR VM through irvm.Shared (for the rules worth a lookup).
func TestRuleCacheRandomInputs(t *testing.T) {
	for _, ev := range evaluators {
		t.Run(ev.name, func(t *testing.T) { testRuleCacheRandomInputs(t, ev.topdown) })
	}
}

func testRuleCacheRandomInputs(t *testing.T, topdown bool) {
	ctx := context.Background()
	on := engine(t, Options{Topdown: topdown})
	off := engine(t, Options{CacheEntries: -1, Topdown: true})
	p := on.cur.Load()
	if (p.vm == nil) != topdown || p.rules == nil {
		t.Fatalf("topdown %v: VM %v, rule cache %v", topdown, p.vm != nil, p.rules != nil)
	}
	ins := randomInputs(11, 4000)
	want := make([]Decision, len(ins))
	for i, in := range ins {
		var err error
		if want[i], err = off.Eval(ctx, in); err != nil {
			t.Fatal(err)
		}
	}
	sharedAgrees(t, p, ins, want)
}

// TestRuleCacheKeepsNothingFromAFailedEvaluation: a rule that conflicts
// for some input fails that evaluation, and none of the values it computed
// before failing is shared (the first body's value, 1, is not the rule's).
func TestRuleCacheKeepsNothingFromAFailedEvaluation(t *testing.T) {
	for _, ev := range evaluators {
		t.Run(ev.name, func(t *testing.T) { testRuleCacheKeepsNothingFromAFailedEvaluation(t, ev.topdown) })
	}
}

func testRuleCacheKeepsNothingFromAFailedEvaluation(t *testing.T, topdown bool) {
	dir := writeTree(t, map[string]string{
		// n is worth a lookup for the VM (minSharedWeight): each body
		// reads a list of signals.
		"p.rego": `package sendguard.decision
n := 1 if {
	input.signals.links > 0
	count([input.signals.promo_terms, input.signals.calls_to_action, input.signals.discount_codes, input.signals.prize_claims, input.signals.political]) == 5
}
n := 2 if {
	input.signals.emoji > 0
	count([input.signals.promo_terms, input.signals.calls_to_action, input.signals.discount_codes, input.signals.prize_claims, input.signals.political]) == 5
}
# heavy is shared, and computed before n fails.
heavy := count([x |
	some x in [input.signals.links, input.signals.emoji, input.signals.political, input.signals.promo_terms,
		input.signals.calls_to_action, input.signals.discount_codes, input.signals.prize_claims, input.signals.cold_outreach]
	x > 0
])
result := {"allow": true, "error": "", "risk_score": n, "purpose": ""} if {
	heavy >= 0
	n > 0
}
else := {"allow": true, "error": "", "risk_score": 0, "purpose": ""}
`,
		ProbesFile: probeFile("allowed"),
	})
	e := engine(t, Options{Dir: dir, Topdown: topdown})
	if !topdown {
		p := e.cur.Load()
		if !slices.ContainsFunc(p.vmRules, func(id int) bool { return id >= 0 }) {
			name, why := e.Evaluator()
			t.Fatalf("no rule of the VM's program is shared: %v (evaluator %s %s)", p.vmRules, name, why)
		}
	}
	p := e.cur.Load()
	in := Input{Signals: Signals{Links: 1, Emoji: 1}}
	if d, err := p.eval(context.Background(), in); err == nil {
		t.Fatalf("eval(%+v) = %+v, want a conflict error", in, d)
	}
	if n := p.rules.memo.Len(); n != 0 {
		t.Errorf("a failed evaluation left %d rule values", n)
	}
	in.Signals.Emoji = 0
	if d, err := p.eval(context.Background(), in); err != nil || d.RiskScore != 1 {
		t.Errorf("eval(%+v) = %+v %v, want risk_score 1", in, d, err)
	}
	if n := p.rules.memo.Len(); n == 0 {
		t.Error("a successful evaluation left no rule values")
	}
}

// sharedAgrees evaluates ins on p from 8 goroutines at once and fails
// unless each answers want's decision, and unless some evaluation took a
// rule's value from another through p's rule cache.
func sharedAgrees(t *testing.T, p *prepared, ins []Input, want []Decision) {
	t.Helper()
	ctx := context.Background()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := g; i < len(ins); i += 8 {
				if got, err := p.eval(ctx, ins[i]); err != nil || got != want[i] {
					t.Errorf("eval(%+v) = %+v %v, want %+v", ins[i], got, err, want[i])
					return
				}
			}
		})
	}
	wg.Wait()
	if st := p.rules.memo.Stats(); st.Hits == 0 {
		t.Errorf("rule cache %+v: no evaluation took a rule's value from another", st)
	}
}
