package risk

import (
	"hash/maphash"
	"slices"
	"sync"
)

// cache remembers the Signals of recently scanned messages, keyed on a
// 128-bit hash of the message's bytes (two hash/maphash seeds drawn at
// random per Scanner, so nobody outside the process can aim two texts at
// one key; two different texts share a key with probability 2^-127). Scan
// is a pure function of the message for one Scanner, so a hit returns
// exactly what scanning would; a new Scanner (another vocabulary or model)
// starts with an empty cache. No text is kept: a slot holds the key and
// the Signals only.
//
// Memory is fixed at New (Options.CacheSize slots, about 170 bytes each)
// and nothing allocates afterwards. The slots are 4-way sets in shards,
// each shard behind its own mutex, held only to compare keys and copy one
// Signals. A message enters the cache only the second time it is seen
// (a doorkeeper of key hashes, four per slot in 4-way sets indexed apart
// from the cache's, as in TinyLFU): a stream of
// texts that never repeat (every OTP, every order number) costs two hashes
// and a lock per Scan and never evicts the texts that do repeat.
type cache struct {
	seed0, seed1 maphash.Seed
	shards       []cacheShard
	shardShift   uint   // shard = k0 >> shardShift
	setMask      uint64 // set = k0 & setMask, within the shard
	seenMask     uint64 // doorkeeper set = (k1 >> 1) & seenMask, within the shard
}

type cacheShard struct {
	mu     sync.Mutex
	sets   []cacheSet
	seen   []uint64 // doorkeeper: k1 of recent misses, in sets of cacheWays: set (k1>>1)&seenMask
	clock  uint32   // stamps the slots used, for least-recently-used replacement
	hits   uint64
	misses uint64
	_      [64]byte // keep shards' locks off each other's cache lines
}

// cacheSet is cacheWays slots; an insert replaces the least recently used.
type cacheSet struct {
	way [cacheWays]cacheEntry
}

// cacheEntry is one slot; k1 has its low bit set in a used slot, so the
// zero entry matches no key.
type cacheEntry struct {
	k0, k1 uint64
	used   uint32 // the shard's clock when last hit or written
	sig    Signals
}

const (
	cacheShards = 64 // a power of two
	cacheWays   = 4
)

// newCache returns a cache of at least size slots (rounded up to a power
// of two, at least one set per shard), or nil for size <= 0.
func newCache(size int) *cache {
	if size <= 0 {
		return nil
	}
	setsPerShard := 1
	for setsPerShard*cacheWays*cacheShards < size {
		setsPerShard <<= 1
	}
	c := &cache{
		seed0: maphash.MakeSeed(), seed1: maphash.MakeSeed(),
		shards:     make([]cacheShard, cacheShards),
		shardShift: 64 - 6, // log2(cacheShards)
		setMask:    uint64(setsPerShard - 1),
		seenMask:   uint64(2*setsPerShard - 1),
	}
	for i := range c.shards {
		c.shards[i].sets = make([]cacheSet, setsPerShard)
		c.shards[i].seen = make([]uint64, 8*setsPerShard)
	}
	return c
}

// key is msg's 128-bit hash; k1's low bit is set (see cacheEntry).
func (c *cache) key(msg string) (k0, k1 uint64) {
	return maphash.String(c.seed0, msg), maphash.String(c.seed1, msg) | 1
}

func (c *cache) locate(k0 uint64) (*cacheShard, int) {
	return &c.shards[k0>>c.shardShift], int(k0 & c.setMask)
}

// get returns the Signals cached under the key, if any.
func (c *cache) get(k0, k1 uint64) (Signals, bool) {
	sh, i := c.locate(k0)
	sh.mu.Lock()
	set := &sh.sets[i]
	for w := range set.way {
		if e := &set.way[w]; e.k0 == k0 && e.k1 == k1 {
			sh.clock++
			e.used = sh.clock
			sig := e.sig
			sh.hits++
			sh.mu.Unlock()
			return sig, true
		}
	}
	sh.misses++
	sh.mu.Unlock()
	return Signals{}, false
}

// put caches sig under the key when the key missed in its set just before
// (the doorkeeper), and otherwise only remembers that it missed.
func (c *cache) put(k0, k1 uint64, sig Signals) {
	sh, i := c.locate(k0)
	d := int((k1>>1)&c.seenMask) * cacheWays
	seen := sh.seen[d : d+cacheWays]
	sh.mu.Lock()
	j := slices.Index(seen, k1)
	if j < 0 {
		// Round robin over the set's slots: texts that alternate (a
		// replayed mix) do not push each other out before a second sight.
		sh.clock++
		seen[sh.clock%cacheWays] = k1
		sh.mu.Unlock()
		return
	}
	set := &sh.sets[i]
	w := 0
	for v := 1; v < cacheWays; v++ {
		// Wrapping differences: the oldest stamp is the furthest behind.
		if sh.clock-set.way[v].used > sh.clock-set.way[w].used {
			w = v
		}
	}
	sh.clock++
	set.way[w] = cacheEntry{k0: k0, k1: k1, used: sh.clock, sig: sig}
	seen[j] = 0
	sh.mu.Unlock()
}

// CacheStats counts a Scanner's cache lookups since New.
type CacheStats struct {
	Hits, Misses uint64
	Size         int // slots
}

// stats sums the shards' counters.
func (c *cache) stats() CacheStats {
	var st CacheStats
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.Lock()
		st.Hits += sh.hits
		st.Misses += sh.misses
		st.Size += len(sh.sets) * cacheWays
		sh.mu.Unlock()
	}
	return st
}
