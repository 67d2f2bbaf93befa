package store_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sendguard/sendguard/internal/limiter"
	"github.com/sendguard/sendguard/internal/store"
)

// healthyFile writes a store with enough state to span many pages and
// returns its path and size.
func healthyFile(t *testing.T) (string, int64) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "state.db")
	s, err := store.OpenEmbedded(p, store.EmbeddedOptions{NoSync: true}) // a fixture: no fsync per write
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	now := time.Date(2026, 5, 8, 10, 0, 0, 0, time.UTC)
	var wg sync.WaitGroup
	errs := make(chan error, 3000)
	for i := range 3000 { // concurrent, so that group commit makes few transactions
		wg.Go(func() {
			errs <- s.PutSuppression(ctx, store.Suppression{Instance: "inst_1", Phone: fmt.Sprintf("+9665%08d", i), Reason: "manual_block", CreatedAt: now})
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Take(ctx, "inst_1", limiter.Limits{Daily: 100, Monthly: 2000, Rate: 1, Burst: 10}, now); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() < 64<<10 {
		t.Fatalf("fixture is only %d bytes; the damage below needs more pages", fi.Size())
	}
	return p, fi.Size()
}

func overwrite(t *testing.T, path string, off int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// TestEmbeddedRefusesDamagedFiles: each kind of damage is a clear error
// wrapping ErrCorrupt (never a crash, never silently empty state).
func TestEmbeddedRefusesDamagedFiles(t *testing.T) {
	page := int64(os.Getpagesize())
	cases := []struct {
		name   string
		damage func(t *testing.T, path string, size int64)
		want   string // in the error
	}{
		{"empty file", func(t *testing.T, p string, _ int64) {
			if err := os.Truncate(p, 0); err != nil {
				t.Fatal(err)
			}
		}, "empty (0 bytes)"},
		{"truncated to 16 KiB", func(t *testing.T, p string, _ int64) {
			if err := os.Truncate(p, 16<<10); err != nil {
				t.Fatal(err)
			}
		}, "truncated"},
		{"truncated to half", func(t *testing.T, p string, size int64) {
			if err := os.Truncate(p, size/2/page*page); err != nil {
				t.Fatal(err)
			}
		}, "truncated"},
		{"both meta pages zeroed", func(t *testing.T, p string, _ int64) {
			overwrite(t, p, 0, make([]byte, 2*page))
		}, "no valid meta page"},
		{"not a store", func(t *testing.T, p string, _ int64) {
			if err := os.WriteFile(p, []byte(strings.Repeat("sendguard.yaml: not a database\n", 2000)), 0o600); err != nil {
				t.Fatal(err)
			}
		}, "no valid meta page"},
		{"data pages zeroed", func(t *testing.T, p string, size int64) {
			overwrite(t, p, 2*page, make([]byte, size-2*page))
		}, "corrupt"},
		{"data pages overwritten with noise", func(t *testing.T, p string, size int64) {
			r := rand.New(rand.NewPCG(1, 2))
			b := make([]byte, size-2*page)
			for i := range b {
				b[i] = byte(r.Uint32())
			}
			overwrite(t, p, 2*page, b)
		}, "corrupt"},
		{"a page copied over another", func(t *testing.T, p string, size int64) {
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			for pg := int64(2); (pg+1)*page <= size; pg++ {
				overwrite(t, p, pg*page, b[(pg+1)*page%size:][:page]) // every page claims to be the next one
			}
		}, "corrupt"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, size := healthyFile(t)
			tc.damage(t, p, size)
			s, err := store.OpenEmbedded(p, store.EmbeddedOptions{})
			if err == nil {
				s.Close()
				t.Fatalf("OpenEmbedded(%s) = nil error, want ErrCorrupt", tc.name)
			}
			if !errors.Is(err, store.ErrCorrupt) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "--store-reset") {
				t.Errorf("OpenEmbedded(%s) error = %v, want ErrCorrupt saying %q and how to recover", tc.name, err, tc.want)
			}
		})
	}
}

// TestEmbeddedHealthyReopen: the checks pass a healthy file and keep its
// state.
func TestEmbeddedHealthyReopen(t *testing.T) {
	p, _ := healthyFile(t)
	s := openEmbedded(t, p)
	defer s.Close()
	sup, err := s.Suppressions(context.Background(), "inst_1")
	if err != nil || len(sup) != 3000 {
		t.Fatalf("Suppressions after reopen = %d, %v; want 3000", len(sup), err)
	}
}

// TestResetEmbedded moves a damaged file aside (kept, not deleted) and the
// next open starts empty.
func TestResetEmbedded(t *testing.T) {
	p, size := healthyFile(t)
	if err := os.Truncate(p, 16<<10); err != nil {
		t.Fatal(err)
	}
	aside, err := store.ResetEmbedded(p, time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	if want := p + ".corrupt-20261127T080000Z"; aside != want {
		t.Errorf("ResetEmbedded = %q, want %q", aside, want)
	}
	if fi, err := os.Stat(aside); err != nil || fi.Size() != 16<<10 {
		t.Errorf("the damaged file was not kept: %v (size %d of %d)", err, fi.Size(), size)
	}
	s := openEmbedded(t, p)
	defer s.Close()
	if sup, _ := s.Suppressions(context.Background(), "inst_1"); len(sup) != 0 {
		t.Errorf("a reset store holds %d suppressions", len(sup))
	}
}

// TestResetEmbeddedKeepsEarlierCopies: two resets in one second keep both
// damaged files.
func TestResetEmbeddedKeepsEarlierCopies(t *testing.T) {
	p := filepath.Join(t.TempDir(), "state.db")
	now := time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)
	var got []string
	for i := range 2 {
		if err := os.WriteFile(p, []byte{byte(i)}, 0o600); err != nil {
			t.Fatal(err)
		}
		a, err := store.ResetEmbedded(p, now)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, a)
	}
	if got[0] == got[1] {
		t.Fatalf("ResetEmbedded twice = %q, %q; the second replaced the first", got[0], got[1])
	}
	for i, a := range got {
		if b, err := os.ReadFile(a); err != nil || len(b) != 1 || b[0] != byte(i) {
			t.Errorf("copy %d (%s) = %v, %v", i, a, b, err)
		}
	}
}

// BenchmarkOpenEmbeddedVerified is the start-up cost of the open-time
// checks (meta pages, size, bbolt's page walk) on a file of 200,000
// suppressions.
func BenchmarkOpenEmbeddedVerified(b *testing.B) {
	p := filepath.Join(b.TempDir(), "state.db")
	s, err := store.OpenEmbedded(p, store.EmbeddedOptions{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	now := time.Date(2026, 5, 8, 10, 0, 0, 0, time.UTC)
	for chunk := range 200 {
		var wg sync.WaitGroup
		for i := range 1000 {
			wg.Go(func() {
				s.PutSuppression(ctx, store.Suppression{Instance: "inst_1", Phone: fmt.Sprintf("+9665%08d", chunk*1000+i), Reason: "manual_block", CreatedAt: now})
			})
		}
		wg.Wait()
	}
	s.Close()
	fi, _ := os.Stat(p)
	b.ReportMetric(float64(fi.Size())/(1<<20), "file-MiB")
	b.ResetTimer()
	for b.Loop() {
		s, err := store.OpenEmbedded(p, store.EmbeddedOptions{})
		if err != nil {
			b.Fatal(err)
		}
		s.Close()
	}
}
