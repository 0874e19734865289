package grpcjwt

import (
	"hash/maphash"
	"strings"
	"sync"
	"time"
)

// cacheShards spreads the token cache's writers over independent locks.
// Readers take no lock at all (see cacheShard).
const cacheShards = 32

// tokenCache maps whole raw tokens that verified to their claims. It is keyed
// by the complete token string (never a part of it or a digest), bounded in
// entries, and stores claims rather than decisions: per-method rules are
// checked on every call.
type tokenCache struct {
	seed   maphash.Seed
	n      uint64 // shards in use: fewer than cacheShards for a small cache
	shards [cacheShards]cacheShard
}

// cacheShard is one part of the cache. Lookups go through a sync.Map, whose
// Load is a few atomic loads: a hit takes no lock, so hits on one token
// from every core do not contend on a reader count. Writers (a token that
// just verified) serialize on mu, which keeps the bound hard.
//
// A full shard drops its oldest entry. Entries end at the earlier of the
// token's exp and the cache's maximum age from their insertion, so the
// oldest entry is the first to end whenever tokens outlive that maximum
// age (10 minutes by default), as access tokens usually do.
type cacheShard struct {
	m    sync.Map // string (the whole token) -> *cacheEntry
	mu   sync.Mutex
	ring []string // the keys of m in insertion order from head, under mu
	head int      // the oldest key's index in ring once ring is full
	max  int
}

// cacheEntry is immutable once stored.
type cacheEntry struct {
	claims *Claims
	key    *verifyKey // the key that verified; a hit requires it still published
	until  time.Time  // the entry's end: exp plus leeway, or the maximum age
}

// newTokenCache returns a cache of at most entries (> 0) tokens: the shard
// bounds add up to entries exactly, so the total never exceeds it.
func newTokenCache(entries int) *tokenCache {
	n := min(entries, cacheShards)
	c := &tokenCache{seed: maphash.MakeSeed(), n: uint64(n)}
	for i := range n {
		c.shards[i].max = entries / n
		if i < entries%n {
			c.shards[i].max++
		}
	}
	return c
}

// shardKeyBytes is how much of the end of a token picks its shard.
const shardKeyBytes = 32

// shard picks raw's shard by a keyed hash of its last bytes. For a token
// that verified (the only kind stored), they are its signature, which
// differs from every other token's and which only the issuer chooses, so
// the shards fill evenly all the same. Hashing the whole token, a kilobyte
// or more, took a third of a cache hit; within the shard, the map still
// compares whole tokens.
func (c *tokenCache) shard(raw string) *cacheShard {
	return &c.shards[maphash.String(c.seed, raw[max(0, len(raw)-shardKeyBytes):])%c.n]
}

func (c *tokenCache) get(raw string) *cacheEntry {
	if v, ok := c.shard(raw).m.Load(raw); ok {
		return v.(*cacheEntry)
	}
	return nil
}

// put stores e under raw, first dropping the shard's oldest entry if the
// shard is full: constant work, whatever the cache's size.
func (c *tokenCache) put(raw string, e *cacheEntry) {
	s := c.shard(raw)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m.Load(raw); ok {
		s.m.Store(raw, e) // the same token verified again: its key stays
		return
	}
	raw = strings.Clone(raw) // do not pin the caller's larger buffer
	if len(s.ring) < s.max {
		s.ring = append(s.ring, raw)
	} else {
		s.m.Delete(s.ring[s.head])
		s.ring[s.head] = raw
		s.head = (s.head + 1) % s.max
	}
	s.m.Store(raw, e)
}

// len counts the entries (tests and benchmarks).
func (c *tokenCache) len() int {
	n := 0
	for i := range c.n {
		s := &c.shards[i]
		s.mu.Lock()
		n += len(s.ring)
		s.mu.Unlock()
	}
	return n
}
