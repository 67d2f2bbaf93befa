// Package policy is sendguard's OPA wrapper: it loads the Rego policies and
// their data (embedded by default, or a directory), prepares the decision
// query once, and evaluates it per request with input built directly as an
// AST value, so no request pays for a JSON encode and decode.
//
// The query is data.sendguard.decision.result, which must be an object
// {"allow": bool, "error": string, "risk_score": number, "purpose": string}
// and may have "throttle": bool.
//
// Every load (New, Reload) refuses a policy tree that could decide wrongly
// without failing: data that does not match its JSON Schema (SchemaDir),
// a module reference to an input or data key the schemas do not have,
// data that breaks the policies' own cross-field rules (ValidationQuery),
// and policies that answer any of the tree's probe sends (ProbesFile)
// otherwise than expected. A refused Reload keeps the running policies.
package policy

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage/inmem"

	"github.com/sendguard/sendguard/internal/policy/irvm"
	"github.com/sendguard/sendguard/internal/risk"
	"github.com/sendguard/sendguard/policies"
)

// Query is the rule every policy bundle must define.
const Query = "data.sendguard.decision.result"

// Signals are the content signals Go computes for the risk rules.
type Signals = risk.Signals

// Input is everything the policy sees of one send request.
type Input struct {
	InstanceID     string
	Plan           string
	Paused         bool
	Purpose        string // as sent; meaningful only when PurposePresent
	PurposePresent bool   // message_purpose was a string
	Phone          string // E.164
	Suppressed     bool
	Signals        Signals
}

// Decision is the policy's answer. Error is empty when Allow is true, else
// one of the catalogue's codes.
type Decision struct {
	Allow     bool
	Error     string
	RiskScore int
	Purpose   string // the declared purpose as the policy normalised it
	Throttle  bool   // allowed, but risky enough for the instance's slow lane
}

// Options choose the policies. The zero value uses the embedded ones.
type Options struct {
	// Dir is a directory of .rego and data .json files, "" for the
	// embedded bundle. It may be a Kubernetes ConfigMap or Secret volume,
	// nested through items or with flat keys (see walk); symlinks leading
	// out of Dir are refused.
	Dir string

	// CacheEntries bounds the decision memo (see Engine); 0 means 65,536
	// and a negative value turns the memo off.
	CacheEntries int64

	// Scan computes a probe message's content signals; it should be the
	// scanner real sends use. nil means the default scanner
	// (risk.New(risk.Options{})).
	Scan func(message string) Signals

	// Topdown evaluates the decision query with OPA's topdown evaluator
	// even when the IR VM (package irvm) supports the policies' plan.
	Topdown bool

	// Log receives a line at each load saying which evaluator decides,
	// and why not the VM when it does not; nil discards it.
	Log *slog.Logger
}

// Engine evaluates the prepared decision query. It is safe for concurrent
// use; Reload swaps in freshly prepared policies without blocking Eval.
//
// A decision is a pure function of the input, the policies and their data,
// so the engine memoises it, keyed on exactly the input fields the
// policies read (found by walking their references to input). A policy that
// calls a non-deterministic built-in (time.now_ns, http.send, rand.intn, …)
// turns the memo off. Reload starts a fresh memo.
type Engine struct {
	opts Options
	cur  atomic.Pointer[prepared]
}

type prepared struct {
	pq      rego.PreparedEvalQuery
	vm      *irvm.Program           // the decision query's plan, run by the IR VM; nil on topdown
	vmRules []int                   // the rule cache's id of each of the VM's functions (vmRuleIDs); nil without the rule cache
	noVM    string                  // why the VM does not decide, when it does not
	explain *rego.PreparedEvalQuery // data.sendguard.risk.breakdown; nil when undefined
	fields  fieldSet
	memo    *memo[Decision] // nil when off
	rules   *rules          // rule values shared across evaluations; nil with the memo off
	probes  []Probe         // answered as expected when this was prepared
	// revision names the tree's content (revisionOf)
	revision string
}

// New loads and prepares the policies. It fails when a module does not
// parse or compile (a reference to a key the schemas do not have included),
// when the data does not match its schema or breaks a ValidationQuery rule,
// when the query is not defined, or when a probe is answered otherwise than
// expected.
func New(ctx context.Context, opts Options) (*Engine, error) {
	e := &Engine{opts: opts}
	if err := e.Reload(ctx); err != nil {
		return nil, err
	}
	return e, nil
}

// Source names where the policies come from, for logs.
func (e *Engine) Source() string {
	if e.opts.Dir == "" {
		return "embedded"
	}
	return e.opts.Dir
}

// Reload reads, validates and prepares the policies again, with the checks
// of New. On error the engine keeps evaluating the previous ones.
func (e *Engine) Reload(ctx context.Context) error {
	fsys := fs.FS(policies.FS)
	if e.opts.Dir != "" {
		// os.Root follows symlinks inside the directory only: a ConfigMap
		// volume's links resolve, a link out of the tree does not.
		root, err := os.OpenRoot(e.opts.Dir)
		if err != nil {
			return fmt.Errorf("policies from %s: %w", e.Source(), err)
		}
		defer root.Close()
		fsys = root.FS()
	}
	scan := e.opts.Scan
	if scan == nil {
		scan = risk.New(risk.Options{}).Scan
	}
	p, err := prepare(ctx, fsys, e.opts.CacheEntries, scan, e.opts.Topdown)
	if err != nil {
		return fmt.Errorf("policies from %s: %w", e.Source(), err)
	}
	log := e.opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if p.vm != nil {
		log.InfoContext(ctx, "policy evaluator", "source", e.Source(), "evaluator", "irvm")
	} else {
		log.InfoContext(ctx, "policy evaluator", "source", e.Source(), "evaluator", "topdown", "reason", p.noVM)
	}
	e.cur.Store(p) // the old memo goes with the old policies
	return nil
}

// Evaluator names what evaluates the running policies' decisions: "irvm"
// (OPA's plan of the query, run by package irvm) or "topdown" (OPA's
// evaluator, with the rule cache), and why not the VM when it is topdown.
func (e *Engine) Evaluator() (name, reason string) {
	p := e.cur.Load()
	if p.vm != nil {
		return "irvm", ""
	}
	return "topdown", p.noVM
}

// Probes returns the probes the running policies answered as expected.
func (e *Engine) Probes() []Probe {
	return slices.Clone(e.cur.Load().probes)
}

// Memoized reports whether decisions are memoised, and which input fields
// the key holds (for logs and tests).
func (e *Engine) Memoized() (bool, []string) {
	p := e.cur.Load()
	return p.memo != nil, p.fields.names()
}

// MemoStats counts the decision memo's lookups since the running policies
// were prepared (Reload starts a fresh memo, and fresh counts).
type MemoStats struct {
	Hits    uint64 // decisions answered from the memo
	Misses  uint64 // decisions that paid an OPA evaluation (first-seen inputs)
	Entries int    // decisions held
}

// HitRate is Hits / (Hits + Misses), 0 before any lookup.
func (s MemoStats) HitRate() float64 {
	if s.Hits+s.Misses == 0 {
		return 0
	}
	return float64(s.Hits) / float64(s.Hits+s.Misses)
}

// MemoStats reports the memo's counts; the zero value when the memo is off.
func (e *Engine) MemoStats() MemoStats {
	p := e.cur.Load()
	if p.memo == nil {
		return MemoStats{}
	}
	return p.memo.Stats()
}

// merge places v at dir (slash-separated, "." for the root) inside data.
func merge(data map[string]any, dir string, v map[string]any) error {
	node := data
	if dir != "." {
		for _, seg := range strings.Split(dir, "/") {
			next, ok := node[seg].(map[string]any)
			if !ok {
				if _, taken := node[seg]; taken {
					return fmt.Errorf("data path %s is not an object", dir)
				}
				next = map[string]any{}
				node[seg] = next
			}
			node = next
		}
	}
	for k, x := range v {
		if _, dup := node[k]; dup {
			return fmt.Errorf("data key %s/%s defined twice", dir, k)
		}
		node[k] = x
	}
	return nil
}

func prepare(ctx context.Context, fsys fs.FS, entries int64, scan func(string) Signals, topdownOnly bool) (*prepared, error) {
	b, err := load(fsys)
	if err != nil {
		return nil, err
	}
	if err := b.validateData(ctx); err != nil {
		return nil, err
	}
	opts := []func(*rego.Rego){
		rego.Query(Query),
		rego.Store(inmem.NewFromObject(b.data)),
		rego.SetRegoVersion(ast.RegoV1),
		rego.StrictBuiltinErrors(true),
	}
	if ss := b.schemaSet(); ss != nil {
		opts = append(opts, rego.Schemas(ss))
	}
	folded, err := foldData(b.modules, b.data)
	if err != nil {
		return nil, err
	}
	for _, m := range folded {
		opts = append(opts, rego.ParsedModule(m))
	}
	pq, err := rego.New(opts...).PrepareForEval(ctx)
	if err != nil {
		return nil, err
	}
	p := &prepared{pq: pq, probes: b.probes}
	if p.revision, err = revisionOf(fsys); err != nil {
		return nil, err
	}
	if topdownOnly {
		p.noVM = "Options.Topdown"
	} else {
		// The same modules and options, planned by OPA and run by the VM.
		// Anything the VM does not evaluate exactly as topdown refuses
		// the plan, and topdown decides.
		// Capture hands the VM's Program back, to be run without rego's
		// result sets around it.
		vopts := append(opts[:len(opts):len(opts)], rego.Target(irvm.Target))
		var prog *irvm.Program
		data, err := ast.InterfaceToValue(b.data)
		if err != nil {
			return nil, err
		}
		_, err = rego.New(vopts...).PrepareForEval(irvm.Capture(irvm.WithData(ctx, data), &prog))
		var unsupported *irvm.UnsupportedError
		switch {
		case err == nil && prog == nil:
			p.noVM = "the IR VM's target plugin did not hand its program back"
		case err == nil:
			p.vm = prog
		case errors.As(err, &unsupported):
			p.noVM = unsupported.Error()
		default:
			p.noVM = "planning: " + err.Error()
		}
	}
	xopts := append(opts[1:len(opts):len(opts)], rego.Query("data.sendguard.risk.breakdown"))
	if x, err := rego.New(xopts...).PrepareForEval(ctx); err == nil {
		p.explain = &x
	}
	// Prove the query is defined and well-formed before serving with it.
	if _, err := p.eval(ctx, Input{}); err != nil {
		return nil, err
	}
	if err := validate(ctx, opts[1:]); err != nil {
		return nil, err
	}
	if err := p.runProbes(ctx, b.probes, scan); err != nil {
		return nil, err
	}
	fields, deterministic := inputFields(b.modules)
	if entries == 0 {
		entries = 1 << 16
	}
	if deterministic && entries > 0 {
		p.fields = fields
		p.memo = newMemo[Decision](int(entries))
		// An eighth of the decisions' bound: a rule's value (the content
		// breakdown, an object of some 20 numbers) is larger than a
		// decision, and a decision input adds a handful of rule values at
		// most (6 each over bench/mixes/unique.json), most of them shared.
		if p.rules, err = newRules(folded, max(int(entries)/8, 1024)); err != nil {
			return nil, err
		}
		if p.vm != nil {
			p.vmRules = vmRuleIDs(p.vm, p.rules)
		}
	}
	return p, nil
}

// minSharedWeight is the least a rule's plan must run (statements, its
// callees' included) for the VM to look its value up in the rule cache: a
// lookup costs about what a few dozen statements do, so pause.paused is
// cheaper evaluated than looked up, and risk.score is not.
const minSharedWeight = 40

// vmRuleIDs maps each function of the VM's program to the rule cache's id
// of the rule it evaluates, -1 for a function that is not a rule's value,
// not indexed, or too cheap to look up.
func vmRuleIDs(prog *irvm.Program, r *rules) []int {
	funcs := prog.Funcs()
	ids := make([]int, len(funcs))
	query := ast.MustParseRef(Query)
	for i, f := range funcs {
		ids[i] = -1
		if !f.Rule || f.Weight < minSharedWeight {
			continue
		}
		ref := ast.Ref{ast.DefaultRootDocument}
		for _, k := range f.Path {
			ref = append(ref, ast.StringTerm(k))
		}
		// The query's own rule is the decision memo's.
		if id, ok := r.ruleID(ref); ok && !ref.Equal(query) {
			ids[i] = id
		}
	}
	return ids
}

// vmShared is one VM evaluation's window on the rule cache (irvm.Shared):
// what it computes is kept until it has succeeded (commit).
type vmShared struct {
	r       *rules
	ids     []int // by function
	in      *Input
	buf     []byte
	pending []pendingValue
}

func (c *vmShared) Get(fn int) (*ast.Term, bool) {
	id := c.ids[fn]
	if id < 0 {
		return nil, false
	}
	c.buf = c.r.ruleKey(c.buf[:0], id, c.in)
	return c.r.memo.Get(c.buf)
}

func (c *vmShared) Put(fn int, v *ast.Term) {
	if id := c.ids[fn]; id >= 0 {
		c.pending = append(c.pending, pendingValue{id: id, value: v})
	}
}

func (c *vmShared) commit() {
	for _, p := range c.pending {
		c.buf = c.r.ruleKey(c.buf[:0], p.id, c.in)
		c.r.memo.Set(c.buf, p.value)
	}
}

// Explain evaluates data.sendguard.risk.breakdown for in: each signal's
// contribution to the risk score. It is for operators (sendguard check),
// not the request path; nil when the policies define no breakdown.
func (e *Engine) Explain(ctx context.Context, in Input) (map[string]any, error) {
	p := e.cur.Load()
	if p.explain == nil {
		return nil, nil
	}
	rs, err := p.explain.Eval(ctx, rego.EvalParsedInput(InputValue(in)))
	if err != nil || len(rs) == 0 || len(rs[0].Expressions) == 0 {
		return nil, err
	}
	m, _ := rs[0].Expressions[0].Value.(map[string]any)
	return m, nil
}

// Eval decides one request.
func (e *Engine) Eval(ctx context.Context, in Input) (Decision, error) {
	p := e.cur.Load()
	if p.memo == nil {
		return p.eval(ctx, in)
	}
	var buf [128]byte
	key := p.fields.key(buf[:0], in)
	if d, ok := p.memo.Get(key); ok {
		return d, nil
	}
	d, err := p.eval(ctx, in)
	if err != nil {
		return d, err
	}
	p.memo.Set(key, d)
	return d, nil
}

var (
	kInstance   = ast.StringTerm("instance")
	kID         = ast.StringTerm("id")
	kPlan       = ast.StringTerm("plan")
	kPaused     = ast.StringTerm("paused")
	kPurpose    = ast.StringTerm("purpose")
	kRecipient  = ast.StringTerm("recipient")
	kPhone      = ast.StringTerm("phone")
	kSuppressed = ast.StringTerm("suppressed")
	kSignals    = ast.StringTerm("signals")

	kPromo      = ast.StringTerm("promo_terms")
	kCTA        = ast.StringTerm("calls_to_action")
	kDiscount   = ast.StringTerm("discount_codes")
	kPrize      = ast.StringTerm("prize_claims")
	kCold       = ast.StringTerm("cold_outreach")
	kPolitical  = ast.StringTerm("political")
	kTx         = ast.StringTerm("transactional")
	kPercent    = ast.StringTerm("percentages")
	kThrottle   = ast.StringTerm("throttle")
	kShortener  = ast.StringTerm("shortener_links")
	kLinks      = ast.StringTerm("links")
	kCaps       = ast.StringTerm("caps_ratio_pct")
	kExclaim    = ast.StringTerm("exclamations")
	kEmoji      = ast.StringTerm("emoji")
	kLength     = ast.StringTerm("length")
	kPTx        = ast.StringTerm("p_transactional")
	kPPromo     = ast.StringTerm("p_promotional")
	kPCold      = ast.StringTerm("p_cold_outreach")
	kPPolitical = ast.StringTerm("p_political")
	kPScam      = ast.StringTerm("p_scam")
	kSegLead    = ast.StringTerm("segment_lead")
	kAllow      = ast.StringTerm("allow")
	kError      = ast.StringTerm("error")
	kRiskScore  = ast.StringTerm("risk_score")
	kPurposeOut = kPurpose
)

// InputValue is the policy input as Rego sees it:
//
//	{"instance": {"id", "plan", "paused"}, "purpose" (absent unless sent as a string),
//	 "recipient": {"phone", "suppressed"},
//	 "signals": {"promo_terms", "calls_to_action", "discount_codes", "prize_claims",
//	             "cold_outreach", "political", "transactional", "percentages", "shortener_links",
//	             "links", "caps_ratio_pct", "exclamations", "emoji", "length",
//	             "p_transactional", "p_promotional", "p_cold_outreach", "p_political", "p_scam",
//	             "segment_lead"}}
//
// The p_ signals are the content model's probabilities in percent, in
// steps of risk.ModelStep; segment_lead is risk.Signals.ModelSegmentLead.
func InputValue(in Input) ast.Value {
	s := in.Signals
	items := [][2]*ast.Term{
		ast.Item(kInstance, ast.ObjectTerm(
			ast.Item(kID, ast.StringTerm(in.InstanceID)),
			ast.Item(kPlan, ast.StringTerm(in.Plan)),
			ast.Item(kPaused, ast.InternedTerm(in.Paused)),
		)),
		ast.Item(kRecipient, ast.ObjectTerm(
			ast.Item(kPhone, ast.StringTerm(in.Phone)),
			ast.Item(kSuppressed, ast.InternedTerm(in.Suppressed)),
		)),
		ast.Item(kSignals, ast.ObjectTerm(
			ast.Item(kPromo, ast.IntNumberTerm(s.PromoTerms)),
			ast.Item(kCTA, ast.IntNumberTerm(s.CallsToAction)),
			ast.Item(kDiscount, ast.IntNumberTerm(s.DiscountCodes)),
			ast.Item(kPrize, ast.IntNumberTerm(s.PrizeClaims)),
			ast.Item(kCold, ast.IntNumberTerm(s.ColdOutreach)),
			ast.Item(kPolitical, ast.IntNumberTerm(s.Political)),
			ast.Item(kTx, ast.IntNumberTerm(s.Transactional)),
			ast.Item(kPercent, ast.IntNumberTerm(s.Percentages)),
			ast.Item(kShortener, ast.IntNumberTerm(s.ShortenerLinks)),
			ast.Item(kLinks, ast.IntNumberTerm(s.Links)),
			ast.Item(kCaps, ast.IntNumberTerm(s.CapsRatioPct)),
			ast.Item(kExclaim, ast.IntNumberTerm(s.Exclamations)),
			ast.Item(kEmoji, ast.IntNumberTerm(s.Emoji)),
			ast.Item(kLength, ast.IntNumberTerm(s.Length)),
			ast.Item(kPTx, ast.IntNumberTerm(s.ModelTransactional)),
			ast.Item(kPPromo, ast.IntNumberTerm(s.ModelPromotional)),
			ast.Item(kPCold, ast.IntNumberTerm(s.ModelColdOutreach)),
			ast.Item(kPPolitical, ast.IntNumberTerm(s.ModelPolitical)),
			ast.Item(kPScam, ast.IntNumberTerm(s.ModelScam)),
			ast.Item(kSegLead, ast.IntNumberTerm(s.ModelSegmentLead)),
		)),
	}
	if in.PurposePresent {
		items = append(items, ast.Item(kPurpose, ast.StringTerm(in.Purpose)))
	}
	return ast.NewObject(items...)
}

func (p *prepared) eval(ctx context.Context, in Input) (Decision, error) {
	var rs rego.ResultSet
	var err error
	switch {
	case p.vm != nil:
		var t *ast.Term
		if p.rules == nil {
			t, err = p.vm.EvalOne(ctx, InputValue(in))
		} else {
			sh := &vmShared{r: p.rules, ids: p.vmRules, in: &in}
			if t, err = p.vm.EvalShared(ctx, InputValue(in), sh); err == nil {
				sh.commit()
			}
		}
		if err != nil {
			return Decision{}, err
		}
		if t == nil {
			return Decision{}, fmt.Errorf("%s is undefined", Query)
		}
		d, err := decode(t, nil)
		if err != nil {
			return Decision{}, err
		}
		return d.(Decision), nil
	case p.rules == nil:
		rs, err = p.pq.Eval(ctx, rego.EvalParsedInput(InputValue(in)), rego.EvalGenerateJSON(decode))
	default:
		vc := p.rules.newEvalCache(&in)
		rs, err = p.pq.Eval(ctx, rego.EvalParsedInput(InputValue(in)), rego.EvalGenerateJSON(decode), rego.EvalVirtualCache(vc))
		if err == nil {
			defer vc.commit()
		}
	}
	if err != nil {
		return Decision{}, err
	}
	if len(rs) != 1 || len(rs[0].Expressions) != 1 {
		return Decision{}, fmt.Errorf("%s is undefined", Query)
	}
	d, ok := rs[0].Expressions[0].Value.(Decision)
	if !ok {
		return Decision{}, fmt.Errorf("%s: unexpected result %v", Query, rs[0].Expressions[0].Value)
	}
	return d, nil
}

// decode turns the result object straight into a Decision, skipping the
// generic map[string]any conversion.
func decode(t *ast.Term, _ *rego.EvalContext) (any, error) {
	obj, ok := t.Value.(ast.Object)
	if !ok {
		return nil, fmt.Errorf("%s is %s, want an object", Query, ast.ValueName(t.Value))
	}
	var d Decision
	at := obj.Get(kAllow)
	if at == nil {
		return nil, fmt.Errorf("%s.allow is missing", Query)
	}
	allow, ok := at.Value.(ast.Boolean)
	if !ok {
		return nil, fmt.Errorf("%s.allow is not a boolean", Query)
	}
	d.Allow = bool(allow)
	if d.Error, ok = str(obj.Get(kError)); !ok {
		return nil, fmt.Errorf("%s.error is not a string", Query)
	}
	if d.Purpose, ok = str(obj.Get(kPurposeOut)); !ok {
		return nil, fmt.Errorf("%s.purpose is not a string", Query)
	}
	score := obj.Get(kRiskScore)
	if score == nil {
		return nil, fmt.Errorf("%s.risk_score is missing", Query)
	}
	n, ok := score.Value.(ast.Number)
	if !ok {
		return nil, fmt.Errorf("%s.risk_score is not a number", Query)
	}
	i, ok := n.Int()
	if !ok || i < 0 || i > 100 {
		return nil, fmt.Errorf("%s.risk_score %s is not an integer from 0 to 100", Query, n)
	}
	d.RiskScore = i
	if th := obj.Get(kThrottle); th != nil {
		b, ok := th.Value.(ast.Boolean)
		if !ok {
			return nil, fmt.Errorf("%s.throttle is not a boolean", Query)
		}
		d.Throttle = bool(b)
	}
	if d.Allow == (d.Error != "") {
		return nil, fmt.Errorf("%s: allow %v with error %q", Query, d.Allow, d.Error)
	}
	return d, nil
}

func str(t *ast.Term) (string, bool) {
	if t == nil {
		return "", false
	}
	s, ok := t.Value.(ast.String)
	return string(s), ok
}
