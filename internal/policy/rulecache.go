package policy

import (
	"encoding/binary"
	"fmt"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/topdown"
)

// rules memoises the value of each rule (data.sendguard.risk.counted,
// data.sendguard.risk.model_points, …) across evaluations, keyed on exactly
// the input fields that rule reads, itself or through the rules and
// functions it refers to. A first-seen decision input is usually a new
// combination of parts already seen: a new message shares its purpose, its
// model probabilities or its counted signals with earlier ones, so OPA
// evaluates only the rules whose own inputs are new and takes the rest
// from here. Rules are values of the policies, the data and those fields
// alone (the engine turns this off with the memo, for non-deterministic
// built-ins), so every answer stays the one a full evaluation gives.
type rules struct {
	index  refTrie
	fields []fieldSet // by rule id: what its value depends on
	fn     []bool     // by rule id: a function, shared by its arguments
	memo   *memo[*ast.Term]
}

// refTrie maps a rule's path, data.a.b.c, to its id.
type refTrie struct {
	next map[string]*refTrie
	id   int // -1 where no rule ends
}

func (t *refTrie) add(keys []string, id int) {
	for _, k := range keys {
		if t.next == nil {
			t.next = map[string]*refTrie{}
		}
		n, ok := t.next[k]
		if !ok {
			n = &refTrie{id: -1}
			t.next[k] = n
		}
		t = n
	}
	t.id = id
}

// lookup is the id of the rule whose path is exactly ref, if any. It does
// not allocate.
func (t *refTrie) lookup(ref ast.Ref) (int, bool) {
	if len(ref) < 2 || !ref[0].Equal(ast.DefaultRootDocument) {
		return 0, false
	}
	for _, term := range ref[1:] {
		s, ok := term.Value.(ast.String)
		if !ok {
			return 0, false
		}
		if t = t.next[string(s)]; t == nil {
			return 0, false
		}
	}
	return t.id, t.id >= 0
}

// newRules indexes the rules of modules and the input fields each depends
// on; entries bounds the values held.
func newRules(modules map[string]*ast.Module, entries int) (*rules, error) {
	c := ast.NewCompiler().WithDefaultRegoVersion(ast.RegoV1)
	if c.Compile(modules); c.Failed() {
		return nil, fmt.Errorf("rule cache: %w", c.Errors)
	}
	type node struct {
		path   ast.Ref
		fields fieldSet  // read directly
		refs   []ast.Ref // data references, ground prefixes
		id     int       // -1 for functions: their calls are not shared
		deps   []int     // nodes referred to
	}
	var nodes []*node
	r := &rules{index: refTrie{id: -1}}
	for _, m := range c.Modules {
		for _, rule := range m.Rules {
			n := &node{path: m.Package.Path.Extend(rule.Head.Ref().GroundPrefix()), id: -1}
			refs, vars := 0, 0
			ast.WalkRefs(rule, func(x ast.Ref) bool {
				switch {
				case x[0].Equal(ast.InputRootDocument):
					refs++
					n.fields |= covered(refKeys(x))
				case x[0].Equal(ast.DefaultRootDocument):
					n.refs = append(n.refs, x.GroundPrefix())
				}
				return false
			})
			ast.WalkVars(rule, func(v ast.Var) bool {
				if v.Equal(ast.InputRootDocument.Value) {
					vars++
				}
				return false
			})
			if vars > refs {
				n.fields = fAll // input itself, as a value
			}
			if id, ok := r.index.lookup(n.path); ok {
				n.id = id // another definition of the same rule
			} else {
				n.id = len(r.fields)
				r.fields = append(r.fields, 0)
				r.fn = append(r.fn, len(rule.Head.Args) > 0)
				r.index.add(refKeys(n.path), n.id)
			}
			nodes = append(nodes, n)
		}
	}
	for _, n := range nodes {
		for j, o := range nodes {
			for _, ref := range n.refs {
				if ref.HasPrefix(o.path) || o.path.HasPrefix(ref) {
					n.deps = append(n.deps, j)
					break
				}
			}
		}
	}
	// Each rule's fields are its own and those of all it refers to, to a
	// fixed point (rules may refer to each other in any order).
	for changed := true; changed; {
		changed = false
		for _, n := range nodes {
			f := n.fields
			for _, j := range n.deps {
				f |= nodes[j].fields
			}
			if f != n.fields {
				n.fields, changed = f, true
			}
		}
	}
	for _, n := range nodes {
		if n.id >= 0 {
			r.fields[n.id] |= n.fields
		}
	}
	r.memo = newMemo[*ast.Term](entries)
	return r, nil
}

// ruleKey appends rule id's shared key for in to dst.
func (r *rules) ruleKey(dst []byte, id int, in *Input) []byte {
	dst = binary.AppendUvarint(dst, uint64(id))
	return r.fields[id].key(dst, *in)
}

// callKey appends the shared key of a function call to dst: topdown's
// cache key for it is the function's path as one term, then the
// arguments. It reports false for a call that is not shared: not to a
// function of the policies, or with an argument other than a string,
// number, boolean or null.
func (r *rules) callKey(dst []byte, ref ast.Ref, in *Input) ([]byte, bool) {
	op, ok := ref[0].Value.(ast.Ref)
	if !ok {
		return dst, false
	}
	id, ok := r.index.lookup(op)
	if !ok || !r.fn[id] {
		return dst, false
	}
	dst = r.ruleKey(dst, id, in)
	for _, arg := range ref[1:] {
		switch v := arg.Value.(type) {
		case ast.String:
			dst = append(dst, 's')
			dst = binary.AppendUvarint(dst, uint64(len(v)))
			dst = append(dst, v...)
		case ast.Number:
			dst = append(dst, 'n')
			dst = binary.AppendUvarint(dst, uint64(len(v)))
			dst = append(dst, v...)
		case ast.Boolean:
			if v {
				dst = append(dst, 't')
			} else {
				dst = append(dst, 'f')
			}
		case ast.Null:
			dst = append(dst, 'z')
		default:
			return dst, false
		}
	}
	return dst, true
}

// ruleID is the id of the (non-function) rule whose path is exactly ref:
// the key topdown caches a complete rule's value, or a partial rule's
// whole extent, under.
func (r *rules) ruleID(ref ast.Ref) (int, bool) {
	id, ok := r.index.lookup(ref)
	return id, ok && !r.fn[id]
}

// evalCache is one evaluation's virtual-document cache, in front of the
// shared rule values: rule values in a slice by rule id (topdown's own
// cache, a tree of hash maps, allocates a node per key), everything else
// in topdown's. Values computed inside a `with` (a frame pushed) are the
// override's, not the input's: there topdown's cache alone answers, as it
// would without this one. The values an evaluation computed are shared
// only once it has succeeded (commit), so a rule conflict or a cancelled
// evaluation leaves nothing behind.
type evalCache struct {
	topdown.VirtualCache
	r       *rules
	in      *Input
	depth   int
	local   []localValue // by rule id
	buf     []byte
	keys    []byte // the pending calls' keys, end to end
	pending []pendingValue
}

type localValue struct {
	set   bool
	value *ast.Term // nil: undefined
}

type pendingValue struct {
	id       int // a rule's; -1 for a call, whose key is keys[from:to]
	from, to int
	value    *ast.Term // nil: undefined
}

func (r *rules) newEvalCache(in *Input) *evalCache {
	return &evalCache{VirtualCache: topdown.NewVirtualCache(), r: r, in: in, local: make([]localValue, len(r.fields))}
}

// Push enters a `with` frame.
func (c *evalCache) Push() { c.depth++; c.VirtualCache.Push() }

// Pop leaves it.
func (c *evalCache) Pop() { c.depth--; c.VirtualCache.Pop() }

// Get answers from this evaluation's values, then from the shared ones.
func (c *evalCache) Get(ref ast.Ref) (*ast.Term, bool) {
	if c.depth > 0 || len(ref) == 0 {
		return c.VirtualCache.Get(ref)
	}
	if id, ok := c.r.ruleID(ref); ok {
		if l := c.local[id]; l.set {
			return l.value, l.value == nil
		}
		c.buf = c.r.ruleKey(c.buf[:0], id, c.in)
		v, ok := c.r.memo.Get(c.buf)
		if !ok {
			return nil, false
		}
		c.local[id] = localValue{true, v}
		return v, v == nil
	}
	if v, undefined := c.VirtualCache.Get(ref); v != nil || undefined {
		return v, undefined
	}
	var ok bool
	if c.buf, ok = c.r.callKey(c.buf[:0], ref, c.in); !ok {
		return nil, false
	}
	v, ok := c.r.memo.Get(c.buf)
	if !ok {
		return nil, false
	}
	c.VirtualCache.Put(ref, v)
	return v, v == nil
}

// Put records a value this evaluation computed.
func (c *evalCache) Put(ref ast.Ref, v *ast.Term) {
	if c.depth > 0 || len(ref) == 0 {
		c.VirtualCache.Put(ref, v)
		return
	}
	if id, ok := c.r.ruleID(ref); ok {
		c.local[id] = localValue{true, v}
		c.pending = append(c.pending, pendingValue{id: id, value: v})
		return
	}
	c.VirtualCache.Put(ref, v)
	start := len(c.keys)
	var ok bool
	if c.keys, ok = c.r.callKey(c.keys, ref, c.in); ok {
		c.pending = append(c.pending, pendingValue{id: -1, from: start, to: len(c.keys), value: v})
	} else {
		c.keys = c.keys[:start]
	}
}

// commit shares the values of a successful evaluation.
func (c *evalCache) commit() {
	for _, p := range c.pending {
		if p.id >= 0 {
			c.buf = c.r.ruleKey(c.buf[:0], p.id, c.in)
			c.r.memo.Set(c.buf, p.value)
		} else {
			c.r.memo.Set(c.keys[p.from:p.to], p.value)
		}
	}
}
