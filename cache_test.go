package grpcjwt

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
)

// ctEntry returns an entry for token placed by hash h, which the tests
// choose so that probe runs collide and wrap around the table's end.
func ctEntry(token string, h uint64) *cacheEntry {
	return &cacheEntry{token: token, hash: h}
}

// ctCheck asserts that the shards hold exactly want, each entry found by
// its token, and that every table is at most half full.
func ctCheck(t *testing.T, c *tokenCache, want []*cacheEntry, gone []*cacheEntry) {
	t.Helper()
	for _, e := range want {
		if got := c.lookup(e.token, e.hash); got != e {
			t.Fatalf("%s (hash %#x) is not found", e.token, e.hash)
		}
	}
	for _, e := range gone {
		if got := c.lookup(e.token, e.hash); got != nil {
			t.Fatalf("%s (hash %#x) is found after its eviction", e.token, e.hash)
		}
	}
	held := 0
	for i := range c.n {
		s := &c.shards[i]
		slots := *s.slots.Load()
		used := 0
		for j := range slots {
			if e := slots[j].Load(); e != nil {
				used++
				if s.ring[e.pos] != e {
					t.Fatalf("%s is in the table but not at its place in the ring", e.token)
				}
			}
		}
		if used != len(s.ring) || 2*used > len(slots) || len(s.ring) > s.max {
			t.Fatalf("shard %d: %d slots of %d used, %d entries, bound %d", i, used, len(slots), len(s.ring), s.max)
		}
		held += used
	}
	if held != len(want) {
		t.Fatalf("the cache holds %d entries, want %d", held, len(want))
	}
}

// TestTokenCacheProbeRuns checks the table against a model of it (a FIFO
// of the newest entries) through insertions, replacements and evictions,
// with hashes drawn from a few slots so that runs collide, merge and wrap.
func TestTokenCacheProbeRuns(t *testing.T) {
	for _, bound := range []int{1, 2, 7, 8, 100} {
		t.Run(fmt.Sprint("bound=", bound), func(t *testing.T) {
			c := newTokenCache(bound, 1)
			rng := rand.New(rand.NewPCG(1, uint64(bound)))
			var fifo, gone []*cacheEntry
			size := uint64(tableSize(bound))
			for i := range 20 * bound {
				// Mostly new tokens; sometimes one again, which replaces
				// its entry in place.
				var e *cacheEntry
				if old := fifo; len(old) > 0 && rng.IntN(4) == 0 {
					prev := old[rng.IntN(len(old))]
					e = ctEntry(prev.token, prev.hash)
					fifo[slices.Index(fifo, prev)] = e
				} else {
					// Slots near the table's end, so that runs wrap; the high
					// bits vary, so equal slots do not mean equal hashes.
					h := (size-2+uint64(rng.IntN(5)))%size | rng.Uint64()<<16
					e = ctEntry(fmt.Sprintf("token-%d", i), h)
					fifo = append(fifo, e)
					if len(fifo) > bound {
						gone = append(gone, fifo[0])
						fifo = fifo[1:]
					}
				}
				c.put(e)
				ctCheck(t, c, fifo, gone[max(0, len(gone)-bound):])
			}
			if got := len(*c.shards[0].slots.Load()); got != int(size) {
				t.Errorf("the table grew to %d slots, want %d", got, size)
			}
		})
	}
}

// TestTokenCacheSameToken checks that an entry put again is kept, and that
// a new entry for a stored token replaces it without taking a second
// place.
func TestTokenCacheSameToken(t *testing.T) {
	c := newTokenCache(2, 1)
	a, b := ctEntry("a", 1), ctEntry("b", 1)
	c.put(a)
	c.put(b)
	c.put(a)
	ctCheck(t, c, []*cacheEntry{a, b}, nil)
	a2 := ctEntry("a", 1)
	c.put(a2)
	ctCheck(t, c, []*cacheEntry{a2, b}, nil)
	// a2 took a's place in the order, so it is still the oldest.
	d := ctEntry("d", 2)
	c.put(d)
	ctCheck(t, c, []*cacheEntry{b, d}, []*cacheEntry{a2})
}

// TestTokenCacheConcurrent runs writers and readers on a small cache of
// colliding hashes (run it with -race): a lookup may miss an entry that a
// writer is moving, but never returns another token's entry, and the cache
// ends holding exactly its newest entries.
func TestTokenCacheConcurrent(t *testing.T) {
	const writers, readers, perWriter, entries = 4, 4, 2000, 64
	c := newTokenCache(entries, 4)
	tokens := make([]*cacheEntry, writers*perWriter)
	for i := range tokens {
		// 8 hashes per shard's low bits: long, shared runs.
		tokens[i] = ctEntry(fmt.Sprintf("token-%d", i), uint64(i%4)<<32|uint64(i%8)|uint64(i)<<40)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var wrong sync.Map
	for r := range readers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(2, uint64(r)))
			for {
				select {
				case <-stop:
					return
				default:
				}
				e := tokens[rng.IntN(len(tokens))]
				if got := c.lookup(e.token, e.hash); got != nil && got.token != e.token {
					wrong.Store(e.token, got.token)
				}
			}
		})
	}
	var ww sync.WaitGroup
	for w := range writers {
		ww.Go(func() {
			for _, e := range tokens[w*perWriter : (w+1)*perWriter] {
				c.put(e)
			}
		})
	}
	ww.Wait()
	close(stop)
	wg.Wait()
	wrong.Range(func(k, v any) bool {
		t.Errorf("a lookup of %s returned %s's entry", k, v)
		return true
	})
	// Every shard is full; each holds exactly the entries of its ring.
	var held []*cacheEntry
	for i := range c.n {
		held = append(held, c.shards[i].ring...)
	}
	ctCheck(t, c, held, nil)
	if len(held) != entries {
		t.Errorf("the cache holds %d entries, want %d", len(held), entries)
	}
}
