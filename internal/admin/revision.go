package admin

import (
	"context"
	"net/http"
	"time"
)

// Revisions is what GET /v1/revision answers: the revision of each part
// serving now, when it was loaded, and the last reload that was refused.
type Revisions struct {
	Policies Loaded            `json:"policies"`
	Config   Loaded            `json:"config"`
	Models   map[string]Loaded `json:"models"` // by task: inbound, outbound; a disabled model is absent
	// LastReload is the most recent reload, applied or refused; nil until
	// the first one (the start-up load is not a reload).
	LastReload *Reload `json:"last_reload"`
	// LastRefused is the most recent refused reload, even when a later
	// one applied; nil when none was refused since the start.
	LastRefused *Reload `json:"last_refused"`
}

// Loaded is one part in force: its revision (12 hex digits of a SHA-256
// of its content), where it comes from, and when the running process
// loaded that revision. A reload that leaves a part's content as it was
// keeps its LoadedAt.
type Loaded struct {
	Revision string    `json:"revision"`
	Source   string    `json:"source"` // "embedded", or the file or directory
	LoadedAt time.Time `json:"loaded_at"`
}

// Reload is one reload of the config and policies. For a refused one,
// ConfigRevision and PolicyRevision name what was on disk and refused (""
// when it could not be read), and Error says why; the running revision
// stayed in force.
type Reload struct {
	Result         string    `json:"result"`  // applied or refused
	Trigger        string    `json:"trigger"` // sighup or watch
	ConfigRevision string    `json:"config_revision"`
	PolicyRevision string    `json:"policy_revision"`
	Error          string    `json:"error,omitempty"`
	At             time.Time `json:"at"`
}

// readyTimeout bounds the store check of /readyz, well inside the kubelet
// probe's timeout (1s in the injected sidecar), so that a slow store shows
// in the details and never fails the probe by timing it out.
const readyTimeout = 250 * time.Millisecond

// readiness is the body of /readyz. Status alone decides the HTTP status:
// 200 "ready" once the config and policies are loaded and the servers
// listen, 503 "not_ready" before and while shutting down. The details
// never change it: an unreachable store is answered per request
// (policy_check_unavailable) and every replica shares it, so taking the pod
// out would only move the traffic to replicas with the same fault; a
// refused reload leaves the running revision serving, which is as ready as
// before.
type readiness struct {
	Status   string         `json:"status"`
	Store    *storeState    `json:"store,omitempty"`
	Policies *policiesState `json:"policies,omitempty"`
	Reload   *reloadState   `json:"reload,omitempty"`
}

type storeState struct {
	Reachable bool   `json:"reachable"`
	Error     string `json:"error,omitempty"`
}

type policiesState struct {
	Loaded         bool   `json:"loaded"`
	Revision       string `json:"revision"`
	ConfigRevision string `json:"config_revision"`
}

// reloadState: OK unless the most recent reload was refused; Refused is
// that reload.
type reloadState struct {
	OK      bool    `json:"ok"`
	Refused *Reload `json:"refused,omitempty"`
}

func (a *api) readyz(w http.ResponseWriter, r *http.Request) {
	body := readiness{Status: "ready"}
	status := http.StatusOK
	if !a.Ready() {
		body.Status, status = "not_ready", http.StatusServiceUnavailable
	}
	if a.Ping != nil {
		ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
		err := a.Ping(ctx)
		cancel()
		body.Store = &storeState{Reachable: err == nil}
		if err != nil {
			body.Store.Error = err.Error()
		}
	}
	if a.Revisions != nil {
		rv := a.Revisions()
		body.Policies = &policiesState{Loaded: rv.Policies.Revision != "", Revision: rv.Policies.Revision, ConfigRevision: rv.Config.Revision}
		body.Reload = &reloadState{OK: rv.LastReload == nil || rv.LastReload.Result != ReloadRefused}
		if !body.Reload.OK {
			body.Reload.Refused = rv.LastReload
		}
	}
	writeJSON(w, status, body)
}

// Reload results.
const (
	ReloadApplied = "applied"
	ReloadRefused = "refused"
)

// revision answers GET /v1/revision.
func (a *api) revision(w http.ResponseWriter, r *http.Request) {
	if a.Revisions == nil {
		a.fail(w, r, apiError{http.StatusNotFound, "not_found", "Revisions are not tracked."}, nil)
		return
	}
	rv := a.Revisions()
	if rv.Models == nil {
		rv.Models = map[string]Loaded{}
	}
	writeJSON(w, http.StatusOK, rv)
}
