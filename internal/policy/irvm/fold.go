package irvm

import (
	"fmt"
	"maps"
	"slices"

	"github.com/open-policy-agent/opa/v1/ast"
)

// body is one function's (or the plan's) blocks and the locals its caller
// assigns.
type body struct {
	name   string
	blocks []*block
	params []int
}

// foldConstants builds each constant collection of the program once, at
// Compile. The planner builds every one (an object literal, each folded data
// value, such as a table of weights) afresh each time its statement is
// reached: MakeObjectStmt, then an ObjectInsertStmt per key, inside a
// comprehension's loop as often as it turns. A folded collection's
// construction becomes the assignment of the finished value.
//
// Sharing one value between evaluations is safe only if nothing ever
// mutates it, so folding rests on a proof over the whole program
// (safeMutations): each statement that mutates a local in place
// (ObjectInsert, ObjectInsertOnce, ArrayAppend, SetAdd) is preceded, on
// every path to it, by the statement that makes the collection
// (MakeObject, MakeArray, MakeSet), and nothing else assigns that local in
// the function's top-level block (the planner reuses a local's number from
// one rule body to the next). A shared constant is never such a
// collection, so no statement can reach it to mutate it. The same proof is
// what lets evaluations share the data document, the input's values and the
// constants at all: foldConstants reports false (and why) when it does not
// hold, and Compile refuses the plan.
//
// A collection is folded when it is made once in its function, every
// mutation of it (in the whole function) comes in the same block before it
// is first read or the block does anything that could leave it (a
// statement that may be undefined, a nested block), and each key and value
// it is given is itself a constant. Last, foldConstants fuses what it can
// (fuseBlock), and has the arrays that comprehensions build element by
// element collected in a buffer and made once (buildArrays), returning the
// number of buffers an evaluation needs.
func foldConstants(bodies []body) (ok bool, slots int, why string) {
	counts := make([]localCounts, len(bodies))
	for i, b := range bodies {
		c := localCounts{makes: map[int]int{}, muts: map[int]int{}, other: map[int]int{}}
		for _, p := range b.params {
			c.other[p]++
		}
		for _, bl := range b.blocks {
			c.walk(bl)
		}
		made := map[int]bool{} // made by an earlier top-level block, surely
		for _, top := range b.blocks {
			if l, ok := safeMutations(top, made); !ok {
				return false, 0, fmt.Sprintf("%s mutates local %d, which it may not have made", b.name, l)
			}
		}
		counts[i] = c
	}
	for i, b := range bodies {
		for _, bl := range b.blocks {
			foldBlock(bl, &counts[i])
			fuseBlock(bl, &counts[i])
		}
	}
	for i, b := range bodies {
		for _, bl := range b.blocks {
			buildArrays(bl, &counts[i], &slots)
		}
	}
	return true, slots, ""
}

// safeMutations checks the mutations of one top-level block (see
// foldConstants), and names a local mutated unsafely. It follows each
// local along the block's structure: a Make makes it fresh, any other
// assignment stale, a mutation needs it fresh. A nested block starts from
// the state before it, less what the blocks before it in the same
// statement (an else chain's branches reuse locals) and its own loop may
// have assigned; after it, a local stays fresh if nothing in it assigned
// the local. made holds the locals that the top-level blocks before surely
// made (a partial rule's set, made by a block of its own and added to by
// each body), and is updated for the next.
func safeMutations(top *block, made map[int]bool) (int, bool) {
	out, l, ok := flow(top, made)
	if !ok {
		return l, false
	}
	stale := map[int]bool{}
	assignedIn(top, stale)
	for l := range made {
		if stale[l] {
			delete(made, l)
		}
	}
	// A collection made before anything in the block could be undefined
	// is made whenever the block runs.
leading:
	for i := range top.stmts {
		s := &top.stmts[i]
		switch s.kind {
		case kNop, kMakeNumber, kMakeNull, kAssignInt:
		case kMakeArray, kMakeObject, kMakeSet:
			if out[s.dst] {
				made[s.dst] = true
			}
		default:
			break leading
		}
	}
	return 0, true
}

// flow checks b from the locals fresh on entry, and returns those fresh
// when it runs to its end.
func flow(b *block, entry map[int]bool) (map[int]bool, int, bool) {
	st := maps.Clone(entry)
	without := func(m map[int]bool, bs ...*block) map[int]bool {
		stale := map[int]bool{}
		for _, nb := range bs {
			assignedIn(nb, stale)
		}
		out := maps.Clone(m)
		for l := range stale {
			delete(out, l)
		}
		return out
	}
	for i := range b.stmts {
		s := &b.stmts[i]
		switch s.kind {
		case kMakeArray, kMakeObject, kMakeSet:
			st[s.dst] = true
		case kArrayAppend, kObjectInsert, kObjectInsertOnce, kSetAdd:
			if !st[s.dst] {
				return nil, s.dst, false
			}
		case kBlock:
			cur := st
			for _, nb := range s.blocks {
				if _, l, ok := flow(nb, cur); !ok {
					return nil, l, false
				}
				cur = without(cur, nb)
			}
			st = cur
		case kScan:
			in := without(st, s.body)
			delete(in, s.dst)
			delete(in, s.dst2)
			if _, l, ok := flow(s.body, in); !ok {
				return nil, l, false
			}
			st = in
		case kNot, kWith:
			in := st
			if s.kind == kWith {
				in = maps.Clone(st)
				delete(in, s.dst)
			}
			if _, l, ok := flow(s.body, in); !ok {
				return nil, l, false
			}
			st = without(in, s.body)
		case kAssignVar, kAssignInt, kMakeNull, kMakeNumber, kAssignVarOnce, kDot, kLen, kCallBuiltin, kCallFunc,
			kArrayLit, kObjectLit, kBuildEnd:
			delete(st, s.dst)
		case kResetLocal:
			delete(st, s.dst)
		}
	}
	return st, 0, true
}

// assignedIn adds to stale every local that b, or a block nested in it,
// assigns otherwise than by making a collection.
func assignedIn(b *block, stale map[int]bool) {
	for i := range b.stmts {
		s := &b.stmts[i]
		switch s.kind {
		case kAssignVar, kAssignInt, kMakeNull, kMakeNumber, kAssignVarOnce, kDot, kLen, kCallBuiltin, kCallFunc, kWith,
			kArrayLit, kObjectLit, kBuildEnd, kResetLocal:
			stale[s.dst] = true
		case kScan:
			stale[s.dst], stale[s.dst2] = true, true
		}
		for _, nb := range s.blocks {
			assignedIn(nb, stale)
		}
		if s.body != nil {
			assignedIn(s.body, stale)
		}
	}
}

type localCounts struct {
	makes map[int]int // MakeObject, MakeArray, MakeSet of the local
	muts  map[int]int // in-place mutations of the local
	other map[int]int // any other assignment
	reads map[int]int
}

func (c *localCounts) walk(b *block) {
	if c.reads == nil {
		c.reads = map[int]int{}
	}
	for i := range b.stmts {
		s := &b.stmts[i]
		for _, o := range readsOf(s) {
			if o.local >= 0 {
				c.reads[o.local]++
			}
		}
		switch s.kind {
		case kMakeArray, kMakeObject, kMakeSet:
			c.makes[s.dst]++
		case kArrayAppend, kObjectInsert, kObjectInsertOnce, kSetAdd:
			c.muts[s.dst]++
		case kAssignVar, kAssignInt, kMakeNull, kMakeNumber, kAssignVarOnce, kDot, kLen, kCallBuiltin, kCallFunc, kWith:
			c.other[s.dst]++
		case kScan:
			c.other[s.dst]++
			c.other[s.dst2]++
		}
		for _, nb := range s.blocks {
			c.walk(nb)
		}
		if s.body != nil {
			c.walk(s.body)
		}
	}
}

// building is a collection under construction in a block.
type building struct {
	val  *ast.Term
	make int   // its Make statement
	muts []int // the mutations folded into val so far
}

func foldBlock(b *block, c *localCounts) {
	known := map[int]*ast.Term{}
	bld := map[int]*building{}
	finalize := func(l int) {
		x, ok := bld[l]
		if !ok {
			return
		}
		delete(bld, l)
		if c.makes[l] != 1 || c.muts[l] != len(x.muts) {
			return // made or mutated elsewhere too: left as it is
		}
		warm(x.val)
		b.stmts[x.make] = stmt{kind: kMakeNumber, a: operand{local: -1, val: x.val}, dst: l}
		for _, i := range x.muts {
			b.stmts[i] = stmt{kind: kNop}
		}
		known[l] = x.val
	}
	finalizeAll := func() {
		for l := range bld {
			finalize(l)
		}
	}
	constOf := func(o operand) *ast.Term {
		if o.local < 0 {
			return o.val
		}
		finalize(o.local)
		return known[o.local]
	}
	for i := range b.stmts {
		s := &b.stmts[i]
		switch s.kind {
		case kNop:
		case kMakeNumber, kMakeNull, kAssignInt:
			delete(bld, s.dst)
			known[s.dst] = s.a.val
		case kMakeObject, kMakeArray, kMakeSet:
			delete(known, s.dst)
			x := &building{make: i}
			switch s.kind {
			case kMakeObject:
				x.val = ast.NewTerm(ast.NewObject())
			case kMakeArray:
				x.val = ast.NewTerm(ast.NewArray())
			default:
				x.val = ast.NewTerm(ast.NewSet())
			}
			bld[s.dst] = x
		case kObjectInsert, kObjectInsertOnce, kArrayAppend, kSetAdd:
			object := s.kind == kObjectInsert || s.kind == kObjectInsertOnce
			k, v := constOf(s.a), (*ast.Term)(nil) // k is the value appended or added
			if object {
				v = constOf(s.b)
			}
			x, ok := bld[s.dst]
			if !ok {
				continue
			}
			if k == nil || (object && v == nil) {
				delete(bld, s.dst)
				continue
			}
			switch val := x.val.Value.(type) {
			case ast.Object:
				if s.kind == kObjectInsertOnce && val.Get(k) != nil {
					delete(bld, s.dst) // let the statement answer it at run time
					continue
				}
				val.Insert(k, v)
			case *ast.Array:
				x.val.Value = val.Append(k)
			case ast.Set:
				val.Add(k)
			}
			x.muts = append(x.muts, i)
		case kAssignVar:
			v := constOf(s.a)
			delete(bld, s.dst)
			if v != nil {
				known[s.dst] = v
			} else {
				delete(known, s.dst)
			}
		default:
			// Anything else may read a collection, be undefined, or
			// (nested blocks) assign any local: every collection under
			// construction is finished here, and no local is known after.
			finalizeAll()
			for _, nb := range s.blocks {
				foldBlock(nb, c)
			}
			if s.body != nil {
				foldBlock(s.body, c)
			}
			clear(known)
		}
	}
	finalizeAll()
}

// warm computes what a shared value computes lazily (hashes, sorted
// keys), so that concurrent evaluations only read it.
func warm(t *ast.Term) {
	t.Value.Hash()
	switch v := t.Value.(type) {
	case ast.Object:
		v.Foreach(func(k, x *ast.Term) { warm(k); warm(x) })
	case ast.Set:
		v.Foreach(warm)
	case *ast.Array:
		v.Foreach(warm)
	}
}

// readsOf is the operands s reads (not the collections it mutates).
func readsOf(s *stmt) []operand {
	switch s.kind {
	case kCallFunc, kCallBuiltin:
		return append(slices.Clone(s.args), s.lit...)
	case kArrayLit:
		return s.lit
	case kObjectLit:
		return append(slices.Clone(s.lit), s.args...)
	case kDot, kEqual, kNotEqual, kObjectInsert, kObjectInsertOnce:
		return []operand{s.a, s.b}
	case kReturnLocal, kLen, kScan, kAssignVar, kAssignVarOnce, kIsArray, kIsObject, kIsSet,
		kIsDefined, kIsUndefined, kArrayAppend, kSetAdd, kResultSetAdd:
		return []operand{s.a}
	case kWith:
		return []operand{s.a, {local: s.dst}}
	}
	return nil
}

// fuseBlock replaces the construction of a collection statement by
// statement (MakeArray, then an ArrayAppend per element; MakeObject, then
// an ObjectInsert per constant key) by one statement that makes it whole,
// where nothing between can read it or change what goes in it: a value or
// two built into an array for min or max (max([0, n - free])) is not made at
// all, the call reads them where they are.
func fuseBlock(b *block, c *localCounts) {
	for i := range b.stmts {
		s := &b.stmts[i]
		for _, nb := range s.blocks {
			fuseBlock(nb, c)
		}
		if s.body != nil {
			fuseBlock(s.body, c)
		}
		if (s.kind != kMakeArray && s.kind != kMakeObject) || c.makes[s.dst] != 1 {
			continue
		}
		t := s.dst
		var elems, keys []operand     // appended values; inserted values and their keys
		var idx []int                 // the statements folded in
		used := map[int]bool{t: true} // locals read by the fused statement: none may change before it
		distinct := map[ast.Value]bool{}
		last := -1
	scan:
		for j := i + 1; j < len(b.stmts); j++ {
			x := &b.stmts[j]
			switch {
			case x.kind == kNop:
			case x.kind == kArrayAppend && x.dst == t && s.kind == kMakeArray:
				used[x.a.local] = true
				elems = append(elems, x.a)
				idx = append(idx, j)
				last = j
			case (x.kind == kObjectInsert || x.kind == kObjectInsertOnce) && x.dst == t && s.kind == kMakeObject:
				k := x.a.val
				if x.a.local >= 0 || distinct[k.Value] {
					break scan
				}
				if _, ok := k.Value.(ast.String); !ok {
					break scan // strings compare by value as map keys; nothing else is needed
				}
				distinct[k.Value] = true
				used[x.b.local] = true
				keys, elems = append(keys, x.a), append(elems, x.b)
				idx = append(idx, j)
				last = j
			case x.kind == kMakeNumber || x.kind == kMakeNull || x.kind == kAssignInt:
				if used[x.dst] {
					break scan
				}
			default:
				break scan
			}
		}
		if last < 0 || len(idx) != c.muts[t] {
			continue
		}
		// min or max of the array, its only reader, right after it: the
		// call reads the elements from where they are.
		if s.kind == kMakeArray && c.reads[t] == 1 {
			if k := nextStmt(b, last); k >= 0 {
				call := &b.stmts[k]
				if call.kind == kCallBuiltin && len(call.args) == 1 && call.args[0].local == t && call.bi.lit != nil {
					call.lit, call.args = elems, nil
					s.kind = kNop
					for _, j := range idx {
						b.stmts[j] = stmt{kind: kNop}
					}
					continue
				}
			}
		}
		lit := stmt{kind: kArrayLit, dst: t, lit: elems}
		if s.kind == kMakeObject {
			lit = stmt{kind: kObjectLit, dst: t, lit: elems, args: keys}
		}
		b.stmts[i] = stmt{kind: kNop}
		for _, j := range idx {
			b.stmts[j] = stmt{kind: kNop}
		}
		b.stmts[last] = lit
	}
}

// nextStmt is the index of the first statement after i that is not a Nop,
// -1 if none.
func nextStmt(b *block, i int) int {
	for j := i + 1; j < len(b.stmts); j++ {
		if b.stmts[j].kind != kNop {
			return j
		}
	}
	return -1
}

// buildArrays replaces an array built by appends in nested blocks (a
// comprehension's: MakeArray, then an ArrayAppend in a scan's body) with
// its elements collected in a buffer of the evaluation (slot) and the
// array made once, right before the statement of the same block that
// first reads it: each ArrayAppendStmt would copy the array. It applies
// where the array is made once in its function, all its appends come
// between that and the first statement that reads or assigns it, and that
// statement is in the same block.
func buildArrays(b *block, c *localCounts, slots *int) {
	for i := range b.stmts {
		for _, nb := range b.stmts[i].blocks {
			buildArrays(nb, c, slots)
		}
		if body := b.stmts[i].body; body != nil {
			buildArrays(body, c, slots)
		}
	}
	for i := len(b.stmts) - 1; i >= 0; i-- {
		s := &b.stmts[i]
		if s.kind != kMakeArray || c.makes[s.dst] != 1 {
			continue
		}
		t := s.dst
		j, appends := -1, 0
		for k := i + 1; k < len(b.stmts); k++ {
			if touches(&b.stmts[k], t) {
				j = k
				break
			}
			appends += appendsTo(&b.stmts[k], t)
		}
		if j < 0 || appends == 0 || appends != c.muts[t] {
			continue
		}
		slot := *slots
		*slots++
		for k := i + 1; k < j; k++ {
			retarget(&b.stmts[k], t, slot)
		}
		b.stmts[i] = stmt{kind: kBuildStart, n: slot}
		b.stmts = slices.Insert(b.stmts, j, stmt{kind: kBuildEnd, n: slot, dst: t})
	}
}

// touches reports whether s, or a statement nested in it, reads t or
// assigns it (appending to it is neither).
func touches(s *stmt, t int) bool {
	for _, o := range readsOf(s) {
		if o.local == t {
			return true
		}
	}
	switch s.kind {
	case kArrayAppend, kObjectInsert, kObjectInsertOnce, kSetAdd, kNop, kBreak, kBlock, kNot, kEqual, kNotEqual,
		kIsArray, kIsObject, kIsSet, kIsDefined, kIsUndefined, kResultSetAdd, kReturnLocal, kBuildAppend:
	case kScan:
		if s.dst == t || s.dst2 == t {
			return true
		}
	default:
		if s.dst == t {
			return true
		}
	}
	for _, nb := range s.blocks {
		for k := range nb.stmts {
			if touches(&nb.stmts[k], t) {
				return true
			}
		}
	}
	if s.body != nil {
		for k := range s.body.stmts {
			if touches(&s.body.stmts[k], t) {
				return true
			}
		}
	}
	return false
}

// appendsTo counts the ArrayAppendStmts to t in s and nested in it.
func appendsTo(s *stmt, t int) int {
	n := 0
	if s.kind == kArrayAppend && s.dst == t {
		n++
	}
	for _, nb := range s.blocks {
		for k := range nb.stmts {
			n += appendsTo(&nb.stmts[k], t)
		}
	}
	if s.body != nil {
		for k := range s.body.stmts {
			n += appendsTo(&s.body.stmts[k], t)
		}
	}
	return n
}

// retarget turns the appends to t in s, and nested in it, into appends to
// the buffer.
func retarget(s *stmt, t, slot int) {
	if s.kind == kArrayAppend && s.dst == t {
		*s = stmt{kind: kBuildAppend, a: s.a, n: slot}
		return
	}
	for _, nb := range s.blocks {
		for k := range nb.stmts {
			retarget(&nb.stmts[k], t, slot)
		}
	}
	if s.body != nil {
		for k := range s.body.stmts {
			retarget(&s.body.stmts[k], t, slot)
		}
	}
}
