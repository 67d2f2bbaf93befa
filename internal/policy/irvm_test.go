package policy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/topdown"

	"github.com/sendguard/sendguard/internal/policy/irvm"
	"github.com/sendguard/sendguard/policies"
)

// answer is a query's answer as the differential tests compare it: the
// value in a canonical JSON form (sorted keys and sets, numbers as written:
// 1 and 1.0 differ), "undefined", or the error's class (a topdown.Error's
// code; "error" for any other).
type answer string

func canonical(v ast.Value) answer {
	x, err := ast.JSONWithOpt(v, ast.JSONOpt{SortSets: true})
	if err != nil {
		return answer("unconvertible: " + err.Error())
	}
	b, err := json.Marshal(x)
	if err != nil {
		return answer("unmarshalable: " + err.Error())
	}
	return answer(b)
}

func errorClass(err error) answer {
	var te *topdown.Error
	if errors.As(err, &te) {
		return answer("error " + te.Code)
	}
	return "error"
}

// topdownAnswer evaluates pq (topdown, no caches) for input.
func topdownAnswer(ctx context.Context, pq rego.PreparedEvalQuery, input ast.Value) answer {
	opts := []rego.EvalOption{rego.EvalGenerateJSON(func(t *ast.Term, _ *rego.EvalContext) (any, error) { return t, nil })}
	if input != nil {
		opts = append(opts, rego.EvalParsedInput(input))
	}
	rs, err := pq.Eval(ctx, opts...)
	switch {
	case err != nil:
		return errorClass(err)
	case len(rs) == 0:
		return "undefined"
	case len(rs) > 1 || len(rs[0].Expressions) != 1:
		return answer(fmt.Sprintf("%d results", len(rs)))
	}
	return canonical(rs[0].Expressions[0].Value.(*ast.Term).Value)
}

// vmAnswer evaluates the VM's program for input.
func vmAnswer(ctx context.Context, p *irvm.Program, input ast.Value) answer {
	t, err := p.EvalOne(ctx, input)
	switch {
	case err != nil:
		return errorClass(err)
	case t == nil:
		return "undefined"
	}
	return canonical(t.Value)
}

// prepareBoth prepares query over the modules and data with topdown and
// with the VM (nil and the reason when the VM refuses the plan).
func prepareBoth(t *testing.T, query string, modules []*ast.Module, data map[string]any) (rego.PreparedEvalQuery, *irvm.Program, error) {
	t.Helper()
	ctx := context.Background()
	opts := []func(*rego.Rego){rego.Query(query), rego.Store(inmem.NewFromObject(data)), rego.SetRegoVersion(ast.RegoV1), rego.StrictBuiltinErrors(true)}
	for _, m := range modules {
		opts = append(opts, rego.ParsedModule(m))
	}
	td, err := rego.New(opts...).PrepareForEval(ctx)
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	dv, err := ast.InterfaceToValue(data)
	if err != nil {
		t.Fatal(err)
	}
	var prog *irvm.Program
	_, err = rego.New(append(opts, rego.Target(irvm.Target))...).PrepareForEval(irvm.Capture(irvm.WithData(ctx, dv), &prog))
	if err != nil {
		return td, nil, err
	}
	if prog == nil {
		t.Fatalf("%s: the target plugin did not hand its program back", query)
	}
	return td, prog, nil
}

// compareConcurrently evaluates every input on both, from 8 goroutines, and
// reports each input answered differently.
func compareConcurrently(t *testing.T, name string, td rego.PreparedEvalQuery, vm *irvm.Program, inputs []ast.Value) {
	t.Helper()
	ctx := context.Background()
	want := make([]answer, len(inputs))
	for i, in := range inputs {
		want[i] = topdownAnswer(ctx, td, in)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := g; i < len(inputs); i += 8 {
				if got := vmAnswer(ctx, vm, inputs[i]); got != want[i] {
					t.Errorf("%s: VM(%v) = %s, topdown %s", name, inputs[i], got, want[i])
				}
			}
		})
	}
	wg.Wait()
}

// TestVMOddPolicies holds the IR VM to topdown's answers on deliberately
// odd policies (testdata/irvm/odd.rego): conflicts, built-in errors,
// undefined, else chains, comprehensions, every, some ... in, with,
// functions, number forms, multilingual strings; each rule a query, on every
// input of testdata/irvm/inputs.json, from 8 goroutines: the same value (in
// the same number form) or the same error class each time. Each rule's plan
// must be one the VM runs.
func TestVMOddPolicies(t *testing.T) {
	src, err := os.ReadFile("testdata/irvm/odd.rego")
	if err != nil {
		t.Fatal(err)
	}
	m, err := ast.ParseModuleWithOpts("odd.rego", string(src), ast.ParserOptions{RegoVersion: ast.RegoV1})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile("testdata/irvm/inputs.json")
	if err != nil {
		t.Fatal(err)
	}
	var docs []any
	if err := json.Unmarshal(raw, &docs); err != nil {
		t.Fatal(err)
	}
	inputs := []ast.Value{nil} // no input at all, then each document
	for _, d := range docs {
		v, err := ast.InterfaceToValue(d)
		if err != nil {
			t.Fatal(err)
		}
		inputs = append(inputs, v)
	}
	var rules []string
	for _, r := range m.Rules {
		name := r.Head.Name.String()
		if name == "" {
			name = r.Head.Reference[0].Value.(ast.Var).String()
		}
		if name != "kind" && name != "deny" && !slices.Contains(rules, name) {
			rules = append(rules, name)
		}
	}
	classes := map[answer]bool{}
	for _, rule := range rules {
		t.Run(rule, func(t *testing.T) {
			td, vm, err := prepareBoth(t, "data.odd."+rule, []*ast.Module{m}, map[string]any{})
			if err != nil {
				t.Fatalf("the VM refuses data.odd.%s: %v", rule, err)
			}
			compareConcurrently(t, rule, td, vm, inputs)
			for _, in := range inputs {
				if a := topdownAnswer(context.Background(), td, in); a == "undefined" || strings.HasPrefix(string(a), "error") {
					classes[a] = true
				}
			}
		})
	}
	// The inputs reach what they are there for: undefined, and each error
	// class the rules are written to raise.
	for _, want := range []answer{"undefined", "error eval_conflict_error", "error eval_builtin_error", "error eval_type_error"} {
		if !classes[want] {
			t.Errorf("no rule answered %q on any input: %v", want, classes)
		}
	}
}

// TestVMAnswersLikeTopdown holds the VM to topdown's decisions on
// sendguard's own policies: every policy input of bench/mixes/unique.json,
// 4,000 random inputs (the generator of TestRuleCacheRandomInputs, with
// purposes in Arabic, Hindi and Turkish, emoji and combining marks), and
// every probe; an engine on the VM against one on topdown, neither with a
// cache, from 8 goroutines.
func TestVMAnswersLikeTopdown(t *testing.T) {
	ins, _, sc := uniqueMix(t)
	vm := engine(t, Options{CacheEntries: -1, Scan: sc.Scan})
	if name, why := vm.Evaluator(); name != "irvm" {
		t.Fatalf("the embedded policies are evaluated by %s (%s), want irvm", name, why)
	}
	td := engine(t, Options{CacheEntries: -1, Scan: sc.Scan, Topdown: true})
	if name, _ := td.Evaluator(); name != "topdown" {
		t.Fatalf("Options.Topdown: evaluator %s", name)
	}
	ins = append(ins, randomInputs(11, 4000)...)
	for _, pr := range vm.Probes() {
		ins = append(ins, probeInput(pr, sc.Scan))
	}
	ctx := context.Background()
	type result struct {
		d   Decision
		err answer
	}
	decide := func(e *Engine, in Input) result {
		d, err := e.Eval(ctx, in)
		if err != nil {
			return result{err: errorClass(err)}
		}
		return result{d: d}
	}
	want := make([]result, len(ins))
	for i, in := range ins {
		want[i] = decide(td, in)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := g; i < len(ins); i += 8 {
				if got := decide(vm, ins[i]); got != want[i] {
					t.Errorf("Decide(%+v) = %+v, want %+v", ins[i], got, want[i])
				}
			}
		})
	}
	wg.Wait()
}

// TestVMPolicyTests runs each test rule of the policies' Rego tests
// (policies/sendguard/*_test.rego) as a query of its own on the VM and on
// topdown, over the policies as written and their data: the inputs the tests
// give with `with input as`, and their overrides of the data with `with
// data…`, answered alike (and true: make test-policies passes).
func TestVMPolicyTests(t *testing.T) {
	b, err := load(policies.FS)
	if err != nil {
		t.Fatal(err)
	}
	modules := slices.Collect(func(yield func(*ast.Module) bool) {
		for _, m := range b.modules {
			if !yield(m) {
				return
			}
		}
	})
	var tests []string
	err = fs.WalkDir(policies.FS, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || !strings.HasSuffix(p, "_test.rego") {
			return err
		}
		src, err := fs.ReadFile(policies.FS, p)
		if err != nil {
			return err
		}
		m, err := ast.ParseModuleWithOpts(p, string(src), ast.ParserOptions{RegoVersion: ast.RegoV1})
		if err != nil {
			return err
		}
		modules = append(modules, m)
		for _, r := range m.Rules {
			if name := r.Head.Name.String(); strings.HasPrefix(name, "test_") && !slices.Contains(tests, m.Package.Path.String()+"."+name) {
				tests = append(tests, m.Package.Path.String()+"."+name)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(tests) < 50 {
		t.Fatalf("found %d policy tests, want the 54 or so of make test-policies", len(tests))
	}
	for _, q := range tests {
		t.Run(q, func(t *testing.T) {
			td, vm, err := prepareBoth(t, q, modules, b.data)
			if err != nil {
				t.Fatalf("the VM refuses %s: %v", q, err)
			}
			ctx := context.Background()
			want, got := topdownAnswer(ctx, td, nil), vmAnswer(ctx, vm, nil)
			if got != want || want != "true" {
				t.Errorf("%s: VM %s, topdown %s, want true", q, got, want)
			}
		})
	}
}

// randomInputs are n inputs drawn from small ranges, so that they share
// parts (a purpose, model probabilities, counts) in every combination, with
// purposes in several scripts and forms.
func randomInputs(seed uint64, n int) []Input {
	purposes := []string{"transactional", " Authentication ", "marketing", "newsletter", "SUPPORT",
		"AUTHENTİCATİON", "authentıcatıon", "Authentication\u0301", "\tauthentication\n", "تحقق", "ओटीपी", "🔐 authentication", ""}
	rng := rand.New(rand.NewPCG(seed, seed))
	ins := make([]Input, n)
	for i := range ins {
		in := Input{InstanceID: "inst", Plan: "starter", Phone: "+966501234567",
			Paused: rng.IntN(20) == 0, Suppressed: rng.IntN(20) == 0, PurposePresent: rng.IntN(15) != 0}
		in.Purpose = purposes[rng.IntN(len(purposes))]
		s := &in.Signals
		for _, n := range []*int{&s.PromoTerms, &s.CallsToAction, &s.DiscountCodes, &s.PrizeClaims, &s.ColdOutreach, &s.Political,
			&s.Transactional, &s.Percentages, &s.ShortenerLinks, &s.Links, &s.Exclamations, &s.Emoji} {
			if rng.IntN(4) == 0 {
				*n = rng.IntN(4)
			}
		}
		s.CapsRatioPct = []int{0, 29, 30, 100}[rng.IntN(4)]
		s.Length = rng.IntN(300)
		for _, n := range []*int{&s.ModelTransactional, &s.ModelPromotional, &s.ModelColdOutreach, &s.ModelPolitical, &s.ModelScam} {
			*n = 5 * rng.IntN(21)
		}
		s.ModelSegmentLead = 5 * rng.IntN(21)
		ins[i] = in
	}
	return ins
}

// TestEvaluatorFallback: policies whose plan the VM cannot run exactly as
// topdown (a non-deterministic built-in, a built-in that needs the
// evaluator's context) are decided by topdown, with its rule cache, and the
// load says so in the log; policies it can run are decided by the VM, and
// the log says that too. Both answer the probe.
func TestEvaluatorFallback(t *testing.T) {
	tests := []struct {
		name, rego string
		want       string // the evaluator
		why        string // in the reason, for topdown
	}{
		{"deterministic", `package sendguard.decision
result := {"allow": true, "error": "", "risk_score": count(input.recipient.phone), "purpose": "x"}
`, "irvm", ""},
		{"time.now_ns", `package sendguard.decision
result := {"allow": time.now_ns() > 0, "error": "", "risk_score": 0, "purpose": "x"}
`, "topdown", "time.now_ns"},
		{"opa.runtime", `package sendguard.decision
result := {"allow": is_object(opa.runtime()), "error": "", "risk_score": 0, "purpose": "x"}
`, "topdown", "opa.runtime"},
		{"uuid.rfc4122", `package sendguard.decision
result := {"allow": uuid.rfc4122("x") != "", "error": "", "risk_score": 0, "purpose": "x"}
`, "topdown", "uuid.rfc4122"},
		// Without print statements enabled the compiler erases print
		// calls: nothing is left for either evaluator to do.
		{"print", `package sendguard.decision
result := {"allow": true, "error": "", "risk_score": 0, "purpose": "x"} if print("deciding")
`, "irvm", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := writeTree(t, map[string]string{"sendguard/decision.rego": tt.rego, ProbesFile: probeFile("allowed")})
			var buf strings.Builder
			var mu sync.Mutex
			log := slog.New(slog.NewTextHandler(lockedWriter{&mu, &buf}, nil))
			e := engine(t, Options{Dir: dir, Log: log})
			name, why := e.Evaluator()
			if name != tt.want || !strings.Contains(why, tt.why) {
				t.Errorf("Evaluator() = %s %q, want %s (%s)", name, why, tt.want, tt.why)
			}
			mu.Lock()
			line := buf.String()
			mu.Unlock()
			if !strings.Contains(line, "evaluator="+tt.want) || !strings.Contains(line, tt.why) {
				t.Errorf("the load logged %q, want evaluator=%s and %q", line, tt.want, tt.why)
			}
			if p := e.cur.Load(); (p.vm == nil) != (tt.want == "topdown") {
				t.Errorf("VM %v, want evaluator %s", p.vm != nil, tt.want)
			}
			in := Input{Phone: "+966501234567", Purpose: "transactional", PurposePresent: true}
			if d, err := e.Eval(context.Background(), in); err != nil || !d.Allow {
				t.Errorf("Eval(%+v) = %+v %v, want allowed", in, d, err)
			}
		})
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *strings.Builder
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// TestVMErrorsFailTheDecision: an evaluation error on the VM (a conflict
// between two rule values, a built-in's error under strict built-in errors)
// fails Eval with topdown's error class, and the memo keeps nothing of it.
func TestVMErrorsFailTheDecision(t *testing.T) {
	dir := writeTree(t, map[string]string{
		"p.rego": `package sendguard.decision
n := 1 if input.signals.links > 0
n := 2 if input.signals.emoji > 0
m := to_number(input.purpose) if input.signals.political > 0
result := {"allow": true, "error": "", "risk_score": n + m, "purpose": ""} if n > 0
else := {"allow": true, "error": "", "risk_score": 0, "purpose": ""}
`,
		ProbesFile: probeFile("allowed"),
	})
	for _, onTopdown := range []bool{false, true} {
		e := engine(t, Options{Dir: dir, Topdown: onTopdown})
		tests := []struct {
			in   Input
			code string
		}{
			{Input{Signals: Signals{Links: 1, Emoji: 1}}, "eval_conflict_error"},
			{Input{Purpose: "seven", PurposePresent: true, Signals: Signals{Links: 1, Political: 1}}, "eval_builtin_error"},
		}
		for _, tt := range tests {
			for range 2 { // the second is not answered from the memo
				d, err := e.Eval(context.Background(), tt.in)
				var te *topdown.Error
				if !errors.As(err, &te) || te.Code != tt.code {
					t.Errorf("topdown %v: Eval(%+v) = %+v %v, want %s", onTopdown, tt.in, d, err, tt.code)
				}
			}
		}
		if st := e.MemoStats(); st.Entries != 0 {
			t.Errorf("topdown %v: the memo holds %d failed decisions", onTopdown, st.Entries)
		}
	}
}

// TestVMSharesNothingComputedUnderWith: a rule evaluated both as it is and
// under `with` (another value of an input field it reads, in another rule)
// is shared across evaluations from the former only: an input decided after
// one with the same fields gets the rule's own value, not the override's. Random
// inputs from 8 goroutines, the VM with the rule cache against topdown
// with no cache.
func TestVMSharesNothingComputedUnderWith(t *testing.T) {
	dir := writeTree(t, map[string]string{
		"p.rego": `package sendguard.decision
counted := count([x |
	some x in [input.signals.links, input.signals.emoji, input.signals.political, input.signals.promo_terms,
		input.signals.calls_to_action, input.signals.discount_codes, input.signals.prize_claims, input.signals.cold_outreach]
	x > 0
])
under := n if {
	n := counted with input.signals.links as 0
}
result := {"allow": true, "error": "", "risk_score": r, "purpose": ""} if {
	u := under
	r := (counted * 10) + u
}
`,
		ProbesFile: probeFile("allowed"),
	})
	vm := engine(t, Options{Dir: dir})
	td := engine(t, Options{Dir: dir, CacheEntries: -1, Topdown: true})
	p := vm.cur.Load()
	if p.vm == nil || p.rules == nil || !slices.ContainsFunc(p.vmRules, func(id int) bool { return id >= 0 }) {
		t.Fatalf("the VM with a shared rule, want: VM %v, rule cache %v, shared %v", p.vm != nil, p.rules != nil, p.vmRules)
	}
	ins := randomInputs(7, 2000)
	ctx := context.Background()
	want := make([]Decision, len(ins))
	for i, in := range ins {
		var err error
		if want[i], err = td.Eval(ctx, in); err != nil {
			t.Fatal(err)
		}
	}
	sharedAgrees(t, p, ins, want)
}
