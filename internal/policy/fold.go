package policy

import (
	"fmt"
	"slices"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
)

// foldData returns copies of modules in which each reference into the
// policy data (data.sendguard.config.risk.caps[name], say) starts from the
// value it names instead of from data: {"promo_terms": 4, …}[name]. The
// data cannot change under a prepared query (Reload prepares afresh), so
// every answer stays the same; what changes is the cost of a first-seen
// input, which no longer looks each threshold, weight and list up in the
// store (about a third of an evaluation before this, for the embedded
// policies).
//
// A reference is folded only where its leading string keys all name a value
// in data (a misspelt key stays a reference, for the schema check to name)
// that no module's package can add rules to (a package path that is a
// prefix of it, or that extends it). Nothing is
// folded when a module overrides data with `with` (it would no longer see
// its override). The modules given are left as they are: the memo's field
// walk, Explain's breakdown and the schema checks read the policies as
// written.
func foldData(modules map[string]*ast.Module, data map[string]any) (map[string]*ast.Module, error) {
	var packages [][]string
	for _, m := range modules {
		packages = append(packages, refKeys(m.Package.Path))
	}
	for _, m := range modules {
		overrides := false
		ast.WalkWiths(m, func(w *ast.With) bool {
			if r, ok := w.Target.Value.(ast.Ref); ok && r.HasPrefix(ast.DefaultRootRef) {
				overrides = true
			}
			return overrides
		})
		if overrides {
			return modules, nil
		}
	}
	values := map[string]*ast.Term{} // folded prefix → its value, converted once
	fold := func(r ast.Ref) (ast.Value, error) {
		if !r.HasPrefix(ast.DefaultRootRef) {
			return r, nil
		}
		keys := refKeys(r)
		n, v := dataAt(data, keys)
		if n == 0 || n < len(keys) || claimed(packages, keys) {
			return r, nil
		}
		id := strings.Join(keys[:n], "\x00")
		t, ok := values[id]
		if !ok {
			val, err := ast.InterfaceToValue(v)
			if err != nil {
				return nil, fmt.Errorf("data.%s: %w", strings.Join(keys[:n], "."), err)
			}
			t = ast.NewTerm(val)
			values[id] = t
		}
		rest := r[1+n:]
		if len(rest) == 0 {
			return t.Copy().Value, nil
		}
		return append(ast.Ref{t.Copy()}, rest.Copy()...), nil
	}
	out := make(map[string]*ast.Module, len(modules))
	for name, m := range modules {
		c := m.Copy()
		for i, rule := range c.Rules {
			x, err := ast.TransformRefs(rule, fold)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
			c.Rules[i] = x.(*ast.Rule)
		}
		out[name] = c
	}
	return out, nil
}

// refKeys is the leading string keys of r after its head: data.a.b[x].c
// gives a, b.
func refKeys(r ast.Ref) []string {
	var keys []string
	for _, t := range r[1:] {
		s, ok := t.Value.(ast.String)
		if !ok {
			break
		}
		keys = append(keys, string(s))
	}
	return keys
}

// dataAt follows keys into data as far as they go and returns how many it
// followed and the value there; 0 when the first is not in data.
func dataAt(data map[string]any, keys []string) (int, any) {
	var v any = data
	n := 0
	for _, k := range keys {
		obj, ok := v.(map[string]any)
		if !ok {
			break
		}
		next, ok := obj[k]
		if !ok {
			break
		}
		v, n = next, n+1
	}
	return n, v
}

// claimed reports whether a module's package could define rules at or
// under path, or at a path that path leads through.
func claimed(packages [][]string, path []string) bool {
	for _, p := range packages {
		n := min(len(p), len(path))
		if slices.Equal(p[:n], path[:n]) {
			return true
		}
	}
	return false
}
