package irvm

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/ir"
)

// policy is a plan of blocks over the strings given, with no functions.
func policy(strs []string, blocks ...*ir.Block) *ir.Policy {
	p := &ir.Policy{Static: &ir.Static{}, Plans: &ir.Plans{Plans: []*ir.Plan{{Name: "q", Blocks: blocks}}}, Funcs: &ir.Funcs{}}
	for _, s := range strs {
		p.Static.Strings = append(p.Static.Strings, &ir.StringConst{Value: s})
	}
	return p
}

func str(i int) ir.Operand      { return ir.Operand{Value: ir.StringIndex(i)} }
func loc(l ir.Local) ir.Operand { return ir.Operand{Value: l} }

// result binds local l to the query's variable "x" and adds it to the
// result set.
func result(l ir.Local) []ir.Stmt {
	return []ir.Stmt{
		&ir.MakeObjectStmt{Target: 90},
		&ir.ObjectInsertStmt{Key: str(0), Value: loc(l), Object: 90},
		&ir.ResultSetAddStmt{Value: 90},
	}
}

// TestCompileRefuses: plans the VM cannot run exactly as topdown are
// refused with an UnsupportedError naming why, never run.
func TestCompileRefuses(t *testing.T) {
	tests := []struct {
		name string
		p    *ir.Policy
		data ast.Value
		want string
	}{
		{"a statement it does not run", policy([]string{"x"}, &ir.Block{Stmts: []ir.Stmt{
			&ir.CallDynamicStmt{Args: []ir.Local{0, 1}, Result: 3, Path: []ir.Operand{str(0)}},
		}}), nil, "CallDynamicStmt"},
		{"a non-deterministic built-in", policy([]string{"x"}, &ir.Block{Stmts: []ir.Stmt{
			&ir.CallStmt{Func: "time.now_ns", Result: 3},
		}}), nil, "time.now_ns"},
		{"a built-in OPA does not have", policy([]string{"x"}, &ir.Block{Stmts: []ir.Stmt{
			&ir.CallStmt{Func: "no.such", Result: 3},
		}}), nil, "no.such"},
		{"the data document, none given", policy([]string{"x"}, &ir.Block{Stmts: []ir.Stmt{
			&ir.DotStmt{Source: loc(ir.Data), Key: str(0), Target: 3},
		}}), nil, "data document"},
		// An object the plan did not make (input.x) mutated in place: it
		// could be shared with other evaluations.
		{"a mutation of what it did not make", policy([]string{"x"}, &ir.Block{Stmts: []ir.Stmt{
			&ir.DotStmt{Source: loc(ir.Input), Key: str(0), Target: 3},
			&ir.ObjectInsertStmt{Key: str(0), Value: str(0), Object: 3},
		}}), nil, "mutates local 3"},
		// Made in one else branch, assigned otherwise in the one before:
		// the second branch's mutation follows its own Make, fine; but here
		// the Make is in the first branch only.
		{"a mutation after a Make in another branch", policy([]string{"x"}, &ir.Block{Stmts: []ir.Stmt{
			&ir.BlockStmt{Blocks: []*ir.Block{
				{Stmts: []ir.Stmt{&ir.MakeObjectStmt{Target: 3}}},
				{Stmts: []ir.Stmt{&ir.ObjectInsertStmt{Key: str(0), Value: str(0), Object: 3}}},
			}},
		}}), nil, "mutates local 3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Compile(tt.p, tt.data)
			var u *UnsupportedError
			if !errors.As(err, &u) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Compile() = %v, want an UnsupportedError naming %q", err, tt.want)
			}
		})
	}
}

// TestBreakLevels: a ScanStmt's body counts two levels for BreakStmt, as in
// OPA's Wasm compiler: 0 goes on with the next element, 1 ends the scan
// and goes on after it, 2 leaves the block holding the scan. Each plan
// collects the elements it saw, then answers it.
func TestBreakLevels(t *testing.T) {
	input := ast.MustParseTerm(`{"xs": [1, 2, 3]}`).Value
	scan := func(index uint32) *ir.Policy {
		return policy([]string{"x", "xs"},
			&ir.Block{Stmts: append([]ir.Stmt{
				&ir.MakeArrayStmt{Target: 4},
				&ir.BlockStmt{Blocks: []*ir.Block{{Stmts: []ir.Stmt{
					&ir.DotStmt{Source: loc(ir.Input), Key: str(1), Target: 3},
					&ir.ScanStmt{Source: 3, Key: 5, Value: 6, Block: &ir.Block{Stmts: []ir.Stmt{
						&ir.ArrayAppendStmt{Value: loc(6), Array: 4},
						&ir.BreakStmt{Index: index},
						&ir.ArrayAppendStmt{Value: loc(6), Array: 4},
					}}},
					&ir.ArrayAppendStmt{Value: str(0), Array: 4}, // after the scan
				}}}},
			}, result(4)...)},
		)
	}
	tests := []struct {
		index uint32
		want  string
	}{
		{0, `[1, 2, 3, "x"]`}, // each element once, then after the scan
		{1, `[1, "x"]`},       // the first element, then after the scan
		{2, `[1]`},            // out of the block holding the scan
	}
	for _, tt := range tests {
		p, err := Compile(scan(tt.index), nil)
		if err != nil {
			t.Fatal(err)
		}
		got, err := p.EvalOne(context.Background(), input)
		if err != nil || got == nil || got.Value.Compare(ast.MustParseTerm(tt.want).Value) != 0 {
			t.Errorf("break %d: EvalOne() = %v %v, want %s", tt.index, got, err, tt.want)
		}
	}
}

// TestDataDocument: a plan that reads data reads what WithData gave, and a
// WithStmt on it changes the evaluation's view only.
func TestDataDocument(t *testing.T) {
	data := ast.MustParseTerm(`{"x": {"limit": 7}}`).Value
	p, err := Compile(policy([]string{"x", "limit"}, &ir.Block{Stmts: append([]ir.Stmt{
		&ir.DotStmt{Source: loc(ir.Data), Key: str(0), Target: 3},
		&ir.DotStmt{Source: loc(3), Key: str(1), Target: 4},
	}, result(4)...)}), data)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		got, err := p.EvalOne(context.Background(), nil)
		if err != nil || got == nil || got.Value.Compare(ast.Number("7")) != 0 {
			t.Errorf("EvalOne() = %v %v, want 7", got, err)
		}
	}
	if data.Compare(ast.MustParseTerm(`{"x": {"limit": 7}}`).Value) != 0 {
		t.Errorf("data changed: %v", data)
	}
}
