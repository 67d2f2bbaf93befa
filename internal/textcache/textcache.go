// Package textcache remembers values computed from a text (a message's
// content signals, its fan-out body key) so that a text seen again skips
// the computation. It is for pure functions of the text only: a hit returns
// what was put for the same text, never anything computed from another.
//
// Keys are a 128-bit hash of the text's bytes (two hash/maphash seeds
// drawn at random per Cache, so nobody outside the process can aim two
// texts at one key; two different texts share a key with probability
// 2^-127). No text is kept: a slot holds the key and the value only.
//
// Memory is fixed at New and nothing allocates afterwards: the slots are
// 4-way sets in 64 shards, each shard behind its own mutex, held only to
// compare keys and copy one value; a set replaces its least recently used
// slot. A text enters the cache only the second time it is seen (a
// doorkeeper of recent misses' keys, twice as many as slots, as in
// TinyLFU): a stream of texts that never repeat (every OTP, every order
// number) costs two hashes and a lock per lookup and never evicts the
// texts that do repeat.
//
// A Cache is safe for concurrent use.
package textcache

import (
	"hash/maphash"
	"slices"
	"sync"
)

// Cache maps texts to values of type V.
type Cache[V any] struct {
	seed0, seed1 maphash.Seed
	shards       []shard[V]
	setMask      uint64 // set = k0 & setMask, within the shard
	seenMask     uint64 // doorkeeper set = (k1 >> 1) & seenMask, within the shard
}

type shard[V any] struct {
	mu     sync.Mutex
	sets   [][ways]entry[V]
	seen   []uint64 // doorkeeper: k1 of recent misses, in sets of ways
	clock  uint32   // stamps the slots used, for least-recently-used replacement
	hits   uint64
	misses uint64
	_      [64]byte // keep shards' locks off each other's cache lines
}

// entry is one slot; k1 has its low bit set in a used slot, so the zero
// entry matches no key.
type entry[V any] struct {
	k0, k1 uint64
	used   uint32 // the shard's clock when last hit or written
	val    V
}

// Key is a text's hash.
type Key struct{ k0, k1 uint64 }

const (
	shards     = 64 // a power of two
	shardShift = 64 - 6
	ways       = 4
)

// New returns a cache of at least size slots (rounded up to a power of two,
// at least 256), or nil for size <= 0: a nil *Cache is valid and caches
// nothing (Get misses, Put does nothing, Stats is zero).
func New[V any](size int) *Cache[V] {
	if size <= 0 {
		return nil
	}
	setsPerShard := 1
	for setsPerShard*ways*shards < size {
		setsPerShard <<= 1
	}
	c := &Cache[V]{
		seed0: maphash.MakeSeed(), seed1: maphash.MakeSeed(),
		shards:   make([]shard[V], shards),
		setMask:  uint64(setsPerShard - 1),
		seenMask: uint64(2*setsPerShard - 1),
	}
	for i := range c.shards {
		c.shards[i].sets = make([][ways]entry[V], setsPerShard)
		c.shards[i].seen = make([]uint64, 2*setsPerShard*ways)
	}
	return c
}

// Key returns text's key.
func (c *Cache[V]) Key(text string) Key {
	if c == nil {
		return Key{}
	}
	return Key{maphash.String(c.seed0, text), maphash.String(c.seed1, text) | 1}
}

// Get returns the value put under k, if the cache still holds it.
func (c *Cache[V]) Get(k Key) (V, bool) {
	var zero V
	if c == nil {
		return zero, false
	}
	sh := &c.shards[k.k0>>shardShift]
	sh.mu.Lock()
	set := &sh.sets[k.k0&c.setMask]
	for w := range set {
		if e := &set[w]; e.k0 == k.k0 && e.k1 == k.k1 {
			sh.clock++
			e.used = sh.clock
			v := e.val
			sh.hits++
			sh.mu.Unlock()
			return v, true
		}
	}
	sh.misses++
	sh.mu.Unlock()
	return zero, false
}

// Put caches v under k when k missed recently (the doorkeeper), and
// otherwise only remembers that it missed.
func (c *Cache[V]) Put(k Key, v V) {
	if c == nil {
		return
	}
	sh := &c.shards[k.k0>>shardShift]
	d := int((k.k1>>1)&c.seenMask) * ways
	seen := sh.seen[d : d+ways]
	sh.mu.Lock()
	j := slices.Index(seen, k.k1)
	if j < 0 {
		// An empty slot first; else replace in turn: texts that alternate
		// (a replayed mix) do not push each other out before their second
		// sighting.
		e := slices.Index(seen, 0)
		if e < 0 {
			sh.clock++
			e = int(sh.clock % ways)
		}
		seen[e] = k.k1
		sh.mu.Unlock()
		return
	}
	seen[j] = 0
	set := &sh.sets[k.k0&c.setMask]
	w := 0
	for u := 1; u < ways; u++ {
		// Wrapping differences: the oldest stamp is the furthest behind.
		if sh.clock-set[u].used > sh.clock-set[w].used {
			w = u
		}
	}
	sh.clock++
	set[w] = entry[V]{k0: k.k0, k1: k.k1, used: sh.clock, val: v}
	sh.mu.Unlock()
}

// Do returns f(text), from the cache when it holds text's value, and puts
// what f computed (admitted on text's second sighting). A nil Cache calls
// f.
func (c *Cache[V]) Do(text string, f func(string) V) V {
	if c == nil {
		return f(text)
	}
	k := c.Key(text)
	if v, ok := c.Get(k); ok {
		return v
	}
	v := f(text)
	c.Put(k, v)
	return v
}

// Stats counts a cache's lookups since New.
type Stats struct {
	Hits, Misses uint64
	Size         int // slots
}

// Stats sums the shards' counters.
func (c *Cache[V]) Stats() Stats {
	var st Stats
	if c == nil {
		return st
	}
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.Lock()
		st.Hits += sh.hits
		st.Misses += sh.misses
		st.Size += len(sh.sets) * ways
		sh.mu.Unlock()
	}
	return st
}
