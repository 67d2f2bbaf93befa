package irvm

import "github.com/open-policy-agent/opa/v1/ast"

// fastFunc computes a built-in directly for the operands it knows, with
// topdown's result (the same value, in the same representation); handled
// is false for anything else, which then goes to topdown's implementation
// (errors included).
type fastFunc func(ops []*ast.Term) (out *ast.Term, handled bool)

// fastBuiltins are the hot few of sendguard's policies. Each follows
// topdown's code for the case it handles (v1/topdown/arithmetic.go,
// comparison.go, aggregates.go, types.go).
var fastBuiltins = map[string]fastFunc{
	"plus":  arith(func(x, y int64) (int64, bool) { return x + y, true }),
	"minus": arith(func(x, y int64) (int64, bool) { return x - y, true }),
	"mul":   arith(func(x, y int64) (int64, bool) { return x * y, true }),
	"div":   arith(func(x, y int64) (int64, bool) { return divExact(x, y) }),
	"gt":    compare(func(c int) bool { return c > 0 }),
	"gte":   compare(func(c int) bool { return c >= 0 }),
	"lt":    compare(func(c int) bool { return c < 0 }),
	"lte":   compare(func(c int) bool { return c <= 0 }),
	"max":   aggregate(func(c int) bool { return c <= 0 }, true),
	"min":   aggregate(func(c int) bool { return c >= 0 }, false),
	"sum":   sum,
	"round": unaryInt,
	"ceil":  unaryInt,
	"floor": unaryInt,
	"is_string": func(ops []*ast.Term) (*ast.Term, bool) {
		_, ok := ops[0].Value.(ast.String)
		return ast.InternedTerm(ok), true
	},
}

// topdown's int window for exact small-int arithmetic.
const (
	minSmallInt = -1 << 31
	maxSmallInt = 1<<31 - 1
)

func smallInt(t *ast.Term) (int64, bool) {
	n, ok := t.Value.(ast.Number)
	if !ok {
		return 0, false
	}
	i, ok := n.Int64()
	return i, ok && minSmallInt <= i && i <= maxSmallInt
}

func divExact(x, y int64) (int64, bool) {
	if y == 0 || x == 0 || x%y != 0 {
		return 0, false // an error, or a float quotient: topdown's
	}
	return x / y, true
}

func arith(f func(x, y int64) (int64, bool)) fastFunc {
	return func(ops []*ast.Term) (*ast.Term, bool) {
		x, ok := smallInt(ops[0])
		if !ok {
			return nil, false
		}
		y, ok := smallInt(ops[1])
		if !ok {
			return nil, false
		}
		r, ok := f(x, y)
		if !ok {
			return nil, false
		}
		return ast.IntNumberTerm(int(r)), true
	}
}

func compare(f func(int) bool) fastFunc {
	return func(ops []*ast.Term) (*ast.Term, bool) {
		return ast.InternedTerm(f(ops[0].Value.Compare(ops[1].Value))), true
	}
}

// aggregate is max (keep a later element that compares >= the current) or
// min (<=) of an array; topdown's starting point is null for max (below
// every value) and the first element for min.
func aggregate(keep func(int) bool, isMax bool) fastFunc {
	return func(ops []*ast.Term) (*ast.Term, bool) {
		a, ok := ops[0].Value.(*ast.Array)
		if !ok {
			return nil, false
		}
		return aggregateOf(a.Len(), a.Elem, keep, isMax), true
	}
}

func aggregateOf(n int, elem func(int) *ast.Term, keep func(int) bool, isMax bool) *ast.Term {
	if n == 0 {
		return nil
	}
	var best *ast.Term
	var bv ast.Value = ast.InternedNullTerm.Value
	if !isMax {
		best = elem(0)
		bv = best.Value
	}
	for i := range n {
		x := elem(i)
		if keep(bv.Compare(x.Value)) {
			best, bv = x, x.Value
		}
	}
	return best
}

// litFunc is a built-in of an array, given its elements (never empty: the
// planner's array literals are not).
type litFunc func(elems []*ast.Term) *ast.Term

var litBuiltins = map[string]litFunc{
	"max": func(elems []*ast.Term) *ast.Term {
		var best *ast.Term
		var bv ast.Value = ast.InternedNullTerm.Value
		for _, x := range elems {
			if bv.Compare(x.Value) <= 0 {
				best, bv = x, x.Value
			}
		}
		return best
	},
	"min": func(elems []*ast.Term) *ast.Term {
		if len(elems) == 0 {
			return nil
		}
		best := elems[0]
		for _, x := range elems {
			if best.Value.Compare(x.Value) >= 0 {
				best = x
			}
		}
		return best
	},
}

func sum(ops []*ast.Term) (*ast.Term, bool) {
	a, ok := ops[0].Value.(*ast.Array)
	if !ok {
		return nil, false
	}
	var s int64
	for i := range a.Len() {
		x, ok := smallInt(a.Elem(i))
		if !ok {
			return nil, false
		}
		s += x
	}
	if s < minSmallInt || s > maxSmallInt {
		return nil, false
	}
	return ast.IntNumberTerm(int(s)), true
}

func unaryInt(ops []*ast.Term) (*ast.Term, bool) {
	x, ok := smallInt(ops[0])
	if !ok {
		return nil, false
	}
	return ast.IntNumberTerm(int(x)), true
}
