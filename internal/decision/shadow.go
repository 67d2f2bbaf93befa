package decision

import (
	"context"
	"fmt"

	"github.com/sendguard/sendguard/internal/store"
)

// shadowed reports whether a denial of instance (empty: the instance is not
// known yet) is to be forwarded instead: the global shadow mode
// (Options.Shadow), the instance's own from the config (Instance.Shadow),
// or its run-time one in the state store (store.ShadowKey, set through the
// admin API). The store is read only for a denial, so shadow mode costs
// an allowed send nothing.
func (d *Decider) shadowed(ctx context.Context, instance string) (bool, error) {
	if d.opts.Shadow {
		return true, nil
	}
	if instance == "" {
		return false, nil
	}
	if d.opts.Instances[instance].Shadow {
		return true, nil
	}
	on, err := d.opts.State.Paused(ctx, store.ShadowKey(instance))
	if err != nil {
		return false, fmt.Errorf("read shadow mode of %s: %w", instance, err)
	}
	return on, nil
}
