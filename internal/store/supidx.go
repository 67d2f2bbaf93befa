package store

import (
	"hash/maphash"
	"math/bits"
	"slices"
)

// supIndex is the embedded store's in-memory index of its suppressions,
// built from the 64-bit hashes (hash/maphash, with a seed of the
// process's own) of their bbolt keys (instance NUL phone). It is exact in
// one direction: a key whose hash is not in it is not suppressed, so
// Suppressed answers most decisions (recipients who are not suppressed)
// without a bbolt read transaction. A hash in it is only a candidate,
// confirmed by reading the file: a collision or a deleted suppression
// costs a read, never a wrong answer.
//
// It is compact, about 2 bytes a suppression: the hash's top b bits pick
// a bucket (dir holds where each bucket starts in fps; 16 to 32 hashes
// each at open), and the 16 bits after them are kept in fps, sorted within
// the bucket. A hash not suppressed matches some fingerprint of its bucket
// in at most about one lookup in 2,000 (a needless read of the file). The
// hashes added since the last merge are kept whole in recent, sorted.
//
// A supIndex is never modified once published: writers build the next one
// (with) and swap the pointer, so lookups take no lock. with merges recent
// into fps once it outgrows recentMax or a 1024th of fps: an addition
// copies recent and, amortised, about as much of fps again; a bulk
// addition (an AddSuppressions chunk) merges once. b is fixed when the
// index is built (at open, from the number of suppressions then): a store
// that grows far beyond that keeps correct answers with larger buckets
// (more needless reads) until the next open.
type supIndex struct {
	b      uint8
	dir    []uint32 // 1<<b + 1 entries
	fps    []uint16
	recent []uint64
}

// recentMax is how many hashes recent holds, at least, before they are
// merged into fps.
const recentMax = 1024

// bucket and fingerprint of h in an index of b bucket bits.
func split(h uint64, b uint8) (uint64, uint16) { return h >> (64 - b), uint16(h >> (48 - b)) }

// bucketBits is b for an index of n hashes: 16 to 32 hashes a bucket
// (at least 256 buckets).
func bucketBits(n int) uint8 { return uint8(min(max(8, bits.Len(uint(n/32))), 28)) }

// scanSupIndex builds the index of the hashes scan yields. It calls scan
// twice, and both calls must yield the same hashes (repeats allowed): the
// first counts the hashes of each bucket, the second places them, so the
// index is allocated once, at its size, with no transient copy of the
// hashes (a million would be 8 MB of garbage left resident).
func scanSupIndex(n int, scan func(yield func(uint64)) error) (*supIndex, error) {
	x := &supIndex{b: bucketBits(n)}
	x.dir = make([]uint32, 1<<x.b+1)
	err := scan(func(h uint64) {
		i, _ := split(h, x.b)
		x.dir[i+1]++
	})
	if err != nil {
		return nil, err
	}
	for i := 1; i < len(x.dir); i++ {
		x.dir[i] += x.dir[i-1]
	}
	x.fps = make([]uint16, x.dir[len(x.dir)-1])
	next := slices.Clone(x.dir[:len(x.dir)-1])
	placed := 0
	err = scan(func(h uint64) {
		i, fp := split(h, x.b)
		if placed < len(x.fps) && next[i] < x.dir[i+1] {
			x.fps[next[i]] = fp
			next[i]++
			placed++
		}
	})
	if err != nil {
		return nil, err
	}
	// Sort each bucket and drop its repeats.
	out := 0
	for i := range 1 << x.b {
		fps := x.fps[x.dir[i]:next[i]]
		slices.Sort(fps)
		x.dir[i] = uint32(out)
		out += copy(x.fps[out:], slices.Compact(fps))
	}
	x.dir[1<<x.b] = uint32(out)
	x.fps = x.fps[:out]
	return x, nil
}

// newSupIndex indexes hs (in any order, repeats allowed).
func newSupIndex(hs []uint64) *supIndex {
	x, _ := scanSupIndex(len(hs), func(yield func(uint64)) error {
		for _, h := range hs {
			yield(h)
		}
		return nil
	})
	return x
}

// has reports whether h may be in the index: false is exact.
func (x *supIndex) has(h uint64) bool {
	i, fp := split(h, x.b)
	if _, ok := slices.BinarySearch(x.fps[x.dir[i]:x.dir[i+1]], fp); ok {
		return true
	}
	_, ok := slices.BinarySearch(x.recent, h)
	return ok
}

// with returns the index of x's hashes and hs (sorted, repeats allowed).
func (x *supIndex) with(hs []uint64) *supIndex {
	recent := merge(x.recent, hs)
	if len(recent) <= max(recentMax, len(x.fps)/1024) {
		return &supIndex{b: x.b, dir: x.dir, fps: x.fps, recent: recent}
	}
	// Merge recent (sorted by hash: by bucket, then fingerprint) into fps,
	// bucket by bucket.
	n := &supIndex{b: x.b, dir: make([]uint32, len(x.dir)), fps: make([]uint16, 0, len(x.fps)+len(recent))}
	j := 0
	for i := range uint64(1) << x.b {
		n.dir[i] = uint32(len(n.fps))
		old := x.fps[x.dir[i]:x.dir[i+1]]
		for j < len(recent) {
			bi, fp := split(recent[j], x.b)
			if bi != i {
				break
			}
			for len(old) > 0 && old[0] < fp {
				n.fps, old = append(n.fps, old[0]), old[1:]
			}
			if len(old) == 0 || old[0] != fp {
				if l := len(n.fps); l == int(n.dir[i]) || n.fps[l-1] != fp {
					n.fps = append(n.fps, fp)
				}
			}
			j++
		}
		n.fps = append(n.fps, old...)
	}
	n.dir[1<<x.b] = uint32(len(n.fps))
	return n
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
