package admin

import (
	"net/http"

	"github.com/sendguard/sendguard/internal/store"
)

// setShadow puts an instance in shadow mode at run time, or takes it out:
// its denials are decided, logged and counted as usual but forwarded (see
// decision.Options.Shadow). The flag is kept in the state store as a pause
// is (store.ShadowKey): it survives a restart and is shared by replicas on
// Redis. Clearing it does not end a shadow mode set by the config.
func (a *api) setShadow(on bool) func(http.ResponseWriter, *http.Request, Instance) {
	return func(w http.ResponseWriter, r *http.Request, inst Instance) {
		if err := a.State.SetPaused(r.Context(), store.ShadowKey(inst.ID), on); err != nil {
			a.fail(w, r, errInternal, err)
			return
		}
		a.Log.InfoContext(r.Context(), "instance shadow mode changed", "instance_id", inst.ID, "shadow", on)
		writeJSON(w, http.StatusOK, a.shadowState(inst, on))
	}
}

// getShadow answers an instance's shadow mode and where it comes from.
func (a *api) getShadow(w http.ResponseWriter, r *http.Request, inst Instance) {
	on, err := a.State.Paused(r.Context(), store.ShadowKey(inst.ID))
	if err != nil {
		a.fail(w, r, errInternal, err)
		return
	}
	writeJSON(w, http.StatusOK, a.shadowState(inst, on))
}

type shadowState struct {
	Instance string `json:"instance_id"`
	Shadow   bool   `json:"shadow"`  // in effect: any of the three below
	Global   bool   `json:"global"`  // the config's top-level shadow
	Config   bool   `json:"config"`  // the instance's shadow in the config
	Runtime  bool   `json:"runtime"` // set through this API
}

func (a *api) shadowState(inst Instance, runtime bool) shadowState {
	return shadowState{Instance: inst.ID, Shadow: a.Shadow || inst.Shadow || runtime, Global: a.Shadow, Config: inst.Shadow, Runtime: runtime}
}
