package irvm

import (
	"context"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/ir"
	"github.com/open-policy-agent/opa/v1/rego"
)

// Target is the rego target that evaluates a prepared query with the VM:
// rego.Target(irvm.Target). PrepareForEval fails with an *UnsupportedError
// when the plan has anything the VM does not evaluate exactly as topdown.
const Target = "sendguard-irvm"

// plugin is the target plugin. It holds nothing: each PrepareForEval
// compiles the plan it is given into a Program of its own, which is all the
// state there is. The registration is the package's only package-level
// state, written once at init (rego's registry is a map behind a mutex) and
// only read after.
type plugin struct{}

func init() {
	rego.RegisterPlugin(Target, plugin{})
}

func (plugin) IsTarget(t string) bool { return t == Target }

func (plugin) PrepareForEval(ctx context.Context, p *ir.Policy, opts ...rego.PrepareOption) (rego.TargetPluginEval, error) {
	var cfg rego.PrepareConfig
	for _, o := range opts {
		o(&cfg)
	}
	if len(cfg.BuiltinFuncs()) > 0 {
		return nil, &UnsupportedError{Reasons: []string{"custom built-ins (rego.Function)"}}
	}
	data, _ := ctx.Value(dataKey{}).(ast.Value)
	prog, err := Compile(p, data)
	if err != nil {
		return nil, err
	}
	if dst, ok := ctx.Value(captureKey{}).(**Program); ok {
		*dst = prog
	}
	return evaluator{prog}, nil
}

type (
	captureKey struct{}
	dataKey    struct{}
)

// WithData returns a context under which rego's PrepareForEval, with
// rego.Target(Target), compiles the plan with data as its data document
// (rego gives a target plugin the plan but not the store). data must be the
// store's content and must not change after.
func WithData(ctx context.Context, data ast.Value) context.Context {
	return context.WithValue(ctx, dataKey{}, data)
}

// Capture returns a context under which rego's PrepareForEval, with
// rego.Target(Target), also stores the Program it compiled in *dst, for a
// caller that evaluates it directly (Program.EvalOne) rather than through
// rego's result sets. The context carries the destination; the plugin
// keeps nothing.
func Capture(ctx context.Context, dst **Program) context.Context {
	return context.WithValue(ctx, captureKey{}, dst)
}

type evaluator struct{ p *Program }

// Eval evaluates the query for the input rego prepared (the runtime value,
// opa.runtime's, is refused at Compile).
func (e evaluator) Eval(ctx context.Context, ectx *rego.EvalContext, _ ast.Value) (ast.Value, error) {
	return e.p.Eval(ctx, ectx.ParsedInput())
}
