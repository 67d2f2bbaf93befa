package main

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sendguard/sendguard/internal/model"
)

// TestReloadReusesUnchangedPolicies: a reload that changes only the
// config's keys or plans keeps the prepared policy engine, the scanner and
// the models of the running app (no policy compilation, no model decoding
// while requests are being decided); a change to the policy tree or to the
// risk settings prepares the policies again.
func TestReloadReusesUnchangedPolicies(t *testing.T) {
	raw, err := os.ReadFile("../devstack/sendguard.yaml")
	if err != nil {
		t.Fatal(err)
	}
	base := string(raw)
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "sendguard.yaml")
	polDir := filepath.Join(dir, "policies")
	if err := os.CopyFS(polDir, os.DirFS("../../policies")); err != nil {
		t.Fatal(err)
	}
	write := func(path, s string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(cfgPath, base)
	ctx := context.Background()
	f := flags{config: cfgPath, policies: polDir, checkOnly: true} // a memory store
	log := slog.New(slog.DiscardHandler)
	prev, err := build(ctx, f, log, noenv)
	if err != nil {
		t.Fatal(err)
	}
	defer prev.phones.Close()
	reload := func(what string) *app {
		t.Helper()
		next, err := buildWith(ctx, f, log, noenv, prev)
		if err != nil {
			t.Fatalf("reload after %s: %v", what, err)
		}
		return next
	}

	// A plan and a key changed: everything content-related is prev's.
	write(cfgPath, strings.Replace(strings.Replace(base, "growth: {daily: 500,", "growth: {daily: 400,", 1), "        revoked: true\n", "", 1))
	next := reload("a config-only edit")
	if next.engine != prev.engine || next.scanner != prev.scanner || next.models.inbound != prev.models.inbound || next.models.outbound != prev.models.outbound {
		t.Errorf("after a config-only edit: engine reused %v, scanner %v, models %v/%v; want all reused",
			next.engine == prev.engine, next.scanner == prev.scanner, next.models.inbound == prev.models.inbound, next.models.outbound == prev.models.outbound)
	}
	if next.cfg.Plans["growth"].Daily != 400 || next.decider == prev.decider {
		t.Errorf("after a config-only edit: growth daily %d, decider rebuilt %v; want 400 and a new decider", next.cfg.Plans["growth"].Daily, next.decider != prev.decider)
	}
	if v := next.models.versions[model.Outbound]; v.Revision != model.EmbeddedVersion(model.Outbound) {
		t.Errorf("reused outbound model version = %+v, want embedded@%s", v, model.EmbeddedVersion(model.Outbound))
	}

	// The risk settings: the scanner changes, so the policies' probes run again.
	write(cfgPath, base+"risk:\n  shorteners: [sho.rt]\n")
	if next := reload("a risk edit"); next.engine == prev.engine || next.scanner == prev.scanner {
		t.Errorf("after a risk edit: engine reused %v, scanner reused %v; want both new", next.engine == prev.engine, next.scanner == prev.scanner)
	}

	// The policy tree.
	write(cfgPath, base)
	data := filepath.Join(polDir, "sendguard", "config", "data.json")
	b, err := os.ReadFile(data)
	if err != nil {
		t.Fatal(err)
	}
	write(data, strings.Replace(string(b), `"block_threshold": 70`, `"block_threshold": 69`, 1))
	next = reload("a policy edit")
	if next.engine == prev.engine || next.engine.Revision() == prev.engine.Revision() {
		t.Errorf("after a policy edit: engine reused %v (revision %s → %s); want a new engine", next.engine == prev.engine, prev.engine.Revision(), next.engine.Revision())
	}
	if next.models.outbound != prev.models.outbound {
		t.Error("after a policy edit: the outbound model was decoded again, want prev's")
	}
}
