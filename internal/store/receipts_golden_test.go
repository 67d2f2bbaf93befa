package store_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sendguard/sendguard/internal/abuse"
	"github.com/sendguard/sendguard/internal/limiter"
	"github.com/sendguard/sendguard/internal/store"
)

// goldenSends are the sends in testdata/receipts-v1.
var goldenSends = []struct {
	inst, id, phone               string
	slow                          bool
	refundedBefore, refundedAfter bool // refunded before the checkpoint; after it (in the log)
}{
	{"shop", "0190f3c2-8a1b-7c3d-9e4f-000000000001", "+966501234567", false, true, false},
	{"shop", "0190f3c2-8a1b-7c3d-9e4f-000000000002", "+966501234568", true, false, false},
	{"متجر_١", "0190f3c2-8a1b-7c3d-9e4f-000000000003", "+919876543210", true, true, false},
	{"متجر_١", "0190F3C2-8A1B-7C3D-9E4F-0000000000AA", "+905321234567", false, false, true},
	{"दुकान", "dec-legacy", "+905321234568", false, false, false},
	{"दुकान", "0190f3c2-8a1b-7c3d-9e4f-000000000004", "+1234567890123456789", false, false, true},
	{"dükkân-İ", "0190f3c2-8a1b-7c3d-9e4f-000000000005", "+905321234569", false, false, false},
	{"dükkân-İ", "ffffffff-ffff-7fff-bfff-ffffffffffff", "+905321234560", true, false, true},
	{"shop", "0190f3c2-8a1b-7c3d-9e4f-000000000006", "+966501234569", false, false, true},
	{"🛒store", "0190f3c2-8a1b-7c3d-9e4f-000000000007", "+966501234560", true, false, false},
	{"🛒store", "dec-after", "+966501234561", false, false, false},
	{"cafe\u0301", "00000000-0000-0000-0000-000000000000", "+966501234562", false, false, true},
}

// TestEmbeddedRecoversReceiptsOfV1: a data directory written by sendguard
// before receipts were kept by their ids' 16 bytes (commit 4fa7a06; a
// checkpoint, then a log cut by a kill -9; see testdata/README.md) comes
// back exactly: every receipt, in the file under the same key text, every
// refund made before the crash a duplicate and every other one refunded
// once, whatever the id's spelling (canonical UUIDs, an upper-case UUID,
// ids that are no UUID); a differently spelt id finds nothing; and once
// all are refunded nothing is used.
func TestEmbeddedRecoversReceiptsOfV1(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	for _, name := range []string{"state.db", "state.db.wal-1"} {
		b, err := os.ReadFile(filepath.Join("testdata", "receipts-v1", name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s := openOpts(t, filepath.Join(dir, "state.db"), store.EmbeddedOptions{CheckpointInterval: time.Hour})
	var want []string
	for _, g := range goldenSends {
		want = append(want, g.inst+"\x00"+g.id)
	}
	slices.Sort(want)
	if got := store.ReceiptKeysInFile(t, s); !slices.Equal(got, want) {
		t.Errorf("receipt keys in the file after recovery:\n%q\nwant\n%q", got, want)
	}
	q := limiter.Limits{Daily: 100, Monthly: 2000, Rate: 1.0 / 60, Burst: 10}
	kept := map[string]int64{}
	for _, g := range goldenSends {
		if !g.refundedBefore && !g.refundedAfter {
			kept[g.inst]++
		}
	}
	for inst, n := range kept {
		if u, err := s.Usage(ctx, inst, q, t0); err != nil || u.DailyUsed != n {
			t.Errorf("recovered Usage(%q) = %+v, %v; want %d used", inst, u, err, n)
		}
	}
	for _, g := range goldenSends {
		for _, other := range []string{strings.ToUpper(g.id), strings.ToLower(g.id), "{" + g.id + "}", strings.ReplaceAll(g.id, "-", "")} {
			if other == g.id {
				continue
			}
			if r, err := s.Refund(ctx, g.inst, other, t0); err != nil || r != store.RefundUnknown {
				t.Errorf("Refund(%q, %q) (kept as %q) = %v, %v; want unknown", g.inst, other, g.id, r, err)
			}
		}
	}
	for _, g := range goldenSends {
		want := store.Refunded
		if g.refundedBefore || g.refundedAfter {
			want = store.RefundDuplicate
		}
		if r, err := s.Refund(ctx, g.inst, g.id, t0); err != nil || r != want {
			t.Errorf("Refund(%q, %q) = %v, %v; want %v", g.inst, g.id, r, err, want)
		}
	}
	for _, g := range goldenSends {
		if u, err := s.Usage(ctx, g.inst, q, t0); err != nil || u.DailyUsed != 0 || u.Tokens != float64(q.Burst) {
			t.Errorf("after every refund, Usage(%q) = %+v, %v; want none used, a full bucket", g.inst, u, err)
		}
		if got := used(t, s, abuse.SlowLaneID(g.inst)); got != 0 {
			t.Errorf("after every refund, slow lane used(%q) = %d, want 0", g.inst, got)
		}
	}
}
