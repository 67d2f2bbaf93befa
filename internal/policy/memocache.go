package policy

import (
	"hash/maphash"
	"sync"
	"sync/atomic"
)

// memo is the decision memo: a bounded, sharded map from the memo key to
// its decision. A Set is visible to the next Get at once.
//
// It was a ristretto cache, whose admissions go through a buffer drained by
// one background goroutine. Under CPU saturation (many first-seen inputs,
// each a costly OPA evaluation) that goroutine starved: on 2 cores with
// 128 requests in flight the memo admitted nothing for seconds, every
// request paid the full evaluation, and the saturation fed itself. Here
// admission is synchronous, in the request, under one shard's lock.
//
// A full shard evicts an arbitrary entry (Go's map iteration order): the
// working set is a few thousand message templates, far below the bound, so
// eviction is rare and its policy matters little.
type memo[V any] struct {
	seed   maphash.Seed
	max    int // entries per shard
	shards [memoShards]memoShard[V]
}

const memoShards = 64

type memoShard[V any] struct {
	mu     sync.RWMutex
	m      map[string]V
	hits   atomic.Uint64 // Gets that found their key
	misses atomic.Uint64 // Gets that did not
	_      [24]byte      // keep shards on separate cache lines
}

func newMemo[V any](entries int) *memo[V] {
	m := &memo[V]{seed: maphash.MakeSeed(), max: max(1, entries/memoShards)}
	for i := range m.shards {
		m.shards[i].m = make(map[string]V)
	}
	return m
}

func (m *memo[V]) shard(key []byte) *memoShard[V] {
	return &m.shards[maphash.Bytes(m.seed, key)%memoShards]
}

// Get returns the decision memoised for key. It does not allocate.
func (m *memo[V]) Get(key []byte) (V, bool) {
	s := m.shard(key)
	s.mu.RLock()
	d, ok := s.m[string(key)]
	s.mu.RUnlock()
	if ok {
		s.hits.Add(1)
	} else {
		s.misses.Add(1)
	}
	return d, ok
}

// Set memoises d for key.
func (m *memo[V]) Set(key []byte, d V) {
	s := m.shard(key)
	s.mu.Lock()
	if _, ok := s.m[string(key)]; !ok {
		if len(s.m) >= m.max {
			for k := range s.m {
				delete(s.m, k)
				break
			}
		}
		s.m[string(key)] = d
	}
	s.mu.Unlock()
}

// Stats adds up the shards' counts: Gets that hit, Gets that missed, and
// entries. Each is read on its own, so under load they are approximate.
func (m *memo[V]) Stats() MemoStats {
	var st MemoStats
	for i := range m.shards {
		s := &m.shards[i]
		st.Hits += s.hits.Load()
		st.Misses += s.misses.Load()
	}
	st.Entries = m.Len()
	return st
}

// Len is the number of entries.
func (m *memo[V]) Len() int {
	n := 0
	for i := range m.shards {
		s := &m.shards[i]
		s.mu.RLock()
		n += len(s.m)
		s.mu.RUnlock()
	}
	return n
}
