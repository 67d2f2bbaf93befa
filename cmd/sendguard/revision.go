package main

import (
	"maps"
	"os"
	"sync"
	"time"

	"github.com/sendguard/sendguard/internal/admin"
	"github.com/sendguard/sendguard/internal/config"
	"github.com/sendguard/sendguard/internal/policy"
)

// revisions keeps what GET /v1/revision and /readyz report: the revision
// of each part in force and when it was loaded, and the last reloads. The
// reload loop writes it; admin handlers read it. Safe for concurrent use.
type revisions struct {
	mu  sync.Mutex
	cur admin.Revisions
}

// set records a's parts as in force at now. A part whose revision is the
// one already in force keeps its LoadedAt: a reload that changed only the
// config does not make the policies look newly loaded.
func (r *revisions) set(a *app, configPath string, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.setLocked(a, configPath, now)
}

// setLocked is set with r.mu held.
func (r *revisions) setLocked(a *app, configPath string, now time.Time) {
	keep := func(old admin.Loaded, next admin.Loaded) admin.Loaded {
		if old.Revision == next.Revision && old.Source == next.Source && !old.LoadedAt.IsZero() {
			return old
		}
		next.LoadedAt = now
		return next
	}
	r.cur.Policies = keep(r.cur.Policies, admin.Loaded{Revision: a.engine.Revision(), Source: a.engine.Source()})
	r.cur.Config = keep(r.cur.Config, admin.Loaded{Revision: a.cfg.Revision, Source: configPath})
	models := make(map[string]admin.Loaded, len(a.models.versions))
	for task, m := range a.models.versions {
		models[task] = keep(r.cur.Models[task], m)
	}
	r.cur.Models = models
}

// applied records a reload that was applied: a is now in force.
func (r *revisions) applied(trigger string, a *app, configPath string, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.setLocked(a, configPath, now) // one critical section: a reader never sees the new parts with the old last_reload
	r.cur.LastReload = &admin.Reload{Result: admin.ReloadApplied, Trigger: trigger, ConfigRevision: a.cfg.Revision, PolicyRevision: a.engine.Revision(), At: now}
}

// refused records a reload that was refused with err, naming what it
// found on disk: the config file's and the policy tree's revisions as a
// load names them ("" for one that cannot be read).
func (r *revisions) refused(trigger string, f flags, err error, now time.Time) {
	rl := &admin.Reload{Result: admin.ReloadRefused, Trigger: trigger, Error: err.Error(), At: now}
	if raw, rerr := os.ReadFile(f.config); rerr == nil {
		rl.ConfigRevision = config.RevisionOf(raw)
	}
	rl.PolicyRevision, _ = policy.DirRevision(f.policies)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cur.LastReload, r.cur.LastRefused = rl, rl
}

// report returns a copy of what is recorded.
func (r *revisions) report() admin.Revisions {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.cur
	out.Models = maps.Clone(r.cur.Models)
	return out
}
