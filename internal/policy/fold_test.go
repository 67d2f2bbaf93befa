package policy

import (
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
)

func TestFoldData(t *testing.T) {
	data := map[string]any{"sendguard": map[string]any{
		"config": map[string]any{"caps": map[string]any{"links": 3.0}, "free": 3.0},
		"rules":  map[string]any{"limit": 1.0},
	}}
	tests := []struct {
		name, src string
		want      string // in the folded rule's text
		keep      string // still in it
	}{
		{"ground", "package p\nx := data.sendguard.config.free", "x := 3", ""},
		{"variable key", "package p\nf(k) := data.sendguard.config.caps[k]", `{"links": 3}[k]`, ""},
		{"misspelt", "package p\nx := data.sendguard.config.fre", "", "data.sendguard.config.fre"},
		// A package under data.sendguard.rules adds a key beside limit:
		// data.sendguard.rules is not the data's value alone, its limit is.
		{"claimed", "package sendguard.rules.more\nx := data.sendguard.rules", "", "x := data.sendguard.rules"},
		{"beside a package", "package sendguard.rules.more\nx := data.sendguard.rules.limit", "x := 1", ""},
		{"with", "package p\nx := data.sendguard.config.free\ny := z if { z := x with data.sendguard.config.free as 9 }", "", "x := data.sendguard.config.free"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := ast.MustParseModuleWithOpts(tt.src, ast.ParserOptions{RegoVersion: ast.RegoV1})
			out, err := foldData(map[string]*ast.Module{"m": m}, data)
			if err != nil {
				t.Fatal(err)
			}
			got := out["m"].Rules[0].String()
			if tt.want != "" && !strings.Contains(got, tt.want) {
				t.Errorf("foldData(%q) = %s, want it to hold %s", tt.src, got, tt.want)
			}
			if tt.keep != "" && !strings.Contains(got, tt.keep) {
				t.Errorf("foldData(%q) = %s, want it to keep %s", tt.src, got, tt.keep)
			}
			if m.Rules[0].String() == got && tt.want != "" {
				t.Errorf("foldData changed nothing: %s", got)
			}
			if orig := ast.MustParseModuleWithOpts(tt.src, ast.ParserOptions{RegoVersion: ast.RegoV1}); !orig.Equal(m) {
				t.Errorf("foldData modified its argument: %s", m)
			}
		})
	}
}
