package policy

import (
	"encoding/binary"

	"github.com/open-policy-agent/opa/v1/ast"
)

// A fieldSet is the input fields the policies read, one bit each; each
// signal is its own field, so a signal no policy reads (length, say) does
// not split the memo.
type fieldSet uint32

const (
	fInstanceID fieldSet = 1 << iota
	fPlan
	fPaused
	fPurpose
	fPhone
	fSuppressed
	fPromo
	fCTA
	fDiscount
	fPrize
	fCold
	fPolitical
	fTransactional
	fPercentages
	fShorteners
	fLinks
	fCaps
	fExclamations
	fEmoji
	fLength
	fPTx
	fPPromo
	fPCold
	fPPolitical
	fPScam
	fSegLead
	fAll = fSegLead<<1 - 1
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
	{[]string{"signals", "promo_terms"}, fPromo},
	{[]string{"signals", "calls_to_action"}, fCTA},
	{[]string{"signals", "discount_codes"}, fDiscount},
	{[]string{"signals", "prize_claims"}, fPrize},
	{[]string{"signals", "cold_outreach"}, fCold},
	{[]string{"signals", "political"}, fPolitical},
	{[]string{"signals", "transactional"}, fTransactional},
	{[]string{"signals", "percentages"}, fPercentages},
	{[]string{"signals", "shortener_links"}, fShorteners},
	{[]string{"signals", "links"}, fLinks},
	{[]string{"signals", "caps_ratio_pct"}, fCaps},
	{[]string{"signals", "exclamations"}, fExclamations},
	{[]string{"signals", "emoji"}, fEmoji},
	{[]string{"signals", "length"}, fLength},
	{[]string{"signals", "p_transactional"}, fPTx},
	{[]string{"signals", "p_promotional"}, fPPromo},
	{[]string{"signals", "p_cold_outreach"}, fPCold},
	{[]string{"signals", "p_political"}, fPPolitical},
	{[]string{"signals", "p_scam"}, fPScam},
	{[]string{"signals", "segment_lead"}, fSegLead},
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
	dst = binary.LittleEndian.AppendUint32(dst, uint32(fs))
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
	sig := in.Signals
	for _, f := range [...]struct {
		f fieldSet
		n int
	}{
		{fPromo, sig.PromoTerms}, {fCTA, sig.CallsToAction}, {fDiscount, sig.DiscountCodes}, {fPrize, sig.PrizeClaims},
		{fCold, sig.ColdOutreach}, {fPolitical, sig.Political}, {fTransactional, sig.Transactional}, {fPercentages, sig.Percentages},
		{fShorteners, sig.ShortenerLinks}, {fLinks, sig.Links}, {fCaps, sig.CapsRatioPct}, {fExclamations, sig.Exclamations},
		{fEmoji, sig.Emoji}, {fLength, sig.Length},
		{fPTx, sig.ModelTransactional}, {fPPromo, sig.ModelPromotional}, {fPCold, sig.ModelColdOutreach},
		{fPPolitical, sig.ModelPolitical}, {fPScam, sig.ModelScam}, {fSegLead, sig.ModelSegmentLead},
	} {
		if fs&f.f != 0 {
			num(f.n)
		}
	}
	return dst
}
