package policy

import (
	"context"
	"testing"
)

// TestDirRevision: DirRevision names a tree as the engine that loads it
// does, names a tree that does not load (a refused reload's) by its
// content too, and "" is the embedded tree.
func TestDirRevision(t *testing.T) {
	if got, want := must(DirRevision("")), EmbeddedRevision(); got != want {
		t.Errorf("DirRevision(\"\") = %s, want the embedded revision %s", got, want)
	}
	dir := shippedTree(t)
	e := engine(t, Options{Dir: dir})
	if got := must(DirRevision(dir)); got != e.Revision() {
		t.Errorf("DirRevision(shipped copy) = %s, want the engine's %s", got, e.Revision())
	}
	editJSON(t, dir, dataFile, func(m map[string]any) { obj(m, "risk")["block_threshold"] = "70" })
	if err := e.Reload(context.Background()); err == nil {
		t.Fatal("Reload(block_threshold \"70\") = nil, want a refusal")
	}
	broken := must(DirRevision(dir))
	if broken == e.Revision() || len(broken) != 12 {
		t.Errorf("DirRevision(refused tree) = %q, want 12 hex digits other than the running %s", broken, e.Revision())
	}
	if _, err := DirRevision(dir + "/nope"); err == nil {
		t.Error("DirRevision(missing directory) = nil error, want one")
	}
}

func must(s string, err error) string {
	if err != nil {
		panic(err)
	}
	return s
}
