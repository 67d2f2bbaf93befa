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

// TestSupIndex: the index holds everything added, at open and through
// every later addition (small ones into recent, large ones and
// overflowing ones merged into the buckets), compared with a map over
// random hashes, values at the edges (0, the maximum) and repeats; of the
// hashes never added it answers "maybe" for few (each a needless read of
// the file), and its buckets stay sorted without repeats.
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
			maybe := 0
			const tries = 20000
			for range tries {
				if h := rng.Uint64(); !want[h] && x.has(h) {
					maybe++
				}
			}
			if maybe > tries/100 {
				t.Errorf("start %d, %s: has = true for %d of %d hashes never added, want at most 1%%", start, when, maybe, tries)
			}
			if len(x.dir) != 1<<x.b+1 || int(x.dir[len(x.dir)-1]) != len(x.fps) {
				t.Fatalf("start %d, %s: dir of %d ending at %d for %d fingerprints", start, when, len(x.dir), x.dir[len(x.dir)-1], len(x.fps))
			}
			for i := range 1 << x.b {
				if x.dir[i] > x.dir[i+1] {
					t.Fatalf("start %d, %s: dir not ascending at %d", start, when, i)
				}
				b := x.fps[x.dir[i]:x.dir[i+1]]
				for j := 1; j < len(b); j++ {
					if b[j-1] >= b[j] {
						t.Fatalf("start %d, %s: bucket %d not strictly ascending: %v", start, when, i, b)
					}
				}
			}
			if !slices.IsSorted(x.recent) {
				t.Fatalf("start %d, %s: recent not sorted", start, when)
			}
		}
		check("at open")
		for i, n := range []int{1, 1, 3, 1000, 30, 20000, 2, 1500} {
			add := make([]uint64, 0, n+3)
			for range n {
				add = append(add, rng.Uint64())
			}
			add = append(add, 0, ^uint64(0))
			for h := range want {
				add = append(add, h) // already there
				break
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
