// Package irvm evaluates an OPA plan (package ir: the planner's output, as
// OPA's Wasm target compiles it) directly over ast values, in place of
// OPA's topdown evaluator. OPA still parses, type-checks, compiles and plans
// the policies; only the execution of the plan is ours. It plugs in through
// OPA's target plugins: a query prepared with rego.Target(Target) is planned
// by OPA and handed to Compile, and rego evaluates it through Program.Eval;
// a caller that wants the Program itself (package policy does, to run it
// without rego's result sets and with a cache of rule values, EvalShared)
// prepares under Capture.
//
// Compile also rewrites the plan for speed where that provably changes no
// answer (fold.go): constant collections built once, array and object
// literals made in one piece, a comprehension's array collected in a buffer.
//
// The semantics are those of OPA's Wasm compiler (internal/compiler/wasm),
// the planner's reference consumer: a statement that is undefined leaves
// the block it is in; a block of a BlockStmt, a NotStmt's, a WithStmt's and a
// function's or plan's top-level blocks each count as one level for
// BreakStmt, a ScanStmt's body as two (0 continues with the next element, 1
// ends the scan); functions of input and data alone are evaluated once per
// evaluation (topdown caches rule values the same way); a built-in error
// makes the call undefined and fails the evaluation once it is over, as
// topdown does under rego.StrictBuiltinErrors(true); AssignVarOnceStmt and
// ObjectInsertOnceStmt that find a different value fail it at once with
// eval_conflict_error.
//
// Compile refuses (with an *UnsupportedError) any plan it cannot evaluate
// exactly as topdown would: a statement it does not implement, a built-in
// that is non-deterministic or needs the evaluator's context (http.send,
// time.now_ns, print, opa.runtime, …), or a plan that reads the data
// document when it was given none (rego does not hand a target plugin its
// store: the caller passes the data with WithData). The caller then keeps
// topdown.
package irvm

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/ir"
	"github.com/open-policy-agent/opa/v1/topdown"
)

// UnsupportedError names what in a plan the VM cannot evaluate.
type UnsupportedError struct {
	Reasons []string // sorted, distinct
}

func (e *UnsupportedError) Error() string {
	return "plan not supported by the IR VM: " + strings.Join(e.Reasons, "; ")
}

// Program is a compiled plan. It is immutable after Compile and safe for
// concurrent use; each evaluation takes its own state from a pool.
type Program struct {
	data    *ast.Term // the data document; an empty object when none was given
	plan    *block
	funcs   []*function
	nlocals int // the plan's locals
	pool    sync.Pool
}

type function struct {
	index   int
	path    []string // the rule's path under data (Func.Path without the planner's group)
	name    string
	params  []int
	ret     int
	blocks  []*block
	nlocals int
	memo    int // index into the evaluation's memo, -1 when not memoised
}

type block struct {
	stmts []stmt
}

type kind uint8

const (
	kNop kind = iota
	kReturnLocal
	kCallFunc
	kCallBuiltin
	kBlock
	kBreak
	kDot
	kLen
	kScan
	kNot
	kAssignInt
	kAssignVar
	kAssignVarOnce
	kResetLocal
	kMakeNull
	kMakeNumber // MakeNumberInt and MakeNumberRef: a constant
	kMakeArray
	kMakeObject
	kMakeSet
	kEqual
	kNotEqual
	kIsArray
	kIsObject
	kIsSet
	kIsDefined
	kIsUndefined
	kArrayAppend
	kObjectInsert
	kObjectInsertOnce
	kSetAdd
	kResultSetAdd
	kWith
	kArrayLit    // dst := [lit...]
	kObjectLit   // dst := {args[i]: lit[i]...}, the keys distinct constants
	kBuildStart  // empty buffer n
	kBuildAppend // append a to buffer n
	kBuildEnd    // dst := the array of buffer n's elements
)

// operand is a local (local >= 0) or a constant term.
type operand struct {
	local int
	val   *ast.Term
}

type stmt struct {
	kind   kind
	a, b   operand // sources: Source/A/Key/Value
	dst    int     // target local (Target, Result, Array, Object, Set, Key of a scan)
	dst2   int     // Value local of a scan
	n      int     // break index, capacity, memo slot
	blocks []*block
	body   *block
	args   []operand
	lit    []operand // kArrayLit's elements, kObjectLit's values; a kCallBuiltin's array operand, element by element
	fn     *function
	bi     *builtinFunc
	path   []*ast.Term // WithStmt
	loc    *ir.Location
}

type builtinFunc struct {
	name string
	f    topdown.BuiltinFunc
	fast fastFunc // nil when topdown's f is all there is
	lit  litFunc  // the built-in of an array given element by element; nil when none
	loc  *ast.Location
}

// brReturn is the signal of a ReturnLocalStmt: leave the function.
const (
	brNone   = -1
	brReturn = -2
)

// Compile compiles a policy with one plan (the query) into a Program that
// reads data (an object, never written to) as the data document; nil for
// a plan that does not read it.
func Compile(p *ir.Policy, data ast.Value) (*Program, error) {
	c := &compiler{policy: p, funcs: map[string]*function{}, unsupported: map[string]bool{}, noData: data == nil}
	if p.Plans == nil || len(p.Plans.Plans) != 1 {
		return nil, &UnsupportedError{Reasons: []string{"want exactly one plan"}}
	}
	if p.Static != nil {
		c.strs = make([]*ast.Term, len(p.Static.Strings))
		for i, s := range p.Static.Strings {
			c.strs[i] = ast.StringTerm(s.Value)
		}
	}
	prog := &Program{data: emptyObject}
	if data != nil {
		if _, ok := data.(ast.Object); !ok {
			return nil, &UnsupportedError{Reasons: []string{"data is not an object"}}
		}
		prog.data = ast.NewTerm(data)
		warm(prog.data)
	}
	if p.Funcs != nil {
		for _, f := range p.Funcs.Funcs {
			fn := &function{index: len(prog.funcs), name: f.Name, ret: int(f.Return), memo: -1}
			if len(f.Path) > 1 {
				fn.path = f.Path[1:]
			}
			for _, l := range f.Params {
				fn.params = append(fn.params, int(l))
			}
			c.funcs[f.Name] = fn
			prog.funcs = append(prog.funcs, fn)
		}
		memo := 0
		for i, f := range p.Funcs.Funcs {
			fn := prog.funcs[i]
			c.maxLocal = max(fn.ret, slices.Max(append([]int{0}, fn.params...)))
			c.dataLocals = nil
			if len(fn.params) >= 2 {
				c.dataLocals = []int{fn.params[1]}
			}
			for _, b := range f.Blocks {
				fn.blocks = append(fn.blocks, c.block(b))
			}
			fn.nlocals = c.maxLocal + 1
			if len(fn.params) == 2 { // a rule: a function of input and data alone
				fn.memo = memo
				memo++
			}
		}
		c.nmemo = memo
	}
	plan := p.Plans.Plans[0]
	c.maxLocal = int(ir.Data)
	c.dataLocals = []int{int(ir.Data)}
	pb := &block{}
	for _, b := range plan.Blocks {
		pb.stmts = append(pb.stmts, stmt{kind: kBlock, blocks: []*block{c.block(b)}})
	}
	prog.plan = pb
	prog.nlocals = c.maxLocal + 1
	bodies := []body{{name: "plan " + plan.Name, blocks: []*block{pb}, params: []int{int(ir.Input), int(ir.Data)}}}
	for _, fn := range prog.funcs {
		bodies = append(bodies, body{name: fn.name, blocks: fn.blocks, params: fn.params})
	}
	ok, slots, why := foldConstants(bodies)
	if !ok {
		c.fail("%s", why)
	}
	if len(c.unsupported) > 0 {
		reasons := make([]string, 0, len(c.unsupported))
		for r := range c.unsupported {
			reasons = append(reasons, r)
		}
		slices.Sort(reasons)
		return nil, &UnsupportedError{Reasons: reasons}
	}
	nmemo := c.nmemo
	prog.pool.New = func() any {
		m := &machine{memo: make([]*ast.Term, nmemo), memoSet: make([]bool, nmemo), bufs: make([][]*ast.Term, slots)}
		m.collect = m.keep
		return m
	}
	return prog, nil
}

type compiler struct {
	policy      *ir.Policy
	strs        []*ast.Term
	funcs       map[string]*function
	unsupported map[string]bool
	maxLocal    int
	dataLocals  []int // the locals holding the data document in the current function
	noData      bool  // no data document: reading one is unsupported
	nmemo       int
}

func (c *compiler) fail(format string, args ...any) {
	c.unsupported[fmt.Sprintf(format, args...)] = true
}

func (c *compiler) local(l ir.Local) int {
	c.maxLocal = max(c.maxLocal, int(l))
	if c.noData && slices.Contains(c.dataLocals, int(l)) {
		c.fail("reads the data document, and none was given")
	}
	return int(l)
}

func (c *compiler) target(l ir.Local) int {
	c.maxLocal = max(c.maxLocal, int(l))
	if slices.Contains(c.dataLocals, int(l)) {
		c.fail("writes the data document")
	}
	return int(l)
}

func (c *compiler) operand(o ir.Operand) operand {
	switch v := o.Value.(type) {
	case ir.Local:
		return operand{local: c.local(v)}
	case ir.StringIndex:
		if int(v) < 0 || int(v) >= len(c.strs) {
			c.fail("string index %d out of range", v)
			return operand{local: -1, val: ast.StringTerm("")}
		}
		return operand{local: -1, val: c.strs[v]}
	case ir.Bool:
		return operand{local: -1, val: ast.BooleanTerm(bool(v))}
	}
	c.fail("operand %T", o.Value)
	return operand{local: -1, val: ast.NullTerm()}
}

func (c *compiler) block(b *ir.Block) *block {
	out := &block{stmts: make([]stmt, 0, len(b.Stmts))}
	for _, s := range b.Stmts {
		out.stmts = append(out.stmts, c.stmt(s))
	}
	return out
}

func (c *compiler) stmt(s ir.Stmt) stmt {
	switch s := s.(type) {
	case *ir.NopStmt:
		return stmt{kind: kNop}
	case *ir.ReturnLocalStmt:
		return stmt{kind: kReturnLocal, a: operand{local: c.local(s.Source)}}
	case *ir.CallStmt:
		out := stmt{dst: c.target(s.Result), loc: s.GetLocation()}
		if fn, ok := c.funcs[s.Func]; ok {
			out.kind, out.fn = kCallFunc, fn
			if len(s.Args) != len(fn.params) {
				c.fail("call of %s with %d arguments", s.Func, len(s.Args))
			}
			for i, a := range s.Args {
				// Passing input and data on to a function is not reading
				// them: the function's own reads are checked.
				if l, ok := a.Value.(ir.Local); ok && i == 1 && slices.Contains(c.dataLocals, int(l)) {
					c.maxLocal = max(c.maxLocal, int(l))
					out.args = append(out.args, operand{local: int(l)})
					continue
				}
				out.args = append(out.args, c.operand(a))
			}
			return out
		}
		out.kind = kCallBuiltin
		out.bi = c.builtin(s.Func, s.GetLocation())
		for _, a := range s.Args {
			out.args = append(out.args, c.operand(a))
		}
		return out
	case *ir.BlockStmt:
		out := stmt{kind: kBlock}
		for _, b := range s.Blocks {
			out.blocks = append(out.blocks, c.block(b))
		}
		return out
	case *ir.BreakStmt:
		return stmt{kind: kBreak, n: int(s.Index)}
	case *ir.DotStmt:
		return stmt{kind: kDot, a: c.operand(s.Source), b: c.operand(s.Key), dst: c.target(s.Target)}
	case *ir.LenStmt:
		return stmt{kind: kLen, a: c.operand(s.Source), dst: c.target(s.Target)}
	case *ir.ScanStmt:
		return stmt{kind: kScan, a: operand{local: c.local(s.Source)}, dst: c.target(s.Key), dst2: c.target(s.Value), body: c.block(s.Block)}
	case *ir.NotStmt:
		return stmt{kind: kNot, body: c.block(s.Block)}
	case *ir.AssignIntStmt:
		return stmt{kind: kAssignInt, a: operand{local: -1, val: ast.InternedTerm(int(s.Value))}, dst: c.target(s.Target)}
	case *ir.AssignVarStmt:
		return stmt{kind: kAssignVar, a: c.operand(s.Source), dst: c.target(s.Target)}
	case *ir.AssignVarOnceStmt:
		return stmt{kind: kAssignVarOnce, a: c.operand(s.Source), dst: c.target(s.Target), loc: s.GetLocation()}
	case *ir.ResetLocalStmt:
		return stmt{kind: kResetLocal, dst: c.target(s.Target)}
	case *ir.MakeNullStmt:
		return stmt{kind: kMakeNull, a: operand{local: -1, val: ast.NullTerm()}, dst: c.target(s.Target)}
	case *ir.MakeNumberIntStmt:
		return stmt{kind: kMakeNumber, a: operand{local: -1, val: ast.InternedTerm(int(s.Value))}, dst: c.target(s.Target)}
	case *ir.MakeNumberRefStmt:
		if s.Index < 0 || s.Index >= len(c.strs) {
			c.fail("number index %d out of range", s.Index)
			return stmt{kind: kNop}
		}
		return stmt{kind: kMakeNumber, a: operand{local: -1, val: ast.NewTerm(ast.Number(c.policy.Static.Strings[s.Index].Value))}, dst: c.target(s.Target)}
	case *ir.MakeArrayStmt:
		return stmt{kind: kMakeArray, n: int(s.Capacity), dst: c.target(s.Target)}
	case *ir.MakeObjectStmt:
		return stmt{kind: kMakeObject, dst: c.target(s.Target)}
	case *ir.MakeSetStmt:
		return stmt{kind: kMakeSet, dst: c.target(s.Target)}
	case *ir.EqualStmt:
		return stmt{kind: kEqual, a: c.operand(s.A), b: c.operand(s.B)}
	case *ir.NotEqualStmt:
		return stmt{kind: kNotEqual, a: c.operand(s.A), b: c.operand(s.B)}
	case *ir.IsArrayStmt:
		return stmt{kind: kIsArray, a: c.operand(s.Source)}
	case *ir.IsObjectStmt:
		return stmt{kind: kIsObject, a: c.operand(s.Source)}
	case *ir.IsSetStmt:
		return stmt{kind: kIsSet, a: c.operand(s.Source)}
	case *ir.IsDefinedStmt:
		return stmt{kind: kIsDefined, a: operand{local: c.local(s.Source)}}
	case *ir.IsUndefinedStmt:
		return stmt{kind: kIsUndefined, a: operand{local: c.local(s.Source)}}
	case *ir.ArrayAppendStmt:
		return stmt{kind: kArrayAppend, a: c.operand(s.Value), dst: c.target(s.Array)}
	case *ir.ObjectInsertStmt:
		return stmt{kind: kObjectInsert, a: c.operand(s.Key), b: c.operand(s.Value), dst: c.target(s.Object)}
	case *ir.ObjectInsertOnceStmt:
		return stmt{kind: kObjectInsertOnce, a: c.operand(s.Key), b: c.operand(s.Value), dst: c.target(s.Object), loc: s.GetLocation()}
	case *ir.SetAddStmt:
		return stmt{kind: kSetAdd, a: c.operand(s.Value), dst: c.target(s.Set)}
	case *ir.ResultSetAddStmt:
		return stmt{kind: kResultSetAdd, a: operand{local: c.local(s.Value)}}
	case *ir.WithStmt:
		if c.noData && slices.Contains(c.dataLocals, int(s.Local)) {
			c.fail("with on the data document, and none was given")
		}
		c.maxLocal = max(c.maxLocal, int(s.Local))
		out := stmt{kind: kWith, dst: int(s.Local), a: c.operand(s.Value), body: c.block(s.Block)}
		for _, i := range s.Path {
			if i < 0 || i >= len(c.strs) {
				c.fail("with path index %d out of range", i)
				continue
			}
			out.path = append(out.path, c.strs[i])
		}
		return out
	}
	c.fail("statement %T", s)
	return stmt{kind: kNop}
}

// unsafeBuiltins are deterministic by OPA's declarations but read the
// evaluator's context, which a Program does not have.
var unsafeBuiltins = map[string]bool{
	"internal.print": true, "print": true, "trace": true, "opa.runtime": true,
	"rego.metadata.chain": true, "rego.metadata.rule": true, "internal.test_case": true,
}

func (c *compiler) builtin(name string, loc *ir.Location) *builtinFunc {
	decl, ok := ast.BuiltinMap[name]
	f := topdown.GetBuiltin(name)
	switch {
	case !ok || f == nil:
		c.fail("built-in %s (not one of OPA's)", name)
	case decl.Nondeterministic || unsafeBuiltins[name]:
		c.fail("built-in %s (non-deterministic or needs the evaluator's context)", name)
	}
	return &builtinFunc{name: name, f: f, fast: fastBuiltins[name], lit: litBuiltins[name], loc: astLocation(c.policy, loc)}
}

func astLocation(p *ir.Policy, l *ir.Location) *ast.Location {
	if l == nil {
		return nil
	}
	file := ""
	if p.Static != nil && l.File >= 0 && l.File < len(p.Static.Files) {
		file = p.Static.Files[l.File].Value
	}
	return &ast.Location{File: file, Row: l.Row, Col: l.Col, Text: []byte(l.Text)}
}

// machine is one evaluation's state.
type machine struct {
	ctx     context.Context
	stack   []*ast.Term // every frame's locals, the current frame last
	memo    []*ast.Term
	memoSet []bool
	results []*ast.Term   // distinct
	bufs    [][]*ast.Term // arrays under construction (buildArrays)

	scanners []*scanner // by depth of nested scans
	depth    int

	shared    Shared // nil: none
	withDepth int    // WithStmts entered: rule values there are the override's
	biErr     error  // the first built-in error; it fails the evaluation when it is over
	ops       [8]*ast.Term
	elems     [8]*ast.Term
	out       *ast.Term
	outN      int
	collect   func(*ast.Term) error // m.keep, bound once
}

// Eval evaluates the plan for input (nil for none) and returns the result
// set, a set of objects keyed by the query's variables, as rego expects of a
// target plugin. A built-in error, a conflict or a cancelled ctx fail it.
func (p *Program) Eval(ctx context.Context, input ast.Value) (ast.Value, error) {
	set := ast.NewSet()
	err := p.evalWith(ctx, input, nil, func(rs []*ast.Term) {
		for _, r := range rs {
			set.Add(r)
		}
	})
	if err != nil {
		return nil, err
	}
	return set, nil
}

// EvalOne evaluates the plan for input and returns the value of the one
// variable of its one result: nil when the query is undefined, an error
// when it has several results or a result is not an object of one key.
func (p *Program) EvalOne(ctx context.Context, input ast.Value) (*ast.Term, error) {
	return p.EvalShared(ctx, input, nil)
}

// Shared holds rule values across evaluations, for the caller to key on
// what each rule's value depends on. A rule is a function of input and data
// alone (Funcs names them); Get and Put are never called for a value
// computed under a `with`. Get's nil with true is a rule known undefined.
// The VM calls Put for each rule value it computes; a caller should keep
// them only once the evaluation has succeeded.
type Shared interface {
	Get(fn int) (v *ast.Term, ok bool)
	Put(fn int, v *ast.Term)
}

// Func describes a function of the program for a Shared: Rule is true for a
// function of input and data alone (a rule's value), Path its path under
// data, Weight the number of statements it and the functions it calls run
// at most once each (a loop's body counted once): what looking it up can
// save.
type Func struct {
	Rule   bool
	Path   []string
	Weight int
}

// Funcs describes the program's functions, by the index Shared sees.
func (p *Program) Funcs() []Func {
	out := make([]Func, len(p.funcs))
	weights := map[*function]int{}
	for i, fn := range p.funcs {
		out[i] = Func{Rule: fn.memo >= 0, Path: slices.Clone(fn.path), Weight: weightOf(fn, weights)}
	}
	return out
}

func weightOf(fn *function, memo map[*function]int) int {
	if w, ok := memo[fn]; ok {
		return w
	}
	memo[fn] = 0 // no recursion in Rego; this only ends a cycle
	var walk func(b *block) int
	walk = func(b *block) int {
		n := 0
		for i := range b.stmts {
			s := &b.stmts[i]
			if s.kind == kNop {
				continue
			}
			n++
			if s.kind == kCallFunc {
				n += weightOf(s.fn, memo)
			}
			for _, nb := range s.blocks {
				n += walk(nb)
			}
			if s.body != nil {
				n += walk(s.body)
			}
		}
		return n
	}
	w := 0
	for _, b := range fn.blocks {
		w += walk(b)
	}
	memo[fn] = w
	return w
}

// EvalShared is EvalOne with rule values taken from, and given to, shared
// (nil for none).
func (p *Program) EvalShared(ctx context.Context, input ast.Value, shared Shared) (*ast.Term, error) {
	var out *ast.Term
	var bad error
	err := p.evalWith(ctx, input, shared, func(rs []*ast.Term) {
		switch len(rs) {
		case 0:
		case 1:
			obj, ok := rs[0].Value.(ast.Object)
			if !ok || obj.Len() != 1 {
				bad = fmt.Errorf("irvm: result %v is not a binding of one variable", rs[0])
				return
			}
			obj.Foreach(func(_, v *ast.Term) { out = v })
		default:
			bad = fmt.Errorf("irvm: %d results", len(rs))
		}
	})
	if err == nil {
		err = bad
	}
	if err != nil {
		return nil, err
	}
	return out, nil
}

// evalWith runs the plan, with rule values from and to shared (nil for
// none), and hands the results to take before the machine goes back to the
// pool.
func (p *Program) evalWith(ctx context.Context, input ast.Value, shared Shared, take func([]*ast.Term)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m := p.pool.Get().(*machine)
	m.ctx, m.shared = ctx, shared
	base := len(m.stack)
	m.stack = grow(m.stack, p.nlocals)
	frame := m.stack[base : base+p.nlocals]
	if input != nil {
		frame[ir.Input] = ast.NewTerm(input)
	}
	frame[ir.Data] = p.data
	_, err := m.block(frame, p.plan)
	if err == nil {
		err = m.biErr
	}
	if err == nil {
		take(m.results)
	}
	m.release(base)
	p.pool.Put(m)
	return err
}

var emptyObject = ast.ObjectTerm() // never written: WithStmt copies what it changes

func (m *machine) release(base int) {
	clear(m.stack[base:])
	m.stack = m.stack[:base]
	clear(m.memo)
	clear(m.memoSet)
	clear(m.results)
	for i, b := range m.bufs {
		clear(b[:cap(b)])
		m.bufs[i] = b[:0]
	}
	m.ctx, m.results, m.biErr, m.out, m.shared, m.withDepth = nil, m.results[:0], nil, nil, nil, 0
	clear(m.ops[:])
}

// scratch is buf's first n terms, or n new ones when buf is shorter.
func scratch(buf []*ast.Term, n int) []*ast.Term {
	if n <= len(buf) {
		return buf[:n]
	}
	return make([]*ast.Term, n)
}

func grow(s []*ast.Term, n int) []*ast.Term {
	s = slices.Grow(s, n)
	return s[:len(s)+n]
}

func (m *machine) read(frame []*ast.Term, o operand) *ast.Term {
	if o.local >= 0 {
		return frame[o.local]
	}
	return o.val
}

// block runs b's statements and returns brNone when they all ran, brReturn
// on a ReturnLocalStmt, or the number of enclosing blocks to leave besides
// this one (0: this one only, when a statement was undefined).
func (m *machine) block(frame []*ast.Term, b *block) (int, error) {
	for i := range b.stmts {
		s := &b.stmts[i]
		br, err := m.stmt(frame, s)
		if err != nil {
			return 0, err
		}
		if br != brNone {
			return br, nil
		}
	}
	return brNone, nil
}

// nested runs a block nested in a statement, and returns what that
// statement answers its own block: brNone to go on with the next statement.
func nested(br int) int {
	switch {
	case br == brReturn:
		return brReturn
	case br > 0:
		return br - 1
	}
	return brNone
}

func (m *machine) stmt(frame []*ast.Term, s *stmt) (int, error) {
	switch s.kind {
	case kNop:
	case kReturnLocal:
		return brReturn, nil
	case kAssignVar:
		frame[s.dst] = m.read(frame, s.a)
	case kAssignInt, kMakeNull, kMakeNumber:
		frame[s.dst] = s.a.val
	case kAssignVarOnce:
		v := m.read(frame, s.a)
		if cur := frame[s.dst]; cur == nil {
			frame[s.dst] = v
		} else if v == nil || cur.Value.Compare(v.Value) != 0 {
			return 0, conflict(s.loc, "complete rules must not produce multiple outputs")
		}
	case kResetLocal:
		frame[s.dst] = nil
	case kDot:
		src, key := m.read(frame, s.a), m.read(frame, s.b)
		if src == nil || key == nil {
			return 0, nil
		}
		v := dot(src, key)
		if v == nil {
			return 0, nil
		}
		frame[s.dst] = v
	case kEqual, kNotEqual:
		a, b := m.read(frame, s.a), m.read(frame, s.b)
		if a == nil || b == nil {
			return 0, nil
		}
		if (a.Value.Compare(b.Value) == 0) != (s.kind == kEqual) {
			return 0, nil
		}
	case kIsDefined:
		if frame[s.a.local] == nil {
			return 0, nil
		}
	case kIsUndefined:
		if frame[s.a.local] != nil {
			return 0, nil
		}
	case kIsArray, kIsObject, kIsSet:
		v := m.read(frame, s.a)
		if v == nil {
			return 0, nil
		}
		var ok bool
		switch v.Value.(type) {
		case *ast.Array:
			ok = s.kind == kIsArray
		case ast.Object:
			ok = s.kind == kIsObject
		case ast.Set:
			ok = s.kind == kIsSet
		}
		if !ok {
			return 0, nil
		}
	case kMakeArray:
		frame[s.dst] = ast.NewTerm(ast.NewArrayWithCapacity(s.n))
	case kMakeObject:
		frame[s.dst] = ast.NewTerm(ast.NewObject())
	case kMakeSet:
		frame[s.dst] = ast.NewTerm(ast.NewSet())
	case kArrayAppend:
		t, v := frame[s.dst], m.read(frame, s.a)
		arr, ok := t.Value.(*ast.Array)
		if !ok || v == nil {
			return 0, fmt.Errorf("irvm: ArrayAppendStmt on %s", typeName(t))
		}
		t.Value = arr.Append(v)
	case kObjectInsert, kObjectInsertOnce:
		t, k, v := frame[s.dst], m.read(frame, s.a), m.read(frame, s.b)
		obj, ok := t.Value.(ast.Object)
		if !ok || k == nil || v == nil {
			return 0, fmt.Errorf("irvm: ObjectInsertStmt on %s", typeName(t))
		}
		if s.kind == kObjectInsertOnce {
			if cur := obj.Get(k); cur != nil {
				if cur.Value.Compare(v.Value) != 0 {
					return 0, conflict(s.loc, "object keys must be unique")
				}
				break
			}
		}
		obj.Insert(k, v)
	case kSetAdd:
		t, v := frame[s.dst], m.read(frame, s.a)
		set, ok := t.Value.(ast.Set)
		if !ok || v == nil {
			return 0, fmt.Errorf("irvm: SetAddStmt on %s", typeName(t))
		}
		set.Add(v)
	case kResultSetAdd:
		if v := frame[s.a.local]; v != nil && !slices.ContainsFunc(m.results, func(r *ast.Term) bool { return r.Value.Compare(v.Value) == 0 }) {
			m.results = append(m.results, v)
		}
	case kLen:
		v := m.read(frame, s.a)
		if v == nil {
			return 0, nil
		}
		var n int
		switch x := v.Value.(type) {
		case *ast.Array:
			n = x.Len()
		case ast.Object:
			n = x.Len()
		case ast.Set:
			n = x.Len()
		case ast.String:
			n = utf8.RuneCountInString(string(x))
		default:
			return 0, nil
		}
		frame[s.dst] = ast.InternedTerm(n)
	case kBreak:
		return s.n, nil
	case kBlock:
		for _, b := range s.blocks {
			br, err := m.block(frame, b)
			if err != nil {
				return 0, err
			}
			if br == brReturn || br > 0 {
				return nested(br), nil
			}
		}
	case kNot:
		br, err := m.block(frame, s.body)
		if err != nil {
			return 0, err
		}
		switch {
		case br == brNone:
			return 0, nil // the negated block held
		case br == 0:
		default:
			return nested(br), nil
		}
	case kScan:
		return m.scan(frame, s)
	case kCallBuiltin:
		if s.lit != nil {
			return m.callLit(frame, s)
		}
		return m.callBuiltin(frame, s)
	case kArrayLit:
		elems := make([]*ast.Term, len(s.lit))
		for i, o := range s.lit {
			if elems[i] = m.read(frame, o); elems[i] == nil {
				return 0, errors.New("irvm: an undefined array element")
			}
		}
		frame[s.dst] = ast.ArrayTerm(elems...)
	case kBuildStart:
		m.bufs[s.n] = m.bufs[s.n][:0]
	case kBuildAppend:
		v := m.read(frame, s.a)
		if v == nil {
			return 0, errors.New("irvm: an undefined array element")
		}
		m.bufs[s.n] = append(m.bufs[s.n], v)
	case kBuildEnd:
		buf := m.bufs[s.n]
		frame[s.dst] = ast.ArrayTerm(slices.Clone(buf)...)
		clear(buf)
		m.bufs[s.n] = buf[:0]
	case kObjectLit:
		kvs := make([][2]*ast.Term, len(s.lit))
		for i, o := range s.lit {
			if kvs[i][1] = m.read(frame, o); kvs[i][1] == nil {
				return 0, errors.New("irvm: an undefined object value")
			}
			kvs[i][0] = s.args[i].val
		}
		frame[s.dst] = ast.ObjectTerm(kvs...)
	case kCallFunc:
		return m.callFunc(frame, s)
	case kWith:
		return m.with(frame, s)
	default:
		return 0, fmt.Errorf("irvm: statement kind %d", s.kind)
	}
	return brNone, nil
}

func typeName(t *ast.Term) string {
	if t == nil {
		return "undefined"
	}
	return ast.ValueName(t.Value)
}

func conflict(loc *ir.Location, msg string) error {
	e := &topdown.Error{Code: topdown.ConflictErr, Message: msg}
	if loc != nil {
		e.Location = &ast.Location{Row: loc.Row, Col: loc.Col, Text: []byte(loc.Text)}
	}
	return e
}

// dot is src[key], nil when undefined.
func dot(src, key *ast.Term) *ast.Term {
	switch x := src.Value.(type) {
	case ast.Object:
		return x.Get(key)
	case *ast.Array:
		n, ok := key.Value.(ast.Number)
		if !ok {
			return nil
		}
		i, ok := n.Int()
		if !ok || i < 0 || i >= x.Len() {
			return nil
		}
		return x.Elem(i)
	case ast.Set:
		if x.Contains(key) {
			return key
		}
	}
	return nil
}

func (m *machine) scan(frame []*ast.Term, s *stmt) (int, error) {
	src := frame[s.a.local]
	if src == nil {
		return brNone, nil
	}
	// A scanner per depth of nested scans, its callbacks bound once: a
	// closure per scan would be an allocation per scan.
	if m.depth == len(m.scanners) {
		sc := &scanner{m: m}
		sc.each = sc.element
		sc.member = func(t *ast.Term) bool { return sc.element(t, t) }
		m.scanners = append(m.scanners, sc)
	}
	sc := m.scanners[m.depth]
	m.depth++
	sc.frame, sc.s, sc.out, sc.err = frame, s, brNone, nil
	switch x := src.Value.(type) {
	case *ast.Array:
		for i := range x.Len() {
			if sc.element(ast.InternedTerm(i), x.Elem(i)) {
				break
			}
		}
	case ast.Object:
		x.Until(sc.each)
	case ast.Set:
		x.Until(sc.member)
	}
	m.depth--
	out, err := sc.out, sc.err
	sc.frame, sc.s, sc.err = nil, nil, nil
	return out, err
}

// scanner runs one ScanStmt's body for each element.
type scanner struct {
	m      *machine
	frame  []*ast.Term
	s      *stmt
	out    int
	err    error
	each   func(k, v *ast.Term) bool // sc.element
	member func(t *ast.Term) bool    // a set's element as key and value
}

// element runs the body for one element and reports whether to stop.
func (sc *scanner) element(k, v *ast.Term) bool {
	sc.frame[sc.s.dst], sc.frame[sc.s.dst2] = k, v
	br, err := sc.m.block(sc.frame, sc.s.body)
	switch {
	case err != nil:
		sc.err = err
		return true
	case br == brReturn:
		sc.out = brReturn
		return true
	case br == 1:
		return true // out of the scan, on with the next statement
	case br > 1:
		sc.out = br - 2
		return true
	}
	return false
}

func (m *machine) callBuiltin(frame []*ast.Term, s *stmt) (int, error) {
	ops := scratch(m.ops[:], len(s.args))
	for i, a := range s.args {
		if ops[i] = m.read(frame, a); ops[i] == nil {
			return 0, nil
		}
	}
	if s.bi.fast != nil {
		if out, ok := s.bi.fast(ops); ok {
			clear(ops)
			if out == nil {
				return 0, nil
			}
			frame[s.dst] = out
			return brNone, nil
		}
	}
	m.out, m.outN = nil, 0
	err := s.bi.f(topdown.BuiltinContext{Context: m.ctx, Location: s.bi.loc}, ops, m.collect)
	clear(ops)
	if err != nil {
		var halt topdown.Halt
		if errors.As(err, &halt) {
			return 0, halt.Err
		}
		if m.biErr == nil {
			m.biErr = err
		}
		return 0, nil
	}
	if m.out == nil {
		return 0, nil
	}
	frame[s.dst], m.out = m.out, nil
	return brNone, nil
}

// callLit calls a built-in of one array given element by element.
func (m *machine) callLit(frame []*ast.Term, s *stmt) (int, error) {
	elems := scratch(m.elems[:], len(s.lit))
	for i, o := range s.lit {
		if elems[i] = m.read(frame, o); elems[i] == nil {
			return 0, errors.New("irvm: an undefined array element")
		}
	}
	out := s.bi.lit(elems)
	clear(elems)
	if out == nil {
		return 0, nil
	}
	frame[s.dst] = out
	return brNone, nil
}

// keep is the built-ins' output callback: it keeps the first output (a
// planned call has one).
func (m *machine) keep(t *ast.Term) error {
	if m.outN == 0 {
		m.out = t
	}
	m.outN++
	return nil
}

func (m *machine) callFunc(frame []*ast.Term, s *stmt) (int, error) {
	fn := s.fn
	if fn.memo >= 0 && !m.memoSet[fn.memo] && m.shared != nil && m.withDepth == 0 {
		if v, ok := m.shared.Get(fn.index); ok {
			m.memo[fn.memo], m.memoSet[fn.memo] = v, true
		}
	}
	if fn.memo >= 0 && m.memoSet[fn.memo] {
		v := m.memo[fn.memo]
		if v == nil {
			return 0, nil
		}
		frame[s.dst] = v
		return brNone, nil
	}
	base := len(m.stack)
	m.stack = grow(m.stack, fn.nlocals)
	callee := m.stack[base : base+fn.nlocals]
	for i, a := range s.args {
		callee[fn.params[i]] = m.read(frame, a)
	}
	var err error
	for _, b := range fn.blocks {
		var br int
		if br, err = m.block(callee, b); err != nil || br == brReturn || br > 0 {
			break
		}
	}
	v := callee[fn.ret]
	clear(m.stack[base:])
	m.stack = m.stack[:base]
	if err != nil {
		return 0, err
	}
	if fn.memo >= 0 {
		m.memo[fn.memo], m.memoSet[fn.memo] = v, true
		if m.shared != nil && m.withDepth == 0 {
			m.shared.Put(fn.index, v)
		}
	}
	if v == nil {
		return 0, nil
	}
	frame[s.dst] = v
	return brNone, nil
}

// with runs the body with the local (input) replaced, or a path in it
// upserted, and the rule values computed under it forgotten after.
func (m *machine) with(frame []*ast.Term, s *stmt) (int, error) {
	saved := frame[s.dst]
	v := m.read(frame, s.a)
	switch {
	case len(s.path) == 0:
		frame[s.dst] = v // undefined too: the planner restores an undefined input so
	case v == nil:
		return 0, nil
	default:
		frame[s.dst] = upsert(saved, s.path, v)
	}
	memo, memoSet := slices.Clone(m.memo), slices.Clone(m.memoSet)
	clear(m.memo)
	clear(m.memoSet)
	m.withDepth++
	br, err := m.block(frame, s.body)
	m.withDepth--
	frame[s.dst] = saved
	copy(m.memo, memo)
	copy(m.memoSet, memoSet)
	if err != nil {
		return 0, err
	}
	switch {
	case br == brNone:
		return brNone, nil
	case br == 0:
		return 0, nil
	}
	return nested(br), nil
}

// upsert returns a copy of doc (an object, or nothing) with path set to v,
// copying each object on the path and replacing anything that is not one.
func upsert(doc *ast.Term, path []*ast.Term, v *ast.Term) *ast.Term {
	var obj ast.Object
	if doc != nil {
		if o, ok := doc.Value.(ast.Object); ok {
			obj = o.Copy()
		}
	}
	if obj == nil {
		obj = ast.NewObject()
	}
	if len(path) == 1 {
		obj.Insert(path[0], v)
	} else {
		obj.Insert(path[0], upsert(obj.Get(path[0]), path[1:], v))
	}
	return ast.NewTerm(obj)
}
