package grpcjwt

import (
	"hash/maphash"
	"strings"
	"sync"
	"time"
)

// cacheShards spreads the token cache over independent locks so that
// concurrent hits on different tokens rarely meet.
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

type cacheShard struct {
	mu  sync.RWMutex
	m   map[string]*cacheEntry
	max int
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
		c.shards[i].m = make(map[string]*cacheEntry)
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
	s := c.shard(raw)
	s.mu.RLock()
	e := s.m[raw]
	s.mu.RUnlock()
	return e
}

// put stores e under raw. A full shard first drops entries that have ended,
// then, if still full, one arbitrary entry.
func (c *tokenCache) put(raw string, e *cacheEntry, now time.Time) {
	s := c.shard(raw)
	raw = strings.Clone(raw) // do not pin the caller's larger buffer
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[raw]; !ok && len(s.m) >= s.max {
		n := 0
		for k, old := range s.m {
			if !now.Before(old.until) || old.key.removed.Load() {
				delete(s.m, k)
			}
			if n++; n >= 8 {
				break
			}
		}
		if len(s.m) >= s.max {
			for k := range s.m {
				delete(s.m, k)
				break
			}
		}
	}
	s.m[raw] = e
}
