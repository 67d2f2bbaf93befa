package decision

import (
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
)

// TestNewID: ids are UUIDv7 texts carrying the given millisecond, and
// unique across 64 goroutines making them at once.
func TestNewID(t *testing.T) {
	now := time.Date(2026, 5, 8, 10, 0, 0, 123_456_789, time.UTC)
	var mu sync.Mutex
	seen := map[string]bool{}
	var wg sync.WaitGroup
	for range 64 {
		wg.Go(func() {
			ids := make([]string, 0, 2000)
			for range 2000 {
				ids = append(ids, NewID(now))
			}
			mu.Lock()
			defer mu.Unlock()
			for _, id := range ids {
				if seen[id] {
					t.Errorf("NewID repeated %s", id)
				}
				seen[id] = true
			}
		})
	}
	wg.Wait()
	for id := range seen {
		u, err := uuid.Parse(id)
		if err != nil || u.Version() != 7 || u.Variant() != uuid.RFC4122 || u.String() != id {
			t.Fatalf("NewID = %q: parsed %v (version %d, variant %v), %v; want a canonical UUIDv7", id, u, u.Version(), u.Variant(), err)
		}
		if sec, nsec := u.Time().UnixTime(); time.Unix(sec, nsec).UnixMilli() != now.UnixMilli() {
			t.Fatalf("NewID(%v) = %s carries %v, want the same millisecond", now, id, time.Unix(sec, nsec).UTC())
		}
	}
}

func BenchmarkNewID(b *testing.B) {
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		_ = NewID(now)
	}
}
