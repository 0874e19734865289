package grpcjwt

import (
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"
)

// cacheShards spreads the token cache's writers over independent locks.
// Readers take no lock at all (see cacheShard).
const cacheShards = 32

// tokenCache maps whole raw tokens that verified to their claims. It is keyed
// by the complete token string (a lookup compares whole tokens; the hash
// only places them), bounded in entries, and stores claims rather than
// decisions: per-method rules are checked on every call.
//
// It is built for the garbage collector as much as for lookups: a full
// cache of the default 10,000 entries is live heap that every collection
// marks, so each entry is three objects (the cacheEntry with its claims,
// one buffer holding the token and its claims set, and the slice of
// audiences and scopes), and the tables that find them are flat arrays.
type tokenCache struct {
	seed   maphash.Seed
	n      uint64 // shards in use: fewer than cacheShards for a small cache
	shards [cacheShards]cacheShard
}

// cacheShard is one part of the cache: an open-addressing table with linear
// probing, whose slots readers load atomically, so a hit takes no lock and
// hits on one token from every core do not contend. Writers (a token that
// just verified) serialize on mu, which keeps the bound hard.
//
// A full shard drops its oldest entry. Entries end at the earlier of the
// token's exp and the cache's maximum age from their insertion, so the
// oldest entry is the first to end whenever tokens outlive that maximum
// age (10 minutes by default), as access tokens usually do. Removal shifts
// the rest of the entry's probe run back instead of leaving a marker, so
// lookups never slow down with churn.
type cacheShard struct {
	slots atomic.Pointer[cacheSlots] // at most half full; replaced as it grows
	mu    sync.Mutex
	ring  []*cacheEntry // the entries in insertion order from head, under mu
	head  int           // the oldest entry's index in ring once ring is full
	max   int
}

// cacheSlots is a shard's table: a power of two of slots, nil where free.
type cacheSlots []atomic.Pointer[cacheEntry]

// cacheEntry is immutable once stored.
type cacheEntry struct {
	claims Claims
	token  string     // the whole token, the entry's key
	hash   uint64     // the cache's hash of token
	key    *verifyKey // the key that verified; a hit requires it still published
	until  time.Time  // the entry's end: exp plus leeway, or the maximum age
	pos    int        // the entry's index in its shard's ring
}

// newTokenCache returns a cache of at most entries (> 0) tokens in at most
// shards (1 to cacheShards) shards: the shard bounds add up to entries
// exactly, so the total never exceeds it.
func newTokenCache(entries, shards int) *tokenCache {
	n := min(entries, shards)
	c := &tokenCache{seed: maphash.MakeSeed(), n: uint64(n)}
	for i := range n {
		s := &c.shards[i]
		s.max = entries / n
		if i < entries%n {
			s.max++
		}
		slots := make(cacheSlots, min(16, tableSize(s.max)))
		s.slots.Store(&slots)
	}
	return c
}

// tableSize is the number of slots for n entries: a power of two at least
// twice n, so that probe runs stay short.
func tableSize(n int) int {
	size := 2
	for size < 2*n {
		size *= 2
	}
	return size
}

// hashTailBytes is how much of the end of a token its hash covers.
const hashTailBytes = 32

// hash returns the hash that places raw in the cache (its shard by the high
// bits, its slot by the low ones): a hash of its last bytes, keyed by the
// cache's random seed. For a token that verified (the only kind stored),
// they are its signature, which differs from every other token's and which
// only the issuer chooses, so the entries spread evenly all the same.
// Hashing the whole token, a kilobyte or more, cost more than the rest of
// a hit (maphash works in 128-byte blocks); lookups still compare whole
// tokens, and a token that shares another's last bytes only probes one
// more slot.
func (c *tokenCache) hash(raw string) uint64 {
	return maphash.String(c.seed, raw[max(0, len(raw)-hashTailBytes):])
}

func (c *tokenCache) shard(h uint64) *cacheShard {
	return &c.shards[(h>>32)%c.n]
}

// get returns raw's entry, or nil (tests and benchmarks; Verify calls
// lookup with the hash it also stores).
func (c *tokenCache) get(raw string) *cacheEntry {
	return c.lookup(raw, c.hash(raw))
}

// lookup is get with raw's hash h. A lookup that races with a writer
// moving entries may miss an entry that is there (the caller then verifies
// the token again) but never returns another token's entry: it compares
// whole tokens.
func (c *tokenCache) lookup(raw string, h uint64) *cacheEntry {
	slots := *c.shard(h).slots.Load()
	mask := uint64(len(slots) - 1)
	for i, n := h&mask, 0; n < len(slots); i, n = (i+1)&mask, n+1 {
		e := slots[i].Load()
		if e == nil {
			return nil
		}
		if e.hash == h && e.token == raw {
			return e
		}
	}
	return nil
}

// put stores e, whose token and hash are set, first dropping the shard's
// oldest entry if the shard is full: constant work, whatever the cache's
// size. An entry already stored for the same token is replaced and keeps
// its place in the eviction order.
func (c *tokenCache) put(e *cacheEntry) {
	s := c.shard(e.hash)
	s.mu.Lock()
	defer s.mu.Unlock()
	slots := *s.slots.Load()
	mask := uint64(len(slots) - 1)
	for i := e.hash & mask; ; i = (i + 1) & mask {
		old := slots[i].Load()
		if old == nil {
			break
		}
		if old.hash == e.hash && old.token == e.token {
			if old != e {
				e.pos = old.pos
				s.ring[e.pos] = e
				slots[i].Store(e)
			}
			return
		}
	}
	if len(s.ring) < s.max {
		e.pos = len(s.ring)
		s.ring = append(s.ring, e)
		if 2*len(s.ring) > len(slots) {
			s.grow()
		}
	} else {
		s.remove(s.ring[s.head])
		e.pos = s.head
		s.ring[s.head] = e
		s.head = (s.head + 1) % s.max
	}
	s.slots.Load().insert(e)
}

// grow replaces the shard's table by one twice its size holding the same
// entries, except the newest, which the caller inserts. The new table is
// filled before it is published; readers still on the old one find what it
// held, and it is not written again.
func (s *cacheShard) grow() {
	slots := make(cacheSlots, 2*len(*s.slots.Load()))
	for _, e := range s.ring[:len(s.ring)-1] {
		slots.insert(e)
	}
	s.slots.Store(&slots)
}

// insert puts e in the first free slot of its probe run; the table is at
// most half full, so there is one.
func (slots cacheSlots) insert(e *cacheEntry) {
	mask := uint64(len(slots) - 1)
	i := e.hash & mask
	for slots[i].Load() != nil {
		i = (i + 1) & mask
	}
	slots[i].Store(e)
}

// remove takes e out of the table and moves back each later entry of its
// probe run that may fill the gap (deletion in linear probing), so that no
// run is cut. It reads only e's hash, never its token, which has gone cold
// in memory by the time the oldest entry leaves.
func (s *cacheShard) remove(e *cacheEntry) {
	slots := *s.slots.Load()
	mask := uint64(len(slots) - 1)
	i := e.hash & mask
	for slots[i].Load() != e {
		i = (i + 1) & mask
	}
	// The gap at i stays filled (by e, then by entries already copied
	// forward) until the run's end, so a concurrent lookup never stops
	// early at a false free slot.
	for j := (i + 1) & mask; ; j = (j + 1) & mask {
		f := slots[j].Load()
		if f == nil {
			break
		}
		// f may fill the gap if the gap lies on its probe path, between
		// its home slot and j.
		if (j-f.hash)&mask >= (j-i)&mask {
			slots[i].Store(f)
			i = j
		}
	}
	slots[i].Store(nil)
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
