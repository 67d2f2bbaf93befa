package store_test

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
)

// TestEmbeddedPaused: Paused answers from memory, without a bbolt read
// transaction (whose begin takes the database's meta lock, a mutex every
// decision shared, and allocates a transaction) and without an
// allocation; a pause or resume is answered once SetPaused returns, from
// many goroutines at once, and survives a reopen.
func TestEmbeddedPaused(t *testing.T) {
	ctx := context.Background()
	p := filepath.Join(t.TempDir(), "state.db")
	s := openEmbedded(t, p)
	instances := []string{"shop-1", "متجر", "दुकान", "İstanbul", "🛍️"}
	if n := testing.AllocsPerRun(100, func() { _, _ = s.Paused(ctx, "shop-1") }); n != 0 {
		t.Errorf("Paused = %.0f allocations, want 0", n)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 8 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				for _, in := range instances {
					if _, err := s.Paused(ctx, in); err != nil {
						t.Errorf("Paused(%q): %v", in, err)
						return
					}
				}
			}
		})
	}
	var writers sync.WaitGroup
	for i, in := range instances {
		writers.Go(func() {
			for n := range 20 {
				want := n%2 == 0
				if err := s.SetPaused(ctx, in, want); err != nil {
					t.Errorf("SetPaused(%q, %v): %v", in, want, err)
					return
				}
				if got, _ := s.Paused(ctx, in); got != want {
					t.Errorf("Paused(%q) after SetPaused(%v) = %v", in, want, got)
				}
			}
			// Leave the odd ones paused.
			if err := s.SetPaused(ctx, in, i%2 == 1); err != nil {
				t.Error(err)
			}
		})
	}
	writers.Wait()
	close(stop)
	wg.Wait()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openEmbedded(t, p)
	defer s.Close()
	for i, in := range instances {
		if got, _ := s.Paused(ctx, in); got != (i%2 == 1) {
			t.Errorf("after reopen Paused(%q) = %v, want %v", in, got, i%2 == 1)
		}
	}
}
