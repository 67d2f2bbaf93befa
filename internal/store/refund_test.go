package store_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/sendguard/sendguard/internal/abuse"
	"github.com/sendguard/sendguard/internal/store"
)

// TestEmbeddedRefundSurvivesCrash: receipts and refunds are in the log
// with the states they go with, so a kill -9 (no checkpoint, no Close)
// loses neither: a send taken before the crash is refunded after it
// exactly once, and a refund made before it is not made again. With a
// checkpoint between (the receipts then in the bbolt file, the later
// refunds in the log) likewise; and a checkpoint drops the receipts that
// expired.
func TestEmbeddedRefundSurvivesCrash(t *testing.T) {
	for _, m := range syncModes {
		for _, checkpoint := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/checkpoint=%v", m.name, checkpoint), func(t *testing.T) {
				ctx := context.Background()
				p := filepath.Join(t.TempDir(), "state.db")
				opts := store.EmbeddedOptions{Sync: m.sync, CheckpointInterval: time.Hour}
				s, err := store.OpenEmbedded(p, opts)
				if err != nil {
					t.Fatal(err)
				}
				const n = 20
				for i := range n {
					inst := multilingual[i%len(multilingual)]
					snd := abuse.Send{Instance: inst, Body: abuse.BodyKey("تم شحن طلبك 📦"), Phone: fmt.Sprintf("+9665012345%02d", i),
						Quota: unlimited, SlowLane: unlimited, Decision: fmt.Sprintf("dec-%d", i)}
					if out, err := s.TakeSend(ctx, snd, t0); err != nil || !out.Allowed() {
						t.Fatalf("TakeSend(%d) = %+v, %v", i, out, err)
					}
				}
				if checkpoint {
					if err := s.Checkpoint(); err != nil {
						t.Fatal(err)
					}
				}
				for i := 0; i < n; i += 2 { // the even ones failed
					if r, err := s.Refund(ctx, multilingual[i%len(multilingual)], fmt.Sprintf("dec-%d", i), t0); err != nil || r != store.Refunded {
						t.Fatalf("Refund(dec-%d) = %v, %v", i, r, err)
					}
				}
				s.Crash()

				s = openOpts(t, p, opts)
				for i := range n {
					inst, id := multilingual[i%len(multilingual)], fmt.Sprintf("dec-%d", i)
					want := store.Refunded
					if i%2 == 0 {
						want = store.RefundDuplicate
					}
					if r, err := s.Refund(ctx, inst, id, t0); err != nil || r != want {
						t.Errorf("after the crash, Refund(%q, %s) = %v, %v; want %v", inst, id, r, err, want)
					}
				}
				for _, inst := range multilingual {
					if got := used(t, s, inst); got != 0 {
						t.Errorf("after the crash and the refunds, used(%q) = %d, want 0", inst, got)
					}
					if got := used(t, s, abuse.SlowLaneID(inst)); got != 0 {
						t.Errorf("after the crash and the refunds, slow lane used(%q) = %d, want 0", inst, got)
					}
				}
			})
		}
	}
}

// TestEmbeddedReceiptsExpireFromTheFile: a receipt past ReceiptTTL is
// dropped from memory at the next take and from the bbolt file at the next
// checkpoint, so the file does not grow with the sends.
func TestEmbeddedReceiptsExpireFromTheFile(t *testing.T) {
	ctx := context.Background()
	p := filepath.Join(t.TempDir(), "state.db")
	opts := store.EmbeddedOptions{CheckpointInterval: time.Hour}
	s := openOpts(t, p, opts)
	for i := range 100 {
		snd := abuse.Send{Instance: "shop", Quota: unlimited, Decision: fmt.Sprintf("dec-%d", i)}
		if _, err := s.TakeSend(ctx, snd, t0); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	if got := store.ReceiptsInFile(t, s); got != 100 {
		t.Fatalf("receipts in the file = %d, want 100", got)
	}
	later := t0.Add(store.ReceiptTTL)
	if _, err := s.TakeSend(ctx, abuse.Send{Instance: "shop", Quota: unlimited, Decision: "dec-later"}, later); err != nil {
		t.Fatal(err)
	}
	if err := s.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	if got := store.ReceiptsInFile(t, s); got != 1 {
		t.Errorf("receipts in the file after they expired = %d, want 1", got)
	}
	if r, err := s.Refund(ctx, "shop", "dec-5", later); err != nil || r != store.RefundUnknown {
		t.Errorf("Refund of an expired receipt = %v, %v; want unknown", r, err)
	}
}
