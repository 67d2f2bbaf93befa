package policy

import (
	"fmt"
	"sync"
	"testing"
)

func TestMemoCacheBoundAndVisibility(t *testing.T) {
	// A Set is visible to the next Get at once (ristretto's were not).
	big := newMemo[Decision](1 << 16)
	for i := range 1000 {
		k := []byte(fmt.Sprintf("k%d", i))
		big.Set(k, Decision{RiskScore: i})
		if d, ok := big.Get(k); !ok || d.RiskScore != i {
			t.Fatalf("Get(%s) right after Set = %+v %v", k, d, ok)
		}
	}
	// Concurrent Sets of many distinct keys stay within the bound.
	m := newMemo[Decision](memoShards * 4)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 1000 {
				k := []byte(fmt.Sprintf("k%d-%d", g, i))
				m.Set(k, Decision{RiskScore: i})
				m.Get(k)
			}
		}()
	}
	wg.Wait()
	if n := m.Len(); n > memoShards*4 || n < memoShards {
		t.Errorf("8,000 distinct keys left %d entries, want between %d and %d", n, memoShards, memoShards*4)
	}
	// A key already present keeps its first decision (decisions of one key are equal).
	m.Set([]byte("same"), Decision{RiskScore: 1})
	m.Set([]byte("same"), Decision{RiskScore: 2})
	if d, _ := m.Get([]byte("same")); d.RiskScore != 1 {
		t.Errorf("re-Set replaced the memoised decision: %+v", d)
	}
}

func BenchmarkMemoCacheGetParallel(b *testing.B) {
	m := newMemo[Decision](1 << 16)
	keys := make([][]byte, 256)
	for i := range keys {
		keys[i] = []byte(fmt.Sprintf("key-%d", i))
		m.Set(keys[i], Decision{})
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			m.Get(keys[i%len(keys)])
			i++
		}
	})
}

func TestMemoStats(t *testing.T) {
	m := newMemo[Decision](1 << 10)
	if st := m.Stats(); st != (MemoStats{}) {
		t.Fatalf("fresh memo Stats = %+v, want zero", st)
	}
	m.Get([]byte("a")) // miss
	m.Set([]byte("a"), Decision{Allow: true})
	m.Get([]byte("a")) // hit
	m.Get([]byte("a")) // hit
	m.Get([]byte("b")) // miss
	want := MemoStats{Hits: 2, Misses: 2, Entries: 1}
	if st := m.Stats(); st != want {
		t.Errorf("Stats = %+v, want %+v", st, want)
	}
	if r := want.HitRate(); r != 0.5 {
		t.Errorf("HitRate = %v, want 0.5", r)
	}
	if r := (MemoStats{}).HitRate(); r != 0 {
		t.Errorf("HitRate of no lookups = %v, want 0", r)
	}
}
