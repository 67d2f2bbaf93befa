package store_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/sendguard/sendguard/internal/limiter"
	"path/filepath"
	"testing"

	"github.com/sendguard/sendguard/internal/store"
	"github.com/sendguard/sendguard/internal/store/storetest"
)

func openEmbedded(t testing.TB, path string) *store.Embedded {
	t.Helper()
	s, err := store.OpenEmbedded(path, store.EmbeddedOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestEmbeddedContract(t *testing.T) {
	for _, m := range syncModes {
		t.Run(m.name, func(t *testing.T) {
			paths := map[storetest.Store]string{}
			open := func(t *testing.T, p string) *store.Embedded {
				t.Helper()
				s, err := store.OpenEmbedded(p, store.EmbeddedOptions{Sync: m.sync})
				if err != nil {
					t.Fatal(err)
				}
				return s
			}
			storetest.Run(t, storetest.Harness{
				Open: func(t *testing.T) storetest.Store {
					p := filepath.Join(t.TempDir(), "state.db")
					s := open(t, p)
					paths[s] = p
					return s
				},
				Reopen: func(t *testing.T, s storetest.Store) storetest.Store {
					if err := s.Close(); err != nil {
						t.Fatal(err)
					}
					return open(t, paths[s])
				},
			})
		})
	}
}

func TestEmbeddedIsLocked(t *testing.T) {
	p := filepath.Join(t.TempDir(), "state.db")
	s := openEmbedded(t, p)
	defer s.Close()
	if _, err := store.OpenEmbedded(p, store.EmbeddedOptions{MaxBatchDelay: 1}); err == nil {
		t.Error("a second open of a locked store succeeded")
	}
}

var syncModes = []struct {
	name string
	sync store.Sync
}{{"sync=interval", store.SyncInterval}, {"sync=always", store.SyncAlways}}

// BenchmarkEmbeddedTake is durable decisions per second in each sync mode
// (fsync on), from many concurrent requests as Envoy sends them.
func BenchmarkEmbeddedTake(b *testing.B) {
	for _, m := range syncModes {
		b.Run(m.name, func(b *testing.B) {
			s, err := store.OpenEmbedded(filepath.Join(b.TempDir(), "state.db"), store.EmbeddedOptions{Sync: m.sync})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			l := limiter.Limits{Daily: 1 << 62, Monthly: 1 << 62, Rate: 1e12, Burst: 1 << 40}
			var n atomic.Int64
			b.SetParallelism(128)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				inst := fmt.Sprintf("inst-%d", n.Add(1)%16)
				for pb.Next() {
					if out, err := s.Take(context.Background(), inst, l, time.Now()); err != nil || out.Verdict != limiter.Allowed {
						b.Fatal(out, err)
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "decisions/s")
		})
	}
}

// BenchmarkEmbeddedTakeSerial is one decision's latency with nothing else
// in flight: how long a lone request waits for its consumption to be
// written (interval) or fsync'd (always).
func BenchmarkEmbeddedTakeSerial(b *testing.B) {
	for _, m := range syncModes {
		b.Run(m.name, func(b *testing.B) {
			s, err := store.OpenEmbedded(filepath.Join(b.TempDir(), "state.db"), store.EmbeddedOptions{Sync: m.sync})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			l := limiter.Limits{Daily: 1 << 62, Monthly: 1 << 62, Rate: 1e12, Burst: 1 << 40}
			for b.Loop() {
				if out, err := s.Take(context.Background(), "inst", l, time.Now()); err != nil || out.Verdict != limiter.Allowed {
					b.Fatal(out, err)
				}
			}
		})
	}
}
