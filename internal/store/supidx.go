package store

import (
	"hash/maphash"
	"math/bits"
	"slices"
)

// supIndex is the embedded store's in-memory index of its suppressions:
// the 64-bit hashes (hash/maphash, with a seed of the process's own) of
// their bbolt keys (instance NUL phone). It is exact in one direction: a
// key whose hash is not in it is not suppressed, so Suppressed answers
// most decisions (recipients who are not suppressed) without a bbolt read
// transaction. A hash in it is only a candidate, confirmed by reading the
// file: a collision or a deleted suppression costs a read, never a wrong
// answer.
//
// A supIndex is never modified once published: writers build the next one
// (with) and swap the pointer, so lookups take no lock. It holds base,
// sorted, with dir, its bucket directory (the base positions where each
// value of the hash's top bits starts: a lookup searches about 8 entries,
// one or two cache lines), and recent, the hashes added since base was
// built, sorted and small; with merges recent into base once it outgrows
// recentMax or a 1024th of base: an addition copies recent (at most that
// many hashes) and, amortised, about as much of base again. Bulk additions
// (AddSuppressions' chunks) merge once per chunk.
type supIndex struct {
	base   []uint64
	dir    []uint32
	shift  uint8
	recent []uint64
}

// recentMax is how many hashes recent holds, at least, before they are
// merged into base.
const recentMax = 1024

// newSupIndex indexes hs (in any order, repeats allowed; sorted in place).
func newSupIndex(hs []uint64) *supIndex {
	slices.Sort(hs)
	return indexSorted(slices.Compact(hs), nil)
}

// indexSorted builds the index of base (sorted, distinct; kept, not
// copied) and recent.
func indexSorted(base, recent []uint64) *supIndex {
	b := bits.Len(uint(len(base) / 8)) // about 8 hashes per bucket
	x := &supIndex{base: base, shift: uint8(64 - b), recent: recent}
	x.dir = make([]uint32, 1<<b+1)
	j := 0
	for i := range 1 << b {
		for j < len(base) && base[j]>>x.shift < uint64(i) {
			j++
		}
		x.dir[i] = uint32(j)
	}
	x.dir[1<<b] = uint32(len(base))
	return x
}

// has reports whether h is in the index.
func (x *supIndex) has(h uint64) bool {
	i := h >> x.shift // a shift by 64 (an empty or tiny base) is 0
	if _, ok := slices.BinarySearch(x.base[x.dir[i]:x.dir[i+1]], h); ok {
		return true
	}
	_, ok := slices.BinarySearch(x.recent, h)
	return ok
}

// with returns the index of x's hashes and hs (sorted, repeats allowed).
func (x *supIndex) with(hs []uint64) *supIndex {
	recent := merge(x.recent, hs)
	if len(recent) <= max(recentMax, len(x.base)/1024) {
		return &supIndex{base: x.base, dir: x.dir, shift: x.shift, recent: recent}
	}
	return indexSorted(merge(x.base, recent), nil)
}

// merge returns the sorted union of a and b (sorted), without repeats, in
// a new slice.
func merge(a, b []uint64) []uint64 {
	out := make([]uint64, 0, len(a)+len(b))
	for len(a) > 0 && len(b) > 0 {
		var v uint64
		switch {
		case a[0] < b[0]:
			v, a = a[0], a[1:]
		case b[0] < a[0]:
			v, b = b[0], b[1:]
		default:
			v, a, b = a[0], a[1:], b[1:]
		}
		if len(out) == 0 || out[len(out)-1] != v {
			out = append(out, v)
		}
	}
	for _, rest := range [][]uint64{a, b} {
		for _, v := range rest {
			if len(out) == 0 || out[len(out)-1] != v {
				out = append(out, v)
			}
		}
	}
	return out
}

// supHash is the index's hash of the suppression key of (instance,
// phone): maphash of supKey(instance, phone), computed without building
// the key (no allocation).
func supHash(seed maphash.Seed, instance, phone string) uint64 {
	var h maphash.Hash
	h.SetSeed(seed)
	h.WriteString(instance)
	h.WriteByte(0)
	h.WriteString(phone)
	return h.Sum64()
}
