package decision

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/sendguard/sendguard/internal/store"
)

// TestAllowedSendKeepsAReceipt: an allowed send is taken under its
// decision id, so the store can refund exactly that decision (and no
// other): after the refund the instance's usage is as before it.
func TestAllowedSendKeepsAReceipt(t *testing.T) {
	f := newFixture(t)
	f.d.opts.Abuse = f.store
	var n atomic.Int64
	f.d.opts.NewID = func() string { return fmt.Sprintf("dec-%d", n.Add(1)) }
	ctx := context.Background()
	kept := f.decide(t, keyDemo, send("shop", recipient, "Your order #2041 has shipped", "transactional"))
	failed := f.decide(t, keyDemo, send("shop", "+966501234568", "تم شحن طلبك رقم ٢٠٤١ 📦", "transactional"))
	if !kept.Allowed || !failed.Allowed || kept.ID == failed.ID {
		t.Fatalf("decisions = %+v, %+v; want two allowed", kept, failed)
	}
	if r, err := f.store.Refund(ctx, "shop", failed.ID, *f.now); err != nil || r != store.Refunded {
		t.Fatalf("Refund(%q) = %v, %v; want refunded", failed.ID, r, err)
	}
	u, err := f.store.Usage(ctx, "shop", f.d.opts.Instances["shop"].Limits, *f.now)
	if err != nil || u.DailyUsed != 1 || u.MonthlyUsed != 1 {
		t.Errorf("usage after one of two sends refunded = %+v, %v; want 1", u, err)
	}
	if r, _ := f.store.Refund(ctx, "theirs", kept.ID, *f.now); r != store.RefundUnknown {
		t.Errorf("Refund(theirs, %q) = %v, want unknown", kept.ID, r)
	}
}
