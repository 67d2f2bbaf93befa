package policy

import (
	"encoding/binary"

	"github.com/open-policy-agent/opa/v1/ast"
)

// A fieldSet is the input fields the policies read, one bit each.
type fieldSet uint16

const (
	fInstanceID fieldSet = 1 << iota
	fPlan
	fPaused
	fPurpose
	fPhone
	fSuppressed
	fSignals
	fAll = fInstanceID | fPlan | fPaused | fPurpose | fPhone | fSuppressed | fSignals
)

// leaves maps each input path to its field. A reference to a prefix
// (input.instance) reads every field under it.
var leaves = []struct {
	path []string
	f    fieldSet
}{
	{[]string{"instance", "id"}, fInstanceID},
	{[]string{"instance", "plan"}, fPlan},
	{[]string{"instance", "paused"}, fPaused},
	{[]string{"purpose"}, fPurpose},
	{[]string{"recipient", "phone"}, fPhone},
	{[]string{"recipient", "suppressed"}, fSuppressed},
	{[]string{"signals"}, fSignals},
}

func (fs fieldSet) names() []string {
	var out []string
	for _, l := range leaves {
		if fs&l.f != 0 {
			name := l.path[0]
			for _, p := range l.path[1:] {
				name += "." + p
			}
			out = append(out, name)
		}
	}
	return out
}

// inputFields walks the modules for references to input and returns the
// fields they can read, and whether every built-in they call is
// deterministic. A bare `input`, or a reference with a variable step before
// a field is named, reads everything.
func inputFields(modules map[string]*ast.Module) (fieldSet, bool) {
	var fs fieldSet
	deterministic := true
	for _, m := range modules {
		refs, vars := 0, 0
		ast.WalkRefs(m, func(r ast.Ref) bool {
			if !r[0].Equal(ast.InputRootDocument) {
				return false
			}
			refs++
			var path []string
			for _, t := range r[1:] {
				s, ok := t.Value.(ast.String)
				if !ok {
					break
				}
				path = append(path, string(s))
			}
			fs |= covered(path)
			return false
		})
		ast.WalkVars(m, func(v ast.Var) bool {
			if v.Equal(ast.InputRootDocument.Value) {
				vars++
			}
			return false
		})
		if vars > refs {
			fs = fAll
		}
		nondeterministic := func(op ast.Ref) {
			if b, ok := ast.BuiltinMap[op.String()]; ok && b.Nondeterministic {
				deterministic = false
			}
		}
		ast.WalkExprs(m, func(x *ast.Expr) bool {
			if x.IsCall() {
				nondeterministic(x.Operator())
			}
			return false
		})
		ast.WalkTerms(m, func(t *ast.Term) bool {
			if c, ok := t.Value.(ast.Call); ok {
				if op, ok := c[0].Value.(ast.Ref); ok {
					nondeterministic(op)
				}
			}
			return false
		})
	}
	return fs, deterministic
}

// covered is the fields under, or above, path.
func covered(path []string) fieldSet {
	var fs fieldSet
	for _, l := range leaves {
		n := min(len(path), len(l.path))
		match := true
		for i := range n {
			if path[i] != l.path[i] {
				match = false
				break
			}
		}
		if match {
			fs |= l.f
		}
	}
	return fs
}

// key appends the memo key of in to dst: only the fields in fs, each
// length-prefixed so that no two inputs share a key.
func (fs fieldSet) key(dst []byte, in Input) []byte {
	dst = append(dst, byte(fs), byte(fs>>8))
	str := func(s string) {
		dst = binary.AppendUvarint(dst, uint64(len(s)))
		dst = append(dst, s...)
	}
	flag := func(b bool) {
		if b {
			dst = append(dst, 1)
		} else {
			dst = append(dst, 0)
		}
	}
	num := func(n int) { dst = binary.AppendVarint(dst, int64(n)) }
	if fs&fInstanceID != 0 {
		str(in.InstanceID)
	}
	if fs&fPlan != 0 {
		str(in.Plan)
	}
	if fs&fPaused != 0 {
		flag(in.Paused)
	}
	if fs&fPurpose != 0 {
		flag(in.PurposePresent)
		if in.PurposePresent {
			str(in.Purpose)
		}
	}
	if fs&fPhone != 0 {
		str(in.Phone)
	}
	if fs&fSuppressed != 0 {
		flag(in.Suppressed)
	}
	if fs&fSignals != 0 {
		s := in.Signals
		for _, n := range [...]int{s.PromoTerms, s.CallsToAction, s.DiscountCodes, s.PrizeClaims, s.ColdOutreach, s.Political,
			s.Transactional, s.Percentages, s.ShortenerLinks, s.Links, s.CapsRatioPct, s.Exclamations, s.Emoji, s.Length} {
			num(n)
		}
	}
	return dst
}
