package main

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sendguard/sendguard/internal/config"
	"github.com/sendguard/sendguard/internal/limiter"
	"github.com/sendguard/sendguard/internal/phone"
	"github.com/sendguard/sendguard/internal/store"
)

// Instance ids in Arabic and Hindi.
const (
	shopAR = "متجر"
	shopHI = "दुकान"
)

// countingStore counts the suppression writes that reach the store.
type countingStore struct {
	*store.Memory
	batches, puts atomic.Int64
}

func (c *countingStore) AddSuppressions(ctx context.Context, sups []store.Suppression) (int, error) {
	c.batches.Add(1)
	return c.Memory.AddSuppressions(ctx, sups)
}

func (c *countingStore) PutSuppression(ctx context.Context, s store.Suppression) error {
	c.puts.Add(1)
	return c.Memory.PutSuppression(ctx, s)
}

// TestSeedSuppressions: the config's seeds are written as one batch per
// instance (not a commit each), normalised, and a suppression already in
// the store keeps its reason and source; a bad phone writes nothing.
func TestSeedSuppressions(t *testing.T) {
	ctx := context.Background()
	phones, err := phone.New(phone.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer phones.Close()
	st := &countingStore{Memory: store.NewMemory(limiter.Calendar{})}
	if err := st.Memory.PutSuppression(ctx, store.Suppression{Instance: shopAR, Phone: "+966501111111", Reason: "recipient_requested_stop", Source: "inbound", CreatedAt: time.Unix(0, 0).UTC()}); err != nil {
		t.Fatal(err)
	}
	cfg := &config.Config{Suppressions: []config.Suppression{
		{Instance: shopAR, Phone: "+966 50 111 1111", Reason: "manual_block"},
		{Instance: shopAR, Phone: "+٩٦٦٥٠١١١١١١٢", Reason: "manual_block"},
		{Instance: shopHI, Phone: "+14155550100", Reason: "manual_block"},
		{Instance: shopAR, Phone: "00966501111113", Reason: "manual_block"},
	}}
	if err := seedSuppressions(ctx, st, cfg, nil, phones, false); err != nil {
		t.Fatal(err)
	}
	if b, p := st.batches.Load(), st.puts.Load(); b != 2 || p != 0 {
		t.Errorf("seeding wrote %d batches and %d single puts, want 2 batches (one per instance) and none", b, p)
	}
	got, _ := st.Suppression(ctx, shopAR, "+966501111111")
	if got.Reason != "recipient_requested_stop" || got.Source != "inbound" {
		t.Errorf("seeding replaced an existing suppression: %+v", got)
	}
	for _, k := range [][2]string{{shopAR, "+966501111112"}, {shopAR, "+966501111113"}, {shopHI, "+14155550100"}} {
		if got, err := st.Suppression(ctx, k[0], k[1]); err != nil || got.Source != "config" {
			t.Errorf("Suppression(%q, %q) = %+v, %v, want a config seed", k[0], k[1], got, err)
		}
	}

	bad := &countingStore{Memory: store.NewMemory(limiter.Calendar{})}
	cfg.Suppressions = append(cfg.Suppressions, config.Suppression{Instance: shopHI, Phone: "not a phone"})
	if err := seedSuppressions(ctx, bad, cfg, nil, phones, false); err == nil {
		t.Error("seeding with a bad phone succeeded")
	}
	if list, _ := bad.Suppressions(ctx, shopAR); len(list) != 0 || bad.batches.Load() != 0 {
		t.Errorf("seeding with a bad phone wrote %d suppressions in %d batches, want none", len(list), bad.batches.Load())
	}
}
