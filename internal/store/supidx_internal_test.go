package store

import (
	"hash/maphash"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestSupHash: the hash Suppressed computes from (instance, phone), with
// no key built, is the hash of the bbolt key the writers and the scan at
// open compute, in every script.
func TestSupHash(t *testing.T) {
	seed := maphash.MakeSeed()
	for _, c := range []struct{ instance, phone string }{
		{"shop-1", "+966501234567"}, {"متجر", "+966501234567"}, {"दुकान", "+919876543210"},
		{"İstanbul", "+905321234567"}, {"🛍️", "+14155550100"}, {"cafe\u0301", ""}, {"", ""},
		{string(make([]byte, 300)), "+1"},
	} {
		if got, want := supHash(seed, c.instance, c.phone), maphash.Bytes(seed, supKey(c.instance, c.phone)); got != want {
			t.Errorf("supHash(%q, %q) = %x, want %x (the key's)", c.instance, c.phone, got, want)
		}
	}
}

// TestSupIndex: the index holds exactly what was added, at open and
// through every later addition (small ones into recent, large ones and
// overflowing ones merged into base), compared with a map over random
// hashes, values at the edges (0, the maximum) and repeats.
func TestSupIndex(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, start := range []int{0, 1, 7, 8, 100, 5000, 70000} {
		want := map[uint64]bool{}
		var hs []uint64
		for range start {
			h := rng.Uint64()
			hs = append(hs, h, h)
			want[h] = true
		}
		x := newSupIndex(hs)
		check := func(when string) {
			t.Helper()
			for h := range want {
				if !x.has(h) {
					t.Fatalf("start %d, %s: has(%x) = false, want true", start, when, h)
				}
			}
			for range 2000 {
				if h := rng.Uint64(); x.has(h) != want[h] {
					t.Fatalf("start %d, %s: has(%x) = %v, want %v", start, when, h, x.has(h), want[h])
				}
			}
			if !slices.IsSorted(x.base) || !slices.IsSorted(x.recent) {
				t.Fatalf("start %d, %s: base or recent not sorted", start, when)
			}
		}
		check("at open")
		for i, n := range []int{1, 1, 3, 1000, 30, 20000, 2, 1500} {
			add := make([]uint64, 0, n+2)
			for range n {
				add = append(add, rng.Uint64())
			}
			add = append(add, 0, ^uint64(0))
			if len(x.base) > 0 {
				add = append(add, x.base[len(x.base)/2]) // already there
			}
			slices.Sort(add)
			for _, h := range add {
				want[h] = true
			}
			x = x.with(add)
			check("after addition " + string(rune('A'+i)))
		}
	}
}
