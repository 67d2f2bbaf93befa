package store_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/sendguard/sendguard/internal/store"
)

// BenchmarkEmbeddedSuppressed is Suppressed from 64 goroutines on a store
// of 100,000 suppressions, as decisions ask it: one recipient in 16 is
// suppressed, the others are not.
func BenchmarkEmbeddedSuppressed(b *testing.B) {
	ctx := context.Background()
	s, err := store.OpenEmbedded(filepath.Join(b.TempDir(), "state.db"), store.EmbeddedOptions{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	const n = 100_000
	sups := make([]store.Suppression, n)
	for i := range sups {
		sups[i] = store.Suppression{Instance: "shop-1", Phone: fmt.Sprintf("+96650%07d", i*16), Reason: "import"}
	}
	if _, err := s.AddSuppressions(ctx, sups); err != nil {
		b.Fatal(err)
	}
	var next atomic.Int64
	b.SetParallelism(64)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		phones := make([]string, 1024)
		base := int(next.Add(1)) * 1024
		for i := range phones {
			phones[i] = fmt.Sprintf("+96650%07d", (base+i)%(n*16))
		}
		i := 0
		for pb.Next() {
			p := phones[i%len(phones)]
			i++
			if _, err := s.Suppressed(ctx, "shop-1", p); err != nil {
				b.Fatalf("Suppressed(%q): %v", p, err)
			}
		}
	})
}
