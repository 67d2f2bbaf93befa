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
// of 100,000 suppressions, as decisions ask it: recipients none of whom is
// suppressed (clear), or one in 16 (1in16).
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
	for _, c := range []struct {
		name   string
		offset int // added to the phone: 0 hits every 16th, 1 none
	}{{"clear", 1}, {"1in16", 0}} {
		b.Run(c.name, func(b *testing.B) {
			var next atomic.Int64
			b.SetParallelism(64)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				phones := make([]string, 1024)
				base := int(next.Add(1)) * 1024
				for i := range phones {
					p := (base + i) % (n * 16)
					if c.offset == 1 && p%16 == 0 {
						p++
					}
					phones[i] = fmt.Sprintf("+96650%07d", p)
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
		})
	}
}
